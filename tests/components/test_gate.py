"""Gate step: every kind of check (metrics and behavioural) passes and fails with the reason a person
would read, and the champion is measured on the candidate's own test rows."""

from __future__ import annotations

import json

import pytest

from components.gate.step import NO_CHAMPION, GateDecision, compare_with_champion, decide, to_markdown
from core.behaviour import CheckResult
from core.metrics import classification_metrics
from core.spec.model import ModelSpec
from tests.helpers.predictors import CONVERSION_INPUTS, TabularPredictor, time_split
from tests.helpers.specs import fixture_spec

# The fixture conversion-mlp gates on: min_test_rows 200; floors roc_auc >= 0.70 and log_loss <= 0.60;
# champion tolerance roc_auc 0.01 and log_loss 0.02.
SPEC = "conversion-mlp"
GOOD = {"roc_auc": 0.812, "log_loss": 0.45, "rows": 500}


def _metrics_only(name: str) -> ModelSpec:
    """The fixture spec without its behavioural checks: these cases exercise the metric checks alone."""
    spec = fixture_spec(name)
    return spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"behaviour": ()})})


def _failed(decision: GateDecision) -> set[tuple[str, str]]:
    return {(c["kind"], c["metric"]) for c in decision.checks if not c["passed"]}


# (case, candidate, champion, passed, failed checks, a reason that must be there)
CASES = [
    ("floor pass", GOOD, None, True, set(), "roc_auc 0.812 >= floor 0.70"),
    (
        "floor fail",
        {**GOOD, "roc_auc": 0.65},
        None,
        False,
        {("floor", "roc_auc")},
        "roc_auc 0.650 < floor 0.70",
    ),
    ("lower-is-better floor pass", GOOD, None, True, set(), "log_loss 0.450 <= ceiling 0.60"),
    (
        "lower-is-better floor fail",
        {**GOOD, "log_loss": 0.7},
        None,
        False,
        {("floor", "log_loss")},
        "log_loss 0.700 > ceiling 0.60",
    ),
    (
        "champion within tolerance",
        {**GOOD, "roc_auc": 0.805},
        GOOD,
        True,
        set(),
        "roc_auc 0.805 trails champion 0.812 by 0.007 <= tolerance 0.01",
    ),
    (
        "champion beyond tolerance",
        {**GOOD, "roc_auc": 0.79},
        GOOD,
        False,
        {("champion", "roc_auc")},
        "roc_auc 0.790 trails champion 0.812 by 0.022 > tolerance 0.01",
    ),
    (
        "lower-is-better champion beyond tolerance",
        {**GOOD, "log_loss": 0.5},
        GOOD,
        False,
        {("champion", "log_loss")},
        "log_loss 0.500 trails champion 0.450 by 0.050 > tolerance 0.02",
    ),
    ("better than champion", {**GOOD, "roc_auc": 0.83}, GOOD, True, set(), "roc_auc 0.830 >= champion 0.812"),
    ("no champion", GOOD, None, True, set(), f"roc_auc: {NO_CHAMPION}"),
    (
        "min rows fail",
        {**GOOD, "rows": 150},
        None,
        False,
        {("min_rows", "rows")},
        "test rows 150 < min 200 (the spec's evaluation.min_test_rows): too few for reliable metrics",
    ),
    ("min rows pass", GOOD, None, True, set(), "test rows 500 >= min 200"),
    (
        "NaN metric",
        {**GOOD, "roc_auc": float("nan")},
        GOOD,
        False,
        {("floor", "roc_auc"), ("champion", "roc_auc")},
        "roc_auc is nan (not computable on the test rows): cannot check floor 0.70",
    ),
    (
        "missing metric",
        {"roc_auc": 0.812, "rows": 500},
        None,
        False,
        {("floor", "log_loss")},
        "log_loss missing from the metrics: cannot check ceiling 0.60",
    ),
    (
        "champion metric NaN is skipped",
        GOOD,
        {**GOOD, "log_loss": None},
        True,
        set(),
        "log_loss: champion's log_loss missing from the metrics: comparison skipped",
    ),
]


@pytest.mark.parametrize(
    ("candidate", "champion", "passed", "failed", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_gate_cases(candidate, champion, passed, failed, reason):
    decision = decide(_metrics_only(SPEC), candidate, champion)
    assert decision.passed is passed
    assert _failed(decision) == failed
    assert reason in decision.reasons


def test_every_check_is_recorded_with_its_bound():
    decision = decide(_metrics_only(SPEC), {**GOOD, "roc_auc": 0.79}, GOOD)
    kinds = [(c["kind"], c["metric"]) for c in decision.checks]
    assert kinds == [
        ("min_rows", "rows"),
        ("floor", "roc_auc"),
        ("floor", "log_loss"),
        ("champion", "roc_auc"),
        ("champion", "log_loss"),
    ]
    champion_auc = decision.checks[3]
    assert champion_auc["value"] == 0.79 and champion_auc["bound"] == pytest.approx(0.802)
    assert (
        decision.checks[2]["op"] == "<="
        and decision.checks[2]["bound"] == 0.6
        and decision.failures == [champion_auc["reason"]]
    )
    assert len(decision.reasons) == 5
    json.dumps(decision.to_json(), allow_nan=False)  # goes to the decision JSON as is


def test_no_champion_records_skipped_checks():
    decision = decide(_metrics_only(SPEC), GOOD, None)
    skipped = [c for c in decision.checks if c["skipped"]]
    assert [c["metric"] for c in skipped] == ["roc_auc", "log_loss"]
    assert all(c["passed"] and c["reason"].endswith(NO_CHAMPION) for c in skipped)


def test_accepts_a_whole_metrics_json():
    saved = {"model": SPEC, "metrics": {**GOOD, "roc_auc": 0.6}}
    assert decide(_metrics_only(SPEC), saved, None).reasons[1] == "roc_auc 0.600 < floor 0.70"


def test_markdown_is_a_table_of_every_check():
    decision = decide(_metrics_only(SPEC), {**GOOD, "roc_auc": 0.79}, GOOD)
    text = to_markdown(decision)
    lines = text.splitlines()
    assert lines[0] == "**Gate FAILED**: 5 checks, 1 failed"
    assert lines[2] == "| result | check | metric | value | bound | detail |"
    assert len([line for line in lines if line.startswith("| ")]) == 2 + 5  # header, rule, checks
    assert "| **FAIL** | champion | roc_auc | 0.790 | >= 0.802 |" in text
    assert "| skipped | champion |" in to_markdown(decide(_metrics_only(SPEC), GOOD, None))


@pytest.fixture(scope="module")
def models(conversion_training_set):
    train, test = time_split(conversion_training_set)
    spec = fixture_spec("conversion-sklearn")
    champion = TabularPredictor(spec, train, CONVERSION_INPUTS, shuffle_seed=None)
    untrained = TabularPredictor(spec, train, CONVERSION_INPUTS, shuffle_seed=0)
    return spec, test, champion, untrained


def test_champion_is_measured_on_the_candidates_test_rows(models):
    spec, test, champion, untrained = models
    measured = compare_with_champion(spec, champion, test)
    direct = classification_metrics(test["converted"], champion.predict_proba(test), ["0", "1"])
    assert measured == direct and measured["rows"] == len(test)
    # A model that learned nothing loses to the champion by more than the tolerance; an equal one passes.
    worse = classification_metrics(test["converted"], untrained.predict_proba(test), ["0", "1"])
    assert ("champion", "roc_auc") in _failed(decide(spec, worse, measured))
    assert ("champion", "roc_auc") not in _failed(decide(spec, direct, measured))


def test_champion_that_needs_other_columns_is_a_clear_error(models):
    spec, test, champion, _ = models
    with pytest.raises(ValueError, match=r"champion needs columns \['plan_tier'\] that the test rows lack"):
        compare_with_champion(spec, champion, test.drop(columns="plan_tier"))


# ------------------------------------------------------------------------------------------- behaviour
def _evaluated(spec: ModelSpec, failing: str | None = None) -> dict:
    """A metrics.json as evaluate writes it: GOOD metrics and a result per declared behavioural check,
    all passing except the one named `failing`."""
    results = []
    for check in spec.evaluation.behaviour:
        passed = check.name != failing
        value = 0.02 if passed else 0.4
        reason = f"{check.name}: measured {value} ({'pass' if passed else 'FAIL'})"
        results.append(CheckResult(check.name, check.kind, passed, value, "<=", 0.15, 300, reason).to_json())
    return {"model": SPEC, "metrics": GOOD, "behaviour": results}


def test_a_failed_behavioural_check_fails_the_gate_with_its_reason():
    spec = fixture_spec(SPEC)
    assert _failed(decide(spec, _evaluated(spec), None)) == set()
    decision = decide(spec, _evaluated(spec, failing="region_does_not_matter"), None)
    assert decision.passed is False
    assert decision.failures == ["region_does_not_matter: measured 0.4 (FAIL)"]
    assert _failed(decision) == {("behaviour", "region_does_not_matter")}
    behaviour = [c for c in decision.checks if c["kind"] == "behaviour"]
    assert [c["metric"] for c in behaviour] == [c.name for c in spec.evaluation.behaviour]
    assert decision.checks[-len(behaviour) :] == behaviour  # after the metric checks
    failed = behaviour[0]
    assert (failed["value"], failed["op"], failed["bound"], failed["skipped"]) == (0.4, "<=", 0.15, False)
    assert "| **FAIL** | behaviour | region_does_not_matter | 0.400 | <= 0.150 |" in to_markdown(decision)
    json.dumps(decision.to_json(), allow_nan=False)


def test_a_declared_check_the_evaluation_did_not_run_fails_the_gate():
    spec = fixture_spec(SPEC)
    evaluated = _evaluated(spec)
    evaluated["behaviour"] = evaluated["behaviour"][1:]  # e.g. evaluated before the check was declared
    decision = decide(spec, evaluated, None)
    assert decision.failures == [
        "region_does_not_matter: invariance check declared in the spec but not run by evaluate"
    ]
    assert not decide(spec, GOOD, None).passed  # bare metrics carry no behavioural results at all
