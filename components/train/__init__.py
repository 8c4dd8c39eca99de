"""The train step: time split, Optuna search, per-framework trainers writing a model bundle.

`core.train(spec, training_set, out_dir)` is the entry point; `<framework>_model.py` modules provide
`fit`, `load` and `export_triton_artifact` (see components/README.md, "Bundle").
"""
