"""Container images the pipeline steps run in: the one place pipelines take image names from.

`make images` builds them: `components/Dockerfile` (targets `platform` and `training`, the latter with the
CUDA build of torch) and `inference/Dockerfile` (target `serving`), each from its environment's lock file
and with this repository's code, so a component's body can import it. Tags are pinned; never `latest`.
"""

REGISTRY = "ghcr.io/mlops-loop"
VERSION = "0.1.0"

PLATFORM_IMAGE = f"{REGISTRY}/platform:{VERSION}"  # Feast, MLflow, validation, registry I/O
TRAINING_IMAGE = f"{REGISTRY}/training:{VERSION}"  # + torch, transformers, ONNX export
SERVING_IMAGE = f"{REGISTRY}/serving:{VERSION}"  # numpy<2: Triton python backend, alibi-detect
