"""Typed model specs: one YAML file per model under `pipelines/models/<name>.yaml`, loaded and validated
once, then passed around as an immutable `ModelSpec`.

    from core.spec.model import load_spec, load_specs

    spec = load_spec("pipelines/models/conversion-xgboost.yaml")
    specs = load_specs(names=["conversion-xgboost"])  # from DEFAULT_SPEC_DIR, sorted by name

Anything wrong raises `SpecError` with a one-line message `<file>: <dotted.field>: <problem>`. The sections
live beside this module (`training.py`, `release.py`, `monitoring.py`), strict YAML reading in `reading.py`,
the one-line validation messages in `messages.py`; the frameworks a spec may name are the plug-ins of
`core.frameworks.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AfterValidator, ValidationError, model_validator

from core.errors import SpecError
from core.paths import REPO_ROOT
from core.settings import settings
from core.spec.base import (
    CLASSIFICATION_METRICS,
    RANKING_METRICS,
    FieldProblem,
    ModelName,
    NonEmptyStr,
    SpecModel,
    ranking_cutoff,
)
from core.spec.behaviour import check_behaviour
from core.spec.label import Label
from core.spec.messages import spec_error
from core.spec.monitoring import (
    Monitoring,
)
from core.spec.reading import read_yaml
from core.spec.release import Canary, Evaluation, Serving
from core.spec.training import (
    Inputs,
    Training,
)

DEFAULT_SPEC_DIR = REPO_ROOT / "pipelines" / "models"
SPEC_SUFFIX = ".yaml"


def _known_framework(name: str) -> str:
    from core.frameworks.registry import framework_names  # plug-ins are found on first use, not at import

    known = framework_names()
    if name not in known:
        raise ValueError(f"unknown framework {name!r}: expected one of {', '.join(known)}")
    return name


FrameworkName = Annotated[str, AfterValidator(_known_framework)]
"""A framework plug-in's NAME (core/frameworks/*_model.py, or one registered with `register_framework`)."""


class ModelSpec(SpecModel):
    """Everything the loop needs to know about one model, from features to drift alerts."""

    name: ModelName
    description: NonEmptyStr
    owner: str | None = None
    """Team or person to contact; copied to the MLflow version's tags."""
    framework: FrameworkName
    inputs: Inputs
    label: Label
    training: Training
    evaluation: Evaluation
    serving: Serving
    canary: Canary
    monitoring: Monitoring

    @model_validator(mode="after")
    def _cross_section_rules(self) -> Self:
        from core.frameworks.registry import frameworks  # plug-ins are found on first use, not at import

        framework = frameworks()[self.framework]
        if self.serving.triton_backend not in framework.BACKENDS:
            raise FieldProblem(
                ("serving", "triton_backend"),
                f"{self.serving.triton_backend!r} cannot serve {self.framework} models; "
                f"use one of {', '.join(sorted(framework.BACKENDS))}",
            )
        if self.training.max_epochs is not None and not framework.EPOCHS:
            epochs = sorted(name for name, plugin in frameworks().items() if plugin.EPOCHS)
            raise FieldProblem(
                ("training", "max_epochs"),
                f"only {', '.join(epochs)} models train in epochs, not {self.framework}",
            )
        framework.check_spec(self)
        if self.label.column in self.inputs.declared_columns:
            raise FieldProblem(("label", "column"), f"{self.label.column!r} is also an input column")
        request_fields = self.inputs.request_fields
        if request_fields is not None:  # only then are the input columns known here
            known = {f.name for f in request_fields}
            for section, field in (("evaluation", "slices"), ("monitoring", "features")):
                unknown = [c for c in getattr(getattr(self, section), field) or () if c not in known]
                if unknown:
                    raise FieldProblem(
                        (section, field),
                        f"{', '.join(unknown)} not among the request fields ({', '.join(sorted(known))})",
                    )
        self._metrics_fit_task()
        check_behaviour(self)
        experiment = self.canary.experiment
        if experiment is not None and experiment.success_class not in self.label.class_names:
            raise FieldProblem(
                ("canary", "experiment", "success_class"),
                f"{experiment.success_class!r} is not a class of the label "
                f"({', '.join(self.label.class_names)})",
            )
        return self

    def _metrics_fit_task(self) -> None:
        """Every metric the spec names belongs to its task's family; a ranker's cut-offs are evaluated."""
        ranking = self.label.task == "ranking"
        family = RANKING_METRICS if ranking else CLASSIFICATION_METRICS
        named: list[tuple[tuple[str, ...], str]] = [
            (("evaluation", "primary_metric"), self.evaluation.primary_metric)
        ]
        for section in ("floors", "champion_tolerance", "baseline_margin"):
            named += [(("evaluation", section, m), m) for m in getattr(self.evaluation, section)]
        if self.training.search is not None:
            named.append((("training", "search", "metric"), self.training.search.metric))
        for loc, metric in named:
            if metric not in family:
                raise FieldProblem(
                    loc, f"{metric} is not a {self.label.task} metric; use one of {', '.join(family)}"
                )
            cutoff = ranking_cutoff(metric)
            if cutoff is not None and cutoff not in self.label.k:
                raise FieldProblem(
                    loc, f"{metric}: cut-off {cutoff} is not among label.k {list(self.label.k)}"
                )
        shift = ("canary", "success", "max_prediction_shift")
        if not ranking:
            if self.evaluation.baseline_margin:
                raise FieldProblem(
                    ("evaluation", "baseline_margin"), "only a ranking model has a popularity baseline"
                )
            if self.canary.success.max_prediction_shift is None:
                raise FieldProblem(shift, "required for a classification model (the PSI bound, e.g. 0.2)")
            return
        if self.canary.success.max_prediction_shift is not None:
            raise FieldProblem(
                shift,
                "leave it out for a ranking model: its raw scores have no common scale across versions, so "
                "their PSI measures an offset (compare rankers with canary.shadow)",
            )
        if self.inputs.feature_service is None or self.label.item_column not in self.inputs.entity_keys:
            raise FieldProblem(
                ("label", "item_column"),
                f"{self.label.item_column!r} must be one of inputs.entity_keys: a ranker reads each "
                "candidate's features from its feature service",
            )
        for loc, present in (
            (("evaluation", "behaviour"), bool(self.evaluation.behaviour)),
            (("canary", "experiment"), self.canary.experiment is not None),
        ):
            if present:
                raise FieldProblem(loc, "not supported for a ranking model yet (docs/limits.md)")


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
    return settings().spec_dir or DEFAULT_SPEC_DIR


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
