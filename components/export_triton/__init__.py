"""Export step: a model bundle -> a Triton model repository (`cluster/` native backend, `local/` Python
backend) and a parity report (`step.run`; `config_pbtxt.py` renders the configs)."""
