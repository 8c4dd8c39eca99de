"""Export step: a model bundle -> a Triton model repository (`cluster/` native backend, `local/` Python
backend) plus a parity report. The plain functions live in `core.py` and `config_pbtxt.py`."""
