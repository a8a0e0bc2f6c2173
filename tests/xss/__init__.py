"""The HTML/script payload corpus of tests/test_xss*.py."""
