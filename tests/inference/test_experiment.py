"""The canary's A/B test on a business outcome: the fixed horizon, the statistical promises it makes (shown
by seeded simulation), and how it enters the canary decision."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from core.errors import SpecError
from core.spec.release import Experiment
from inference.canary.analysis import CanaryEvidence, RoleEvidence, decide
from inference.canary.experiment import Arm, horizon, judge
from tests.helpers.specs import fixture_spec

REPETITIONS = 10_000  # 3 standard errors of a 5% rate: 0.65 points
SHARE = 0.2  # the fixture spec's traffic_percent


def design(**changes) -> Experiment:
    values = {"success_class": "1", "baseline_rate": 0.10, "minimum_detectable_effect": 0.02, "power": 0.95}
    return Experiment(**{**values, **changes})


def simulate(experiment: Experiment, true_effect: float, seed: int) -> dict[str, float]:
    """Share of each status over seeded repetitions of an experiment run to its horizon, outcomes drawn
    from the baseline rate (stable) and the baseline plus `true_effect` (canary)."""
    required, rng = horizon(experiment, SHARE), np.random.default_rng(seed)
    rates = {"stable": experiment.baseline_rate, "canary": experiment.baseline_rate + true_effect}
    draws = {role: rng.binomial(required[role], rates[role], REPETITIONS) for role in rates}
    statuses = [
        judge(experiment, SHARE, Arm(s, required["stable"]), Arm(c, required["canary"])).status
        for s, c in zip(draws["stable"], draws["canary"], strict=True)
    ]
    return {status: statuses.count(status) / REPETITIONS for status in set(statuses)}


def noise(rate: float) -> float:
    """Three standard errors of a share measured over REPETITIONS."""
    return 3 * math.sqrt(rate * (1 - rate) / REPETITIONS)


@pytest.mark.parametrize("alternative", ["larger", "two-sided"])
def test_a_true_effect_of_the_minimum_size_is_found_as_often_as_the_spec_promises(alternative) -> None:
    experiment = design(alternative=alternative)
    found = simulate(experiment, true_effect=0.02, seed=11).get("canary_better", 0.0)
    assert found >= experiment.power - noise(experiment.power)  # what the sample size was solved for
    # A larger true effect is found more often: at least the spec's power outright.
    assert simulate(experiment, true_effect=0.03, seed=12).get("canary_better", 0.0) >= experiment.power


@pytest.mark.parametrize("alternative", ["larger", "two-sided"])
def test_a_null_effect_is_declared_at_most_alpha_of_the_time(alternative) -> None:
    experiment = design(alternative=alternative)
    shares = simulate(experiment, true_effect=0.0, seed=13)
    false_positives = 1.0 - shares.get("no_difference", 0.0)  # any significant verdict is wrong here
    assert false_positives <= experiment.alpha + noise(experiment.alpha)
    assert "not_enough_traffic" not in shares  # every repetition reached the horizon


def test_a_harmful_canary_is_found_worse_by_the_two_sided_test() -> None:
    shares = simulate(design(alternative="two-sided"), true_effect=-0.03, seed=14)
    assert shares.get("canary_worse", 0.0) >= 0.95 and "canary_better" not in shares


def test_the_horizon_follows_the_design() -> None:
    base = horizon(design(), SHARE)
    assert base["stable"] == pytest.approx(4 * base["canary"], abs=4)  # 80 / 20 split
    assert horizon(design(minimum_detectable_effect=0.01), SHARE)["canary"] > 3 * base["canary"]
    assert horizon(design(power=0.8), SHARE)["canary"] < base["canary"]
    even = horizon(design(), 0.5)  # an even split needs more canary outcomes but fewer in all
    assert even["canary"] == even["stable"] and sum(even.values()) < sum(base.values())
    with pytest.raises(ValueError, match="share of traffic"):
        horizon(design(), 1.0)


def test_before_the_horizon_even_a_huge_effect_is_not_enough_traffic() -> None:
    experiment = design()
    required = horizon(experiment, SHARE)
    stable = Arm(0.10 * required["stable"], required["stable"])
    canary = Arm(required["canary"] - 1, required["canary"] - 1)  # every outcome a success, one short
    result = judge(experiment, SHARE, stable, canary)
    assert result.status == "not_enough_traffic" and not result.promote
    assert result.effect is None and result.p_value is None
    assert result.reason().startswith(f"experiment: not enough traffic yet: {required['canary'] - 1} of")


def test_at_the_horizon_the_result_records_effect_interval_and_p_value() -> None:
    experiment = design()
    required = horizon(experiment, SHARE)
    stable = Arm(round(0.10 * required["stable"]), required["stable"])
    canary = Arm(round(0.13 * required["canary"]), required["canary"])
    result = judge(experiment, SHARE, stable, canary)
    assert result.status == "canary_better" and result.promote
    assert result.effect == pytest.approx(canary.rate - stable.rate)
    low, high = result.confidence_interval
    assert 0 < low < result.effect < high and result.p_value < experiment.alpha
    assert json.loads(json.dumps(result.to_dict()))["p_value"] == pytest.approx(result.p_value)
    assert "canary better: effect +0.03" in result.reason()


def test_arms_must_count_sensibly() -> None:
    with pytest.raises(ValueError, match="successes <= trials"):
        Arm(5, 4)
    with pytest.raises(ValueError, match="successes <= trials"):
        Arm(-1, 4)


def experiment_spec(**changes):
    experiment = {"success_class": "1", "baseline_rate": 0.1, "minimum_detectable_effect": 0.02, **changes}
    return fixture_spec("conversion-xgboost", canary={"experiment": experiment})


def outcomes(canary_successes: float, canary_outcomes: float, requests: float = 300, errors: float = 0):
    required = horizon(experiment_spec().canary.experiment, SHARE)
    stable = RoleEvidence(1200, 0, 0.010, outcomes=required["stable"], successes=0.1 * required["stable"])
    canary = RoleEvidence(requests, errors, 0.010, outcomes=canary_outcomes, successes=canary_successes)
    return CanaryEvidence(stable, canary, "test")


def test_the_canary_decision_waits_for_the_experiment_and_follows_it() -> None:
    spec = experiment_spec()
    n = horizon(spec.canary.experiment, SHARE)["canary"]
    waiting = decide(spec, outcomes(0.2 * (n - 10), n - 10))
    assert waiting.verdict == "inconclusive" and waiting.reasons[0].startswith("experiment: not enough")
    better = decide(spec, outcomes(0.14 * n, n))
    assert better.verdict == "promote" and better.evidence["experiment"]["status"] == "canary_better"
    same = decide(spec, outcomes(0.1 * n, n))
    assert same.verdict == "rollback" and same.reasons[0].startswith("experiment: no difference")
    # A canary that fails its safety checks is rolled back at once, the experiment's state recorded.
    failing = decide(spec, outcomes(0.2 * (n - 10), n - 10, errors=30))
    assert failing.verdict == "rollback" and failing.reasons[0].startswith("canary error rate")
    assert failing.evidence["experiment"]["status"] == "not_enough_traffic"
    json.dumps(better.evidence)  # recorded as an MLflow artifact


def test_the_spec_names_a_class_of_the_label_and_an_effect_that_fits() -> None:
    assert experiment_spec().canary.experiment.alternative == "larger"
    with pytest.raises(SpecError, match=r"experiment\.success_class: 'yes' is not a class of the label"):
        experiment_spec(success_class="yes")
    with pytest.raises(SpecError, match=r"canary\.experiment\.minimum_detectable_effect: baseline_rate 0\.9"):
        experiment_spec(baseline_rate=0.9, minimum_detectable_effect=0.1)
    with pytest.raises(SpecError, match=r"canary\.experiment\.power"):
        experiment_spec(power=1.0)


def test_the_sample_size_the_docs_quote_is_the_one_computed() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text()
    quoted = re.search(r"10% -> 12% with power 0\.8 needs ([\d,]+) canary and ([\d,]+) stable outcomes", text)
    assert quoted, "docs/models.md no longer quotes the example's sample size"
    required = horizon(design(power=0.8), SHARE)
    assert [int(n.replace(",", "")) for n in quoted.groups()] == [required["canary"], required["stable"]]
