"""Attack notebooks for tests/test_attacks.py (see corpus.py)."""
