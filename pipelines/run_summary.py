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
)


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


def collect_outcomes(run_name: str, run_dir: Path, models: list[str]) -> list[ModelOutcome]:
    by_model = {outcome.model: outcome for outcome in map(_outcome_from_mlflow, _mlflow_runs(run_name))}
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


def format_timings(timings: list[dict], total_seconds: float) -> str:
    per_model: dict[str, dict[str, float]] = defaultdict(dict)
    for entry in timings:
        per_model[entry["model"]][entry["step"]] = (
            per_model[entry["model"]].get(entry["step"], 0) + entry["seconds"]
        )
    steps = [step for step in STEP_ORDER if any(step in row for row in per_model.values())]
    header = f"{'wall time (s)':<20}" + "".join(f"{step:>15}" for step in steps)
    lines = [header]
    for model, row in sorted(per_model.items()):
        lines.append(f"{model:<20}" + "".join(f"{row.get(step, float('nan')):>15.1f}" for step in steps))
    lines.append(f"whole run: {total_seconds:.0f} s (models run two at a time locally)")
    return "\n".join(lines)
