"""Deploy model versions to KServe: render the InferenceService, canary, promote and roll back.

    python -m inference.deploy canary --model conversion-xgboost --out .local/serving

See render.py (what the InferenceService looks like), rollout.py (the state machine and why its order
is safe) and apply.py (where objects go: a folder locally, the Kubernetes API in a cluster).
"""
