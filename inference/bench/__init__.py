"""Serving benchmark (`python -m inference.bench`): Triton, the canary router and MLServer on one model."""
