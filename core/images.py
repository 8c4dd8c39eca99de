"""Container images: the one place the compiled pipeline, the manifests (`make compile` writes the one
`images:` block every overlay uses, kustomize/components/images/) and the components take names from.

`make images` builds the project's images: `components/Dockerfile` (targets `platform` and `training`,
the latter with the CUDA build of torch) and `inference/Dockerfile` (target `serving`), each from its
environment's lock file and with this repository's code. Their tag is the release plus the digest of the
code they are built from (core/code_digest.py), so a tag identifies its code: a changed image is a new
tag, never a reused one that a node with `IfNotPresent` would keep running stale. Never `latest`.
"""

from core.image_tag import CODE_DIGEST

REGISTRY = "ghcr.io/mlops-loop"
RELEASE = "0.1.0"
TAG = f"{RELEASE}-{CODE_DIGEST}"

PLATFORM_IMAGE = f"{REGISTRY}/platform:{TAG}"  # Feast, MLflow, validation, registry I/O
TRAINING_IMAGE = f"{REGISTRY}/training:{TAG}"  # + torch, transformers, ONNX export
SERVING_IMAGE = f"{REGISTRY}/serving:{TAG}"  # numpy<2: Triton python backend, alibi-detect
PROJECT_IMAGES = (PLATFORM_IMAGE, TRAINING_IMAGE, SERVING_IMAGE)

# Third-party images the overlays run, pinned here too; not verified against their registries from this
# machine (docs/cluster.md). NGC release tags are YY.MM-py3.
MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow:v3.17.2"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:25.10-py3"  # the FIL backend's Treelite follows the release
THIRD_PARTY_IMAGES = (MLFLOW_IMAGE, TRITON_IMAGE)
