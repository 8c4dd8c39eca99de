"""Register a gated model: an MLflow run with everything the version is judged by, one model version
tagged with where it came from, and the alias that tells serving about it.

The run is a new one, or (with `run_id`) the run the evaluate step opened for this training attempt, so
that one run holds the attempt from metrics to registration; what that run already records is kept.

Alias rule: the first version of a model becomes `champion`; every later one becomes `challenger`.
Registration never moves `champion`: promotion is the serving step's decision, after a canary. Only a
version whose gate decision passed may be registered; a failed one is refused before MLflow is touched.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from numbers import Real
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode

from components.register.pyfunc_model import example_rows, log_bundle_model
from core.bundle import BundleInfo
from core.paths import REPO_ROOT
from core.raw_features import takes_raw_features
from core.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_TENSORS,
    RAW_FEATURES,
    SERVING_INPUTS_TAG,
    configure_tracking,
    ensure_experiment,
    get_alias_version,
    quiet_mlflow,
    set_alias,
)
from core.settings import settings
from core.spec.model import ModelSpec

TRITON_ARTIFACT_PATH = "triton"
REQUIRED_LINEAGE = ("start", "end", "content_sha256")
_MAX_TAG_CHARS = 500  # a retrain reason can quote a whole alert; the tag only needs its start
_MAX_PARAM_CHARS = 6000  # MLflow's limit for one param value
_UNSAFE_METRIC_CHARS = re.compile(r"[^\w\- ]")  # MLflow also allows "." and "/", which we use as separators
_RENAMED_SECTIONS = {"overall": None, "slices": "slice"}
_EXISTS = (ErrorCode.Name(RESOURCE_ALREADY_EXISTS), ErrorCode.Name(ALREADY_EXISTS))


@dataclass(frozen=True)
class RegistrationResult:
    model_name: str
    version: str
    alias: str | None
    """`champion` (first version), `challenger` (any later one)."""
    run_id: str
    model_uri: str
    """`models:/<name>/<version>`."""
    triton_artifact_uri: str | None
    """Artifact URI of the logged Triton repository (holding `cluster/` and `local/`), if one was given."""
    model_id: str = ""
    """The MLflow 3 LoggedModel the version points at (its metrics and training input are linked to it)."""


def register(
    spec: ModelSpec,
    bundle_dir: Path,
    metrics: Mapping[str, Any],
    decision: Mapping[str, Any],
    lineage: Mapping[str, Any],
    run_context: Mapping[str, Any],
    triton_repository: Path | None,
    plots: Sequence[Path],
    report_html: Path | None,
    input_example: pd.DataFrame,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    evaluation_logged: bool = False,
) -> RegistrationResult:
    """Log the run, register a version of `spec.name` and alias it; refuses a failed gate decision.

    Everything the caller passes is checked before MLflow is touched, so bad input leaves no run behind.
    `evaluation_logged`: the run (`run_id`) already holds the evaluation folder (metrics.json, plots,
    report: the evaluate step logged it), so they are not stored a second time. The metrics are logged
    after the model, linked to its LoggedModel (MLflow 3 shows a model's metrics only when linked).
    """
    decision = _as_dict(decision)
    _require_passed(spec, decision)
    _require_lineage(spec, lineage)
    _require_files(plots, report_html, triton_repository)
    bundle_dir = Path(bundle_dir)
    info = BundleInfo.load(bundle_dir)
    example = example_rows(info, input_example)
    configure_tracking(tracking_uri)
    with quiet_mlflow(), _open_run(spec, run_id, run_context) as run:
        recorded = mlflow.MlflowClient().get_run(run.info.run_id).data
        _log_params(info.hyperparameters, recorded.params)
        _log_json(decision, "decision.json")
        _log_json(lineage, "lineage.json")
        if not evaluation_logged:
            _log_json(metrics, "metrics.json")
            _log_files(plots, report_html)
        if triton_repository is not None:
            mlflow.log_artifacts(str(triton_repository), TRITON_ARTIFACT_PATH)
        model_info = log_bundle_model(bundle_dir, example)
        # What the run already recorded (the evaluate step's values) is kept, and linked to the model too.
        linked = {key: recorded.metrics.get(key, value) for key, value in flatten_metrics(metrics).items()}
        mlflow.log_metrics(linked, model_id=model_info.model_id)
    triton_uri = f"{run.info.artifact_uri}/{TRITON_ARTIFACT_PATH}" if triton_repository else None
    tags = version_tags(spec, info, lineage, run_context, decision)
    if triton_uri:
        tags["triton_uri"] = triton_uri
    version = _create_version(spec, model_info, run.info.run_id, tags)
    alias = CHALLENGER if get_alias_version(spec.name, CHAMPION) else CHAMPION
    set_alias(spec.name, alias, version)
    return RegistrationResult(
        model_name=spec.name,
        version=version,
        alias=alias,
        run_id=run.info.run_id,
        model_uri=f"models:/{spec.name}/{version}",
        triton_artifact_uri=triton_uri,
        model_id=model_info.model_id,
    )


# ------------------------------------------------------------------------------------------ validation
def _as_dict(decision: Any) -> dict[str, Any]:
    # The gate returns a dataclass; the pipeline passes its JSON. Accept both.
    if dataclasses.is_dataclass(decision) and not isinstance(decision, type):
        return dataclasses.asdict(decision)
    return dict(decision)


def _require_passed(spec: ModelSpec, decision: Mapping[str, Any]) -> None:
    if decision.get("passed") is True:
        return
    failed = [str(r) for r in decision.get("reasons") or []][:1]
    why = f" ({failed[0]})" if failed else ""
    raise ValueError(f"register: {spec.name}: the gate decision did not pass{why}; refusing to register")


def _require_lineage(spec: ModelSpec, lineage: Mapping[str, Any]) -> None:
    missing = [key for key in REQUIRED_LINEAGE if lineage.get(key) in (None, "")]
    if missing:
        raise ValueError(f"register: {spec.name}: lineage lacks {', '.join(missing)}")


def _require_files(plots: Sequence[Path], report_html: Path | None, triton_repository: Path | None) -> None:
    for path in [*plots, *([report_html] if report_html is not None else [])]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"register: artifact file {path} not found")
    if triton_repository is not None and not Path(triton_repository).is_dir():
        raise FileNotFoundError(f"register: Triton repository {triton_repository} is not a folder")


# ------------------------------------------------------------------------------------------------- run
def _open_run(spec: ModelSpec, run_id: str | None, run_context: Mapping[str, Any]) -> mlflow.ActiveRun:
    """A new run in experiment `spec.name`, or run `run_id` resumed (it must belong to that experiment)."""
    experiment_id = ensure_experiment(spec.name)
    tags = {str(key): _tag_value(value) for key, value in run_context.items()}
    if run_id is None:
        run_name = str(run_context.get("pipeline_run_id") or "") or None
        return mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    try:
        existing = mlflow.MlflowClient().get_run(run_id)
    except MlflowException:
        raise LookupError(f"register: MLflow run {run_id} not found") from None
    if existing.info.experiment_id != experiment_id:
        raise ValueError(f"register: MLflow run {run_id} is not in experiment {spec.name!r}")
    active = mlflow.start_run(run_id=run_id)
    mlflow.set_tags(tags)
    return active


# --------------------------------------------------------------------------------------------- logging
def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics as flat MLflow keys: `{"slices": {"plan_tier": {"pro": {"roc_auc": x}}}}` becomes
    `slice.plan_tier.pro.roc_auc`, `{"overall": {"roc_auc": x}}` becomes `roc_auc`.

    None, NaN, infinities, booleans, strings and lists (confusion matrices, curve points) are skipped:
    a metric series holds finite numbers only. Characters MLflow rejects in names become `_`.
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        part = _RENAMED_SECTIONS.get(str(key), _metric_key_part(key)) if not prefix else _metric_key_part(key)
        name = ".".join(p for p in (prefix, part) if p)
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name))
        elif isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and name:
            flat[name] = float(value)
    return flat


def _metric_key_part(key: Any) -> str:
    return _UNSAFE_METRIC_CHARS.sub("_", str(key)) or "_"


def _log_params(hyperparameters: Mapping[str, Any], recorded: Mapping[str, str]) -> None:
    # MLflow refuses to change a logged param, and a resumed run may hold these already.
    params = {str(k): str(v)[:_MAX_PARAM_CHARS] for k, v in hyperparameters.items() if str(k) not in recorded}
    if params:
        mlflow.log_params(params)


def _log_json(data: Any, artifact_file: str) -> None:
    mlflow.log_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable), artifact_file)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _log_files(plots: Sequence[Path], report_html: Path | None) -> None:
    for plot in plots:
        mlflow.log_artifact(str(plot), "plots")
    if report_html is not None:
        mlflow.log_artifact(str(report_html), "reports")


# ---------------------------------------------------------------------------------------- registration
def version_tags(
    spec: ModelSpec,
    info: BundleInfo,
    lineage: Mapping[str, Any],
    run_context: Mapping[str, Any],
    decision: Mapping[str, Any],
) -> dict[str, str]:
    """The tags that tie a model version to its pipeline run, code, features and data."""
    return {
        "pipeline_run_id": _tag_value(run_context.get("pipeline_run_id") or "unknown"),
        "pipeline_run_reason": _tag_value(run_context.get("pipeline_run_reason") or "unknown"),
        "feature_service": _tag_value(
            lineage.get("feature_service") or spec.inputs.feature_service or "none"
        ),
        "data_start": _tag_value(lineage["start"]),
        "data_end": _tag_value(lineage["end"]),
        "training_set_sha256": _tag_value(lineage["content_sha256"]),
        "code_version": code_version(),
        "framework": info.framework,
        "gate": "passed" if decision.get("passed") is True else "failed",
        SERVING_INPUTS_TAG: RAW_FEATURES
        if takes_raw_features(info.triton_inputs, info.inputs)
        else MODEL_TENSORS,
    }


def _tag_value(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime | date) else str(value)
    return text[:_MAX_TAG_CHARS]


def code_version() -> str:
    """The git commit of this checkout, else `$CODE_VERSION` (set in images, which have no .git), else
    "unknown"."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    return settings().code_version or "unknown"


def _create_version(spec: ModelSpec, model_info: ModelInfo, run_id: str, tags: dict[str, str]) -> str:
    with quiet_mlflow():
        client = mlflow.MlflowClient()
        _ensure_registered_model(client, spec)
        version = client.create_model_version(
            name=spec.name,
            source=model_info.model_uri,
            run_id=run_id,
            tags=tags,
            description=spec.description,
            model_id=model_info.model_id,
        )
    return str(version.version)


def _ensure_registered_model(client: mlflow.MlflowClient, spec: ModelSpec) -> None:
    tags = {"framework": spec.framework, **({"owner": spec.owner} if spec.owner else {})}
    try:
        client.create_registered_model(spec.name, tags=tags, description=spec.description)
    except MlflowException as exc:
        if exc.error_code not in _EXISTS:
            raise
