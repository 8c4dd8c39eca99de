"""Model quality from delayed outcomes, inside the drift service (serving env; `store.py` is also read by
the report job in the platform env).

`store.py` keeps logged predictions in sqlite by request id, `outcomes.py` parses `POST /v1/outcomes` and
maps ids and labels onto rows, `tracker.py` joins them and scores the rolling window, `metrics.py` exports
`mlops_model_quality_*`, `demo.py` turns served requests and the demo's labels into outcomes.
"""
