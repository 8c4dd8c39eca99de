"""The fit_detector step: fit the spec's drift detector on the training set, stored with the model version.

`step.run(model, training_set_path, detector_dir)` is the entry point; see step.py for where it runs.
"""
