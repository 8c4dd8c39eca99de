"""`make bench-scale`: the training pipeline's cost curve as the demo data grows (1x, 10x, 100x customers).

    python -m pipelines.bench_scale --scales 1,10,100 --out build/bench-scale [--models a,b]

Each scale gets its own `$MLOPS_HOME` under the out folder (data, Feast, MLflow, pipeline root: fresh
stores, so every model is a first champion and no canary traffic blurs the figures), and runs the same
three commands a user runs: demo data, Feast bootstrap, `python -m pipelines.local_run`. The result is a
table per step and model (wall time, rows, rows/s, peak memory, slope) in scale.md and scale.json, and a
log-log chart, scale.png, next to them.
"""
