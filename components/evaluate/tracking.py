"""Every evaluated training attempt is an MLflow run (experiment = model name), registered or not, so a
failed gate is as visible as a passed one. Later steps (gate, register) add to the same run."""

from __future__ import annotations

import math
from pathlib import Path

from core.bundle import BundleInfo
from core.registry import configure_tracking, ensure_experiment, quiet_mlflow
from core.spec.model import ModelSpec


def flatten_slices(slices: dict) -> dict[str, float]:
    flat = {}
    for column, groups in slices.items():
        for value, metrics in groups.items():
            for name, number in metrics.items():
                if isinstance(number, int | float) and not isinstance(number, bool) and math.isfinite(number):
                    flat[f"slice.{column}.{value}.{name}"[:250]] = float(number)
    return flat


def pipeline_run_name(placeholder_value: str) -> str:
    """The run's name: inside a ParallelFor, kfp.local appends "/for-loop-N-iteration-M" to it."""
    return placeholder_value.split("/")[0]


def attempt_tags(spec: ModelSpec, pipeline_run: str, lineage: dict, info: BundleInfo) -> dict[str, str]:
    return {
        "pipeline_run": pipeline_run_name(pipeline_run),
        "model": spec.name,
        "framework": spec.framework,
        "task": spec.label.task,
        "feature_service": lineage.get("feature_service") or "request-time inputs",
        "data_start": str(lineage.get("start", "")),
        "data_end": str(lineage.get("end", "")),
        "training_set_sha256": str(lineage.get("content_sha256", "")),
        "label_dataset": spec.label.dataset,
    }


def open_attempt(
    spec: ModelSpec, pipeline_run: str, lineage: dict, info: BundleInfo, result, evaluation_dir
) -> str:
    import mlflow

    configure_tracking()
    with (
        quiet_mlflow(),
        mlflow.start_run(
            experiment_id=ensure_experiment(spec.name),
            run_name=f"{pipeline_run_name(pipeline_run)}/{spec.name}"[:250],
        ) as active,
    ):
        mlflow.set_tags(attempt_tags(spec, pipeline_run, lineage, info))
        params = {**info.hyperparameters, **{f"training.{k}": v for k, v in info.training.items()}}
        mlflow.log_params({key: str(value)[:500] for key, value in params.items()})
        mlflow.log_metrics(
            {**result.scalar_metrics(), **flatten_slices(result.slices), **result.behaviour_metrics()}
        )
        mlflow.log_dict(lineage, "lineage.json")
        mlflow.log_artifacts(str(Path(evaluation_dir)), artifact_path="evaluation")
        return active.info.run_id
