"""Fuzz tests: bounded hypothesis runs over the readers of model files, suites and `-k` (see fuzzing.py)."""
