"""Code the test modules share: builders, fakes, fixture specs and the waits, one module per concern.

A test module imports what it shares from here (or a non-test module such as `tests/core/forest_model.py`),
never from another `test_*.py` module or from a `conftest.py`; pytest finds conftest fixtures by name.
"""
