"""Model-spec sections for releasing a model: the `evaluation` gate, `serving` on Triton and the `canary`."""

from __future__ import annotations

from typing import Annotated, Literal, Self, get_args

from pydantic import Field, model_validator

from core.spec.base import (
    UNIT_INTERVAL_METRICS,
    ColumnName,
    FieldProblem,
    FrozenDict,
    FrozenList,
    FrozenMap,
    MetricName,
    NonEmptyStr,
    PositiveInt,
    SpecModel,
    UniqueList,
    higher_is_better,
)
from core.spec.behaviour import BehaviourCheck, unique_check_names

TritonBackend = Literal["fil", "onnxruntime", "pytorch_libtorch", "python"]
TRITON_BACKENDS: tuple[TritonBackend, ...] = get_args(TritonBackend)
"""What each framework can export to is the framework plug-in's `BACKENDS` (core/frameworks/registry.py);
`python` runs any artifact the local Python backend knows (what local mode does for every model)."""


class Evaluation(SpecModel):
    """The promotion gate, applied to metrics on the held-out test split."""

    primary_metric: MetricName
    """The metric reported first and used to rank versions."""
    floors: FrozenDict[MetricName, float] = Field(default_factory=FrozenMap)
    """Absolute bars: a minimum for higher-is-better metrics, a maximum for lower-is-better ones."""
    champion_tolerance: FrozenDict[MetricName, Annotated[float, Field(ge=0)]] = Field(
        default_factory=FrozenMap
    )
    """The candidate may be worse than the current champion by at most this much, in the metric's own
    units (0.01 roc_auc = one AUC point). Metrics not listed are not compared; no champion = pass."""
    slices: UniqueList[ColumnName] = ()
    """Feature columns to report per-slice metrics for (reported, not gated)."""
    min_test_rows: PositiveInt = 100
    """Fewer test rows than this fails the gate: the metrics would be noise."""
    behaviour: FrozenList[BehaviourCheck] = ()
    """Behavioural model tests on the test rows (core/spec/behaviour.py); each failed one fails the gate."""
    baseline_margin: FrozenDict[MetricName, Annotated[float, Field(ge=0)]] = Field(default_factory=FrozenMap)
    """Ranking only: the candidate must beat the popularity baseline (items ranked by their click rate in
    the training split) by at least this much on each listed metric, on the same test queries."""

    @model_validator(mode="after")
    def _values_in_range(self) -> Self:
        for section in ("floors", "champion_tolerance", "baseline_margin"):
            for metric, value in getattr(self, section).items():
                if metric in UNIT_INTERVAL_METRICS and not 0.0 <= value <= 1.0:
                    raise FieldProblem((section, metric), f"{metric} lies in [0, 1]; got {value!r}")
                if value < 0:
                    raise FieldProblem((section, metric), f"must be >= 0 (got {value!r})")
        unique_check_names(self.behaviour)
        return self

    def meets_floor(self, metric: MetricName, value: float) -> bool:
        """Whether `value` clears the floor for `metric` (True when the metric has no floor)."""
        floor = self.floors.get(metric)
        if floor is None:
            return True
        return value >= floor if higher_is_better(metric) else value <= floor

    def within_tolerance(self, metric: MetricName, candidate: float, champion: float) -> bool:
        """Whether `candidate` is no worse than `champion` by more than the tolerance for `metric`."""
        tolerance = self.champion_tolerance.get(metric)
        if tolerance is None:
            return True
        if higher_is_better(metric):
            return candidate >= champion - tolerance
        return candidate <= champion + tolerance


class DynamicBatching(SpecModel):
    """Triton's dynamic batcher: groups single requests into batches server-side."""

    preferred_batch_sizes: UniqueList[PositiveInt] = ()
    max_queue_delay_us: int = Field(default=0, ge=0)
    """How long a request may wait for a batch to fill, in microseconds."""


class Serving(SpecModel):
    """How Triton serves the model (the InferenceService and config.pbtxt are rendered from this)."""

    triton_backend: TritonBackend
    max_batch_size: int = Field(ge=1, le=4096)
    instances: int = Field(default=1, ge=1, le=64)
    """Triton model instances (instance_group count) per server replica."""
    gpu: bool = False
    """Request a GPU and place instances on it (KIND_GPU); local mode always serves on CPU."""
    dynamic_batching: DynamicBatching | None = None

    @model_validator(mode="after")
    def _batches_fit(self) -> Self:
        if self.dynamic_batching is not None:
            too_big = [b for b in self.dynamic_batching.preferred_batch_sizes if b > self.max_batch_size]
            if too_big:
                raise FieldProblem(
                    ("dynamic_batching", "preferred_batch_sizes"),
                    f"must be <= max_batch_size {self.max_batch_size} (got {', '.join(map(str, too_big))})",
                )
        return self


class CanarySuccess(SpecModel):
    """What the canary must show over the analysis window to be promoted (otherwise it is rolled back)."""

    max_error_rate: float = Field(ge=0, le=1)
    """Share of canary requests that fail (HTTP 5xx or inference errors)."""
    max_p95_latency_ratio: float = Field(ge=1.0)
    """Canary p95 latency divided by the stable version's p95 latency."""
    min_p95_latency_increase_ms: float = Field(default=0.0, ge=0)
    """A ratio over the bound counts only when the canary's p95 is also at least this much higher: at
    millisecond latencies a little scheduling noise makes a large ratio (1.5 ms against 1 ms is 1.5x)."""
    max_prediction_shift: float | None = Field(default=None, ge=0, le=1)
    """Bound on the population stability index (PSI) between the canary's and the stable version's
    prediction-score distributions over the same window (0.1 = small shift, 0.25 = large). Required for a
    classifier; a ranker sets none: its raw scores have no common scale across versions (LambdaMART's
    loss is unchanged by adding a constant to every score of a query), so the PSI of two rankers' scores
    measures their offsets, not their behaviour. A ranker's two versions are compared on the same requests
    by the shadow's rank agreement (`canary.shadow`) and on the same test queries by the gate."""


class Experiment(SpecModel):
    """An A/B test of a business outcome between the canary and the stable version, at a fixed horizon.

    The outcome is the model's own label as the application reports it (`POST /outcomes` to the drift
    service, joined to the logged prediction): the share of predictions whose outcome is `success_class`.
    The horizon is the sample size per arm that gives `power` for an effect of `minimum_detectable_effect`
    at `alpha`, for the split `canary.traffic_percent`; the test runs once, when both arms have reached it,
    and until then the result is "not enough traffic yet" (never a promotion)."""

    success_class: NonEmptyStr
    """The outcome that counts as a success: "1" for a binary label, else one of `label.classes`."""
    baseline_rate: float = Field(gt=0, lt=1)
    """The stable version's expected success rate (from history): the sample size depends on it."""
    minimum_detectable_effect: float = Field(gt=0, lt=1)
    """The smallest change in the success rate worth detecting, in rate units (0.02 = two points)."""
    alpha: float = Field(default=0.05, gt=0, le=0.2)
    """False-positive rate: the chance of declaring a difference when there is none."""
    power: float = Field(default=0.8, ge=0.5, lt=1)
    """The chance of detecting a true effect of `minimum_detectable_effect`."""
    alternative: Literal["larger", "two-sided"] = "larger"
    """`larger`: the canary must raise the rate to be promoted (one-sided test). `two-sided`: the test
    also concludes that the canary lowers it; either way only a significant rise promotes."""

    @model_validator(mode="after")
    def _effect_fits(self) -> Self:
        if self.baseline_rate + self.minimum_detectable_effect >= 1:
            raise FieldProblem(
                "minimum_detectable_effect",
                f"baseline_rate {self.baseline_rate:g} + this {self.minimum_detectable_effect:g} must be < 1",
            )
        return self


class ShadowCriteria(SpecModel):
    """When a challenger that ran in shadow (a copy of live traffic, answers compared, never returned) is
    ready for its canary: read from the shadow comparator's metrics (inference/canary/shadow_verdict.py)."""

    min_compared: PositiveInt = 200
    """Requests compared before any verdict; fewer is "not enough traffic yet"."""
    min_agreement: float | None = Field(default=None, ge=0, le=1)
    """Share of rows whose top class agrees (a ranker's: rows at the same rank within their request)."""
    min_rank_correlation: float | None = Field(default=None, ge=-1, le=1)
    """Spearman's rank correlation of the scores, shadow vs live, over the comparator's window."""
    max_latency_ratio: float | None = Field(default=None, ge=1)
    """The shadow's mean Triton time over the live version's, on the same requests."""


class Canary(SpecModel):
    """Progressive rollout: KServe `canaryTrafficPercent` on the newest revision."""

    traffic_percent: int = Field(ge=1, le=99)
    analysis_window_s: PositiveInt
    """Seconds of live canary traffic the cluster analysis judges, counted from the canary being Ready."""
    ready_timeout_s: PositiveInt = 900
    """How long the canary revision may take to become Ready (image pull, model load) before it is rolled
    back without being judged."""
    min_requests: PositiveInt
    """Requests the canary must have served within the window before it can be promoted."""
    success: CanarySuccess
    shadow: ShadowCriteria | None = None
    """Criteria a shadow run of the challenger must meet before its canary starts (docs/serving.md)."""
    experiment: Experiment | None = None
    """An A/B test on a business outcome the canary must also pass (none: the canary is judged on errors,
    latency and prediction shift only)."""
