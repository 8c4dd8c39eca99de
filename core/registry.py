"""MLflow tracking setup and the registry operations the loop needs: find, move and drop aliases, and
what an alias points at in the terms serving needs (a version's Triton repositories).

Aliases are how serving learns what to serve (`champion`, `challenger`), so every lookup here tolerates a
model that has never been registered: the first pipeline run of a new model asks for its champion too.

KServe's storage initializer reads s3://, gs://, pvc://, http(s):// and friends, but not `models:/` and
not `mlflow-artifacts:/` (the proxied URI a tracking server started with `--serve-artifacts` hands out).
So an alias is resolved to a version, the version's `triton_uri` tag to its repository, and a proxied
URI is rewritten onto the store behind the proxy (`$MLFLOW_ARTIFACTS_DESTINATION`, the same value the
MLflow server is started with).

Tracking: `$MLFLOW_TRACKING_URI` when set (the cluster points it at the tracking server), else a local
sqlite store under `core.paths.mlflow_dir()` with artifacts in its `artifacts/` folder.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from core.bundle import Predictor, load_predictor
from core.paths import mlflow_dir
from core.settings import settings, variable

CHAMPION = "champion"
CHALLENGER = "challenger"
LOCAL_DB_FILE = "mlflow.db"
LOCAL_ARTIFACTS_DIR = "artifacts"
BUNDLE_ARTIFACT = "bundle"  # the pyfunc artifact key that holds the model bundle
_NOT_FOUND = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
TRITON_URI_TAG = "triton_uri"
# What the version's served model takes: its raw features (`RAW_FEATURES`, every tabular version since
# versions carry their own preprocessing) or other tensors (`MODEL_TENSORS`: a text model's token ids).
# Tabular versions registered before the tag took the stable encoder's tensor and cannot be fed by
# today's transformer.
SERVING_INPUTS_TAG = "serving_inputs"
RAW_FEATURES, MODEL_TENSORS = "raw_features", "model_tensors"
CLUSTER_REPOSITORY = "cluster"
LOCAL_REPOSITORY = "local"
_PROXIED_SCHEME = "mlflow-artifacts"


# ---------------------------------------------------------------------------------------------- tracking
def local_tracking_uri() -> str:
    return f"sqlite:///{mlflow_dir() / LOCAL_DB_FILE}"


def local_artifact_root() -> Path:
    return mlflow_dir() / LOCAL_ARTIFACTS_DIR


def configure_tracking(tracking_uri: str | None = None) -> str:
    """Point MLflow at `tracking_uri`, else `$MLFLOW_TRACKING_URI`, else the local sqlite store; return it."""
    uri = tracking_uri or settings().mlflow_tracking_uri or local_tracking_uri()
    if uri == local_tracking_uri():
        local_artifact_root().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def ensure_experiment(name: str) -> str:
    """The id of experiment `name`, created (or restored from the bin) if needed.

    A tracking server picks its own artifact root; a local store gets the local artifact folder, since
    MLflow's default would be `./mlruns` under whatever directory the process happens to run in.
    """
    with quiet_mlflow():  # the first client on a new local store creates its tables, noisily
        client = mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = None if _is_server(mlflow.get_tracking_uri()) else str(local_artifact_root() / name)
            return client.create_experiment(name, artifact_location=location)
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's INFO/WARNING chatter and download progress bars inside our own calls.

    What it says there (database migrations, "serialized using CloudPickle", "pip version not resolved")
    is expected for how we log models, and it buries the pipeline's own log lines.
    """
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    previous_bar = os.environ.get(_PROGRESS_BAR_ENV)
    os.environ[_PROGRESS_BAR_ENV] = "false"
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        if previous_bar is None:
            os.environ.pop(_PROGRESS_BAR_ENV, None)
        else:
            os.environ[_PROGRESS_BAR_ENV] = previous_bar


def _client() -> mlflow.MlflowClient:
    if not mlflow.is_tracking_uri_set():
        configure_tracking()
    return mlflow.MlflowClient()


# ----------------------------------------------------------------------------------------------- aliases
def _aliases(name: str) -> dict[str, str]:
    """alias -> version of registered model `name`; empty when the model does not exist yet."""
    try:
        with quiet_mlflow():
            model = _client().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == _NOT_FOUND:
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def get_alias_version(name: str, alias: str) -> ModelVersion | None:
    """The version of `name` that `alias` points at, or None (no such model, or the alias is unset)."""
    version = _aliases(name).get(alias)
    if version is None:
        return None
    with quiet_mlflow():
        return _client().get_model_version(name, version)


def set_alias(name: str, alias: str, version: str | int) -> None:
    """Point `alias` of `name` at `version` (moving it if it pointed elsewhere)."""
    try:
        with quiet_mlflow():
            _client().set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        if exc.error_code == _NOT_FOUND:
            raise LookupError(
                f"mlflow: cannot set alias {alias!r}: {name!r} has no version {version}"
            ) from None
        raise


def delete_alias(name: str, alias: str) -> bool:
    """Remove `alias` from `name`; False when there was nothing to remove (no model or no alias)."""
    if alias not in _aliases(name):
        return False
    with quiet_mlflow():
        _client().delete_registered_model_alias(name, alias)
    return True


# ------------------------------------------------------------------------------------------- predictors
def version_predictor(name: str, version: str | int, dest: Path | None = None) -> Predictor:
    """Download version `version` of `name` and load its bundle (into `dest`, else a new temp folder)."""
    dest = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix=f"{name}-v{version}-"))
    with quiet_mlflow():
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(dest), tracking_uri=_client().tracking_uri
        )
    return load_predictor(_bundle_path(Path(local)))


def champion_predictor(name: str, dest: Path | None = None) -> Predictor | None:
    """The current champion of `name` as a Predictor, or None when there is no champion yet."""
    champion = get_alias_version(name, CHAMPION)
    if champion is None:
        return None
    return version_predictor(name, champion.version, dest)


def _bundle_path(model_dir: Path) -> Path:
    """Where the pyfunc model keeps the bundle; read from MLmodel rather than assumed."""
    flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(BUNDLE_ARTIFACT)
    if not entry:
        raise FileNotFoundError(f"{model_dir}: MLflow model has no {BUNDLE_ARTIFACT!r} artifact")
    return model_dir / entry["path"]


# ------------------------------------------------------------------------------------ serving refs
@dataclass(frozen=True)
class ModelVersionRef:
    """One registered version of a model and where its Triton repositories are."""

    name: str
    version: str
    storage_uri: str
    """The cluster repository (`<triton_uri>/cluster`), for the InferenceService's storageUri."""
    local_repository_uri: str
    """The Python-backend repository (`<triton_uri>/local`), for local mode's Triton."""
    serving_inputs: str | None = None
    """The version's `SERVING_INPUTS_TAG`; None when registered before the tag."""


def resolve_alias(name: str, alias: str, artifacts_destination: str | None = None) -> ModelVersionRef | None:
    """The version `alias` of model `name` points at, or None when the alias (or the model) is unset."""
    version = get_alias_version(name, alias)
    if version is None:
        return None
    return version_ref(version, artifacts_destination)


def require_alias(name: str, alias: str, who: str) -> ModelVersionRef:
    """`resolve_alias`, for a caller (`who`, e.g. a step's name) that cannot go on without the version."""
    ref = resolve_alias(name, alias)
    if ref is None:
        raise LookupError(f"{who} {name}: no {alias!r} version in the registry")
    return ref


def version_ref(version: ModelVersion, artifacts_destination: str | None = None) -> ModelVersionRef:
    """A registered version as a ModelVersionRef; raises if it was registered without a Triton repository."""
    triton_uri = (version.tags or {}).get(TRITON_URI_TAG)
    if not triton_uri:
        raise LookupError(
            f"mlflow: {version.name} version {version.version} has no {TRITON_URI_TAG!r} tag "
            "(registered without a Triton repository); it cannot be served"
        )
    base = storage_location(triton_uri.rstrip("/"), artifacts_destination)
    return ModelVersionRef(
        name=version.name,
        version=str(version.version),
        storage_uri=f"{base}/{CLUSTER_REPOSITORY}",
        local_repository_uri=f"{base}/{LOCAL_REPOSITORY}",
        serving_inputs=(version.tags or {}).get(SERVING_INPUTS_TAG),
    )


def storage_location(artifact_uri: str, artifacts_destination: str | None = None) -> str:
    """`artifact_uri` as a URI the storage initializer can read: proxied URIs move onto the real store."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme != _PROXIED_SCHEME:
        return artifact_uri
    destination = artifacts_destination or settings().mlflow_artifacts_destination
    if not destination:
        raise ValueError(
            f"deploy: {artifact_uri} is served through the MLflow artifact proxy; set "
            f"{variable('mlflow_artifacts_destination')} (or --artifacts-destination) to the store behind it"
        )
    # mlflow-artifacts:/a/b and mlflow-artifacts://host:port/a/b both map to <destination>/a/b.
    return f"{destination.rstrip('/')}/{parsed.path.lstrip('/')}"
