"""The rollout state machine: canary a challenger, then promote it or roll it back.

    rollout = Rollout(FileApplier(out_dir), namespace="mlops")
    rollout.start_shadow(spec, 50)   # optional (Standard mode): 50% of requests copied to the challenger
    rollout.start_canary(spec)       # ends a shadow; champion stable, challenger at traffic_percent
    rollout.promote(spec)            # challenger serves alone, then becomes champion
    rollout.rollback(spec, "p95 latency 2.1x stable")

Registry aliases say what *should* be served; the InferenceService is what *is* served. Every decision is
also recorded on the version as tags `rollout_state` and `rollout_decided_at` (UTC, ISO 8601), plus
`rollback_reason` for a rollback.

Interruptions (why the order is safe): each step first changes the service, then records the decision
as tags, and only then moves aliases, with `challenger` removed last. So at every point where a crash can
stop a step, either nothing changed, or the service is ahead of the registry while the `challenger`
alias still marks the rollout as unfinished; running the same step again re-applies the same object
(idempotent) and finishes the registry part.
- promote, crash before the apply: nothing changed; the canary keeps running.
- promote, crash after the apply: the challenger serves all traffic, champion still names the old
  version; retrying promote moves the aliases. The reverse order could leave `champion` on a version the
  service has not rolled out while `challenger` is already gone, and no retry could tell what to finish.
- rollback, Knative: the first apply pins all traffic to the last rolled-out (champion) revision at once
  (`canaryTrafficPercent: 0`, no new pods needed); the second points storageUri back at the champion
  and keeps the 0, so the champion revision Knative creates is not sent traffic before it is ready. A
  bare stable spec would send 100% to the newest *ready* revision - the rejected challenger - until then.
- rollback, Standard: one apply drops the `spec.canary` entry; the stable predictor never changed, so
  the HTTPRoute sends it everything and KServe deletes the canary's Deployment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import mlflow

from core.registry import (
    CHALLENGER,
    CHAMPION,
    ModelVersionRef,
    delete_alias,
    quiet_mlflow,
    resolve_alias,
    set_alias,
)
from core.settings import DeploymentMode
from core.spec.model import ModelSpec
from inference.deploy.apply import Applier
from inference.deploy.payload_logs import PayloadLogStore
from inference.deploy.render import render_inference_service
from inference.deploy.shadow import DEFAULT_GATEWAY, DEFAULT_INGRESS_DOMAIN, render_shadow, shadow_object_keys

ROLLOUT_STATE_TAG = "rollout_state"
DECIDED_AT_TAG = "rollout_decided_at"
ROLLBACK_REASON_TAG = "rollback_reason"
_MAX_REASON_CHARS = 500  # MLflow tag values are capped; the start of a reason is what people read


class RolloutState(StrEnum):
    SERVING = "serving"
    SHADOW = "shadow"
    CANARY = "canary"
    PROMOTED = "promoted"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class RolloutResult:
    model: str
    state: RolloutState
    champion: ModelVersionRef
    """The version that serves the stable traffic once this step is done."""
    challenger: ModelVersionRef | None
    service: dict[str, Any]
    """The last InferenceService applied."""


class Rollout:
    """Drives one model's InferenceService through a rollout; see the module docstring for the order."""

    def __init__(
        self,
        applier: Applier,
        namespace: str,
        logger_url: str | None = None,
        artifacts_destination: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        mode: DeploymentMode = "Knative",
        payload_store: PayloadLogStore | None = None,
    ) -> None:
        self.applier = applier
        self.payload_store = payload_store
        self.mode = mode
        self.namespace = namespace
        self.logger_url = logger_url
        self.artifacts_destination = artifacts_destination
        self.clock = clock

    def deploy(self, spec: ModelSpec) -> RolloutResult:
        """Serve the champion alone (the first deploy, or a re-sync after a manual change)."""
        champion = self._require(spec, CHAMPION)
        self.end_shadow(spec)
        service = self._apply(spec, champion, None, None)
        self._record(spec, champion, RolloutState.SERVING)
        return RolloutResult(spec.name, RolloutState.SERVING, champion, None, service)

    def start_shadow(
        self,
        spec: ModelSpec,
        percent: int = 100,
        gateway: str = DEFAULT_GATEWAY,
        ingress_domain: str = DEFAULT_INGRESS_DOMAIN,
    ) -> RolloutResult:
        """Copy `percent`% of the champion's infer requests to the challenger (Standard mode; shadow.py)."""
        champion, challenger = self._champion_and_challenger(spec)
        live = render_inference_service(
            spec, champion, None, self.namespace, None, self.logger_url, mode=self.mode,
            payload_store=self.payload_store,
        )  # fmt: skip
        objects = render_shadow(live, challenger, percent, gateway, ingress_domain)
        # what the mirror sends to first, the mirror last: no copy goes to a service not yet applied
        for obj in (objects.shadow, *objects.triggers, objects.live, objects.route):
            self.applier.apply(obj)
        self._record(spec, challenger, RolloutState.SHADOW)
        return RolloutResult(spec.name, RolloutState.SHADOW, champion, challenger, objects.live)

    def end_shadow(self, spec: ModelSpec) -> bool:
        """Delete a shadow rollout's objects (mirror first); False when there were none. The live service
        keeps the shadow annotations until the next apply, which every other step does right after. Only
        Standard mode has shadows (render_shadow refuses Knative), so Knative mode asks the API nothing."""
        if self.mode != "Standard":
            return False
        deleted = [self.applier.delete(*key, self.namespace) for key in shadow_object_keys(spec.name)]
        return any(deleted)

    def start_canary(self, spec: ModelSpec) -> RolloutResult:
        """End a shadow, then send `spec.canary.traffic_percent`% to the challenger, the rest to the
        champion (the shadow's pods carry the challenger's version label: the canary analysis must not
        count their series)."""
        champion, challenger = self._champion_and_challenger(spec)
        self.end_shadow(spec)
        service = self._apply(spec, champion, challenger, None)
        self._record(spec, challenger, RolloutState.CANARY)
        return RolloutResult(spec.name, RolloutState.CANARY, champion, challenger, service)

    def promote(self, spec: ModelSpec) -> RolloutResult:
        """Serve the challenger alone, then make it the champion and drop the `challenger` alias."""
        challenger = self._require(spec, CHALLENGER)
        previous = self._resolve(spec, CHAMPION)
        service = self._apply(spec, challenger, None, None)
        self._record(spec, challenger, RolloutState.PROMOTED)
        if previous is not None and previous.version != challenger.version:
            self._record(spec, previous, RolloutState.RETIRED)
        set_alias(spec.name, CHAMPION, challenger.version)
        delete_alias(spec.name, CHALLENGER)
        return RolloutResult(spec.name, RolloutState.PROMOTED, challenger, None, service)

    def rollback(self, spec: ModelSpec, reason: str) -> RolloutResult:
        """Pin all traffic to the champion, then drop the `challenger` alias and say why on its version."""
        champion, challenger = self._require(spec, CHAMPION), self._require(spec, CHALLENGER)
        if self.mode == "Knative":
            self._apply(spec, champion, challenger, 0)
        service = self._apply(spec, champion, None, 0)
        self._record(spec, challenger, RolloutState.ROLLED_BACK, reason=reason)
        delete_alias(spec.name, CHALLENGER)
        return RolloutResult(spec.name, RolloutState.ROLLED_BACK, champion, None, service)

    # ------------------------------------------------------------------------------------------ helpers
    def _resolve(self, spec: ModelSpec, alias: str) -> ModelVersionRef | None:
        return resolve_alias(spec.name, alias, self.artifacts_destination)

    def _champion_and_challenger(self, spec: ModelSpec) -> tuple[ModelVersionRef, ModelVersionRef]:
        champion, challenger = self._require(spec, CHAMPION), self._require(spec, CHALLENGER)
        if challenger.version == champion.version:
            raise ValueError(
                f"deploy: {spec.name}: challenger and champion are both version {champion.version}"
            )
        return champion, challenger

    def _require(self, spec: ModelSpec, alias: str) -> ModelVersionRef:
        ref = self._resolve(spec, alias)
        if ref is None:
            raise LookupError(f"deploy: {spec.name} has no {alias!r} version in the registry")
        return ref

    def _apply(
        self,
        spec: ModelSpec,
        stable: ModelVersionRef,
        canary: ModelVersionRef | None,
        percent: int | None,
    ) -> dict[str, Any]:
        service = render_inference_service(
            spec,
            stable,
            canary,
            self.namespace,
            percent,
            self.logger_url,
            mode=self.mode,
            payload_store=self.payload_store,
        )
        self.applier.apply(service)
        return service

    def _record(
        self, spec: ModelSpec, ref: ModelVersionRef, state: RolloutState, reason: str | None = None
    ) -> None:
        tags = {ROLLOUT_STATE_TAG: state.value, DECIDED_AT_TAG: self.clock().isoformat()}
        if reason is not None:
            tags[ROLLBACK_REASON_TAG] = reason[:_MAX_REASON_CHARS]
        with quiet_mlflow():
            client = mlflow.MlflowClient()
            for key, value in tags.items():
                client.set_model_version_tag(spec.name, ref.version, key, value)
