"""The pipeline steps' runtime configuration as a contract: what each step reads from its environment,
where that comes from on a cluster, and the local rendering that `make run` goes through.

On a cluster a step's variables are injected by the compiled pipeline (pipelines/step_environment.py) from
the ConfigMap `mlops-platform-config` (manifests/platform-config/, written from the settings model by
`make compile`) and the Secrets the installation provides. Locally, pipelines.local_run renders the same
ConfigMap with local values under `$MLOPS_HOME/config/` and sets the same variables from it, so a local
step takes the code path of a cluster pod. Each step checks its variables in its first second
(`check_step_environment`) and stops with one line naming what is missing and where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from core.paths import REPO_ROOT, feature_data_dir, state_root, write_text_atomically
from core.settings import FromConfigMap, FromSecret, Settings, SettingsError, settings

CONFIG_MAP = "mlops-platform-config"
MANIFEST = REPO_ROOT / "manifests" / "platform-config" / "config-map.yaml"
SPECS_CONFIG_MAP = "mlops-model-specs"  # one key per spec file, mounted at SPECS_MOUNT where specs are read
SPECS_MANIFEST = REPO_ROOT / "manifests" / "platform-config" / "model-specs.yaml"
LOCAL_FEATURE_STORE_YAML = REPO_ROOT / "feature_repo" / "feature_store.yaml"


@dataclass(frozen=True)
class Injection:
    """One environment variable a pipeline step gets on a cluster, and from where."""

    variable: str
    field: str
    source: FromConfigMap | FromSecret

    def origin(self) -> str:
        if isinstance(self.source, FromSecret):
            return f"Secret {self.source.secret} key {self.source.key}"
        return f"ConfigMap {CONFIG_MAP} key {self.variable}"


def injections() -> list[Injection]:
    """Every settings field a pipeline step reads on a cluster, in the settings model's order."""
    found = []
    for name, field in Settings.model_fields.items():
        for marker in field.metadata:
            if isinstance(marker, FromConfigMap | FromSecret):
                found.append(Injection(str(field.validation_alias), name, marker))
    return found


def step_injections(step: str) -> list[Injection]:
    return [injection for injection in injections() if step in injection.source.steps]


def cluster_config_data() -> dict[str, str]:
    """The base ConfigMap's data: each ConfigMap key with its cluster value (else the field's default);
    CODE_VERSION is the images' tag, which carries the digest of their code (core/images.py)."""
    from core.images import TAG  # at call time: `make compile` writes the tag's digest first

    data = {}
    for injection in injections():
        if isinstance(injection.source, FromConfigMap):
            value = injection.source.cluster_value
            default = Settings.model_fields[injection.field].default
            data[injection.variable] = value if value is not None else str(default)
    data["CODE_VERSION"] = TAG
    return data


def local_config_data() -> dict[str, str]:
    """The local rendering's data: this machine's stand-ins, a variable already set in this process
    winning (a user's `MLOPS_TRAIN_THREADS=4 make run` is kept)."""
    from core.registry import local_tracking_uri  # MLflow is slow to import: only when rendering
    from core.spec.model import DEFAULT_SPEC_DIR

    local = {
        "MLOPS_SPEC_DIR": str(DEFAULT_SPEC_DIR),  # the folder the specs ConfigMap is rendered from
        "MLFLOW_TRACKING_URI": local_tracking_uri(),
        "FEAST_FS_YAML_FILE_PATH": str(LOCAL_FEATURE_STORE_YAML),
        "MLOPS_TRAIN_THREADS": "1",  # one busy-waiting OpenMP thread per trainer on a shared machine
    }
    data = {**cluster_config_data(), **local}
    values = settings()
    fields = {injection.variable: injection.field for injection in injections()}
    for key in data:
        if fields[key] in values.model_fields_set and getattr(values, fields[key]) is not None:
            data[key] = str(getattr(values, fields[key]))
    return data


def cluster_manifest() -> str:
    """The base ConfigMap the overlays patch (`make compile` writes it to MANIFEST)."""
    header = (
        "# The pipeline steps' runtime configuration: the ConfigMap keys of core/settings.py, written by\n"
        "# `make compile` (core/runtime_config.py). Overlays patch the values, never the keys.\n"
    )
    return config_map(cluster_config_data(), header)


def specs_manifest() -> str:
    """The model specs as the ConfigMap every spec reader mounts (`make compile` writes SPECS_MANIFEST):
    a spec change is a configuration change that Argo CD syncs, not a new image."""
    from core.spec.model import DEFAULT_SPEC_DIR

    data = {path.name: path.read_text() for path in sorted(DEFAULT_SPEC_DIR.glob("*.yaml"))}
    header = (
        "# The model specs (pipelines/models/*.yaml), mounted at MLOPS_SPEC_DIR by every pipeline step and\n"
        "# service that reads them. Written by `make compile` (core/runtime_config.py); do not edit.\n"
    )
    return config_map(data, header, SPECS_CONFIG_MAP)


def config_map(data: dict[str, str], comment: str = "", name: str = CONFIG_MAP) -> str:
    document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    return comment + yaml.safe_dump(document, sort_keys=False)


def local_rendering() -> Path:
    """Where local mode writes its rendering of the ConfigMap."""
    return state_root() / "config" / f"{CONFIG_MAP}.yaml"


def render_local() -> dict[str, str]:
    """Write the local rendering of the ConfigMap (at `local_rendering()`) and return the variables to set:
    its data plus the local stand-ins of the Secret keys the steps read (the local Feast config needs
    none)."""
    path = local_rendering()
    data = local_config_data()
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# The local rendering of the ConfigMap (core/runtime_config.py); not a manifest.\n"
    write_text_atomically(path, config_map(data, header))
    return {**data, "FEATURE_DATA_URI": settings().feature_data_uri or str(feature_data_dir())}


def check_step_environment(step: str) -> Settings:
    """A pipeline step's first act: its settings parse and every variable it requires is set, else the
    step stops here with one line naming the variable and where it comes from."""
    try:
        values = settings()
    except SettingsError as error:
        raise SystemExit(f"{step}: {error}") from None
    for injection in step_injections(step):
        if injection.source.required and getattr(values, injection.field) in (None, ""):
            raise SystemExit(
                f"{step}: environment variable {injection.variable} is not set: on a cluster it comes from "
                f"{injection.origin()}; locally pipelines.local_run sets it from "
                f"$MLOPS_HOME/config/{CONFIG_MAP}.yaml"
            )
    return values
