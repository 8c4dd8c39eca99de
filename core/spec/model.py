"""Typed model specs: one YAML file per model under `pipelines/models/<name>.yaml`, loaded and validated
once, then passed around as an immutable `ModelSpec`.

    from core.spec.model import load_spec, load_specs

    spec = load_spec("pipelines/models/conversion-xgboost.yaml")
    specs = load_specs(names=["conversion-xgboost"])  # from DEFAULT_SPEC_DIR, sorted by name

Anything wrong raises `SpecError` with a one-line message `<file>: <dotted.field>: <problem>`. The sections
live in `spec_training.py`, `spec_release.py` and `spec_monitoring.py`; import them from here. Strict YAML
reading is in `spec_yaml.py`, the one-line validation messages in `spec_messages.py`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Self

from pydantic import ValidationError, model_validator

from core.errors import SpecError
from core.paths import REPO_ROOT
from core.spec.base import (
    METRIC_DIRECTION,
    METRIC_NAMES,
    FieldProblem,
    FrozenMap,
    MetricName,
    ModelName,
    NonEmptyStr,
    SpecModel,
    higher_is_better,
)
from core.spec.messages import spec_error
from core.spec.monitoring import (
    BATCH_DETECTORS,
    ONLINE_DETECTORS,
    Detector,
    Monitoring,
    MonitoringWindow,
)
from core.spec.reading import read_yaml
from core.spec.release import (
    ALLOWED_BACKENDS,
    Canary,
    CanarySuccess,
    DynamicBatching,
    Evaluation,
    Framework,
    Serving,
    TritonBackend,
)
from core.spec.training import (
    Inputs,
    Label,
    RequestField,
    Search,
    SearchParam,
    Split,
    Training,
    TrainingWindow,
)

__all__ = [
    "ALLOWED_BACKENDS",
    "BATCH_DETECTORS",
    "DEFAULT_SPEC_DIR",
    "METRIC_DIRECTION",
    "METRIC_NAMES",
    "ONLINE_DETECTORS",
    "Canary",
    "CanarySuccess",
    "Detector",
    "DynamicBatching",
    "Evaluation",
    "Framework",
    "FrozenMap",
    "Inputs",
    "Label",
    "MetricName",
    "ModelSpec",
    "Monitoring",
    "MonitoringWindow",
    "RequestField",
    "Search",
    "SearchParam",
    "Serving",
    "SpecError",
    "Split",
    "Training",
    "TrainingWindow",
    "TritonBackend",
    "higher_is_better",
    "load_spec",
    "load_specs",
    "parse_spec",
]

DEFAULT_SPEC_DIR = REPO_ROOT / "pipelines" / "models"
SPEC_DIR_ENV = "MLOPS_SPEC_DIR"
SPEC_SUFFIX = ".yaml"


class ModelSpec(SpecModel):
    """Everything the loop needs to know about one model, from features to drift alerts."""

    name: ModelName
    description: NonEmptyStr
    owner: str | None = None
    """Team or person to contact; copied to MLflow tags and alert labels."""
    framework: Framework
    inputs: Inputs
    label: Label
    training: Training
    evaluation: Evaluation
    serving: Serving
    canary: Canary
    monitoring: Monitoring

    @model_validator(mode="after")
    def _cross_section_rules(self) -> Self:
        allowed = ALLOWED_BACKENDS[self.framework]
        if self.serving.triton_backend not in allowed:
            raise FieldProblem(
                ("serving", "triton_backend"),
                f"{self.serving.triton_backend!r} cannot serve {self.framework} models; "
                f"use one of {', '.join(sorted(allowed))}",
            )
        if self.training.max_epochs is not None and self.framework not in ("pytorch", "transformers"):
            raise FieldProblem(
                ("training", "max_epochs"),
                f"only pytorch and transformers models train in epochs, not {self.framework}",
            )
        request_fields = self.inputs.request_fields
        if self.framework == "transformers" and not any(f.dtype == "string" for f in request_fields or ()):
            raise FieldProblem(
                ("inputs", "request_fields"),
                "a transformers model reads raw text: list a request field with dtype string",
            )
        if self.label.column in self.inputs.declared_columns:
            raise FieldProblem(("label", "column"), f"{self.label.column!r} is also an input column")
        if request_fields is not None:  # only then are the input columns known here
            known = {f.name for f in request_fields}
            for section, field in (("evaluation", "slices"), ("monitoring", "features")):
                unknown = [c for c in getattr(getattr(self, section), field) or () if c not in known]
                if unknown:
                    raise FieldProblem(
                        (section, field),
                        f"{', '.join(unknown)} not among the request fields ({', '.join(sorted(known))})",
                    )
        return self


# --------------------------------------------------------------------------------------------- loading
def load_spec(path: str | PathLike[str]) -> ModelSpec:
    """Read and validate one spec file; its `name` must equal the file name without `.yaml`."""
    path = Path(path)
    spec = parse_spec(read_yaml(path), source=path)
    if spec.name != path.stem:
        raise SpecError(
            path,
            f"{spec.name!r} does not match the file name {path.name!r} (a spec lives in <name>{SPEC_SUFFIX})",
            field="name",
        )
    return spec


def spec_directory() -> Path:
    """Where pipeline steps read specs: `$MLOPS_SPEC_DIR` (e.g. a mounted ConfigMap), else the repo's."""
    return Path(os.environ.get(SPEC_DIR_ENV) or DEFAULT_SPEC_DIR)


def load_specs(
    directory: str | PathLike[str] | None = None, names: Sequence[str] | None = None
) -> list[ModelSpec]:
    """Load the specs in `directory` (default: `spec_directory()`; all of them, or only `names`), sorted
    by name.

    Only the requested files are read, so one broken spec does not block the others' pipelines. A
    directory with no specs, or a requested name without a file, is a `SpecError`.
    """
    directory = Path(directory) if directory is not None else spec_directory()
    if not directory.is_dir():
        raise SpecError(directory, "spec directory not found")
    strays = sorted(p.name for p in directory.glob("*.yml"))
    if strays:
        raise SpecError(directory, f"rename {', '.join(strays)} to use the {SPEC_SUFFIX} suffix")
    files = {p.stem: p for p in directory.glob(f"*{SPEC_SUFFIX}") if p.is_file()}
    if not files:
        raise SpecError(directory, f"no model specs (*{SPEC_SUFFIX}) found")
    if names is None:
        wanted = sorted(files)
    else:
        wanted = sorted(set([names] if isinstance(names, str) else names))
        unknown = [n for n in wanted if n not in files]
        if unknown:
            raise SpecError(
                directory,
                f"unknown model spec {', '.join(map(repr, unknown))}; available: {', '.join(sorted(files))}",
            )
    return [load_spec(files[name]) for name in wanted]


def parse_spec(data: Any, source: str | PathLike[str] = "<spec>") -> ModelSpec:
    """Validate an already-parsed spec (e.g. from JSON); errors name `source` like file errors do."""
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise SpecError(source, f"the top level must be a mapping of spec fields, got {got}")
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise spec_error(exc, source, ModelSpec) from exc
