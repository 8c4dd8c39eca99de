"""The validate_data step as the pipeline runs it. The skew reference is the training set of the current
champion (the register step stores it with the version), when it was built from the same inputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from components.validate_data.validation import ValidationError, raise_for_failures, report_markdown, validate
from core.registry import CHAMPION, configure_tracking, get_alias_version, quiet_mlflow
from core.spec.model import ModelSpec, load_specs
from core.timing import timed_step
from core.training_set import load_training_set_file

REFERENCE_ARTIFACT = "data"


def run(model: str, training_set_path: str, report_path: str) -> None:
    with timed_step("validate_data", model):
        (spec,) = load_specs(names=[model])
        frame, _ = load_training_set_file(training_set_path)
        report = validate(spec, frame, reference=champion_training_set(spec))
        text = report_markdown(report)
        try:
            raise_for_failures(report)
        except ValidationError as error:
            Path(report_path).write_text(f"{text}\n\nFAILED: {error}\n")
            raise
        Path(report_path).write_text(text + "\n")
        skewed = ", ".join(result.column for result in report.skew if result.flagged) or "none"
        print(f"validation passed for {spec.name}: {report.rows} rows; skew flagged on: {skewed}", flush=True)


def champion_training_set(spec: ModelSpec) -> pd.DataFrame | None:
    """The champion's training set, or None (no champion yet, or it used another feature service)."""
    import mlflow

    configure_tracking()
    champion = get_alias_version(spec.name, CHAMPION)
    if champion is None or champion.tags.get("feature_service") != (spec.inputs.feature_service or "none"):
        return None
    with quiet_mlflow(), tempfile.TemporaryDirectory() as scratch:
        try:
            folder = mlflow.artifacts.download_artifacts(
                run_id=champion.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=scratch
            )
        except Exception as error:
            print(f"no reference training set on {spec.name} v{champion.version}: {error}", flush=True)
            return None
        files = sorted(Path(folder).iterdir())
        return load_training_set_file(files[0])[0] if files else None
