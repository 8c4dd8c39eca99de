"""Fit-detector step: fit the spec's drift detector on the training set, stored with the model
version (`step.run`)."""
