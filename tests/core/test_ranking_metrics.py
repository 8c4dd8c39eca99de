"""Ranking metrics per query (core/ranking_metrics.py): against scikit-learn's NDCG and hand-worked lists."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from core.ranking_metrics import metric_names, position_propensities, ranking_metrics

# Two queries: q1 ranks (by score) its items with relevance 0, 2, 1; q2 ranks relevance 1, 0, 0, 1.
GROUPS = ["q1", "q1", "q1", "q2", "q2", "q2", "q2"]
SCORES = [0.9, 0.8, 0.1, 0.7, 0.3, 0.2, 0.1]
RELEVANCE = [0, 2, 1, 1, 0, 0, 1]


def test_hand_worked_lists() -> None:
    found = ranking_metrics(GROUPS, RELEVANCE, SCORES, ks=(2,))
    assert found["queries"] == 2
    assert found["mrr"] == pytest.approx((1 / 2 + 1 / 1) / 2)  # first relevant at rank 2, then rank 1
    # Recall@2: q1 finds 1 of its 2 relevant items in the top 2, q2 1 of 2.
    assert found["recall_at_2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    # MAP@2 (torchmetrics): precision at each relevant rank within the top 2, over the relevant found there.
    assert found["map_at_2"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert list(found) == ["queries", *metric_names((2,))]


def test_ndcg_is_scikit_learns_on_random_queries() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 12, 40)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    relevance = rng.integers(0, 3, len(groups)).astype(float)
    scores = rng.random(len(groups))
    for k in (1, 5, 10):
        expected = np.mean(
            [
                ndcg_score([relevance[groups == g]], [scores[groups == g]], k=k)
                for g in np.unique(groups)
                if relevance[groups == g].sum() > 0
            ]
        )
        assert ranking_metrics(groups, relevance, scores, ks=(k,))[f"ndcg_at_{k}"] == pytest.approx(expected)


def test_any_real_scores_rank_alike_and_a_cutoff_past_the_list_finds_everything() -> None:
    # A ranker's raw scores may be negative or differ by less than float32 resolves: only order counts.
    base = ranking_metrics(GROUPS, RELEVANCE, SCORES, ks=(2, 10))
    shifted = np.asarray(SCORES) * 1e-9 - 5.0
    assert ranking_metrics(GROUPS, RELEVANCE, shifted, ks=(2, 10)) == pytest.approx(base)
    assert base["recall_at_10"] == 1.0 and base["map_at_10"] == pytest.approx(
        ((1 / 2 + 2 / 3) / 2 + (1 / 1 + 2 / 4) / 2) / 2
    )


def test_a_query_without_a_relevant_item_is_left_out() -> None:
    base = ranking_metrics(GROUPS, RELEVANCE, SCORES, ks=(2,))
    with_empty = ranking_metrics([*GROUPS, "q3", "q3"], [*RELEVANCE, 0, 0], [*SCORES, 0.5, 0.4], ks=(2,))
    assert with_empty == base
    nothing = ranking_metrics(["q"] * 3, [0, 0, 0], [0.1, 0.2, 0.3], ks=(5,))
    assert nothing["queries"] == 0 and math.isnan(nothing["ndcg_at_5"]) and math.isnan(nothing["mrr"])


@pytest.mark.parametrize(
    ("groups", "relevance", "scores", "ks", "message"),
    [
        (["a", "a"], [1], [0.1, 0.2], (5,), "one group, relevance and score per row"),
        (["a", "a"], [1, -1], [0.1, 0.2], (5,), "relevance must be finite and >= 0"),
        (["a", "a"], [1, 0], [0.1, float("nan")], (5,), "every score must be finite"),
        (["a", "a"], [1, 0], [0.1, 0.2], (0,), "cut-offs must be >= 1"),
    ],
)
def test_bad_input_is_a_one_line_value_error(groups, relevance, scores, ks, message) -> None:
    with pytest.raises(ValueError, match=message):
        ranking_metrics(groups, relevance, scores, ks=ks)


def test_position_propensities_recover_the_demo_worlds_position_bias() -> None:
    from feature_repo.demo_data.config import GeneratorConfig
    from feature_repo.demo_data.generate import generate
    from feature_repo.demo_data.offers import POSITION_BIAS, SLATE_SIZE

    shown = generate(GeneratorConfig(customers=600))["offer_impressions"]
    found = position_propensities(shown["offer_id"], shown["position"], shown["clicked"])
    assert sorted(found) == list(range(1, SLATE_SIZE + 1))
    for position, propensity in found.items():  # examined with probability 1 / position ** POSITION_BIAS
        assert propensity == pytest.approx(1 / position**POSITION_BIAS, rel=0.25, abs=0.02), found


def test_position_propensities_need_positions() -> None:
    with pytest.raises(ValueError, match="positions >= 1"):
        position_propensities([1, 2], [0, 1], [1, 0])


def test_inverse_propensity_weights_count_a_click_low_in_the_slate_for_more() -> None:
    # One slate: the logged order showed a clicked item 4th, where a quarter of users look.
    groups, positions, clicked = ["s"] * 4, np.array([1, 2, 3, 4]), np.array([1, 0, 0, 1])
    weighted = clicked * positions  # relevance / propensity, propensity 1 / position
    logged, lifts_it = -positions, np.array([0.8, 0.1, 0.2, 0.9])  # the second ranks the 4th item first

    def ndcg(relevance, scores) -> float:
        return ranking_metrics(groups, relevance, scores, ks=(2,))["ndcg_at_2"]

    assert ndcg(weighted, logged) < ndcg(clicked, logged)  # the logged order is judged less kindly
    assert ndcg(weighted, lifts_it) == pytest.approx(1.0) and ndcg(weighted, lifts_it) > ndcg(
        weighted, logged
    )
