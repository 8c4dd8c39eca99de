"""Is the canary revision serving yet? Read from the InferenceService's status, as KServe writes it.

The cluster analysis must not start its window before the canary can answer: an image pull or a model
load that takes minutes would otherwise eat the window, and the canary would be judged on too few
requests. KServe copies the predictor's Knative Service status into the InferenceService (kserve v0.20.0,
commit 1fb781055dd1567164358233e1125142ca6ef1fe, pkg/apis/serving/v1beta1/inference_service_status.go,
`PropagateStatus`): `status.components.predictor.latestCreatedRevision` is the revision the canary spec
created, `latestReadyRevision` the newest one that became Ready, `latestRolledoutRevision` the last one
that took all traffic, `traffic` the split, and the condition `PredictorConfigurationReady` is Knative's
`ConfigurationsReady` (False with the revision's failure when the newest revision cannot start).
`status.observedGeneration` tells whether the status describes the spec deploy applied.

The canary is ready when the status is current, the newest created revision is also the newest ready one,
it is not the rolled-out (stable) revision, and it carries traffic. It has failed when the configuration
condition is False for the newest revision.

Standard mode (a `spec.canary` entry, inference/deploy/standard.py): KServe writes `status.canaryStatuses
[{name, ready, trafficPercent}]`, `ready` once the canary's Deployment has an available replica
(components/predictor.go reconcileCanaryDeployments), and its HTTPRoute sends the canary traffic only from
then on (httproute_reconciler.go applyCanaryWeights, kserve #5984). The canary is ready when the status
is current and its entry is ready with traffic. A crash-looping canary is never Ready; KServe reports no
failure for it (the condition `CanaryPredictorReady` says only `CanariesNotReady`), so the wait's timeout
is what rolls it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from inference.deploy.standard import DEPLOYMENT_MODE_ANNOTATION

CONFIGURATION_READY = "PredictorConfigurationReady"
STANDARD_MODES = ("Standard", "RawDeployment")  # KServe's name and its legacy one
DEFAULT_POLL_S = 5.0


@dataclass(frozen=True)
class CanaryState:
    ready: bool
    failed: bool
    revision: str | None
    """The canary's revision name when known (the newest created predictor revision)."""
    detail: str
    """Why it is not ready (or failed); empty when ready."""


def canary_state(isvc: Mapping[str, Any] | None, canary_name: str | None = None) -> CanaryState:
    """What the InferenceService's status says about its canary: the newest Knative revision, or in
    Standard mode the `spec.canary` entry whose predictor is named `canary_name`."""
    if not isvc:
        return CanaryState(False, False, None, "the InferenceService does not exist")
    status = isvc.get("status") or {}
    generation = (isvc.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return CanaryState(
            False, False, None, f"status is for generation {observed}, the spec is {generation}"
        )
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    mode = status.get("deploymentMode") or annotations.get(DEPLOYMENT_MODE_ANNOTATION)
    if mode in STANDARD_MODES:
        return _standard_canary_state(isvc, status, canary_name)
    predictor = (status.get("components") or {}).get("predictor") or {}
    created = predictor.get("latestCreatedRevision")
    if not created:
        return CanaryState(False, False, None, "no predictor revision created yet")
    failure = _false_condition(status, CONFIGURATION_READY)
    if failure and predictor.get("latestReadyRevision") != created:
        return CanaryState(False, True, created, f"revision {created} failed: {failure}")
    if predictor.get("latestReadyRevision") != created:
        return CanaryState(False, False, created, f"revision {created} is not Ready yet")
    if created == predictor.get("latestRolledoutRevision"):
        return CanaryState(False, False, created, f"revision {created} is the rolled-out one, not a canary")
    percent = sum(
        int(t.get("percent") or 0) for t in predictor.get("traffic") or [] if t.get("revisionName") == created
    )
    if percent <= 0:
        return CanaryState(False, False, created, f"revision {created} is Ready but has no traffic yet")
    return CanaryState(True, False, created, "")


def _standard_canary_state(
    isvc: Mapping[str, Any], status: Mapping[str, Any], name: str | None
) -> CanaryState:
    canaries = (isvc.get("spec") or {}).get("canary") or []
    names = [((entry or {}).get("predictor") or {}).get("name") for entry in canaries]
    if name not in names:
        return CanaryState(False, False, name, f"spec.canary has no predictor {name} (it has {names})")
    entry = next((c for c in status.get("canaryStatuses") or [] if c.get("name") == name), None)
    if entry is None:
        return CanaryState(False, False, name, f"status.canaryStatuses has no {name} yet")
    if not entry.get("ready"):
        return CanaryState(False, False, name, f"canary predictor {name} is not Ready yet")
    if int(entry.get("trafficPercent") or 0) <= 0:
        return CanaryState(False, False, name, f"canary predictor {name} is Ready but has no traffic")
    return CanaryState(True, False, name, "")


def wait_for_canary(
    read: Callable[[], Mapping[str, Any] | None],
    timeout_s: float,
    poll_s: float = DEFAULT_POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    canary_name: str | None = None,
) -> CanaryState:
    """Poll `read()` (the InferenceService) until its canary is ready or has failed, at most `timeout_s`;
    the last state otherwise, with the wait named in its detail. `canary_name`: see `canary_state`."""
    deadline = clock() + timeout_s
    while True:
        state = canary_state(read(), canary_name)
        if state.ready or state.failed:
            return state
        if clock() >= deadline:
            detail = f"not Ready within {timeout_s:g} s ({state.detail})"
            return CanaryState(False, False, state.revision, detail)
        sleep(min(poll_s, max(deadline - clock(), 0.0)))


def _false_condition(status: Mapping[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "False":
            reason, message = condition.get("reason") or "", condition.get("message") or ""
            return ": ".join(part for part in (reason, message) if part) or "False"
    return None
