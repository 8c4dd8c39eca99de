"""Train step: time split, Optuna search over the framework plug-in's `fit`, the model bundle
(`step.run`; `splits.py` and `search.py` are its parts)."""
