"""Register: log a gated model bundle to MLflow and give the new version its alias.

`core.register` is the step; `registry` holds tracking setup and alias lookups that other steps (gate,
deploy) share; `pyfunc_model` is the bundle's MLflow pyfunc wrapper.
"""
