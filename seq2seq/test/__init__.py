"""Smoke tests shipped with the package (`python -m unittest
seq2seq.test.pipeline_test`); the full test suite is in `tests/`."""
