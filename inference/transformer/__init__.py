"""KServe transformer for the tabular models: entity ids in, Feast online features, Triton tensors out.

Run with `python -m inference.transformer` (see __main__.py); the model is inference/transformer/model.py.
"""
