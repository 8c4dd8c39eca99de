"""The process environment as one typed, validated settings object.

Every value the platform's code reads from its environment is a field here, named by its variable (the
`validation_alias`), with its default and what it is for; nothing else reads `os.environ` for
configuration. `settings()` reads the environment as it is now (processes set variables for the children
they start, and tests change them), so it is cheap and never cached; a bad value fails with one line naming
the variable. `docs/configuration.md` is the table of these variables; a test keeps it equal to this class.

On a cluster the same variables come from one ConfigMap and named Secrets; locally the runner and the
Makefile set them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def _device(value: str) -> str:
    value = value.strip().lower() or "auto"
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use; one line naming the variable."""


class Settings(BaseSettings):
    """What a process of this platform reads from its environment (all optional, with defaults)."""

    # Empty values count as unset, as the `os.environ.get(...) or default` reads they replace did.
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=True, env_ignore_empty=True, use_attribute_docstrings=True
    )

    home: Path | None = Field(default=None, validation_alias="MLOPS_HOME")
    """Local state: feature data, Feast registry and online store, MLflow store, pipeline root, logs
    (default: `.local/` in the repository; `core.paths.state_root()`)."""
    spec_dir: Path | None = Field(default=None, validation_alias="MLOPS_SPEC_DIR")
    """Where the model specs are read (default: the repository's `pipelines/models/`; on a cluster: a
    mounted ConfigMap)."""
    feature_data_uri: str | None = Field(default=None, validation_alias="FEATURE_DATA_URI")
    """Folder or s3:// prefix of the feature and label tables (default: `<MLOPS_HOME>/data`)."""
    mlflow_tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    """MLflow tracking server (default: the local sqlite store under `<MLOPS_HOME>/mlflow`)."""
    mlflow_artifacts_destination: str | None = Field(
        default=None, validation_alias="MLFLOW_ARTIFACTS_DESTINATION"
    )
    """The store behind an MLflow artifact proxy (`mlflow-artifacts:/` URIs are rewritten onto it)."""
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090", validation_alias="PROMETHEUS_URL"
    )
    """The Prometheus the cluster canary analysis queries."""
    code_version: str | None = Field(default=None, validation_alias="CODE_VERSION")
    """The code a model was trained with, recorded on its version (default: the git commit, if any)."""
    train_threads: Annotated[int, Field(ge=1)] = Field(default=1, validation_alias="MLOPS_TRAIN_THREADS")
    """Threads a trainer may use. OpenMP trainers spin-wait for busy cores: on a shared node two threads
    were 10-40x slower than one here. Raise it to the pod's CPU request."""
    train_device: Annotated[str, AfterValidator(_device)] = Field(
        default="auto", validation_alias="MLOPS_TRAIN_DEVICE"
    )
    """`auto` (a GPU when torch sees one), `cpu`, `cuda` or `cuda:N`."""
    timings_file: Path | None = Field(default=None, validation_alias="MLOPS_TIMINGS_FILE")
    """Each pipeline step appends its wall time here (the local runner sets it per run)."""
    serving_runtime: Path | None = Field(default=None, validation_alias="MLOPS_SERVING_RUNTIME")
    """The local serving runtime's `runtime.json` (default: `<MLOPS_HOME>/serving/runtime.json`)."""
    serving_python: Path | None = Field(default=None, validation_alias="MLOPS_SERVING_PYTHON")
    """The serving environment's interpreter (alibi-detect needs numpy<2), for steps that shell out to it
    (default: the repository's `.venv-serving/bin/python`)."""
    bad_canary: str | None = Field(default=None, validation_alias="MLOPS_BAD_CANARY")
    """Local demos and tests only: make challengers bad (`error`, `slow`, or `model=mode,...`)."""
    kfp_token_path: Path = Field(
        default=Path("/var/run/secrets/kubeflow/pipelines/token"),
        validation_alias="KF_PIPELINES_SA_TOKEN_PATH",
    )
    """The projected service-account token the retrain trigger presents to the KFP API."""


def settings() -> Settings:
    """The settings of this process's environment now; `SettingsError` names a bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(_one_line(error)) from None


def variable(field: str) -> str:
    """The environment variable of a settings field (for messages and for setting it in a child process)."""
    return str(Settings.model_fields[field].validation_alias)


def _one_line(error: ValidationError) -> str:
    first: Any = error.errors(include_url=False)[0]
    name = first["loc"][0] if first["loc"] else "environment"
    message = str(first["msg"]).removeprefix("Value error, ")
    if "got " not in message:
        message += f" (got {first.get('input')!r})"
    return f"environment variable {name}: {message}"
