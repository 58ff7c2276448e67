"""The test suite: imported as `tests.*` from the repository (pytest `pythonpath`), never installed."""
