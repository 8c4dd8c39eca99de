"""Canary analysis: compare canary and stable over the spec's window, decide with the spec's criteria and
record the decision and its evidence on the challenger's MLflow version.

Cluster: wait (at most `canary.ready_timeout_s`) for the canary revision to be Ready in the
InferenceService's status (inference/canary/readiness.py; one that fails or never gets there is rolled
back with that reason), then `canary.analysis_window_s` of live traffic from that moment, then read
requests, server errors and p95 per version from Prometheus (`$PROMETHEUS_URL`), prediction shift from the
drift service's score histograms. Local: once the runtime's Prometheus has recorded both versions, send
the demo traffic (the newest rows of the champion's training set) through the live runtime's router with
`tritonclient` over HTTP and gRPC, wait until Prometheus has recorded what Triton counted, and read it with
the cluster's queries over the traffic's window; the collected scores stand in for the drift service's
histograms (the runtime's Prometheus does not scrape a drift service).

This module must not import kserve: the gRPC half of the traffic runs `tritonclient.grpc` (see
inference/canary/traffic.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from core.registry import (
    CHALLENGER,
    CHAMPION,
    ModelVersionRef,
    configure_tracking,
    quiet_mlflow,
    require_alias,
    version_predictor,
)
from core.settings import settings
from core.spec.model import ModelSpec, load_specs
from core.timing import timed_step
from inference.canary import release
from inference.canary.analysis import CanaryDecision, CanaryEvidence, RoleEvidence, decide, evidence_summary
from inference.canary.evidence import evidence_from_prometheus, wait_for_recorded
from inference.canary.readiness import wait_for_canary
from inference.canary.traffic import Encoder, Endpoints, Traffic, send_traffic
from inference.deploy.annotations import NAMESPACE
from inference.deploy.apply import FileApplier, KubernetesApplier
from inference.deploy.standard import predictor_name
from inference.router.isvc import load_isvc_file
from inference.runtime_file import RuntimeInfo, require_runtime

STEP = "analyze_canary"
TRAINING_SET_ARTIFACT = "data"
NEWEST_ROWS = 500
MIN_REQUESTS = 400
GRPC_SHARE = 0.25
RowsFor = Callable[[ModelSpec, ModelVersionRef], pd.DataFrame]
EncoderFor = Callable[[str, str], Encoder]


def analyze_canary(
    model: str, version: str, deployment: str, serving_mode: str, say: Callable[[str], None] = print
) -> str:
    """The verdict for the canary `deployment` started ("promote", "rollback", "inconclusive"), or
    "no-canary" (nothing deployed as a canary: nothing to analyse)."""
    if deployment == release.NO_CANARY:
        say(f"[{STEP}] {model}: no canary to analyse")
        return release.NO_CANARY
    with timed_step(STEP, model):
        (spec,) = load_specs(names=[model])
        configure_tracking()
        champion, challenger = require_alias(model, CHAMPION, STEP), require_alias(model, CHALLENGER, STEP)
        if challenger.version != version:
            raise ValueError(f"{STEP} {model}: the challenger is v{challenger.version}, not v{version}")
        if release.check_mode(serving_mode) == "cluster":
            decision, extra = analyze_in_cluster(spec, champion.version, challenger.version), {}
        else:
            decision, traffic = analyze_locally(spec, require_runtime(), champion, challenger)
            extra = {"traffic": traffic_summary(traffic)}
        release.record_decision(model, version, decision, extra)
        why = "; ".join(decision.reasons) or "all criteria met"
        numbers = release.evidence_line(decision, extra)
        say(f"[{STEP}] {model}: {decision.verdict} v{version}: {why} [{numbers}]")
        return decision.verdict


def analyze_in_cluster(
    spec: ModelSpec,
    stable_version: str,
    canary_version: str,
    read_isvc: Callable[[], Mapping[str, Any] | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> CanaryDecision:
    """Wait for the canary to be Ready, then for the window of traffic, then decide on Prometheus.
    `read_isvc` GETs the InferenceService (default: the Kubernetes API)."""
    read = read_isvc or (lambda: KubernetesApplier().get("InferenceService", spec.name, NAMESPACE))
    name = predictor_name(canary_version)  # its spec.canary entry in Standard mode
    state = wait_for_canary(read, spec.canary.ready_timeout_s, clock=clock, sleep=sleep, canary_name=name)
    if not state.ready:
        evidence = evidence_summary(CanaryEvidence(RoleEvidence(), RoleEvidence(), "isvc-status"))
        reason = f"canary v{canary_version} was never judged: {state.detail}"
        return CanaryDecision(False, [reason], {**evidence, "canary_revision": state.revision})
    sleep(spec.canary.analysis_window_s)
    prometheus = settings().prometheus_url
    versions = {"stable": stable_version, "canary": canary_version}
    window = spec.canary.analysis_window_s
    experiment = spec.canary.experiment
    success_class = experiment.success_class if experiment else None
    evidence = evidence_from_prometheus(prometheus, spec.name, window, versions, success_class=success_class)
    return decide(spec, evidence)


def analyze_locally(
    spec: ModelSpec,
    info: RuntimeInfo,
    champion: ModelVersionRef,
    challenger: ModelVersionRef,
    requests: int | None = None,
    rows_for: RowsFor | None = None,
    encoder_for: EncoderFor | None = None,
    seed: int = 0,
) -> tuple[CanaryDecision, Traffic]:
    """Demo traffic through the runtime's router, then the decision on what Triton counted, read from the
    runtime's Prometheus with the cluster's queries."""
    route = load_isvc_file(
        FileApplier(Path(info.isvc_dir)).path_for("InferenceService", spec.name, NAMESPACE)
    )
    if route.canary_version != challenger.version or route.stable_version != champion.version:
        raise LookupError(
            f"{STEP} {spec.name}: the InferenceService routes stable v{route.stable_version}, canary "
            f"v{route.canary_version}; expected v{champion.version} and v{challenger.version} (deploy first)"
        )
    rows = (rows_for or newest_training_rows)(spec, champion)
    encoder = (encoder_for or bundle_encoder)(spec.name, champion.version)  # every version takes the same
    endpoints = Endpoints(
        info.router_http_url,
        info.router_grpc_address or info.triton_grpc_address,
        grpc_through_router=info.router_grpc_address is not None,
    )
    versions = {"stable": champion.version, "canary": challenger.version}
    # Recorded samples of both versions just before and just after the traffic: the range between them
    # (1 ms wider, so a left-open range keeps the first) needs no extrapolation at either edge.
    before = wait_for_recorded(info.prometheus_url, spec.name, versions.values(), after=time.time())
    count = requests or default_requests(spec)
    traffic = send_traffic(endpoints, route, encoder, rows, count, seed, GRPC_SHARE)
    after = wait_for_recorded(info.prometheus_url, spec.name, versions.values(), after=time.time())
    window_s = round(after - before, 3) + 0.001
    evidence = evidence_from_prometheus(
        info.prometheus_url, spec.name, window_s, versions, scores=False, at=after
    )
    evidence = evidence.with_scores(traffic.scores["stable"], traffic.scores["canary"])
    return decide(spec, evidence), traffic


def default_requests(spec: ModelSpec) -> int:
    """Enough requests that the canary's share reaches `min_requests` with a margin (Triton counts them
    all, over HTTP through the router and over gRPC through the router or straight to Triton)."""
    needed = math.ceil(spec.canary.min_requests * 100 / spec.canary.traffic_percent * 1.25)
    return max(MIN_REQUESTS, needed)


def traffic_summary(traffic: Traffic) -> dict:
    return {
        "sent": traffic.sent,
        "failed": traffic.failed,
        "grpc": traffic.grpc_sent,
        "codes": {f"{role} {code}": n for (role, code), n in sorted(traffic.codes.items(), key=str)},
        "first_error": traffic.first_error,
    }


def newest_training_rows(
    spec: ModelSpec, champion: ModelVersionRef, limit: int = NEWEST_ROWS
) -> pd.DataFrame:
    """The newest rows of the champion's training set (its run's `data/` artifact)."""
    with quiet_mlflow():
        run_id = mlflow.MlflowClient().get_model_version(spec.name, champion.version).run_id
        folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TRAINING_SET_ARTIFACT))
    files = sorted(p for p in folder.rglob("*") if p.is_file())  # one Parquet file, logged without a suffix
    if not files:
        raise FileNotFoundError(f"{spec.name} v{champion.version}: no training set under its run's data/")
    frame = pd.read_parquet(files[0])
    if "event_timestamp" in frame.columns:
        frame = frame.sort_values("event_timestamp")
    return frame.tail(limit).reset_index(drop=True)


def bundle_encoder(model: str, version: str) -> Encoder:
    return version_predictor(model, version).encode
