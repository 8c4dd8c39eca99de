"""KServe Standard mode (`serving.kserve.io/deploymentMode: Standard`): the stable predictor and a canary are
two Deployments behind two Services, and KServe's Gateway API HTTPRoute splits the traffic between them.

Source (kserve, read at v0.20.0 1fb781055dd1567164358233e1125142ca6ef1fe and at master aaac4e294dae):
- `spec.canary: [{predictor, trafficPercent}]` (pkg/apis/serving/v1beta1/inference_service.go, CanarySpec);
  `predictor.name` names the Deployment and Service `{isvc}-{name}-predictor` (pkg/constants/constants.go
  PredictorServiceName). Promote = the stable predictor takes the canary's name and model, the entry goes
  (the canary's Deployment is adopted, the old one deleted as orphaned: components/predictor.go
  reconcileCanaryDeployments); the webhook refuses a new `predictor.name` without a new storageUri
  (inference_service_validation.go validatePredictorNameChange) - each name here is the version it serves.
- The canary predictor is the stable one with the entry merged over it (mergo.WithOverride:
  buildCanaryPredictor), built from a deep copy of the InferenceService: metadata annotations are the same
  on both Deployments, so the version annotation that the PodMonitor and KServe's logger read must sit on
  each predictor's own `annotations` (which win over the InferenceService's: buildObjectMeta).
- The webhook refuses `maxReplicas`, `scaleTarget`, `scaleMetric` and `autoScaling` on a canary and
  sums `trafficPercent` to at most 100 (validateCanarySpecs); the canary's replicas are
  ceil(stable minReplicas x trafficPercent / 100).
- The split itself: `applyCanaryWeights` in reconcilers/ingress/httproute_reconciler.go weights the
  HTTPRoute's backends 100 - P / P once `status.canaryStatuses[].ready` (kserve #5912 and #5984, after
  v0.20.0: at v0.20.0 the canary Deployment runs but the route never sends it traffic). Standard-mode
  canaries therefore need a KServe with those changes and the Gateway API enabled (docs/cluster.md).
- A transformer calls `PredictorServiceName(isvc, spec.predictor.name)` directly (components/
  transformer.go), past the HTTPRoute: behind a transformer a canary would get no traffic, so rendering one
  is refused.
"""

from __future__ import annotations

import copy
from typing import Any

from core.registry import ModelVersionRef
from core.spec.model import ModelSpec
from inference.deploy.annotations import MODEL_VERSION_KEY

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Knative's concurrency metric means nothing to the HPA Standard mode scales with; without these fields
# KServe's HPA scales on CPU at its default target.
_KNATIVE_ONLY = ("scaleMetric", "scaleTarget")


def predictor_name(version: str) -> str:
    """The name of the predictor that serves registry `version` (Deployment `{isvc}-v{version}-predictor`)."""
    return f"v{version}"


def service_name(spec: ModelSpec, version: ModelVersionRef) -> str:
    return f"{spec.name}-{predictor_name(version.version)}-predictor"


def apply_standard_mode(
    service: dict[str, Any],
    spec: ModelSpec,
    stable: ModelVersionRef,
    canary: ModelVersionRef | None,
    percent: int | None,
) -> None:
    """Turn the rendered InferenceService (predictor on `stable`) into Standard mode, with `canary` at
    `percent`% as a `spec.canary` entry. `percent` 0 keeps the entry dark; no canary serves `stable` alone."""
    for name in (service_name(spec, stable), *([service_name(spec, canary)] if canary else [])):
        if len(name) > 63:
            raise ValueError(f"deploy: {spec.name}: Service {name} is longer than a 63-character DNS label")
    predictor = service["spec"]["predictor"]
    for key in _KNATIVE_ONLY:
        predictor.pop(key, None)
        (service["spec"].get("transformer") or {}).pop(key, None)
    stable_predictor = {"name": predictor_name(stable.version), **predictor}
    stable_predictor["model"] = {**predictor["model"], "storageUri": stable.storage_uri}
    stable_predictor["annotations"] = {**predictor.get("annotations", {}), MODEL_VERSION_KEY: stable.version}
    stable_predictor["labels"] = {**predictor.get("labels", {}), **_version_labels(stable)}
    service["spec"]["predictor"] = stable_predictor
    if canary is None:
        return
    if service["spec"].get("transformer"):
        raise ValueError(
            f"deploy: {spec.name}: no Standard-mode canary behind a transformer: KServe sends the "
            "transformer's calls to the stable predictor's Service, so the canary would get no traffic; "
            "roll this model out on a Knative overlay"
        )
    service["spec"]["canary"] = [
        {
            "predictor": {
                "name": predictor_name(canary.version),
                "annotations": {MODEL_VERSION_KEY: canary.version},
                "labels": _version_labels(canary),
                # Complete, not only what differs: the webhook checks the entry's model on its own.
                "model": {**copy.deepcopy(predictor["model"]), "storageUri": canary.storage_uri},
            },
            "trafficPercent": spec.canary.traffic_percent if percent is None else percent,
        }
    ]


def _version_labels(version: ModelVersionRef) -> dict[str, str]:
    # The InferenceService's own labels name the newest version; each Deployment's pods name theirs.
    return {"app.kubernetes.io/version": version.version, MODEL_VERSION_KEY: version.version}
