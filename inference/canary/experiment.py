"""The canary's A/B test on a business outcome (`canary.experiment` in the model spec), at a fixed horizon.

    stable, canary = Arm(successes=412, trials=3_400), Arm(successes=131, trials=850)
    result = judge(spec.canary.experiment, canary_share=0.2, stable=stable, canary=canary)
    result.status   # "not_enough_traffic" | "canary_better" | "canary_worse" | "no_difference"

An arm is what one version's joined outcomes show: how many of its predictions got an outcome (`trials`)
and how many of those were the spec's `success_class`. The horizon is the per-arm sample size that gives
the spec's power against its minimum detectable effect for the traffic split; before both arms reach it
the result is "not_enough_traffic" whatever the counts say, so looking early changes nothing (the
decision depends on the outcomes only once, at the horizon). The statistics are statsmodels': the
sample size of `samplesize_proportions_2indep_onetail` (pooled variance under the null, unpooled under the
alternative); the Agresti-Caffo test and interval for the difference of two independent proportions, one
method for both so the p-value and the interval agree (statsmodels' score interval is not consistent with
its score test, PR #6675, and its root-finding fails on ~2% of counts near the horizon: brentq "f(a) and
f(b) must have different signs", statsmodels 0.15.0). That the decision keeps the spec's promises (power
at the minimum effect, false positives at most alpha) is shown by simulation in
tests/inference/test_experiment.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from core.spec.release import Experiment

Status = Literal["not_enough_traffic", "canary_better", "canary_worse", "no_difference"]


@dataclass(frozen=True)
class Arm:
    """One version's joined outcomes over the analysis window."""

    successes: float
    trials: float

    def __post_init__(self) -> None:
        if not (0 <= self.successes <= self.trials) or math.isnan(self.trials):
            raise ValueError(f"an arm needs 0 <= successes <= trials, got {self.successes} of {self.trials}")

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {"successes": self.successes, "trials": self.trials, "rate": self.rate}


@dataclass(frozen=True)
class ExperimentResult:
    status: Status
    stable: Arm
    canary: Arm
    required: dict[str, int]
    """Trials each arm needs before the test runs (`stable`, `canary`)."""
    alpha: float
    alternative: str
    effect: float | None = None
    """The canary's success rate minus the stable one's (None before the horizon)."""
    confidence_interval: tuple[float, float] | None = None
    """For the effect: two-sided at 1 - alpha, or for `larger` the 1 - 2 alpha interval whose lower end is
    the one-sided test's bound (upper end kept finite for reading)."""
    p_value: float | None = None

    @property
    def promote(self) -> bool:
        return self.status == "canary_better"

    def reason(self) -> str:
        """One line for the canary decision."""
        if self.status == "not_enough_traffic":
            return (
                f"experiment: not enough traffic yet: {self.canary.trials:.0f} of {self.required['canary']} "
                f"canary and {self.stable.trials:.0f} of {self.required['stable']} stable outcomes"
            )
        low, high = self.confidence_interval or (math.nan, math.nan)
        return (
            f"experiment: {self.status.replace('_', ' ')}: effect {self.effect:+.4f} "
            f"(interval {low:+.4f} to {high:+.4f}), p = {self.p_value:.3g} at alpha {self.alpha:g}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "stable": self.stable.to_dict(),
            "canary": self.canary.to_dict(),
            "required": dict(self.required),
            "alpha": self.alpha,
            "alternative": self.alternative,
            "effect": self.effect,
            "confidence_interval": list(self.confidence_interval) if self.confidence_interval else None,
            "p_value": self.p_value,
        }


def horizon(experiment: Experiment, canary_share: float) -> dict[str, int]:
    """Trials per arm (`stable`, `canary`) for the spec's power at its minimum detectable effect, when
    the canary receives `canary_share` of the traffic (and so of the outcomes)."""
    from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

    if not 0 < canary_share < 1:
        raise ValueError(f"the canary's share of traffic must lie between 0 and 1, got {canary_share}")
    ratio = (1 - canary_share) / canary_share  # stable trials per canary trial
    canary_n = samplesize_proportions_2indep_onetail(
        diff=experiment.minimum_detectable_effect,
        prop2=experiment.baseline_rate,
        power=experiment.power,
        ratio=ratio,
        alpha=experiment.alpha,
        alternative=experiment.alternative,
    )
    return {"stable": math.ceil(canary_n * ratio), "canary": math.ceil(canary_n)}


def judge(experiment: Experiment, canary_share: float, stable: Arm, canary: Arm) -> ExperimentResult:
    """The test's result on the arms' counts (see the module docstring)."""
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    required = horizon(experiment, canary_share)
    arms = {"stable": stable, "canary": canary, "required": required}
    design = {"alpha": experiment.alpha, "alternative": experiment.alternative}
    if stable.trials < required["stable"] or canary.trials < required["canary"]:
        return ExperimentResult("not_enough_traffic", **arms, **design)
    counts = (canary.successes, canary.trials, stable.successes, stable.trials)
    method = {"method": "agresti-caffo", "compare": "diff"}
    test = test_proportions_2indep(*counts, **method, alternative=experiment.alternative)
    interval_alpha = experiment.alpha * (2 if experiment.alternative == "larger" else 1)
    low, high = confint_proportions_2indep(*counts, **method, alpha=interval_alpha)
    effect = canary.rate - stable.rate
    p_value = float(test.pvalue)
    if p_value < experiment.alpha:
        status: Status = "canary_better" if effect > 0 else "canary_worse"
    else:
        status = "no_difference"
    interval = (float(low), float(high))
    return ExperimentResult(
        status, **arms, **design, effect=effect, confidence_interval=interval, p_value=p_value
    )
