"""Honest submissions written as students write them (tests/test_honest.py)."""
