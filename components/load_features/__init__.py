"""Load-features step: a model spec and a time window -> the point-in-time training set (Parquet) and its
lineage (JSON). The plain functions live in `core.py`."""
