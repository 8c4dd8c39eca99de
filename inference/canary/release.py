"""What the three release steps (deploy_canary, analyze_canary, promote_or_rollback) share, in both
serving modes: where the InferenceService goes, staging versions into the local runtime, waiting for the
router to route what was applied, and recording the decision on the MLflow version.

`serving_mode`: "cluster" applies to the Kubernetes API (KServe/Knative do the split, Prometheus has the
metrics); "local" writes the InferenceService under the live `LocalServingRuntime`'s isvc folder and
stages versions into its Triton (see inference/local_runtime.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import mlflow

from core.paths import state_root
from core.registry import ModelVersionRef, quiet_mlflow
from core.settings import settings, variable
from inference.canary.analysis import CanaryDecision
from inference.canary.bad_canary import MODES, sabotage
from inference.deploy.annotations import NAMESPACE
from inference.deploy.apply import Applier, FileApplier, KubernetesApplier
from inference.deploy.payload_logs import PayloadLogStore
from inference.deploy.rollout import Rollout
from inference.local_runtime import stage_version
from inference.runtime_file import RuntimeInfo, require_runtime

SERVING_MODES = ("cluster", "local")
NO_CANARY = "no-canary"
"""What the steps pass on when a first champion was deployed alone: nothing to analyse or decide."""
DECISION_TAG = "canary_decision"
REASONS_TAG = "canary_reasons"
SUMMARY_TAG = "canary_summary"
EVIDENCE_ARTIFACT = "canary/canary_evidence.json"
ROUTE_TIMEOUT_S = 60.0  # the watcher swaps once Triton reports every version ready; slow on a busy machine


def check_mode(serving_mode: str) -> str:
    if serving_mode not in SERVING_MODES:
        raise ValueError(f"serving_mode {serving_mode!r}: expected one of {', '.join(SERVING_MODES)}")
    return serving_mode


def rollout_for(serving_mode: str, logger_url: str | None = None) -> Rollout:
    """The Rollout over the Kubernetes API (cluster) or the live local runtime's isvc folder (local)."""
    applier: Applier
    payload_store = None
    if check_mode(serving_mode) == "cluster":
        applier = KubernetesApplier()
        payload_store = PayloadLogStore.from_settings()
    else:  # the local router is the logger and posts each event to the local drift service
        info = require_runtime()
        applier, logger_url = FileApplier(Path(info.isvc_dir)), logger_url or info.logger_url
    mode = settings().kserve_deployment_mode
    return Rollout(applier, NAMESPACE, logger_url, mode=mode, payload_store=payload_store)


# ------------------------------------------------------------------------------------- local staging
def stage(info: RuntimeInfo, ref: ModelVersionRef, bad_canary: str | None = None) -> str:
    """Download `ref`'s local Triton repository, stage it into the runtime (made bad on request) and load
    it; returns Triton's model name."""
    with tempfile.TemporaryDirectory() as scratch, quiet_mlflow():
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{ref.local_repository_uri}/{ref.name}", dst_path=scratch
        )
        before_load = (lambda staged: sabotage(staged, bad_canary)) if bad_canary else None
        return stage_version(info, Path(local), ref.name, ref.version, before_load)


def bad_canary_mode(model: str) -> str | None:
    """The `$MLOPS_BAD_CANARY` mode for `model` (None: a normal canary)."""
    value = (settings().bad_canary or "").strip()
    if not value:
        return None
    if value in MODES:
        return value
    modes = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
    mode = modes.get(model)
    if mode is not None and mode not in MODES:
        raise ValueError(f"{variable('bad_canary')}: {model}={mode}: expected one of {', '.join(MODES)}")
    return mode


def stage_detector(ref: ModelVersionRef, say: Callable[[str], None] = print) -> None:
    """The version's drift detector under `$MLOPS_HOME/detectors/<model>/<version>/`, where the local
    drift service loads it. A version registered without one is reported, not fatal."""
    target = state_root() / "detectors" / ref.name / str(ref.version)
    if target.exists():
        return
    run_artifacts = ref.local_repository_uri.rsplit("/triton/", 1)[0]
    scratch = target.parent / f".{target.name}"
    try:
        with quiet_mlflow():
            uri = f"{run_artifacts}/detector"
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(scratch))
    except Exception as error:  # older versions were registered without a detector
        say(f"{ref.name} v{ref.version}: no drift detector to stage ({type(error).__name__})")
        return
    (scratch / "detector").rename(target)
    shutil.rmtree(scratch)


def wait_for_route(info: RuntimeInfo, model: str, versions: list[str], timeout_s: float = ROUTE_TIMEOUT_S):
    """Block until the router routes `model` to exactly `versions` (stable first, then canary); its
    watcher polls the isvc folder and swaps only once Triton has every version ready."""
    deadline, seen = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{info.router_http_url}/v2/models/{model}", timeout=5)
            seen = answer.json().get("versions") if answer.status_code == 200 else answer.text[:200]
        except (httpx.HTTPError, ValueError) as error:
            seen = str(error)
        if seen == versions:
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"serving: the router did not route {model} to versions {versions} within {timeout_s:g} s "
        f"(last seen: {seen}); see {state_root() / 'logs'}"
    )


# ------------------------------------------------------------------------------------------ decisions
def record_decision(model: str, version: str, decision: CanaryDecision, extra: dict | None = None) -> None:
    """Tags on the challenger version (decision, reasons, one-line evidence) and the whole evidence as
    JSON in its run."""
    with quiet_mlflow():
        client = mlflow.MlflowClient()
        client.set_model_version_tag(model, version, DECISION_TAG, decision.verdict)
        client.set_model_version_tag(model, version, REASONS_TAG, "; ".join(decision.reasons)[:500] or "-")
        client.set_model_version_tag(model, version, SUMMARY_TAG, evidence_line(decision, extra)[:500])
        run_id = client.get_model_version(model, version).run_id
        if run_id:
            payload = {"verdict": decision.verdict, "reasons": decision.reasons, **decision.evidence}
            payload.update(extra or {})
            client.log_text(run_id, json.dumps(payload, indent=2, default=str), EVIDENCE_ARTIFACT)


def evidence_line(decision: CanaryDecision, extra: dict | None = None) -> str:
    """The numbers a decision rests on, in one line."""
    evidence, canary = decision.evidence, decision.evidence["canary"]
    line = (
        f"canary {canary['requests']:.0f} req, error rate {canary['error_rate']:.3f}, "
        f"p95 ratio {_fmt(evidence['p95_latency_ratio'])} ({_fmt_ms(evidence['p95_latency_increase_ms'])}), "
        f"PSI {_fmt(evidence['prediction_shift'])}"
    )
    traffic = (extra or {}).get("traffic")
    if traffic:
        line += (
            f"; {traffic['sent']} requests ({traffic['grpc']} over gRPC), {traffic['failed']} failed "
            f"(source: {evidence['source']})"
        )
    return line


def recorded_reasons(model: str, version: str) -> str:
    """The reasons the analysis recorded on `version` (for the rollback's tag)."""
    with quiet_mlflow():
        tags = mlflow.MlflowClient().get_model_version(model, version).tags or {}
    return tags.get(REASONS_TAG) or "rolled back by the canary analysis"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} ms"
