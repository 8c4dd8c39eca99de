"""One scale: demo data, Feast bootstrap and the pipeline, each a subprocess with `$MLOPS_HOME` set to the
scale's own folder (so scales never share a store, and nothing leaks from the user's `.local/`).

The pipeline runs as `python -m pipelines.local_run`, the command `make run` uses, rather than in this
process: a step killed by the kernel for memory, or a run stopped at the time limit, ends that process,
not the harness, and its timings file and log are still there to read."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from core.timing import read_timings
from pipelines.bench_scale.measure import Measured, run_measured
from pipelines.bench_scale.rows import data_rows, fit_caps, newest, read_pipeline_log

# Variables that would point a scale's processes at another state folder, store or runtime.
LEAKING = (
    "FEATURE_DATA_URI",
    "MLFLOW_TRACKING_URI",
    "MLOPS_TIMINGS_FILE",
    "MLOPS_SERVING_RUNTIME",
    "MLOPS_BAD_CANARY",
    "FEAST_FS_YAML_FILE_PATH",
    "MLFLOW_ARTIFACTS_DESTINATION",
)
# Stages before the pipeline, reported as steps of model "-".
DATA_STEP, FEATURES_STEP = "demo_data", "feast_bootstrap"


def scale_environment(home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in LEAKING}
    env["MLOPS_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_scale(
    scale: int,
    customers: int,
    models: list[str],
    out: Path,
    timeout_s: float | None,
    keep_going: bool = False,
) -> dict[str, Any]:
    """Measure one scale; never raises for a failed stage (`failures` says what failed and where). With
    `keep_going`, a failed data or Feast stage does not stop the scale: the next stage runs on what it
    left (a Feast check can fail after the offline data the pipeline reads is complete)."""
    folder = out / f"scale-{scale}x"
    home = folder / "home"
    shutil.rmtree(folder, ignore_errors=True)  # fresh stores: a leftover champion would add a canary
    env = scale_environment(home)
    python = sys.executable
    result: dict[str, Any] = {"scale": scale, "customers": customers, "steps": [], "failures": []}

    data = run_measured(
        [python, "-m", "feature_repo.demo_data", "--customers", str(customers), "--force"],
        env,
        folder / "data.log",
        timeout_s,
    )
    written, feature_rows = data_rows(home / "data")
    result["steps"].append(_stage(DATA_STEP, data, written))
    if not _ok(result, DATA_STEP, data, folder / "data.log") and not keep_going:
        return result

    features = run_measured(
        [python, "-m", "feature_repo.store", "bootstrap"], env, folder / "features.log", timeout_s
    )
    result["steps"].append(_stage(FEATURES_STEP, features, feature_rows))
    if not _ok(result, FEATURES_STEP, features, folder / "features.log") and not keep_going:
        return result

    pipeline = run_measured(
        [python, "-m", "pipelines.local_run", "--models", ",".join(models), "--reason", "bench-scale"],
        env,
        folder / "pipeline.log",
        timeout_s,
    )
    result["pipeline"] = {
        "seconds": round(pipeline.seconds, 1),
        "peak_tree_mb": pipeline.peak_tree_mb,
        "returncode": pipeline.returncode,
        "timed_out": pipeline.timed_out,
    }
    result["steps"].extend(pipeline_steps(home, models))
    if pipeline.timed_out or pipeline.returncode != 0:
        result["failures"].append(pipeline_failure(home, folder / "pipeline.log", pipeline, timeout_s))
    return result


def _stage(step: str, measured: Measured, rows: int | None) -> dict[str, Any]:
    return {
        "step": step,
        "model": "-",
        "seconds": round(measured.seconds, 2),
        "rows": rows,
        "peak_rss_mb": measured.peak_tree_mb,
    }


def _ok(result: dict[str, Any], step: str, measured: Measured, log: Path) -> bool:
    if measured.returncode == 0 and not measured.timed_out:
        return True
    result["failures"].append({"where": step, "error": _stopped(measured) or _last_line(log)})
    return False


def pipeline_steps(home: Path, models: list[str]) -> list[dict[str, Any]]:
    """The steps that finished (their timing lines), each with the rows its input had."""
    timings_file = newest(home / "logs", "timings-*.jsonl")
    log_file = newest(home / "logs", "pipeline-*.log")
    parsed = read_pipeline_log(log_file.read_text(errors="replace") if log_file else "")
    caps = fit_caps(models)
    steps = []
    for entry in read_timings(timings_file) if timings_file else []:
        rows = parsed.rows.get(entry["model"])
        if rows is not None:
            rows.fit_cap = caps.get(entry["model"])
        steps.append(
            {
                "step": entry["step"],
                "model": entry["model"],
                "seconds": entry["seconds"],
                "rows": rows.for_step(entry["step"]) if rows else None,
                "peak_rss_mb": entry.get("peak_rss_mb"),
            }
        )
    return steps


def pipeline_failure(home: Path, log: Path, measured: Measured, timeout_s: float | None) -> dict[str, Any]:
    """Which task failed and its error line (the kfp.local log's), or that the time limit stopped it."""
    log_file = newest(home / "logs", "pipeline-*.log")
    parsed = read_pipeline_log(log_file.read_text(errors="replace") if log_file else "")
    error = parsed.errors[-1] if parsed.errors else _last_line(log)
    if measured.timed_out:
        error = f"stopped at the {timeout_s:.0f} s time limit"
    elif measured.returncode < 0 or measured.returncode == 137:
        error = f"killed by signal {abs(measured.returncode) % 128} (SIGKILL: out of memory?); {error}"
    return {"where": ", ".join(parsed.failed_tasks) or "pipeline", "error": error}


def _stopped(measured: Measured) -> str | None:
    if measured.timed_out:
        return "stopped at the time limit"
    if measured.returncode < 0:
        return f"killed by signal {-measured.returncode}"
    return None


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
