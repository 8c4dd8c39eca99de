"""Load-features step: a model spec and a time window -> the point-in-time training set and its
lineage (`step.run`; the file contract is core/training_set.py)."""
