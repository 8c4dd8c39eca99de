"""Local serving router: the KServe canary split, OIP REST (app.py) and OIP gRPC (grpc_app.py), metrics
and payload CloudEvents in front of a real Triton (`python -m inference.router --help`)."""
