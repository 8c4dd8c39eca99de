"""Validate step: a training set (and the previous one) -> a report that fails the run naming the
column and rule (`step.run`; `schema.py`, `skew.py` and `validation.py` are its parts)."""
