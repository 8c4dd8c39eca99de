"""What a pipeline run did per model, read back from MLflow (every evaluated attempt is an MLflow run
tagged with the pipeline run) and, for models that stopped earlier, from the run's validation reports."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

VALIDATION_HEADER = "# Data validation:"
KEY_METRICS = {
    "binary": ("roc_auc", "pr_auc", "expected_calibration_error"),
    "multiclass": ("accuracy", "f1"),
    "ranking": ("ndcg_at_10", "mrr", "popularity_ndcg_at_10"),
}
STEP_ORDER = (
    "load_features",
    "validate_data",
    "train",
    "fit_detector",
    "evaluate",
    "gate",
    "export_triton",
    "register",
    "deploy_canary",
    "analyze_canary",
    "promote_or_rollback",
)
# Version tags the release steps write (inference/canary/release.py, inference/deploy/rollout.py).
ROLLOUT_STATE_TAG = "rollout_state"
DECISION_TAG = "canary_decision"
REASONS_TAG = "canary_reasons"
SUMMARY_TAG = "canary_summary"


@dataclass
class ModelOutcome:
    model: str
    stage: str  # registered | gate failed | failed
    metrics: dict[str, float] = field(default_factory=dict)
    gate_passed: bool | None = None
    reasons: list[str] = field(default_factory=list)
    version: str = ""
    alias: str = ""
    mlflow_run_id: str = ""
    rollout_state: str = ""
    """The registered version's `rollout_state` after the release steps (serving, promoted, ...)."""
    canary_decision: str = ""
    canary_reasons: str = ""
    canary_summary: str = ""


def _mlflow_runs(run_name: str):
    import mlflow

    return mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.pipeline_run = '{run_name}'", output_format="list"
    )


def _outcome_from_mlflow(run) -> ModelOutcome:
    tags, metrics = run.data.tags, run.data.metrics
    task = tags.get("task", "binary")
    gate = tags.get("gate")
    version = tags.get("registered_version", "")
    if version:
        stage = "registered"
    elif gate == "failed":
        stage = "gate failed"
    else:
        stage = "failed"
    return ModelOutcome(
        model=tags.get("model", "?"),
        stage=stage,
        metrics={name: metrics[name] for name in KEY_METRICS.get(task, ()) if name in metrics},
        gate_passed=None if gate is None else gate == "passed",
        reasons=[line for line in tags.get("gate_summary", "").split("\n") if line],
        version=version,
        alias=tags.get("registered_alias", ""),
        mlflow_run_id=run.info.run_id,
    )


def _validation_failures(run_dir: Path) -> dict[str, str]:
    """model -> the first failure line of its validation report, for models stopped by validation."""
    failures = {}
    for report in run_dir.rglob("report"):
        if not report.is_file():
            continue
        lines = report.read_text(errors="replace").splitlines()
        if not lines or not lines[0].startswith(VALIDATION_HEADER):
            continue
        model = lines[0].removeprefix(VALIDATION_HEADER).split(" — ")[0].strip()
        failed = [line.removeprefix("FAILED: ") for line in lines if line.startswith("FAILED: ")]
        if failed:
            failures[model] = failed[0]
    return failures


def _add_release(outcome: ModelOutcome) -> ModelOutcome:
    """The release steps' tags on the registered version (none when they did not run)."""
    if not outcome.version:
        return outcome
    import mlflow

    tags = mlflow.MlflowClient().get_model_version(outcome.model, outcome.version).tags or {}
    outcome.rollout_state = tags.get(ROLLOUT_STATE_TAG, "")
    outcome.canary_decision = tags.get(DECISION_TAG, "")
    outcome.canary_reasons = "" if tags.get(REASONS_TAG) == "-" else tags.get(REASONS_TAG, "")
    outcome.canary_summary = tags.get(SUMMARY_TAG, "")
    return outcome


def collect_outcomes(run_name: str, run_dir: Path, models: list[str]) -> list[ModelOutcome]:
    outcomes_from_mlflow = map(_outcome_from_mlflow, _mlflow_runs(run_name))
    by_model = {outcome.model: _add_release(outcome) for outcome in outcomes_from_mlflow}
    validation = _validation_failures(run_dir)
    outcomes = []
    for model in models:
        if model in by_model:
            outcomes.append(by_model[model])
        elif model in validation:
            outcomes.append(ModelOutcome(model, "failed", reasons=[f"validate_data: {validation[model]}"]))
        else:
            outcomes.append(
                ModelOutcome(model, "failed", reasons=["stopped before evaluation: see the run log"])
            )
    return outcomes


def format_table(outcomes: list[ModelOutcome]) -> str:
    header = f"{'model':<20} {'result':<12} {'key metrics':<58} {'version':>7}  {'alias':<10}"
    lines = [header, "-" * len(header)]
    for outcome in outcomes:
        metrics = "  ".join(f"{name}={value:.3f}" for name, value in outcome.metrics.items()) or "-"
        version, alias = outcome.version or "-", outcome.alias or "-"
        lines.append(f"{outcome.model:<20} {outcome.stage:<12} {metrics:<58} {version:>7}  {alias:<10}")
        for reason in outcome.reasons:
            lines.append(f"{'':<20}   {reason}")
    return "\n".join(lines)


def release_line(outcome: ModelOutcome) -> str:
    """What the release steps did with the registered version, with the canary's evidence."""
    if not outcome.version:
        return f"{outcome.model}: nothing registered, nothing released"
    version, state = f"v{outcome.version}", outcome.rollout_state
    if outcome.canary_decision:
        why = outcome.canary_reasons or "all criteria met"
        done = f" -> {state}" if state not in ("", "canary") else " (not finished: see the run log)"
        return f"{outcome.model}: {outcome.canary_decision} {version}{done}: {why} [{outcome.canary_summary}]"
    if state == "serving":
        return f"{outcome.model}: {version} serves alone (first champion: no canary)"
    return f"{outcome.model}: {version} not released (state {state or 'none'}: see the run log)"


def format_releases(outcomes: list[ModelOutcome]) -> str:
    return "\n".join(
        ["release (deploy -> canary analysis -> promote or roll back):"]
        + ["  " + release_line(outcome) for outcome in outcomes]
    )


def format_timings(timings: list[dict], total_seconds: float) -> str:
    """Wall time per model and step, and each model's largest step peak memory (timing lines written
    before peak_rss_mb existed show no peak)."""
    per_model: dict[str, dict[str, float]] = defaultdict(dict)
    peaks: dict[str, float] = {}
    for entry in timings:
        per_model[entry["model"]][entry["step"]] = (
            per_model[entry["model"]].get(entry["step"], 0) + entry["seconds"]
        )
        if entry.get("peak_rss_mb") is not None:
            peaks[entry["model"]] = max(peaks.get(entry["model"], 0.0), entry["peak_rss_mb"])
    steps = [step for step in STEP_ORDER if any(step in row for row in per_model.values())]
    widths = [max(15, len(step) + 2) for step in steps]
    header = f"{'wall time (s)':<20}" + "".join(f"{s:>{w}}" for s, w in zip(steps, widths, strict=True))
    lines = [header + (f"{'peak MiB':>12}" if peaks else "")]
    for model, row in sorted(per_model.items()):
        cells = (f"{row.get(s, float('nan')):>{w}.1f}" for s, w in zip(steps, widths, strict=True))
        peak = f"{peaks[model]:>12.0f}" if model in peaks else ""
        lines.append(f"{model:<20}" + "".join(cells) + peak)
    lines.append(f"whole run: {total_seconds:.0f} s (models run two at a time locally)")
    return "\n".join(lines)
