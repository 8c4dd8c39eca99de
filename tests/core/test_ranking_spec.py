"""The model spec's ranking task: what a ranker declares, and one-line errors for what does not fit."""

from __future__ import annotations

import pytest

from core.errors import SpecError
from core.ranking_metrics import metric_names
from core.spec.base import RANKING_CUTOFFS, RANKING_METRICS, higher_is_better, ranking_cutoff
from core.spec.model import parse_spec
from tests.helpers.ranking import RANKER_SPEC_PATH, ranker_spec, ranker_spec_data
from tests.helpers.specs import fixture_spec_data


def test_the_fixture_ranker_loads_with_its_query_item_position_and_cutoffs() -> None:
    spec = ranker_spec()
    label = spec.label
    assert (label.task, label.group_column, label.item_column, label.position_column) == (
        "ranking",
        "session_id",
        "offer_id",
        "position",
    )
    assert label.k == (5, 10) and label.class_names == ("score",)
    assert label.passenger_columns == ("session_id", "position")
    assert spec.evaluation.baseline_margin == {"ndcg_at_10": 0.03}


def test_the_ranking_metric_names_are_what_the_metrics_module_computes() -> None:
    # One vocabulary: the spec may name exactly the metrics core/ranking_metrics.py returns.
    assert sorted(RANKING_METRICS) == sorted(metric_names(RANKING_CUTOFFS))
    assert all(higher_is_better(m) for m in RANKING_METRICS)
    assert ranking_cutoff("ndcg_at_10") == 10 and ranking_cutoff("mrr") is None
    assert ranking_cutoff("roc_auc") is None


def _error(data: dict) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source=RANKER_SPEC_PATH)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("label", "group_column", None, "label.group_column: required for a ranking task"),
        ("label", "k", [5, 7], "label.k: cut-offs [7] not supported"),
        ("label", "classes", ["a", "b"], "label.classes: a ranking label is a graded relevance"),
        ("label", "item_column", "position", "column, group, item and position must differ"),
        (
            "label",
            "item_column",
            "campaign_id",
            "label.item_column: 'campaign_id' must be one of inputs.entity_keys",
        ),
        (
            "evaluation",
            "primary_metric",
            "roc_auc",
            "evaluation.primary_metric: roc_auc is not a ranking metric",
        ),
        ("evaluation", "floors", {"ndcg_at_20": 0.5}, "ndcg_at_20: cut-off 20 is not among label.k [5, 10]"),
        ("evaluation", "baseline_margin", {"mrr": 1.5}, "evaluation.baseline_margin.mrr: mrr lies in [0, 1]"),
    ],
)
def test_what_does_not_fit_a_ranker_is_a_one_line_error(section, key, value, expected) -> None:
    data = ranker_spec_data()
    if value is None:
        data[section].pop(key)
    else:
        data[section][key] = value
    assert expected in _error(data)


def test_a_ranker_cannot_declare_behaviour_checks_or_an_outcome_experiment_yet() -> None:
    data = ranker_spec_data()
    data["canary"]["experiment"] = {
        "success_class": "1",
        "baseline_rate": 0.1,
        "minimum_detectable_effect": 0.02,
    }
    assert "canary.experiment: not supported for a ranking model yet" in _error(data)


def test_only_a_classifier_bounds_the_canarys_score_shift() -> None:
    data = ranker_spec_data()
    data["canary"]["success"]["max_prediction_shift"] = 0.2
    message = _error(data)
    assert "canary.success.max_prediction_shift: leave it out for a ranking model" in message
    data = fixture_spec_data("conversion-xgboost")
    data["canary"]["success"].pop("max_prediction_shift")
    message = _error(data)
    assert "canary.success.max_prediction_shift: required for a classification model" in message


def test_only_xgboost_ranks() -> None:
    data = ranker_spec_data()
    data["framework"] = "sklearn"
    data["serving"]["triton_backend"] = "python"
    data["training"].pop("early_stopping_rounds")
    data["training"]["hyperparameters"] = {}
    data["training"].pop("search")
    assert "label.task: sklearn models cannot rank yet; use xgboost or pytorch" in _error(data)


def test_a_classifier_names_no_ranking_metric_no_baseline_and_no_ranking_fields() -> None:
    data = fixture_spec_data("conversion-xgboost")
    data["evaluation"]["floors"] = {"ndcg_at_10": 0.5}
    assert "evaluation.floors.ndcg_at_10: ndcg_at_10 is not a binary metric" in _error(data)
    data = fixture_spec_data("conversion-xgboost")
    data["evaluation"]["baseline_margin"] = {"roc_auc": 0.01}
    assert "evaluation.baseline_margin: only a ranking model has a popularity baseline" in _error(data)
    data = fixture_spec_data("conversion-xgboost")
    data["label"]["group_column"] = "session_id"
    assert "label.group_column: only a ranking task has a group_column" in _error(data)
