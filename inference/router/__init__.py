"""Local serving router: the KServe canary split, OIP REST, metrics and payload CloudEvents in front of a
real Triton (see app.py; `python -m inference.router --help`)."""
