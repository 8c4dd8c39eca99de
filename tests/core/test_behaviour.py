"""Behavioural check math (core/behaviour.py) against tiny hand-made predictors whose behaviour is known
exactly: each kind has a check that must pass and one that must fail, and the violation share is exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.behaviour import run_checks
from core.bundle import BundleInfo
from core.errors import SpecError
from core.spec.model import ModelSpec, parse_spec
from tests.helpers.specs import fixture_spec_data

ROWS = 100


class Logistic:
    """P(1) = sigmoid(sum of weight * column + the colour's offset), on `x`, `y` and `colour`."""

    def __init__(self, weights: dict[str, float], colour: dict[str, float] | None = None, where=None):
        self.info = _info(["0", "1"], ["x", "y", "colour"])
        self.weights, self.colour, self.where = weights, colour or {}, where

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        logit = sum(w * frame[c].to_numpy(dtype=float) for c, w in self.weights.items())
        offset = frame["colour"].map(self.colour).fillna(0.0).to_numpy()
        if self.where is not None:  # the colour matters only on some rows
            offset = np.where(self.where(frame), offset, 0.0)
        p = 1.0 / (1.0 + np.exp(-(logit + offset)))
        return np.column_stack([1.0 - p, p])

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        raise NotImplementedError("never exported")


class Keywords:
    """Intent by keyword: 'cancel' -> cancellation, 'price' -> pricing, else general (P 0.8 / 0.1 / 0.1)."""

    CLASSES = ("pricing", "cancellation", "general")

    def __init__(self):
        self.info = _info(list(self.CLASSES), ["text"])

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.full((len(frame), 3), 0.1)
        for i, text in enumerate(frame["text"]):
            out[i, 1 if "cancel" in text else 0 if "price" in text else 2] = 0.8
        return out

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        raise NotImplementedError("never exported")


def _info(classes: list[str], inputs: list[str]) -> BundleInfo:
    return BundleInfo("toy", "sklearn", "binary", "converted", classes, inputs, [], [], [])


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "row": np.arange(ROWS),
            "x": rng.normal(size=ROWS),
            "y": rng.integers(0, 5, ROWS),
            "colour": rng.choice(["red", "green", "blue"], ROWS),
        }
    )


def _spec(*checks: dict[str, Any]) -> ModelSpec:
    data = fixture_spec_data("conversion-xgboost")
    data["evaluation"]["behaviour"] = list(checks)
    return parse_spec(data, source="toy.yaml")


def _text_spec(*checks: dict[str, Any]) -> ModelSpec:
    data = fixture_spec_data("intent-transformer")
    data["label"]["classes"] = list(Keywords.CLASSES)
    data["evaluation"]["behaviour"] = list(checks)
    return parse_spec(data, source="toy.yaml")


def _one(spec: ModelSpec, predictor, frame: pd.DataFrame):
    (result,) = run_checks(spec, predictor, frame)
    return result


COLOUR = {"kind": "invariance", "name": "colour_is_irrelevant", "feature": "colour", "replace": "seen"}
UP_X = {"kind": "direction", "name": "x_lifts", "features": ["x"], "add": 1.0, "expect": "non_decreasing"}


# ---------------------------------------------------------------------------------------- invariance
def test_invariance_passes_when_the_feature_is_ignored(rows):
    result = _one(_spec({**COLOUR, "max_change": 0.01}), Logistic({"x": 1.0}), rows)
    assert (result.passed, result.value, result.rows, result.kind) == (True, 0.0, ROWS, "invariance")
    assert result.reason.startswith("colour_is_irrelevant: colour -> each seen value changes a class P")


def test_invariance_fails_when_the_feature_moves_the_probability(rows):
    leaky = Logistic({"x": 1.0}, colour={"blue": 2.0})
    result = _one(_spec({**COLOUR, "max_change": 0.1}), leaky, rows)
    assert not result.passed and result.value > 0.2 and result.bound == 0.1
    assert f"on {ROWS}/{ROWS} rows (none allowed)" in result.reason  # every row has a blue variant


def test_invariance_with_listed_values_and_with_a_numeric_shift(rows):
    # Only the listed values are substituted: purple (never in the rows) matters only when listed.
    listed = {**COLOUR, "replace": ["red", "green", "blue"], "max_change": 0.01}
    assert _one(_spec(listed), Logistic({}, colour={"purple": 3.0}), rows).passed
    purple = _one(_spec({**listed, "replace": ["red", "purple"]}), Logistic({}, colour={"purple": 3.0}), rows)
    assert not purple.passed and "colour -> red, purple changes" in purple.reason
    shift = {"kind": "invariance", "name": "y_is_irrelevant", "feature": "y", "shift": 2, "max_change": 0.01}
    assert _one(_spec(shift), Logistic({"x": 1.0}), rows).passed
    failed = _one(_spec(shift), Logistic({"y": 0.5}), rows)
    assert not failed.passed and "y +2 changes a class P by more than 0.01" in failed.reason


@pytest.mark.parametrize(("share", "passed"), [(0.1, True), (0.09, False)])
def test_the_violation_share_is_exact(rows, share, passed):
    # The colour matters on exactly the first 10 rows: 10% of them may break the bound, not 9%.
    partly = Logistic({}, colour={"blue": 3.0}, where=lambda frame: frame["row"].to_numpy() < 10)
    result = _one(_spec({**COLOUR, "max_change": 0.05, "max_violation_share": share}), partly, rows)
    assert result.passed is passed
    # Passing: the 90 rows the colour does not touch; failing: the least moved of the 10 it does.
    assert result.value == (0.0 if passed else pytest.approx(1 / (1 + np.exp(-3.0)) - 0.5))
    allowed = 10 if passed else 9
    assert f"on 10/100 rows (at most {allowed} allowed)" in result.reason


def test_seen_values_need_two_of_them(rows):
    result = _one(_spec({**COLOUR, "max_change": 0.1}), Logistic({}), rows.assign(colour="red"))
    assert not result.passed and result.value is None and "the test rows hold one value" in result.reason


def test_rows_are_a_fixed_sample_of_at_most_max_rows(rows):
    spec = _spec({**COLOUR, "max_change": 0.5, "max_rows": 30})
    model = Logistic({"x": 1.0}, colour={"red": 1.0})
    first, second = (run_checks(spec, model, rows)[0] for _ in range(2))
    assert first.rows == 30 and first == second


# ----------------------------------------------------------------------------------------- direction
def test_direction_passes_for_a_rising_and_fails_for_a_falling_relation(rows):
    spec = _spec(UP_X)
    rising = _one(spec, Logistic({"x": 1.0}), rows)
    assert rising.passed and rising.value < 0 and rising.op == "<=" and rising.bound == 0.0
    falling = _one(spec, Logistic({"x": -1.0}), rows)
    assert not falling.passed and falling.value > 0.05
    assert falling.reason == "x_lifts: x +1 lowers P(1) by more than 0 on 100/100 rows (none allowed)"


def test_direction_non_increasing_multiply_and_a_named_class(rows):
    down = {
        "kind": "direction",
        "name": "y_lowers",
        "features": ["y"],
        "multiply": 2,
        "expect": "non_increasing",
    }
    assert _one(_spec(down), Logistic({"y": -0.5}), rows).passed
    assert not _one(_spec(down), Logistic({"y": 0.5}), rows).passed
    # P(0) falls as P(1) rises: watching class 0 with non_increasing passes for a rising P(1).
    assert _one(_spec({**UP_X, "target": "0", "expect": "non_increasing"}), Logistic({"x": 1.0}), rows).passed


def test_direction_tolerance_lets_small_moves_pass(rows):
    slight = Logistic({"x": -0.01})  # a step of 1 lowers P(1) by at most 0.0025
    assert not _one(_spec(UP_X), slight, rows).passed
    assert _one(_spec({**UP_X, "tolerance": 0.003}), slight, rows).passed


def test_direction_moves_several_columns_together(rows):
    both = {**UP_X, "features": ["x", "y"]}
    assert _one(_spec(both), Logistic({"x": 1.0, "y": 0.5}), rows).passed
    assert not _one(_spec(both), Logistic({"x": 1.0, "y": -2.0}), rows).passed


# ------------------------------------------------------------------------------------------- minimum
def _examples(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"input": {"text": text}, "expect": intent} for text, intent in pairs]


NO_ROWS = pd.DataFrame({"text": []})  # minimum checks predict their examples, not the test rows
OBVIOUS = _examples(
    ("what is the price?", "pricing"), ("please cancel us", "cancellation"), ("hi", "general")
)


def test_minimum_passes_when_every_example_gets_its_class():
    result = _one(
        _text_spec({"kind": "minimum", "name": "obvious", "examples": OBVIOUS}), Keywords(), NO_ROWS
    )
    assert (result.passed, result.value, result.bound, result.op, result.rows) == (True, 1.0, 1.0, ">=", 3)
    assert result.reason == "obvious: 3/3 examples predicted as the top class"


def test_minimum_fails_and_names_the_wrong_examples():
    wrong = OBVIOUS + _examples(("I want to stop my plan", "cancellation"))
    result = _one(_text_spec({"kind": "minimum", "name": "obvious", "examples": wrong}), Keywords(), NO_ROWS)
    assert not result.passed and result.value == pytest.approx(0.75)
    assert "3/4 examples" in result.reason
    assert "'I want to stop my plan' -> general (P(cancellation) 0.10)" in result.reason


def test_minimum_with_a_probability_bar():
    check = {"kind": "minimum", "name": "sure", "examples": OBVIOUS, "min_probability": 0.8}
    assert _one(_text_spec(check), Keywords(), NO_ROWS).passed
    result = _one(_text_spec({**check, "min_probability": 0.9}), Keywords(), NO_ROWS)
    assert not result.passed and result.value == 0.0 and "with P >= 0.9" in result.reason


# ------------------------------------------------------------------------- columns known only at run time
@pytest.mark.parametrize(
    ("check", "field", "fragment"),
    [
        (
            {**COLOUR, "feature": "region", "max_change": 0.1},
            "evaluation.behaviour.0.feature",
            "'region' is not",
        ),
        ({**UP_X, "features": ["colour"]}, "evaluation.behaviour.0.features", "'colour' is not numeric"),
        ({**COLOUR, "replace": [1, 2], "max_change": 0.1}, "evaluation.behaviour.0.replace", "holds strings"),
        ({**COLOUR, "feature": "x", "max_change": 0.1}, "evaluation.behaviour.0.replace", "holds 100 values"),
        (
            {"kind": "minimum", "name": "m", "examples": [{"input": {"x": 1.0}, "expect": "1"}]},
            "evaluation.behaviour.0.examples",
            "examples lack inputs ['y', 'colour']",
        ),
    ],
    ids=["not-an-input", "not-numeric", "replace-type", "too-many-seen-values", "example-columns"],
)
def test_a_column_the_model_lacks_is_a_located_spec_error(rows, check, field, fragment):
    with pytest.raises(SpecError) as info:
        run_checks(_spec(check), Logistic({"x": 1.0}), rows)
    message = str(info.value)
    assert (
        message.startswith(f"conversion-xgboost: {field}: ") and fragment in message and "\n" not in message
    )


def test_result_json_is_plain(rows):
    (result,) = run_checks(_spec(UP_X), Logistic({"x": 1.0}), rows)
    assert set(result.to_json()) == {"name", "kind", "passed", "value", "op", "bound", "rows", "reason"}
