"""Building blocks of the model spec: the strict, frozen base model, immutable collections, name rules
and the metric vocabulary (with each metric's direction).

Import the public names from `core.spec.model`; this module is split out only to keep
files short.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WrapSerializer

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class SpecModel(BaseModel):
    """Base of every spec section: immutable, unknown keys rejected, no silent type coercion.

    `strict=True` means `gpu: "yes"` or `max_depth: "6"` is an error rather than a guess; integers are
    still accepted where a float is expected.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True)


class FieldProblem(ValueError):
    """Raised inside validators to blame a sub-field (`loc` is relative to the model being validated).

    It never escapes loading: the loader turns it into a `SpecError` with the full dotted path.
    """

    def __init__(self, loc: tuple[str | int, ...] | str, message: str) -> None:
        super().__init__(message)
        self.loc = (loc,) if isinstance(loc, str) else tuple(loc)


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping (spec dictionaries must not change after loading)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: set[Any] = set()
    duplicates = []
    for value in values:
        if value in seen:
            duplicates.append(value)
        seen.add(value)
    if duplicates:
        raise ValueError(f"duplicate entries: {', '.join(map(repr, dict.fromkeys(duplicates)))}")
    return values


def _as_frozen_map(value: Mapping[Any, Any]) -> FrozenMap[Any, Any]:
    return FrozenMap(value)


# A YAML list, stored as a tuple.
FrozenList = Annotated[tuple[T, ...], BeforeValidator(_list_to_tuple)]
# A YAML list whose entries must be distinct.
UniqueList = Annotated[tuple[T, ...], BeforeValidator(_list_to_tuple), AfterValidator(_unique)]
# A YAML mapping, stored read-only; dumps as a plain dict.
FrozenDict = Annotated[
    Mapping[K, V],
    AfterValidator(_as_frozen_map),
    WrapSerializer(lambda value, handler: handler(dict(value))),
]


def _pattern(regex: str, rule: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{rule} (got {value!r})")
        return value

    return AfterValidator(check)


ModelName = Annotated[
    str,
    _pattern(
        r"[a-z]([a-z0-9-]{0,40}[a-z0-9])?",
        "must be a DNS-1035 label of at most 42 characters: lowercase letters, digits and '-', "
        "starting with a letter and ending with a letter or digit",
    ),
]
"""A model's name: also its InferenceService name, Triton model folder and MLflow registered model."""

ColumnName = Annotated[
    str,
    _pattern(
        r"[A-Za-z_][A-Za-z0-9_]*", "must be an identifier: letters, digits and '_', not starting with a digit"
    ),
]
ParamName = ColumnName
FeatureServiceName = Annotated[
    str,
    _pattern(
        r"[a-z][a-z0-9_]*_v[0-9]+",
        "must be a versioned Feast feature service name such as 'conversion_xgboost_v1' "
        "(lowercase, '_' separated, ending in _v<N>)",
    ),
]
NonEmptyStr = Annotated[str, Field(min_length=1)]
PositiveInt = Annotated[int, Field(gt=0)]


def _require_scalar(value: Any) -> Any:
    if not isinstance(value, bool | int | float | str):
        raise ValueError(f"must be a single bool, number or string (got {type(value).__name__})")
    return value


def _require_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number (got {value!r})")
    return value


# Hyper-parameter values and categorical choices: one YAML scalar, type kept as written.
Scalar = Annotated[bool | int | float | str, BeforeValidator(_require_scalar)]
# An int or a float, type kept as written (search-space bounds).
Number = Annotated[int | float, BeforeValidator(_require_number)]


# ----------------------------------------------------------------------------------------------- metrics
ClassificationMetricName = Literal[
    "roc_auc",
    "pr_auc",
    "f1",
    "accuracy",
    "log_loss",
    "brier_score",
    "expected_calibration_error",
]
"""Evaluation metrics of a classifier on the held-out test split.

For multiclass tasks `roc_auc` and `pr_auc` are one-vs-rest macro averages, `f1` is macro F1, and
`expected_calibration_error` uses the top-label confidence; for binary tasks `f1` is the positive
class's F1 at threshold 0.5.
"""
CLASSIFICATION_METRICS: tuple[str, ...] = get_args(ClassificationMetricName)

RANKING_CUTOFFS = (1, 3, 5, 10, 20)
"""The cut-offs a ranking metric may name (`ndcg_at_10`); a spec computes those its `label.k` lists."""
RankingMetricName = Literal[
    "ndcg_at_1", "map_at_1", "recall_at_1",
    "ndcg_at_3", "map_at_3", "recall_at_3",
    "ndcg_at_5", "map_at_5", "recall_at_5",
    "ndcg_at_10", "map_at_10", "recall_at_10",
    "ndcg_at_20", "map_at_20", "recall_at_20",
    "mrr",
]  # fmt: skip
"""Evaluation metrics of a ranker, per query (the label's group), averaged over the queries that hold a
relevant row (core/ranking_metrics.py): NDCG@k with the graded relevance as gain, MAP@k, recall@k, MRR."""
RANKING_METRICS: tuple[str, ...] = get_args(RankingMetricName)

MetricName = Literal[ClassificationMetricName, RankingMetricName]  # one flat Literal: one clear error
"""What the gate, the search and the primary metric may name; the label's task says which family."""
METRIC_NAMES: tuple[str, ...] = CLASSIFICATION_METRICS + RANKING_METRICS

METRIC_DIRECTION: Mapping[str, Literal["higher", "lower"]] = MappingProxyType(
    {
        "roc_auc": "higher",
        "pr_auc": "higher",
        "f1": "higher",
        "accuracy": "higher",
        "log_loss": "lower",
        "brier_score": "lower",
        "expected_calibration_error": "lower",
        **dict.fromkeys(RANKING_METRICS, "higher"),
    }
)
# Metrics whose values lie in [0, 1]; only log_loss is unbounded above.
UNIT_INTERVAL_METRICS: frozenset[str] = frozenset(METRIC_NAMES) - {"log_loss"}


def ranking_cutoff(metric: str) -> int | None:
    """The k of `ndcg_at_k`-style names, None for MRR and classification metrics."""
    head, _, k = metric.rpartition("_at_")
    return int(k) if head and metric in RANKING_METRICS else None


def higher_is_better(metric: str) -> bool:
    """True when larger values of `metric` are better (AUCs, F1, accuracy), False for losses/errors."""
    try:
        return METRIC_DIRECTION[metric] == "higher"
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRIC_NAMES)}") from None
