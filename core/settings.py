"""The process environment as one typed, validated settings object.

Every value the platform's code reads from its environment is a field here, named by its variable (the
`validation_alias`), with its default and what it is for; nothing else reads `os.environ` for
configuration. `settings()` reads the environment as it is now (processes set variables for the children
they start, and tests change them), so it is cheap and never cached; a bad value fails with one line naming
the variable. `docs/configuration.md` is the table of these variables; a test keeps it equal to this class.

On a cluster the pipeline's steps get them from one ConfigMap (`mlops-platform-config`) and named Secrets:
a field's `FromConfigMap` / `FromSecret` marker says which, and which steps read it. The compiled pipeline
injects exactly that (pipelines/runtime_config.py), the overlays provide the ConfigMap, and local mode sets
the same keys from a local rendering of it (core/runtime_config.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
DeploymentMode = Literal["Knative", "Standard"]
PayloadLogFormat = Literal["json", "csv", "parquet"]  # KServe's logger marshallers (kserve v0.20.0)
# KServe's own spellings: `Serverless` and `RawDeployment` are the names before 0.16, still accepted by its
# webhook (kserve v0.20.0 pkg/constants/constants.go ParseDeploymentMode).
_LEGACY_MODES = {"Serverless": "Knative", "RawDeployment": "Standard"}


def _payload_store(value: str | None) -> str | None:
    if value and not re.fullmatch(r"s3a?://[^/\s]+(/\S*)?", value):
        raise ValueError(f"{value!r} is not s3://bucket[/prefix] (empty: post each event over HTTP)")
    return value


def _go_duration(value: str) -> str:
    # time.ParseDuration's units; KServe's agent parses this flag with it (cmd/agent/main.go)
    if not re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", value):
        raise ValueError(f"{value!r} is not a Go duration such as 500ms, 10s or 1m")
    return value


def _deployment_mode(value: Any) -> Any:
    return _LEGACY_MODES.get(value.strip(), value.strip()) if isinstance(value, str) else value


def _device(value: str) -> str:
    value = value.strip().lower() or "auto"
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value


# The pipeline steps that read a variable, by KFP task name (the component function's name, dashed).
PIPELINE_STEPS = (
    "resolve-spec", "load-features", "validate-data", "train", "fit-detector", "evaluate", "gate",
    "export-triton", "register", "deploy-canary", "analyze-canary", "promote-or-rollback",
)  # fmt: skip
SPECS_MOUNT = "/etc/mlops/specs"  # where the specs ConfigMap is mounted (core/runtime_config.py)
MLFLOW_STEPS = (
    "validate-data", "evaluate", "gate", "register", "deploy-canary", "analyze-canary", "promote-or-rollback",
)  # fmt: skip
FEAST_STEPS = ("load-features",)
ROLLOUT_STEPS = ("deploy-canary", "analyze-canary", "promote-or-rollback")


@dataclass(frozen=True)
class FromConfigMap:
    """On a cluster: the key of the same name in ConfigMap `mlops-platform-config`, injected into `steps`;
    `required`: those steps stop in their first second when it is unset (no local fallback there)."""

    steps: tuple[str, ...]
    required: bool = False
    cluster_value: str | None = None  # what the base ConfigMap holds (None: the field's default)


@dataclass(frozen=True)
class FromSecret:
    """On a cluster: key `key` of Secret `secret` (the installation provides it), injected into `steps`."""

    secret: str
    key: str
    steps: tuple[str, ...]
    required: bool = False


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
    spec_dir: Annotated[
        Path | None, FromConfigMap(PIPELINE_STEPS, required=True, cluster_value=SPECS_MOUNT)
    ] = Field(default=None, validation_alias="MLOPS_SPEC_DIR")
    """Where the model specs are read (default: the repository's `pipelines/models/`; on a cluster the
    ConfigMap `mlops-model-specs` mounted there: specs are configuration, not baked into images)."""
    feature_data_uri: Annotated[
        str | None, FromSecret("feast-offline-store", "uri", FEAST_STEPS, required=True)
    ] = Field(default=None, validation_alias="FEATURE_DATA_URI")
    """Folder or s3:// prefix of the feature and label tables (default: `<MLOPS_HOME>/data`)."""
    feast_fs_yaml: Annotated[
        Path | None,
        FromConfigMap(
            FEAST_STEPS, required=True, cluster_value="/app/feature_repo/cluster/feature_store.yaml"
        ),
    ] = Field(default=None, validation_alias="FEAST_FS_YAML_FILE_PATH")
    """The Feast config steps open (Feast's own variable, feast/constants.py; default outside the pipeline:
    the repository's local `feature_repo/feature_store.yaml`)."""
    feast_registry_host: Annotated[str | None, FromSecret("feast-registry", "host", FEAST_STEPS)] = Field(
        default=None, validation_alias="FEAST_REGISTRY_HOST"
    )
    """Feast SQL registry's Postgres host (`${FEAST_REGISTRY_HOST}` in the cluster feature_store.yaml)."""
    feast_registry_user: Annotated[str | None, FromSecret("feast-registry", "username", FEAST_STEPS)] = Field(
        default=None, validation_alias="FEAST_REGISTRY_USER"
    )
    """Feast SQL registry's Postgres user."""
    feast_registry_password: Annotated[
        SecretStr | None, FromSecret("feast-registry", "password", FEAST_STEPS)
    ] = Field(default=None, validation_alias="FEAST_REGISTRY_PASSWORD")
    """Feast SQL registry's Postgres password."""
    feast_redis_host: Annotated[str | None, FromSecret("feast-online-store", "host", FEAST_STEPS)] = Field(
        default=None, validation_alias="FEAST_REDIS_HOST"
    )
    """Feast online store's Redis host (`${FEAST_REDIS_HOST}` in the cluster feature_store.yaml)."""
    feast_redis_password: Annotated[
        SecretStr | None, FromSecret("feast-online-store", "password", FEAST_STEPS)
    ] = Field(default=None, validation_alias="FEAST_REDIS_PASSWORD")
    """Feast online store's Redis password."""
    aws_access_key_id: Annotated[
        str | None, FromSecret("feast-offline-store", "access-key-id", FEAST_STEPS)
    ] = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    """Object-store key of the feature tables (read by DuckDB/boto for s3:// sources)."""
    aws_secret_access_key: Annotated[
        SecretStr | None, FromSecret("feast-offline-store", "secret-access-key", FEAST_STEPS)
    ] = Field(default=None, validation_alias="AWS_SECRET_ACCESS_KEY")
    """Object-store secret of the feature tables."""
    mlflow_tracking_uri: Annotated[
        str | None, FromConfigMap(MLFLOW_STEPS, required=True, cluster_value="http://mlflow:5000")
    ] = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    """MLflow tracking server (default: the local sqlite store under `<MLOPS_HOME>/mlflow`)."""
    mlflow_artifacts_destination: Annotated[
        str | None, FromSecret("mlflow-artifact-store", "destination", ROLLOUT_STEPS)
    ] = Field(default=None, validation_alias="MLFLOW_ARTIFACTS_DESTINATION")
    """The store behind an MLflow artifact proxy (`mlflow-artifacts:/` URIs are rewritten onto it)."""
    prometheus_url: Annotated[str, FromConfigMap(("analyze-canary",))] = Field(
        default="http://prometheus-operated.monitoring.svc:9090", validation_alias="PROMETHEUS_URL"
    )
    """The Prometheus the cluster canary analysis queries."""
    kserve_deployment_mode: Annotated[
        DeploymentMode, BeforeValidator(_deployment_mode), FromConfigMap(ROLLOUT_STEPS)
    ] = Field(default="Knative", validation_alias="KSERVE_DEPLOYMENT_MODE")
    """How deploy renders canaries, and what local mode's router follows: `Knative` (`canaryTrafficPercent`
    between revisions) or `Standard` (`spec.canary`, KServe's Gateway API HTTPRoute splits; docs/cluster.md).
    Set per overlay (component `kserve-standard`)."""
    payload_log_store: Annotated[
        str | None, AfterValidator(_payload_store), FromConfigMap(ROLLOUT_STEPS, cluster_value="")
    ] = Field(default=None, validation_alias="PAYLOAD_LOG_STORE")
    """Where KServe's logger writes payload logs in batches: `s3://bucket/prefix` (the drift service reads
    them, `--payload-store`); unset: one CloudEvent POST per request and response (the default broker)."""
    payload_log_format: Annotated[PayloadLogFormat, FromConfigMap(ROLLOUT_STEPS)] = Field(
        default="json", validation_alias="PAYLOAD_LOG_FORMAT"
    )
    """The batches' marshaller format: `json`, `csv` or `parquet`."""
    payload_log_batch_size: Annotated[int, Field(ge=1), FromConfigMap(ROLLOUT_STEPS)] = Field(
        default=1000, validation_alias="PAYLOAD_LOG_BATCH_SIZE"
    )
    """Log records (requests and responses) per object."""
    payload_log_batch_interval: Annotated[str, AfterValidator(_go_duration), FromConfigMap(ROLLOUT_STEPS)] = (
        Field(default="10s", validation_alias="PAYLOAD_LOG_BATCH_INTERVAL")
    )
    """A partial batch is written after this long (a Go duration: `500ms`, `10s`, `1m`)."""
    payload_log_service_account: Annotated[str, FromConfigMap(ROLLOUT_STEPS)] = Field(
        default="logger-sa", validation_alias="PAYLOAD_LOG_SERVICE_ACCOUNT"
    )
    """The ServiceAccount whose S3 secret KServe gives the logger (KServe's default: `logger-sa`)."""
    code_version: Annotated[str | None, FromConfigMap(("register",))] = Field(
        default=None, validation_alias="CODE_VERSION"
    )
    """The code a model was trained with, recorded on its version (default: the git commit, if any; on a
    cluster the ConfigMap holds the images' tag, which carries the digest of their code)."""
    train_threads: Annotated[int, Field(ge=1), FromConfigMap(("train",), cluster_value="2")] = Field(
        default=1, validation_alias="MLOPS_TRAIN_THREADS"
    )
    """Threads a trainer may use. OpenMP trainers spin-wait for busy cores: on a shared node two threads
    were 10-40x slower than one here. Raise it to the pod's CPU request."""
    train_device: Annotated[str, AfterValidator(_device), FromConfigMap(("train",))] = Field(
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
