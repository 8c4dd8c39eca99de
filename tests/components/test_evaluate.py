"""Evaluate step: metrics against hand-computed values, slices, plots, the Evidently report, end to end.

The end-to-end tests evaluate small real models (scikit-learn logistic regressions behind the bundle's
Predictor protocol, tests/helpers/predictors.py) trained on the demo data from `conftest.py`, under the
fixture specs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, log_loss, roc_auc_score, roc_curve

from components.evaluate.plots import plot_confusion, plot_precision_recall, plot_reliability, plot_roc
from components.evaluate.report import cap_rows, write_report
from components.evaluate.step import evaluate, json_safe
from core.metrics import (
    classification_metrics,
    confusion,
    encode_labels,
    expected_calibration_error,
    roc_points,
    slice_metrics,
)
from tests.helpers.predictors import CONVERSION_INPUTS, TabularPredictor, TextPredictor, time_split
from tests.helpers.specs import fixture_spec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def conversion_split(conversion_training_set):
    return time_split(conversion_training_set)


@pytest.fixture(scope="module")
def intent_split(intent_training_set):
    return time_split(intent_training_set.tail(2400))


# ------------------------------------------------------------------------------------------ metrics
def test_binary_metrics_match_hand_computed_values():
    proba1 = np.array([0.1, 0.4, 0.35, 0.8])
    result = classification_metrics([0, 0, 1, 1], np.column_stack([1 - proba1, proba1]), ["0", "1"])
    assert result["roc_auc"] == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ranked right
    assert result["pr_auc"] == pytest.approx((1.0 + 2 / 3) / 2)  # precision at each positive's rank
    assert result["f1"] == pytest.approx(2 / 3)  # threshold 0.5: tp 1, fp 0, fn 1
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))
    assert result["brier_score"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    # Each row sits alone in its confidence bin: ECE = mean |correct - confidence|.
    assert result["expected_calibration_error"] == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)
    assert result["rows"] == 4 and result["positive_rate"] == 0.5
    assert result["class_counts"] == {"0": 2, "1": 2}


def test_label_values_name_classes_whatever_their_type():
    assert encode_labels([0, 1.0, True, "0", np.int64(1)], ["0", "1"]).tolist() == [0, 1, 1, 0, 1]
    assert encode_labels(["b", "a"], ["a", "b"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"label values \['maybe'\] are not among .*\['0', '1'\]"):
        encode_labels([0, "maybe"], ["0", "1"])


def test_ece_is_zero_when_calibrated_and_large_when_overconfident():
    y = np.array([1] * 8 + [0] * 2 + [0] * 7 + [1] * 3)  # 80% right at 0.8, 70% right at 0.7
    p1 = np.array([0.8] * 10 + [0.3] * 10)
    assert expected_calibration_error(y, np.column_stack([1 - p1, p1])) == pytest.approx(0.0, abs=1e-12)
    overconfident = np.array([0.99] * 10)  # 99% sure, 60% right
    y = np.array([1] * 6 + [0] * 4)
    proba = np.column_stack([1 - overconfident, overconfident])
    assert expected_calibration_error(y, proba) == pytest.approx(0.39)


def test_multiclass_metrics_are_macro_and_agree_with_sklearn():
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=90)
    y = np.array([rng.choice(3, p=p) for p in proba])
    classes = ["red", "green", "blue"]
    result = classification_metrics(np.array(classes)[y], proba, classes)
    assert result["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert result["f1"] == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    assert result["log_loss"] == pytest.approx(log_loss(y, proba))
    onehot = np.eye(3)[y]
    assert result["brier_score"] == pytest.approx(
        np.mean([np.mean((proba[:, k] - onehot[:, k]) ** 2) for k in range(3)])
    )
    assert sum(result["class_counts"].values()) == result["rows"] == 90
    assert list(result["class_counts"]) == classes and "positive_rate" not in result
    with pytest.raises(ValueError, match=r"shape \(rows, 3\)"):
        classification_metrics(y, proba[:, :2], classes)


def test_auc_is_nan_not_an_error_with_a_single_class():
    result = classification_metrics([1, 1, 1], np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]), ["0", "1"])
    assert math.isnan(result["roc_auc"]) and math.isnan(result["pr_auc"])
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_slices_skip_small_groups_and_flag_single_class_auc():
    rng = np.random.default_rng(0)
    groups = ["big"] * 40 + ["small"] * 5 + ["pure"] * 25 + [None] * 20
    y = np.concatenate(
        [rng.integers(0, 2, 40), rng.integers(0, 2, 5), np.ones(25, int), rng.integers(0, 2, 20)]
    )
    p1 = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, len(y)), 0.01, 0.99)
    frame = pd.DataFrame({"tier": groups})
    result = slice_metrics(frame, y, np.column_stack([1 - p1, p1]), ["0", "1"], ["tier"])["tier"]
    assert set(result) == {"big", "small", "pure", "<missing>"}
    assert result["small"] == {"rows": 5, "skipped": "5 rows < 20: too few for stable metrics"}
    assert result["big"]["rows"] == 40 and 0.5 < result["big"]["roc_auc"] <= 1.0
    assert math.isnan(result["pure"]["roc_auc"]) and "single class '1'" in result["pure"]["auc_skipped"]
    assert result["pure"]["accuracy"] > 0.5 and result["<missing>"]["rows"] == 20
    with pytest.raises(ValueError, match=r"slice columns \['region'\] are not in the evaluated rows"):
        slice_metrics(frame, y, np.column_stack([1 - p1, p1]), ["0", "1"], ["region"])


def test_confusion_rows_are_truth_columns_predictions():
    assert confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], ["0", "1"]) == {
        "categories": ["0", "1"],
        "matrix": [[1, 1], [1, 2]],
    }
    multi = confusion(["a", "c", "c"], ["c", "c", "b"], ["a", "b", "c"])
    assert multi["matrix"] == [[0, 0, 1], [0, 0, 0], [0, 1, 1]]


def test_roc_points_are_capped_finite_and_keep_the_ends():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    scores = np.clip(0.5 * y + rng.random(2000) * 0.8, 0, 1)
    points = roc_points(y, scores)
    assert 100 < len(points["fpr"]) <= 200 and len(points["tpr"]) == len(points["thresholds"])
    assert points["fpr"][0] == 0.0 and points["fpr"][-1] == 1.0 and points["tpr"][-1] == 1.0
    assert np.all(np.diff(points["fpr"]) >= 0) and max(points["thresholds"]) <= 1.0
    small_fpr, small_tpr, _ = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    small = roc_points([0, 0, 1, 1], np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]))
    assert small["fpr"] == small_fpr.tolist() and small["tpr"] == small_tpr.tolist()
    assert small["thresholds"][0] == 1.0  # scikit-learn's leading inf, made JSON-safe
    assert roc_points([1, 1], np.array([0.2, 0.9])) == {"fpr": [], "tpr": [], "thresholds": []}


# -------------------------------------------------------------------------------------------- plots
@pytest.mark.parametrize("n_classes", [2, 4])
def test_plots_are_written_as_png(tmp_path, n_classes):
    rng = np.random.default_rng(n_classes)
    proba = rng.dirichlet(np.ones(n_classes), size=120)
    y = np.array([rng.choice(n_classes, p=p) for p in proba])
    classes = [f"c{k}" for k in range(n_classes)]
    matrix = confusion(y, proba.argmax(1), list(map(str, range(n_classes))))["matrix"]
    paths = [
        plot_roc(y, proba, classes, tmp_path / "roc.png"),
        plot_precision_recall(y, proba, classes, tmp_path / "pr.png"),
        plot_reliability(y, proba, tmp_path / "nested" / "reliability.png"),
        plot_confusion(matrix, classes, tmp_path / "confusion.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5_000


# ------------------------------------------------------------------------------------------- report
def test_cap_rows_samples_without_replacement_in_order():
    frame = pd.DataFrame({"x": range(100)})
    capped = cap_rows(frame, 10)
    assert len(capped) == 10 and capped["x"].is_monotonic_increasing and capped["x"].is_unique
    assert cap_rows(frame, 100) is frame


def test_report_renames_an_input_that_clashes_with_a_class_column(tmp_path):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=60), "intent": rng.choice(["a", "b", "c"], 60)})
    proba = rng.dirichlet(np.ones(3), size=60)
    path = write_report(
        frame.iloc[30:],
        proba[30:],
        frame.iloc[:30],
        proba[:30],
        label="intent",
        classes=["a", "b", "c"],
        inputs=["a"],
        path=tmp_path / "r.html",
    )
    html = path.read_text()
    assert '"column_name": "input:a"' in html and "Data Drift" in html and "Accuracy" in html


# -------------------------------------------------------------------------------------- end to end
def test_evaluate_binary_model_writes_metrics_plots_and_report(conversion_split, tmp_path):
    train, test = conversion_split
    spec = fixture_spec("conversion-sklearn")
    predictor = TabularPredictor(spec, train, CONVERSION_INPUTS, shuffle_seed=None)
    result = evaluate(predictor, test, train, spec, tmp_path / "eval")

    expected = roc_auc_score(test["converted"], predictor.predict_proba(test)[:, 1])
    assert result.metrics["roc_auc"] == pytest.approx(expected) and expected > 0.6
    assert result.metrics["rows"] == len(test)
    assert sum(map(sum, result.confusion_matrix["matrix"])) == len(test)
    assert 0 < len(result.roc["fpr"]) <= 200
    tiers = result.slices["plan_tier"]
    assert sum(s["rows"] for s in tiers.values()) == len(test) and "enterprise" in tiers
    assert set(result.plots) == {"roc", "precision_recall", "reliability", "confusion_matrix"}
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in result.plots.values())

    saved = json.loads(result.metrics_path.read_text(), parse_constant=_reject_non_json)
    assert saved["metrics"]["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert saved["plots"]["roc"] == "plots/roc.png" and saved["report"] == "evidently_report.html"
    assert saved["primary_metric"] == "roc_auc" and saved["classes"] == ["0", "1"]
    assert result.scalar_metrics()["rows"] == len(test)

    html = result.report_path.read_text()
    assert '"column_name": "plan_tier"' in html and "Data Drift" in html and "RocAuc" in html


def test_evaluate_text_model_reports_text_length_and_multiclass(intent_split, tmp_path):
    train, test = intent_split
    spec = fixture_spec("intent-transformer")
    result = evaluate(TextPredictor(spec, train), test, train, spec, tmp_path)
    assert result.classes == list(spec.label.classes)
    assert len(result.confusion_matrix["matrix"]) == 6 and result.metrics["f1"] > 0.5
    assert result.slices == {} and result.metrics["rows"] == len(test)
    html = result.report_path.read_text()
    assert '"column_name": "text_length"' in html and "technical_support" in html


def test_evaluate_without_report_and_with_bad_input(conversion_split, tmp_path):
    train, test = conversion_split
    spec = fixture_spec("conversion-sklearn")
    predictor = TabularPredictor(spec, train, CONVERSION_INPUTS, shuffle_seed=None)
    result = evaluate(predictor, test, None, spec, tmp_path, with_report=False)
    assert result.report_path is None and json.loads(result.metrics_path.read_text())["report"] is None
    with pytest.raises(
        ValueError, match=r"conversion-sklearn: the test rows lack columns \['company_size'\]"
    ):
        evaluate(predictor, test.drop(columns="company_size"), None, spec, tmp_path, with_report=False)
    with pytest.raises(ValueError, match="the bundle predicts 'converted' but the spec's label is 'intent'"):
        evaluate(predictor, test, None, fixture_spec("intent-transformer"), tmp_path, with_report=False)


def test_json_safe_turns_nan_into_null():
    data = json_safe({"a": float("nan"), "b": [np.float32(0.5), np.int64(3)], 1: (float("inf"),)})
    assert json.dumps(data, allow_nan=False) == '{"a": null, "b": [0.5, 3], "1": [null]}'


def _reject_non_json(constant: str):
    raise AssertionError(f"metrics.json contains {constant}")
