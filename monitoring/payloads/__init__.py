"""Decoding what KServe's logger sends, shared by the drift service and quality tracking:
`cloudevents.py` (the HTTP envelope), `oip.py` (Open Inference Protocol rows and probabilities),
`logged.py` (one `LoggedInference` per event, decoded once), `errors.py` (`EventError`, its reasons).
"""
