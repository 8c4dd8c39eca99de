"""The register step as the pipeline runs it: everything it records comes from the step's inputs and
from the MLflow run that evaluate opened and gate annotated."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from components.evaluate.step import METRICS_FILE, PLOTS_DIR, REPORT_FILE
from components.fit_detector.step import stamp_version
from components.register.pyfunc_model import example_rows
from components.register.registration import register
from core.bundle import BundleInfo
from core.registry import configure_tracking, quiet_mlflow
from core.spec.model import load_specs
from core.timing import timed_step
from core.training_set import load_training_set_file

TRAINING_SET_ARTIFACT = "data"  # the champion's training set is the next run's skew reference
DETECTOR_ARTIFACT = "detector"  # what the drift service loads for this version


def log_training_input(spec, frame, training_set_path: str, model_id: str) -> None:
    """The training set as the run's and the LoggedModel's input (MLflow's dataset lineage: digest,
    schema, row count, and as source the copy logged under `data/`), not a second copy of the rows."""
    import mlflow
    from mlflow.entities import LoggedModelInput

    source = f"{mlflow.get_artifact_uri(TRAINING_SET_ARTIFACT)}/{Path(training_set_path).name}"
    targets = spec.label.column if spec.label.column in frame.columns else None
    dataset = mlflow.data.from_pandas(frame, source=source, name=f"{spec.name}-training-set", targets=targets)
    mlflow.log_input(dataset, context="training", model=LoggedModelInput(model_id=model_id))


def run(
    model: str,
    mlflow_run_id: str,
    reason: str,
    bundle_dir: str,
    evaluation_dir: str,
    repository_dir: str,
    training_set_path: str,
    detector_dir: str,
) -> tuple[str, str, str]:
    import mlflow

    with timed_step("register", model):
        (spec,) = load_specs(names=[model])
        configure_tracking()
        frame, lineage = load_training_set_file(training_set_path)
        evaluation = Path(evaluation_dir)
        attempt = mlflow.get_run(mlflow_run_id)
        with quiet_mlflow():
            decision = mlflow.artifacts.load_dict(f"runs:/{mlflow_run_id}/gate_decision.json")
        result = register(
            spec,
            Path(bundle_dir),
            metrics=json.loads((evaluation / METRICS_FILE).read_text()),
            decision=decision,
            lineage=lineage,
            run_context={
                "pipeline_run_id": attempt.data.tags.get("pipeline_run"),
                "pipeline_run_reason": reason,
            },
            triton_repository=Path(repository_dir),
            plots=sorted((evaluation / PLOTS_DIR).glob("*.png")),
            report_html=evaluation / REPORT_FILE,
            input_example=example_rows(BundleInfo.load(Path(bundle_dir)), frame),
            run_id=mlflow_run_id,
            evaluation_logged=True,  # evaluate logged its whole folder into this run: stored once
        )
        with quiet_mlflow(), mlflow.start_run(run_id=mlflow_run_id), tempfile.TemporaryDirectory() as scratch:
            mlflow.log_artifact(training_set_path, artifact_path=TRAINING_SET_ARTIFACT)
            log_training_input(spec, frame, training_set_path, result.model_id)
            # The detector was fitted before the version existed: stamp the registry version into it.
            stamped = stamp_version(Path(detector_dir), Path(scratch) / "detector", str(result.version))
            mlflow.log_artifacts(str(stamped), artifact_path=DETECTOR_ARTIFACT)
            mlflow.set_tags(
                {"registered_version": str(result.version), "registered_alias": result.alias or ""}
            )
        print(
            f"registered {result.model_name} version {result.version} as {result.alias or 'no alias'}",
            flush=True,
        )
        return str(result.version), result.alias or "", result.model_uri
