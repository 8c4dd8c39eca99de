"""The local canary rollout `make run` ends with: serve champion (+ challenger) and decide the canary.

    python -m inference.local_rollout [--models a,b] [--requests N] [--bad-canary error|slow]

For each model with a `champion` in MLflow: render its InferenceService with `inference.deploy` (a canary
when a `challenger` exists, else the champion alone) under `$MLOPS_HOME/serving/isvc/`, stage each served
version's `triton/local/<model>` as `<model>__v<version>` under `$MLOPS_HOME/serving/repository/`, then
start one Triton over that repository and one router over the InferenceService files. Demo traffic (the
newest rows of the champion's training set, encoded per version: see inference/canary/traffic.py) goes
through the router; the router's /metrics and the collected scores are the evidence, `decide` judges it,
and `Rollout` promotes or rolls back (the router's watcher picks up the rewritten file). The decision is
recorded on the challenger version: tags `canary_decision`, `canary_reasons`; artifact
`canary/canary_evidence.json` in its run. An *inconclusive* canary (too little traffic) is rolled back
here: nothing showed it is safe, and the next run canaries it again once it is re-registered.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import uvicorn

from components.common.errors import SpecError
from components.common.model_spec import ModelSpec, load_specs
from components.common.paths import logs_dir, state_root
from components.register.registry import (
    CHALLENGER,
    CHAMPION,
    configure_tracking,
    quiet_mlflow,
    version_predictor,
)
from inference.canary.analysis import CanaryDecision, decide
from inference.canary.bad_canary import MODES, sabotage
from inference.canary.evidence import evidence_from_metrics_text
from inference.canary.traffic import Encoder, Traffic, send_traffic
from inference.deploy.apply import FileApplier
from inference.deploy.registry_refs import ModelVersionRef, resolve_alias
from inference.deploy.rollout import Rollout
from inference.router.app import RouterSettings, create_app, triton_readiness
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, Route, RouteTable, load_isvc_file, stage_model_version
from inference.triton_local import Ports, TritonLocal

NAMESPACE = "mlops"
TRAINING_SET_ARTIFACT = "data"
NEWEST_ROWS = 500
MIN_REQUESTS = 400
DECISION_TAG = "canary_decision"
REASONS_TAG = "canary_reasons"
EVIDENCE_ARTIFACT = "canary/canary_evidence.json"
RowsFor = Callable[[ModelSpec, ModelVersionRef], pd.DataFrame]
EncoderFor = Callable[[str, str], Encoder]


@dataclass(frozen=True)
class Plan:
    spec: ModelSpec
    champion: ModelVersionRef
    challenger: ModelVersionRef | None
    isvc: Path


@dataclass(frozen=True)
class Outcome:
    model: str
    plan: Plan
    traffic: Traffic
    decision: CanaryDecision | None
    """None when there was no challenger to decide on."""

    def line(self) -> str:
        plan, sent = self.plan, f"{self.traffic.sent} requests, {self.traffic.failed} failed"
        if self.decision is None:
            return f"{self.model}: serving v{plan.champion.version} alone ({sent})"
        assert plan.challenger is not None
        evidence, canary = self.decision.evidence, self.decision.evidence["canary"]
        numbers = (
            f"canary {canary['requests']:g} req, error rate {canary['error_rate']:.3f}, "
            f"p95 ratio {_fmt(evidence['p95_latency_ratio'])}, PSI {_fmt(evidence['prediction_shift'])}"
        )
        why = "; ".join(self.decision.reasons) or "all criteria met"
        return (
            f"{self.model}: {self.decision.verdict} v{plan.challenger.version} "
            f"(champion v{plan.champion.version}): {why} [{numbers}; {sent}]"
        )


def default_requests(spec: ModelSpec) -> int:
    """Enough requests that the canary share reaches `min_requests` with a margin (at least 400)."""
    needed = math.ceil(spec.canary.min_requests * 100 / spec.canary.traffic_percent * 1.25)
    return max(MIN_REQUESTS, needed)


def run_local_rollout(
    models: Sequence[str] | None = None,
    requests: int | None = None,
    bad_canary: str | None = None,
    spec_dir: Path | None = None,
    rows_for: RowsFor | None = None,
    encoder_for: EncoderFor | None = None,
    logger_url: str | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """The whole local rollout; `rows_for`/`encoder_for` replace the registry's training set and bundle
    (tests use them with models that have no bundle). Returns one outcome per served model."""
    configure_tracking()
    serving = state_root() / "serving"
    rollout = Rollout(FileApplier(serving / "isvc"), NAMESPACE, logger_url)
    plans = [p for spec in load_specs(spec_dir, names=models) if (p := plan_model(spec, rollout, say))]
    if not plans:
        raise LookupError("local rollout: no model has a 'champion' version; run the training pipeline first")
    repository = stage_repository(plans, serving / "repository", bad_canary)
    stage_detectors(plans, state_root() / "detectors", say)
    outcomes = []
    triton = TritonLocal(log_path=logs_dir() / "triton-rollout.log")
    with triton.start(repository), serve_router(plans, triton.http_url, logger_url, seed) as (url, settings):
        for plan in plans:
            outcome = _serve_and_decide(plan, url, settings, rollout, requests, seed, rows_for, encoder_for)
            say(outcome.line())
            outcomes.append(outcome)
    return outcomes


# ------------------------------------------------------------------------------------------- planning
def plan_model(spec: ModelSpec, rollout: Rollout, say: Callable[[str], None]) -> Plan | None:
    champion = resolve_alias(spec.name, CHAMPION)
    if champion is None:
        say(f"{spec.name}: no champion in the registry: skipped")
        return None
    challenger = resolve_alias(spec.name, CHALLENGER)
    if challenger is not None and challenger.version == champion.version:
        challenger = None
    (rollout.start_canary if challenger else rollout.deploy)(spec)
    isvc = rollout.applier.path_for("InferenceService", spec.name, NAMESPACE)  # type: ignore[attr-defined]
    return Plan(spec, champion, challenger, isvc)


def stage_repository(plans: Sequence[Plan], repository: Path, bad_canary: str | None) -> Path:
    """A fresh repository with every served version; the canary made bad on request."""
    if repository.exists():
        shutil.rmtree(repository)
    repository.mkdir(parents=True)
    for plan in plans:
        for ref in filter(None, (plan.champion, plan.challenger)):
            with tempfile.TemporaryDirectory() as scratch, quiet_mlflow():
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{ref.local_repository_uri}/{ref.name}", dst_path=scratch
                )
                staged = stage_model_version(local, repository, ref.name, ref.version)
            if bad_canary and ref is plan.challenger:
                sabotage(staged, bad_canary)
    return repository


def stage_detectors(plans: Sequence[Plan], root: Path, say: Callable[[str], None]) -> None:
    """Each served version's drift detector, where `make monitor` (the local drift service) loads them:
    `<root>/<model>/<version>/`. A version registered without one is reported, not fatal."""
    for plan in plans:
        for ref in filter(None, (plan.champion, plan.challenger)):
            target = root / ref.name / str(ref.version)
            if target.exists():
                continue
            run_artifacts = ref.local_repository_uri.rsplit("/triton/", 1)[0]
            scratch = target.parent / f".{target.name}"
            try:
                with quiet_mlflow():
                    uri = f"{run_artifacts}/detector"
                    mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(scratch))
            except Exception as error:  # older versions were registered without a detector
                say(f"{ref.name} v{ref.version}: no drift detector to stage ({type(error).__name__})")
                continue
            (scratch / "detector").rename(target)
            shutil.rmtree(scratch)


@contextmanager
def serve_router(
    plans: Sequence[Plan], triton_url: str, logger_url: str | None, seed: int, port: int | None = None
) -> Iterator[tuple[str, RouterSettings]]:
    """The router app (uvicorn in a thread) over the plans' InferenceService files, on `port` (default:
    a free one); stopped when the block exits."""
    paths = [plan.isvc for plan in plans]
    table = RouteTable([load_isvc_file(p) for p in paths], seed=seed)
    metrics = RouterMetrics()
    watcher = IsvcWatcher(paths, table, triton_readiness(triton_url), interval_s=0.2)
    watcher.check_once()
    settings = RouterSettings(
        table=table,
        triton_url=triton_url,
        metrics=metrics,
        event_logger=EventLogger(logger_url, metrics) if logger_url else None,
        watcher=watcher,
    )
    port = port or Ports.free().http
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="local-router", daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, 30, "the router did not start")
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ------------------------------------------------------------------------------------------- deciding
def _serve_and_decide(
    plan: Plan,
    url: str,
    settings: RouterSettings,
    rollout: Rollout,
    requests: int | None,
    seed: int,
    rows_for: RowsFor | None,
    encoder_for: EncoderFor | None,
) -> Outcome:
    spec = plan.spec
    route = settings.table.get(spec.name) or Route(spec.name, plan.champion.version)
    rows = (rows_for or newest_training_rows)(spec, plan.champion)
    encoders = {t.version: (encoder_for or _bundle_encoder)(spec.name, t.version) for t in route.targets}
    count = requests or (default_requests(spec) if plan.challenger else MIN_REQUESTS)
    traffic = send_traffic(url, route, encoders, rows, count, seed)
    if plan.challenger is None:
        return Outcome(spec.name, plan, traffic, None)
    metrics_text = httpx.get(f"{url}/metrics", timeout=10).text
    evidence = evidence_from_metrics_text(metrics_text, spec.name).with_scores(
        traffic.scores["stable"], traffic.scores["canary"]
    )
    decision = decide(spec, evidence)
    record_decision(spec.name, plan.challenger.version, decision)
    generation = settings.table.generation
    if decision.promote:
        rollout.promote(spec)
    else:
        rollout.rollback(spec, "; ".join(decision.reasons))
    _wait(
        lambda: settings.table.generation > generation, 10, f"{spec.name}: the router kept the canary route"
    )
    return Outcome(spec.name, plan, traffic, decision)


def record_decision(model: str, version: str, decision: CanaryDecision) -> None:
    """Tags on the challenger version and the evidence as JSON in its run."""
    with quiet_mlflow():
        client = mlflow.MlflowClient()
        client.set_model_version_tag(model, version, DECISION_TAG, decision.verdict)
        client.set_model_version_tag(model, version, REASONS_TAG, "; ".join(decision.reasons)[:500] or "-")
        run_id = client.get_model_version(model, version).run_id
        if run_id:
            payload = {"verdict": decision.verdict, "reasons": decision.reasons, **decision.evidence}
            client.log_text(run_id, json.dumps(payload, indent=2, default=str), EVIDENCE_ARTIFACT)


def newest_training_rows(
    spec: ModelSpec, champion: ModelVersionRef, limit: int = NEWEST_ROWS
) -> pd.DataFrame:
    """The newest rows of the champion's training set (its run's `data/` artifact)."""
    with quiet_mlflow():
        run_id = mlflow.MlflowClient().get_model_version(spec.name, champion.version).run_id
        folder = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=TRAINING_SET_ARTIFACT))
    # The training set is one Parquet file (the register step logs it without a suffix).
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(
            f"{spec.name} v{champion.version}: no training set under its run's {TRAINING_SET_ARTIFACT}/"
        )
    frame = pd.read_parquet(files[0])
    if "event_timestamp" in frame.columns:
        frame = frame.sort_values("event_timestamp")
    return frame.tail(limit).reset_index(drop=True)


def _bundle_encoder(model: str, version: str) -> Encoder:
    return version_predictor(model, version).encode


def _wait(condition: Callable[[], bool], timeout_s: float, failure: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"local rollout: {failure} within {timeout_s:g} s")
        time.sleep(0.05)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inference.local_rollout", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", help="comma-separated spec names (default: every spec)")
    parser.add_argument("--requests", type=int, help="requests per model (default: enough for min_requests)")
    parser.add_argument("--bad-canary", choices=MODES, help="make the canary fail or slow on purpose")
    parser.add_argument("--logger-url", help="where the router posts CloudEvents (the drift detector)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    started = time.monotonic()
    try:
        run_local_rollout(models, args.requests, args.bad_canary, logger_url=args.logger_url, seed=args.seed)
    except (LookupError, ValueError, SpecError, FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"local rollout done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
