"""Validate step: a training set (and the previous one) -> a validation report that fails the run naming
the column and the rule. `schema.py` builds the pandera schema, `skew.py` compares with the reference,
`core.py` runs both and formats the report."""
