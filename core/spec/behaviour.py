"""Model-spec section `evaluation.behaviour`: behavioural model tests the gate applies next to the metrics.

    behaviour:
      - {kind: invariance, name: region_is_irrelevant, feature: region, replace: seen, max_change: 0.1}
      - {kind: direction, name: pricing_views_lift_odds, features: [pricing_page_views_7d], add: 3,
         expect: non_decreasing, tolerance: 0.02, max_violation_share: 0.1}
      - kind: minimum
        name: obvious_intents
        examples: [{input: {text: "I want to cancel my Pro subscription"}, expect: cancellation}]

`invariance`: changing a feature that should not matter moves no class probability by more than
`max_change`. `direction`: moving numeric features by a step does not move the `target` class's
probability against `expect` by more than `tolerance`. `minimum`: literal inputs get their obvious class.
What the spec alone can check is checked here (`check_behaviour`, called by `ModelSpec`); columns of a
feature service are known only when the check runs on the test rows (`core.behaviour`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, PlainValidator, model_validator

from core.spec.base import (
    ColumnName,
    FieldProblem,
    FrozenDict,
    FrozenList,
    NonEmptyStr,
    Number,
    PositiveInt,
    Scalar,
    SpecModel,
    UniqueList,
)

if TYPE_CHECKING:
    from core.spec.model import ModelSpec

SEEN = "seen"
_CHECK_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _check_name(value: str) -> str:
    if not _CHECK_NAME.fullmatch(value):
        raise ValueError(
            f"must be lowercase letters, digits and '_', starting with a letter, at most 63 characters "
            f"(got {value!r})"
        )
    return value


def _replacement(value: Any) -> str | tuple[bool | int | float | str, ...]:
    # One validator for "seen" or a list: pydantic's union errors would name each member's path instead.
    if value == SEEN:
        return SEEN
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"must be {SEEN!r} or a non-empty list of values (got {value!r})")
    for item in value:
        if not isinstance(item, bool | int | float | str):
            raise ValueError(f"values must be single bools, numbers or strings (got {item!r})")
    if len(set(value)) != len(value):
        raise ValueError(f"duplicate values in {list(value)!r}")
    return tuple(value)


CheckName = Annotated[str, AfterValidator(_check_name)]
"""A check's name: also part of its MLflow metric names (`behaviour.<name>`)."""
Replacement = Annotated[str | tuple[bool | int | float | str, ...], PlainValidator(_replacement)]
ViolationShare = Annotated[float, Field(ge=0.0, le=0.25)]
"""Share of the rows allowed to break the bound. Models that are not constrained to be monotone or
blind to a feature (trees, neural networks) learn from finite, noisy data: a small step crosses split
thresholds or kinks fitted to noise on a few rows, which says nothing about the relation the check
guards. A model that learned the relation backwards, or leans on the irrelevant feature, breaks the
bound on most rows, so a few percent separate the two; more than a quarter would hide a real fault."""


class InvarianceCheck(SpecModel):
    """A feature that should not matter: perturbing it moves no class probability by more than
    `max_change` (on all but `max_violation_share` of the rows)."""

    kind: Literal["invariance"]
    name: CheckName
    feature: ColumnName
    replace: Replacement | None = None
    """Set the feature to each of these values in turn; `seen`: each value the test rows hold."""
    shift: Number | None = None
    """Add this to a numeric feature instead."""
    max_change: float = Field(ge=0.0, le=1.0)
    max_violation_share: ViolationShare = 0.0
    max_rows: PositiveInt = 500
    """Test rows used (a fixed random sample when there are more)."""

    @model_validator(mode="after")
    def _one_perturbation(self) -> Self:
        if (self.replace is None) == (self.shift is None):
            both = "both are set" if self.replace is not None else "neither is set"
            raise ValueError(f"set exactly one of replace or shift ({both})")
        if self.shift == 0:
            raise FieldProblem("shift", "must not be 0 (nothing would change)")
        return self

    @property
    def perturbation(self) -> str:
        if self.shift is not None:
            return f"{self.feature} {self.shift:+g}"
        values = "each seen value" if self.replace == SEEN else ", ".join(map(str, self.replace or ()))
        return f"{self.feature} -> {values}"


class DirectionCheck(SpecModel):
    """More of a numeric feature never moves the `target` class's probability against `expect` by more
    than `tolerance` (on all but `max_violation_share` of the rows)."""

    kind: Literal["direction"]
    name: CheckName
    features: UniqueList[ColumnName] = Field(min_length=1)
    """Numeric columns moved together by the same step: list a ratio derived from a count with it when
    multiplying, so the row stays consistent."""
    add: Number | None = None
    multiply: Number | None = None
    """Exactly one of add (a step in the feature's units) or multiply (a factor > 0)."""
    target: NonEmptyStr | None = None
    """The class whose probability is watched: a binary model's positive class "1" when omitted."""
    expect: Literal["non_decreasing", "non_increasing"]
    tolerance: float = Field(default=0.0, ge=0.0, le=1.0)
    """How far the probability may move against `expect` on a row before the row counts as a violation."""
    max_violation_share: ViolationShare = 0.0
    max_rows: PositiveInt = 500

    @model_validator(mode="after")
    def _one_step(self) -> Self:
        if (self.add is None) == (self.multiply is None):
            both = "both are set" if self.add is not None else "neither is set"
            raise ValueError(f"set exactly one of add or multiply ({both})")
        if self.add == 0:
            raise FieldProblem("add", "must not be 0 (nothing would change)")
        if self.multiply is not None and (self.multiply <= 0 or self.multiply == 1):
            raise FieldProblem("multiply", f"must be > 0 and not 1 (got {self.multiply!r})")
        return self

    @property
    def perturbation(self) -> str:
        step = f"{self.add:+g}" if self.add is not None else f"x{self.multiply:g}"
        return f"{', '.join(self.features)} {step}"


class Example(SpecModel):
    """One literal input and the class it obviously belongs to."""

    input: FrozenDict[ColumnName, Scalar]
    expect: NonEmptyStr

    @model_validator(mode="after")
    def _has_input(self) -> Self:
        if not self.input:
            raise FieldProblem("input", "must give at least one input column")
        return self


class MinimumCheck(SpecModel):
    """Minimum functionality: every example is predicted as its class (the top class, or with at least
    `min_probability`)."""

    kind: Literal["minimum"]
    name: CheckName
    examples: FrozenList[Example] = Field(min_length=1)
    min_probability: float | None = Field(default=None, gt=0.0, le=1.0)


BehaviourCheck = Annotated[InvarianceCheck | DirectionCheck | MinimumCheck, Field(discriminator="kind")]


def unique_check_names(checks: tuple[BehaviourCheck, ...]) -> None:
    """Raise `FieldProblem` (relative to `evaluation`) naming the first repeated check name."""
    seen: set[str] = set()
    for index, check in enumerate(checks):
        if check.name in seen:
            raise FieldProblem(("behaviour", index, "name"), f"duplicate check name {check.name!r}")
        seen.add(check.name)


def check_behaviour(spec: ModelSpec) -> None:
    """The rules that need the rest of the spec: classes exist, columns are inputs (request fields are
    known here; a feature service's columns only when the check runs), request values fit their dtype."""
    classes = spec.label.class_names
    not_inputs = {spec.label.column, *spec.inputs.entity_keys}
    fields = {f.name: f.dtype for f in spec.inputs.request_fields or ()}
    for index, check in enumerate(spec.evaluation.behaviour):
        at = ("evaluation", "behaviour", index)
        if isinstance(check, MinimumCheck):
            for number, example in enumerate(check.examples):
                _check_class(example.expect, classes, (*at, "examples", number, "expect"))
                _check_example(example.input, fields, not_inputs, (*at, "examples", number, "input"))
            continue
        if isinstance(check, DirectionCheck):
            _check_class(check.target, classes, (*at, "target"))
            if check.target is None and spec.label.task != "binary":
                raise FieldProblem((*at, "target"), f"required for a multiclass model ({', '.join(classes)})")
        columns = check.features if isinstance(check, DirectionCheck) else (check.feature,)
        field = "features" if isinstance(check, DirectionCheck) else "feature"
        numeric = isinstance(check, DirectionCheck) or check.shift is not None
        for column in columns:
            _check_column(column, fields, not_inputs, numeric, (*at, field))


def _check_class(name: str | None, classes: tuple[str, ...], loc: tuple[str | int, ...]) -> None:
    if name is not None and name not in classes:
        raise FieldProblem(loc, f"unknown class {name!r}: the model predicts {', '.join(classes)}")


def _check_column(
    column: str, fields: Mapping[str, str], not_inputs: set[str], numeric: bool, loc: tuple[str | int, ...]
) -> None:
    if column in not_inputs:
        raise FieldProblem(loc, f"{column!r} is the label or an entity key, not a model input")
    if fields and column not in fields:
        raise FieldProblem(loc, f"{column!r} is not a request field ({', '.join(sorted(fields))})")
    if numeric and fields.get(column) == "string":
        raise FieldProblem(loc, f"{column!r} is a string request field: shift, add and multiply take numbers")


def _check_example(
    values: Mapping[str, Any], fields: Mapping[str, str], not_inputs: set[str], loc: tuple[str | int, ...]
) -> None:
    for column, value in values.items():
        _check_column(column, fields, not_inputs, False, loc)
        dtype = fields.get(column)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        wrong_type = not isinstance(value, str) if dtype == "string" else not number
        if dtype is not None and wrong_type:
            raise FieldProblem((*loc, column), f"must be a {dtype} value (got {value!r})")
        if dtype == "int64" and not isinstance(value, int):
            raise FieldProblem((*loc, column), f"must be an integer (got {value!r})")
    missing = sorted(set(fields) - set(values))
    if missing:
        raise FieldProblem(loc, f"missing request fields {', '.join(missing)}")
