"""Ranking metrics per query, averaged over queries: NDCG@k, MAP@k, recall@k and MRR.

    ranking_metrics(groups=sessions, relevance=labels, scores=model_scores, ks=(5, 10))
    # {"ndcg_at_5": ..., "map_at_5": ..., "recall_at_5": ..., "ndcg_at_10": ..., ..., "mrr": ...}

The computation is torchmetrics' (`torchmetrics.retrieval`), the maintained implementation of these
definitions: NDCG with the graded relevance as the gain (as scikit-learn's `ndcg_score`), MAP, recall and
MRR with any relevance above 0 as relevant. A query without a relevant item says nothing about the ranking
and is left out of every mean (`empty_target_action="skip"`); `queries` counts those that were kept.

Position-bias-aware NDCG on logged clicks: divide each row's relevance by the propensity of the position it
was shown at (`position_propensities`), so a click low in the logged slate, where few looked, counts as
much as one at the top would (inverse propensity scoring; the binary metrics read relevance > 0 only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RANK_CUTOFF_METRICS = ("ndcg", "map", "recall")


def metric_names(ks: Sequence[int]) -> list[str]:
    """The names `ranking_metrics` returns for these cut-offs, in order."""
    return [f"{name}_at_{k}" for k in ks for name in RANK_CUTOFF_METRICS] + ["mrr"]


def ranking_metrics(
    groups: Sequence | np.ndarray,
    relevance: Sequence[float] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    ks: Sequence[int] = (10,),
) -> dict[str, float]:
    """Each metric of `metric_names(ks)` averaged over the queries (`groups`: one id per row) that hold a
    relevant row, plus `queries`, how many did. ValueError, naming the problem, on mismatched lengths,
    a negative relevance, a non-finite score or a cut-off below 1."""
    import torch
    from torchmetrics.retrieval import RetrievalMAP, RetrievalMRR, RetrievalNormalizedDCG, RetrievalRecall

    group_ids = np.unique(np.asarray(groups), return_inverse=True)[1]
    gains = np.asarray(relevance, dtype=np.float64)
    predicted = np.asarray(scores, dtype=np.float64)
    if not len(group_ids) == len(gains) == len(predicted):
        raise ValueError(
            f"ranking metrics need one group, relevance and score per row: got {len(group_ids)}, "
            f"{len(gains)} and {len(predicted)}"
        )
    if (gains < 0).any() or not np.isfinite(gains).all():
        raise ValueError("ranking metrics: relevance must be finite and >= 0")
    if not np.isfinite(predicted).all():
        raise ValueError("ranking metrics: every score must be finite")
    if any(k < 1 for k in ks):
        raise ValueError(f"ranking metrics: cut-offs must be >= 1, got {list(ks)}")
    # torchmetrics 1.9 counts a row scored <= 0 as "not retrieved" in MAP, recall and MRR
    # (functional/retrieval/recall.py: `torch.where(preds > 0, target, 0)`) and casts scores to float32:
    # a ranker's scores are any real numbers, so rank them first. Dense ranks (1, 2, ...) keep the order
    # and the ties, and are exact in float32 up to 2**24 distinct scores.
    from scipy.stats import rankdata

    predicted = rankdata(predicted, method="dense").astype(np.float64)
    relevant = gains > 0
    queries = len(np.unique(group_ids[relevant]))
    out: dict[str, float] = {"queries": float(queries)}
    if queries == 0:
        return out | dict.fromkeys(metric_names(ks), float("nan"))
    index = torch.as_tensor(group_ids, dtype=torch.long)
    preds = torch.as_tensor(predicted)
    graded, binary = torch.as_tensor(gains), torch.as_tensor(relevant)
    skip = {"empty_target_action": "skip"}
    for k in ks:
        out[f"ndcg_at_{k}"] = float(RetrievalNormalizedDCG(top_k=k, **skip)(preds, graded, indexes=index))
        out[f"map_at_{k}"] = float(RetrievalMAP(top_k=k, **skip)(preds, binary, indexes=index))
        out[f"recall_at_{k}"] = float(RetrievalRecall(top_k=k, **skip)(preds, binary, indexes=index))
    out["mrr"] = float(RetrievalMRR(**skip)(preds, binary, indexes=index))
    return out


def position_propensities(
    items: Sequence | np.ndarray, positions: Sequence[int] | np.ndarray, clicked: Sequence[int] | np.ndarray
) -> dict[int, float]:
    """How likely a shown row is looked at, per position, relative to position 1, from logged clicks.

    Needs slates whose positions were randomised (the same item shown at several positions): for each
    position k, the click rate of each item at k over its rate at position 1, averaged over the items
    shown at both with clicks at position 1 (weighted by their impressions at k). The inverse of these
    is the weight that makes clicks at low positions count as much as they would at the top (inverse
    propensity scoring). Position 1 is 1.0; a position with no comparable item is left out.
    """
    import pandas as pd

    frame = pd.DataFrame({"item": np.asarray(items), "position": np.asarray(positions), "clicked": clicked})
    if frame.empty or (frame["position"] < 1).any():
        raise ValueError("position propensities need logged rows with positions >= 1")
    rates = frame.groupby(["item", "position"])["clicked"].agg(["mean", "size"]).reset_index()
    top = rates[(rates["position"] == 1) & (rates["mean"] > 0)].set_index("item")["mean"]
    out = {1: 1.0}
    for position, at in rates[rates["position"] > 1].groupby("position"):
        both = at[at["item"].isin(top.index)]
        if both["size"].sum() > 0:
            ratio = both["mean"].to_numpy() / top[both["item"]].to_numpy()
            out[int(position)] = float(np.average(ratio, weights=both["size"]))
    return out
