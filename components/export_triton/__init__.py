"""Export step: a model bundle -> a Triton model repository (`cluster/` native backend, `local/` Python
backend) and a parity report (`step.run`; the repository layout is inference/triton_repository.py)."""
