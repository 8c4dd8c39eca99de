"""Render one model's KServe InferenceService from the spec and the versions it serves.

Deployment mode, per overlay (`KSERVE_DEPLOYMENT_MODE`): **Knative** (below) or **Standard**
(inference/deploy/standard.py: the canary as a `spec.canary` entry with its own Deployment). In Knative
mode canaries use the predictor's `canaryTrafficPercent`: Knative keeps every revision, so KServe sends P%
to the newest ready revision and the rest to the last fully rolled-out one, and moving traffic needs no
new pods.

What the fields mean over a Knative rollout (the storageUri is always the newest revision's model):

| phase | storageUri | canaryTrafficPercent |
| --- | --- | --- |
| stable (first deploy, after promote) | stable version | absent: 100% to the newest revision |
| canary | challenger | P (the stable revision keeps 100 - P) |
| rollback, pinned | stable (or challenger) | 0: all traffic on the last rolled-out revision |

The spec alone does not say which version the other revision runs (Knative remembers it), so the
annotations name both versions and their local repositories: local mode's router splits traffic from them.

Transformer (models whose spec names a Feast feature service): the platform image running
`python -m inference.transformer`, which sends the raw online features to the predictor. It holds nothing
of any version (each version's model does its own fitted preprocessing: core/encoding_onnx.py), so its
spec names no version and no storage: Knative splits transformer and predictor revisions independently,
and any transformer revision feeds any predictor revision correctly. A canary or a promotion changes only
the predictor.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from core.images import PLATFORM_IMAGE
from core.paths import REPO_ROOT
from core.registry import ModelVersionRef
from core.settings import DeploymentMode
from core.spec.model import ModelSpec
from inference.deploy.annotations import (
    CANARY_VERSION_KEY,
    LOCAL_REPOSITORY_KEY,
    MODEL_KEY,
    MODEL_VERSION_KEY,
    STABLE_LOCAL_REPOSITORY_KEY,
    STABLE_VERSION_KEY,
)
from inference.deploy.payload_logs import PayloadLogStore
from inference.deploy.standard import DEPLOYMENT_MODE_ANNOTATION, apply_standard_mode

TEMPLATE_PATH = REPO_ROOT / "manifests" / "serving" / "inferenceservice.template.yaml"
GPU_RESOURCE = "nvidia.com/gpu"
# Knative names revisions `<isvc>-predictor-00001`, and a revision name is a 63-character DNS label.
MAX_NAME_LENGTH = 63 - len("-predictor-00001")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


BROKER_INGRESS_HOST = "broker-ingress.knative-eventing.svc.cluster.local"  # path: /<namespace>/<broker>


def default_logger_url(namespace: str) -> str:
    """The namespace's default Knative broker: the drift detector subscribes to it with a Trigger."""
    return f"http://{BROKER_INGRESS_HOST}/{namespace}/default"


def render_inference_service(
    spec: ModelSpec,
    stable: ModelVersionRef | None,
    canary: ModelVersionRef | None,
    namespace: str,
    canary_percent: int | None = None,
    logger_url: str | None = None,
    template_path: Path = TEMPLATE_PATH,
    mode: DeploymentMode = "Knative",
    payload_store: PayloadLogStore | None = None,
) -> dict[str, Any]:
    """The InferenceService for `spec`: `stable` alone, or `canary` rolling out next to `stable`.

    `canary_percent` defaults to the spec's `canary.traffic_percent` when there is a canary; with no
    canary, in Knative mode 0 pins all traffic to the last rolled-out revision (a rollback) and None rolls
    out fully; in Standard mode it is not used (the stable predictor alone takes all traffic).
    `payload_store`: the logger writes batches to object storage instead of posting to `logger_url`.
    """
    check_name(spec.name)
    served = _served_version(spec, stable, canary)
    percent = _traffic_percent(spec, canary, canary_percent)
    service = _load_template(template_path)
    service["metadata"] |= {"name": spec.name, "namespace": namespace}
    service["metadata"]["labels"] |= _labels(spec, served)
    service["metadata"]["annotations"] |= _annotations(spec, served, stable, canary)
    # KServe records the mode in status normalised (`Knative`, never `Serverless`) and refuses an update whose
    # annotation differs from it (kserve v0.20.0 inference_service_validation.go validateDeploymentMode).
    service["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] = mode
    predictor = service["spec"]["predictor"]
    predictor["logger"]["url"] = logger_url or default_logger_url(namespace)
    _log_version_annotation(predictor["logger"])
    if payload_store is not None:
        payload_store.apply(predictor["logger"])
    predictor["model"]["storageUri"] = served.storage_uri
    if spec.serving.gpu:
        _request_gpu(predictor)
    _configure_transformer(service["spec"], spec)
    if mode == "Standard":
        apply_standard_mode(service, spec, stable, canary, canary_percent)
    elif percent is not None:
        predictor["canaryTrafficPercent"] = percent
    return service


def check_name(name: str) -> None:
    """Raise unless `name` can name an InferenceService and its Knative revisions."""
    if not _DNS_1035.match(name) or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"deploy: {name!r} cannot name an InferenceService: use lower-case letters, digits and '-', "
            f"start with a letter, at most {MAX_NAME_LENGTH} characters"
        )


def _served_version(
    spec: ModelSpec, stable: ModelVersionRef | None, canary: ModelVersionRef | None
) -> ModelVersionRef:
    if stable is None:
        what = "a canary needs a stable version to split traffic with" if canary else "nothing to serve"
        raise ValueError(f"deploy: {spec.name}: {what}")
    for ref in (stable, canary):
        if ref is not None and ref.name != spec.name:
            raise ValueError(f"deploy: {spec.name}: version {ref.version} belongs to model {ref.name!r}")
    return canary or stable


def _traffic_percent(spec: ModelSpec, canary: ModelVersionRef | None, percent: int | None) -> int | None:
    if canary is not None and percent is None:
        return spec.canary.traffic_percent
    if percent is not None and not 0 <= percent <= 100:
        raise ValueError(f"deploy: {spec.name}: canary percent must be within 0..100 (got {percent})")
    return percent


def _log_version_annotation(logger: dict[str, Any]) -> None:
    # KServe's logger sends the listed pod annotations with every event (`ce-annotations`, KServe >= 0.16;
    # kserve v0.20.0 pkg/logger/worker.go); each revision's pods keep the version they were created
    # with, which is how the drift service tells a canary's events from the stable version's.
    listed = list(logger.get("metadataAnnotations") or [])
    if MODEL_VERSION_KEY not in listed:
        logger["metadataAnnotations"] = [*listed, MODEL_VERSION_KEY]


def _load_template(path: Path) -> dict[str, Any]:
    try:
        template = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise FileNotFoundError(f"deploy: InferenceService template {path} not readable: {error}") from None
    service = copy.deepcopy(template)
    service.setdefault("metadata", {}).setdefault("labels", {})
    service["metadata"].setdefault("annotations", {})
    service["spec"]["predictor"].setdefault("logger", {"mode": "all"})
    return service


def _labels(spec: ModelSpec, served: ModelVersionRef) -> dict[str, str]:
    # Labels reach the pods, so metrics scraped from them carry model and version.
    return {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/version": served.version,
        MODEL_KEY: spec.name,
        MODEL_VERSION_KEY: served.version,
    }


def _annotations(
    spec: ModelSpec, served: ModelVersionRef, stable: ModelVersionRef, canary: ModelVersionRef | None
) -> dict[str, str]:
    annotations = {
        MODEL_KEY: spec.name,
        MODEL_VERSION_KEY: served.version,
        LOCAL_REPOSITORY_KEY: served.local_repository_uri,
        STABLE_VERSION_KEY: stable.version,
        STABLE_LOCAL_REPOSITORY_KEY: stable.local_repository_uri,
    }
    if canary is not None:
        annotations[CANARY_VERSION_KEY] = canary.version
    return annotations


def _configure_transformer(service_spec: dict[str, Any], spec: ModelSpec) -> None:
    """The Feast transformer for feature-service models (the same for every version); none for others."""
    transformer = service_spec.pop("transformer", None)
    if transformer is None or not spec.inputs.feature_service:
        return
    transformer["containers"][0]["image"] = PLATFORM_IMAGE
    service_spec["transformer"] = transformer


def _request_gpu(predictor: dict[str, Any]) -> None:
    resources = predictor["model"].setdefault("resources", {})
    for part in ("requests", "limits"):
        resources.setdefault(part, {})[GPU_RESOURCE] = "1"
    # GPU nodes are usually tainted so that only GPU work lands on them.
    toleration = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
    predictor.setdefault("tolerations", []).append(toleration)
