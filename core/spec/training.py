"""Model-spec sections for what a model learns from: `inputs` and `training` (`label` in label.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from core.spec.base import (
    ColumnName,
    FeatureServiceName,
    FieldProblem,
    FrozenDict,
    FrozenMap,
    MetricName,
    Number,
    ParamName,
    PositiveInt,
    Scalar,
    SpecModel,
    UniqueList,
    higher_is_better,
)

RequestDtype = Literal["string", "int64", "float64"]


class RequestField(SpecModel):
    """One field of the inference request (becomes a Triton input of the same name)."""

    name: ColumnName
    dtype: RequestDtype


class Inputs(SpecModel):
    """Where features come from: a Feast feature service, or the request itself (exactly one)."""

    feature_service: FeatureServiceName | None = None
    """Feast feature service (one per model and version), e.g. `conversion_xgboost_v1`."""
    request_fields: UniqueList[RequestField] | None = None
    """Raw request fields for models that compute their own features (e.g. text for a tokenizer)."""
    entity_keys: UniqueList[ColumnName] = ()
    """Join keys of the feature service's entities; only with `feature_service`."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Self:
        if self.feature_service is None and self.request_fields is None:
            raise ValueError("set exactly one of feature_service or request_fields (neither is set)")
        if self.feature_service is not None and self.request_fields is not None:
            raise ValueError("set exactly one of feature_service or request_fields (both are set)")
        if self.request_fields is not None:
            if not self.request_fields:
                raise FieldProblem("request_fields", "must list at least one field")
            names = [f.name for f in self.request_fields]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise FieldProblem("request_fields", f"duplicate field names: {', '.join(duplicates)}")
            if self.entity_keys:
                raise FieldProblem("entity_keys", "only models with a feature_service have entity keys")
        return self

    @property
    def declared_columns(self) -> tuple[str, ...]:
        """The input columns this spec names: request fields, or a feature-service model's entity keys."""
        if self.request_fields is not None:
            return tuple(f.name for f in self.request_fields)
        return self.entity_keys


def _to_utc(value: dt.datetime) -> dt.datetime:
    """Naive datetimes (and plain dates, read as midnight) are taken as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UtcDatetime = Annotated[dt.datetime, Field(strict=False), AfterValidator(_to_utc)]


class TrainingWindow(SpecModel):
    """Event-time range of the training data: fixed `{start, end}` or a rolling `{lookback_days}`."""

    start: UtcDatetime | None = None
    """Inclusive; a date means midnight UTC."""
    end: UtcDatetime | None = None
    """Exclusive; a date means midnight UTC."""
    lookback_days: PositiveInt | None = None
    """Rolling window of this many days (what scheduled and drift-triggered retrains use), ending at
    `anchor`."""
    anchor: Literal["run_time", "newest_row"] = "run_time"
    """Where a rolling window ends: when the pipeline runs, or at the newest row of the model's own label
    table (for data that stops before today, such as a fixed extract or the demo's generated period)."""

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        fixed = self.start is not None or self.end is not None
        if fixed and self.lookback_days is not None:
            raise ValueError("use either {start, end} or {lookback_days}, not both")
        if not fixed and self.lookback_days is None:
            raise ValueError("set either {start, end} or {lookback_days}")
        if fixed and self.anchor != "run_time":
            raise FieldProblem("anchor", "applies to a rolling {lookback_days} window only")
        if fixed:
            if self.start is None:
                raise FieldProblem("start", "required together with end")
            if self.end is None:
                raise FieldProblem("end", "required together with start")
            if self.end <= self.start:
                raise FieldProblem(
                    "end", f"must be after start ({self.end.isoformat()} <= {self.start.isoformat()})"
                )
        return self

    def resolve(self, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """The concrete `[start, end)` in UTC; a rolling window ends at `now` (default: the current time)."""
        if self.start is not None and self.end is not None:
            return self.start, self.end
        end = _to_utc(now) if now is not None else dt.datetime.now(dt.UTC)
        return end - dt.timedelta(days=self.lookback_days or 0), end


class Split(SpecModel):
    """Time-based split: rows are ordered by event time, never shuffled.

    The newest `test_fraction` of rows is the test set, the `validation_fraction` just before it the
    validation set (early stopping, search), and the oldest rest is the training set, so no model sees
    data from after the period it is evaluated on.
    """

    validation_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)

    @model_validator(mode="after")
    def _leave_enough_to_train(self) -> Self:
        held_out = self.validation_fraction + self.test_fraction
        if held_out >= 0.8:
            raise ValueError(
                f"validation_fraction + test_fraction must be < 0.8 so at least 20% is left to train on "
                f"(got {held_out:g})"
            )
        return self


class SearchParam(SpecModel):
    """One dimension of the search space (Optuna's suggest_int, suggest_float or suggest_categorical)."""

    type: Literal["int", "float", "categorical"]
    low: Number | None = None
    high: Number | None = None
    """Inclusive bounds for int and float."""
    log: bool = False
    """Sample on a log scale (needs low > 0)."""
    choices: UniqueList[Scalar] | None = None
    """Categorical only."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type == "categorical":
            for name in ("low", "high"):
                if getattr(self, name) is not None:
                    raise FieldProblem(name, "a categorical parameter takes choices, not low/high")
            if self.log:
                raise FieldProblem("log", "a categorical parameter cannot be sampled on a log scale")
            if not self.choices:
                raise FieldProblem("choices", "a categorical parameter needs a non-empty list of choices")
            return self
        if self.choices is not None:
            raise FieldProblem(
                "choices", f"only categorical parameters take choices ({self.type} uses low/high)"
            )
        if self.low is None or self.high is None:
            raise FieldProblem("low" if self.low is None else "high", f"required for a {self.type} parameter")
        if self.type == "int":
            for name in ("low", "high"):
                if not isinstance(getattr(self, name), int):
                    raise FieldProblem(
                        name, f"must be an integer for an int parameter (got {getattr(self, name)!r})"
                    )
        if self.low >= self.high:
            raise FieldProblem("high", f"must be greater than low ({self.high!r} <= {self.low!r})")
        if self.log and self.low <= 0:
            raise FieldProblem("low", f"must be > 0 for a log-scale parameter (got {self.low!r})")
        return self

    def contains(self, value: object) -> bool:
        """Whether `value` is a point of this dimension (used to check the baseline hyper-parameters)."""
        if self.type == "categorical":
            return value in (self.choices or ())
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        return self.low <= value <= self.high  # type: ignore[operator]


class Search(SpecModel):
    """Hyper-parameter search with Optuna; the best trial's parameters override `hyperparameters`."""

    n_trials: PositiveInt
    timeout_s: float = Field(gt=0)
    """Wall-clock budget of the whole search; it stops at whichever of n_trials/timeout_s comes first."""
    metric: MetricName
    """Optimised on the validation split; the direction follows the metric."""
    space: FrozenDict[ParamName, SearchParam]

    @model_validator(mode="after")
    def _non_empty(self) -> Self:
        if not self.space:
            raise FieldProblem("space", "must define at least one parameter")
        return self

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if higher_is_better(self.metric) else "minimize"


class Training(SpecModel):
    """How to fit the model."""

    window: TrainingWindow
    split: Split
    seed: int = Field(ge=0, lt=2**32)
    hyperparameters: FrozenDict[ParamName, Scalar] = Field(default_factory=FrozenMap)
    """Fixed values, and the baseline (first) trial for parameters that `search` also varies."""
    search: Search | None = None
    early_stopping_rounds: PositiveInt | None = None
    """Stop after this many boosting rounds (xgboost, sklearn) or epochs (pytorch, transformers)
    without improvement on the validation split."""
    max_epochs: PositiveInt | None = None
    """pytorch and transformers only."""

    @model_validator(mode="after")
    def _baseline_inside_space(self) -> Self:
        if self.search is None:
            return self
        for name, param in self.search.space.items():
            if name in self.hyperparameters and not param.contains(self.hyperparameters[name]):
                raise FieldProblem(
                    ("hyperparameters", name),
                    f"baseline value {self.hyperparameters[name]!r} lies outside search.space.{name}",
                )
        return self
