"""A ranker's online quality per version, from the clicks posted as outcomes.

The application posts one outcome per shown candidate row of a ranked request: `"<request id>#<row>"` with
label 1 (clicked; a higher integer for a graded relevance such as "taken up") or 0 (shown, not clicked).
The window's labeled rows are grouped by request; within a request the logged scores give each row's rank
among the labeled ones (the order the answer showed them in). Metrics over the window:

- `ndcg_at_<k>` and `mrr` (core/ranking_metrics.py, the offline definitions): per request with a click,
  averaged; the spec's evaluation floors on them are exported and alerted on like a classifier's.
- `ctr_at_<k>`: the share of rows ranked in the top k that were clicked (clicks over impressions there).

A request without a labeled click says nothing about order: it counts in CTR@k, not in NDCG or MRR.
Undefined on the window (no click yet, no row in the top k): NaN, which never fires an alert.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.ranking_metrics import ranking_metrics


def ranking_metric_names(ks: Sequence[int]) -> list[str]:
    """The gauges' `metric` label values for a ranker evaluated at cut-offs `ks`."""
    return [*(f"ndcg_at_{k}" for k in ks), *(f"ctr_at_{k}" for k in ks), "mrr"]


def ranking_window_metrics(
    groups: Sequence[str], labels: Sequence[int], scores: Sequence[float], ks: Sequence[int]
) -> dict[str, float]:
    """`ranking_metric_names(ks)` of the window's labeled rows (request id, relevance, logged score)."""
    frame = pd.DataFrame({"group": list(groups), "label": labels, "score": scores})
    frame = frame[np.isfinite(frame["score"].to_numpy(dtype=np.float64))]
    out = dict.fromkeys(ranking_metric_names(ks), math.nan)
    if frame.empty:
        return out
    ranks = frame.groupby("group")["score"].rank(method="first", ascending=False)
    for k in ks:
        top = frame["label"][ranks <= k]
        out[f"ctr_at_{k}"] = float((top > 0).mean()) if len(top) else math.nan
    offline = ranking_metrics(frame["group"], frame["label"], frame["score"], ks=ks)
    if offline["queries"] > 0:
        out |= {f"ndcg_at_{k}": offline[f"ndcg_at_{k}"] for k in ks} | {"mrr": offline["mrr"]}
    return out
