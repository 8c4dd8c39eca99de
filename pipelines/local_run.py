"""Run the training pipeline on this machine with `kfp.local`, then print what happened per model.

    python -m pipelines.local_run [--models a,b] [--start ISO] [--end ISO] [--reason TEXT]
        [--logger-url URL] [--bad-canary error|slow|model=mode,...]

The pipeline definition is the one compiled for the cluster; `kfp.local.SubprocessRunner` runs each
component function in a subprocess of the platform environment. Each model trains on its own spec's
`training.window` unless --start/--end are given (the demo's specs end their rolling window at the newest
label row, `anchor: newest_row`, since their generated data stops before today).

Its release steps run with `serving_mode="local"` against the local serving runtime (Triton + router,
inference/local_runtime.py): a live one (`python -m inference.serve`) is attached to, else one is started
for the run's duration. The steps find it through `$MLOPS_SERVING_RUNTIME` (its runtime.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from core import paths
from core.runtime_config import CONFIG_MAP, local_rendering, render_local
from core.settings import variable
from core.timing import read_timings
from pipelines.console import progress_only
from pipelines.run_summary import (
    ModelOutcome,
    collect_outcomes,
    format_releases,
    format_table,
    format_timings,
)


@dataclass
class LocalRun:
    name: str
    run_dir: Path
    succeeded: bool
    seconds: float
    outcomes: list[ModelOutcome] = field(default_factory=list)
    timings: list[dict] = field(default_factory=list)


def prepare_environment() -> None:
    """What every component subprocess inherits: the code on PYTHONPATH, the local stores, no network."""
    os.environ[variable("home")] = str(paths.state_root())
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(paths.REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for folder in (paths.mlflow_dir(), paths.pipeline_root(), paths.logs_dir()):
        folder.mkdir(parents=True, exist_ok=True)
    _create_tracking_store()


def _create_tracking_store() -> None:
    """Create the sqlite schema once, here: parallel steps would otherwise race on the migration."""
    import mlflow

    from core.registry import configure_tracking, quiet_mlflow

    configure_tracking()
    with quiet_mlflow():
        mlflow.search_experiments(max_results=1)


def _newest_run_dir(before: set[Path]) -> Path:
    from pipelines.training import PIPELINE_NAME

    candidates = [
        p for p in paths.pipeline_root().glob(f"{PIPELINE_NAME}-*") if p.is_dir() and p not in before
    ]
    if not candidates:
        raise RuntimeError(f"kfp.local wrote no run folder under {paths.pipeline_root()}")
    return max(candidates, key=lambda p: p.stat().st_mtime)


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """`variables` set in this process (its steps' subprocesses inherit them) for the block, then each
    restored to what it was (or removed)."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def serving_runtime(serving_mode: str, logger_url: str | None = None) -> Iterator[str]:
    """The local serving runtime for the run's release steps: the live one, else one started until the
    block exits; yields how it was found ("attached", "started", or "none" in cluster mode)."""
    if serving_mode != "local":
        yield "none"
        return
    from inference.local_runtime import LocalServingRuntime
    from inference.runtime_file import attach, runtime_file

    with environment({variable("serving_runtime"): str(runtime_file())}):
        if attach() is not None:
            yield "attached"
            return
        with LocalServingRuntime(logger_url=logger_url):
            yield "started"


def run_training(
    models: list[str],
    start: str = "",
    end: str = "",
    reason: str = "manual",
    log_path: Path | None = None,
    serving_mode: str = "local",
    logger_url: str | None = None,
) -> LocalRun:
    """Run the pipeline; with `log_path`, the full kfp.local output goes there and only progress shows.
    `serving_mode="local"` releases into the local serving runtime (attached or started here)."""
    from kfp import local

    from pipelines.training import PIPELINE_NAME, training_pipeline

    prepare_environment()
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(paths.pipeline_root()),
        raise_on_error=False,
    )
    before = set(paths.pipeline_root().glob(f"{PIPELINE_NAME}-*"))
    timings_file = paths.logs_dir() / f"timings-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    # The steps' runtime configuration: what a cluster pod gets from the ConfigMap and its Secrets, set
    # from the local rendering of that ConfigMap (core/runtime_config.py); and where they log timings.
    step_variables = {**render_local(), variable("timings_file"): str(timings_file)}
    started = time.perf_counter()
    # The runtime starts outside the `try`: a Triton that cannot start is the user's error to see.
    with environment(step_variables), serving_runtime(serving_mode, logger_url):
        try:
            with progress_only(log_path) if log_path else nullcontext():
                training_pipeline(
                    models=models, start=start, end=end, reason=reason, serving_mode=serving_mode
                )
            succeeded = True
        except RuntimeError:
            succeeded = False
    seconds = time.perf_counter() - started
    run_dir = _newest_run_dir(before)
    run = LocalRun(run_dir.name, run_dir, succeeded, seconds, timings=read_timings(timings_file))
    run.outcomes = collect_outcomes(run.name, run_dir, models)
    # kfp.local reports a failed task as a warning when raise_on_error=False; the outcomes tell which.
    run.succeeded = run.succeeded and all(outcome.stage != "failed" for outcome in run.outcomes)
    return run


def discovered_models() -> list[str]:
    """Every spec in the spec folder (`pipelines/models/`, or `$MLOPS_SPEC_DIR`): a model is trained by
    adding its spec, not by editing a list."""
    from core.spec.model import load_specs

    return [spec.name for spec in load_specs()]


def window_source(start: str, end: str) -> str:
    """Where the run's data window comes from, for its first lines of output."""
    if start or end:
        return f"--start {start or '(spec)'} --end {end or '(spec)'} for every model"
    return (
        "each model's spec training.window (ending at the run time, or at the newest label row with "
        "anchor: newest_row); the pipeline log's 'training set for' lines give each window"
    )


def main(argv: list[str] | None = None) -> int:
    from core.registry import local_tracking_uri

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.local_run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--models",
        default="",
        help="comma-separated model spec names (default: every spec in the spec folder)",
    )
    parser.add_argument("--start", default="", help="ISO start of the data window (default: each spec's)")
    parser.add_argument("--end", default="", help="ISO end of the data window (default: each spec's)")
    parser.add_argument("--reason", default="manual", help="why this run exists")
    parser.add_argument("--logger-url", help="where the router posts CloudEvents (the drift detector)")
    parser.add_argument(
        "--bad-canary", help="demo: make canaries fail: error|slow (every model) or model=mode,..."
    )
    args = parser.parse_args(argv)
    if args.bad_canary:
        os.environ[variable("bad_canary")] = args.bad_canary
    models = [name.strip() for name in args.models.split(",") if name.strip()] or discovered_models()
    log_path = paths.logs_dir() / f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"training pipeline (kfp.local): {', '.join(models)}; full log: {log_path}", flush=True)
    print(f"data window: {window_source(args.start, args.end)}", flush=True)
    print(f"runtime configuration: {local_rendering()} (ConfigMap {CONFIG_MAP}, local values)", flush=True)
    run = run_training(models, args.start, args.end, args.reason, log_path, logger_url=args.logger_url)
    print()
    print(format_table(run.outcomes))
    print()
    print(format_releases(run.outcomes))
    print()
    print(format_timings(run.timings, run.seconds))
    print()
    print(f"pipeline run: {run.name} ({run.run_dir})")
    print(
        f"MLflow UI:    {sys.executable} -m mlflow ui --backend-store-uri {local_tracking_uri()} --port 5000"
    )
    return 0 if run.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
