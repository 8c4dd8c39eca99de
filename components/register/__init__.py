"""Register step: log a gated bundle to MLflow and give the new version its alias (`step.run`;
`registration.py` does the MLflow work, `pyfunc_model.py` is the bundle's pyfunc face)."""
