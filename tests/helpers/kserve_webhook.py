"""What KServe's InferenceService admission webhook refuses, for the fields deploy renders, as the API server
would run it on create and on update. No API server or KServe runs here; these rules are transcribed from
kserve v0.20.0 (commit 1fb781055dd1567164358233e1125142ca6ef1fe),
pkg/apis/serving/v1beta1/inference_service_validation.go:
- ValidateUpdate -> validateDeploymentMode: the annotation must equal the mode the controller recorded in
  `status.deploymentMode`, which it writes normalised (`Knative`, `Standard`: controller.go updateStatus,
  utils.go GetDeploymentMode/ParseDeploymentMode);
- ValidateUpdate -> validatePredictorNameChange: a new `spec.predictor.name` needs a new storageUri;
- validatePredictor: no `name` on `spec.predictor.model`;
- validateCanarySpecs: `spec.canary` only with the annotation `Standard`, a stable model, named,
  unique entries not named like the stable predictor, each trafficPercent in 0..100 and their sum <= 100, one
  implementation, no workerSpec/maxReplicas/scaleTarget/scaleMetric/autoScaling, minReplicas <= the stable's.
`ApiServer` stores applied objects and records the status mode the way the controller does, so a rollout's
sequence of applies is checked as a cluster would check it.
"""

from __future__ import annotations

import copy
from typing import Any

MODE_KEY = "serving.kserve.io/deploymentMode"
_LEGACY = {"Serverless": "Knative", "RawDeployment": "Standard"}
_IMPLEMENTATIONS = ("model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface")
_CANARY_FORBIDDEN = ("workerSpec", "maxReplicas", "scaleTarget", "scaleMetric", "autoScaling")


def refusals(new: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """The webhook's errors for creating `new` (old None) or updating `old` (as stored, with status) to it."""
    problems: list[str] = []
    annotations = new["metadata"].get("annotations") or {}
    spec = new["spec"]
    if old is not None:
        recorded = (old.get("status") or {}).get("deploymentMode")
        if recorded and MODE_KEY in annotations and annotations[MODE_KEY] != _normalised(recorded):
            mode = annotations[MODE_KEY]
            problems.append(f"deploymentMode cannot be changed from {_normalised(recorded)} to {mode}")
        renamed = old["spec"]["predictor"].get("name") != spec["predictor"].get("name")
        if renamed and _storage_uri(old["spec"]["predictor"]) == _storage_uri(spec["predictor"]):
            problems.append("predictor.name change requires a model change (e.g. storageUri)")
    if (spec["predictor"].get("model") or {}).get("name"):
        problems.append("the 'name' field is not allowed in standard predictor")
    problems += _canary_refusals(spec, annotations)
    return problems


def _canary_refusals(spec: dict[str, Any], annotations: dict[str, str]) -> list[str]:
    canaries = spec.get("canary") or []
    if not canaries:
        return []
    if annotations.get(MODE_KEY) != "Standard":
        return ["canary is only supported in Standard deployment mode"]
    stable = spec["predictor"]
    if stable.get("model") is None:
        return ["canary requires a stable predictor with a model"]
    problems, names, total = [], set(), 0
    for i, canary in enumerate(canaries):
        predictor = canary["predictor"]
        name = predictor.get("name") or ""
        if not name:
            problems.append(f"canary[{i}] predictor.name is required")
        if name in names:
            problems.append(f"canary predictor.name {name!r} is duplicated")
        if name == stable.get("name"):
            problems.append(f"canary predictor.name {name!r} conflicts with stable predictor name")
        names.add(name)
        percent = canary["trafficPercent"]
        if not 0 <= percent <= 100:
            problems.append(f"canary {name!r} trafficPercent must be between 0 and 100")
        total += percent
        if sum(key in predictor for key in _IMPLEMENTATIONS) != 1:
            problems.append(f"canary {name!r} predictor: exactly one implementation")
        problems += [f"canary {name!r} must not set {key}" for key in _CANARY_FORBIDDEN if key in predictor]
        if predictor.get("minReplicas", 0) > stable.get("minReplicas", 1):
            problems.append(f"canary {name!r} minReplicas must not exceed stable predictor minReplicas")
    if total > 100:
        problems.append(f"sum of canary trafficPercent values ({total}) must be <= 100")
    return problems


def _normalised(mode: str) -> str:
    return _LEGACY.get(mode, mode)


def _storage_uri(predictor: dict[str, Any]) -> str | None:
    return (predictor.get("model") or {}).get("storageUri")


class ApiServer:
    """An applier that admits each apply through `refusals` against the stored object, then stores it with
    `status.deploymentMode` as KServe's controller records it (the mode of the first create)."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.applied: list[dict[str, Any]] = []

    def apply(self, obj: dict[str, Any]) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        old = self.stored.get(key)
        problems = refusals(obj, old)
        if problems:
            raise ValueError("admission webhook denied the request: " + "; ".join(problems))
        status = copy.deepcopy((old or {}).get("status")) or {
            "deploymentMode": _normalised(obj["metadata"]["annotations"][MODE_KEY])
        }
        self.stored[key] = {**copy.deepcopy(obj), "status": status}
        self.applied.append(copy.deepcopy(obj))

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.stored.get((namespace, name)))

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        if kind != "InferenceService":  # it stores InferenceServices only
            return False
        return self.stored.pop((namespace, name), None) is not None
