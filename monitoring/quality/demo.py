"""Outcome records for `POST /v1/outcomes` from served demo requests and the demo's delayed labels.

The demo generator's `conversions` table is the ground truth per session (`converted`, known at
`label_timestamp`). A client that served session S under request id R later posts
`{"request_id": R, "label": converted(S), "observed_at": label_timestamp(S)}`; `flip_fraction` flips a
seeded share of the labels, a concept drift the inputs never show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SESSION_KEY = "session_id"
LABEL_COLUMN = "converted"
LABEL_TIME = "label_timestamp"


def outcome_records(
    served: pd.DataFrame, conversions: pd.DataFrame, flip_fraction: float = 0.0, seed: int = 0
) -> list[dict]:
    """One outcome per served row: `served` has `request_id` (the id to post, `id#row` for a batched
    request's row) and `session_id`; sessions without a label (yet) are left out."""
    if not 0.0 <= flip_fraction <= 1.0:
        raise ValueError(f"flip_fraction: {flip_fraction} is not within [0, 1]")
    missing = [c for c in ("request_id", SESSION_KEY) if c not in served.columns]
    if missing:
        raise ValueError(f"served requests: missing column {missing[0]!r}")
    labels = conversions[[SESSION_KEY, LABEL_COLUMN, LABEL_TIME]]
    joined = served[["request_id", SESSION_KEY]].merge(labels, on=SESSION_KEY, how="inner")
    label = joined[LABEL_COLUMN].to_numpy(dtype=np.int64)
    flipped = np.random.default_rng(seed).random(len(joined)) < flip_fraction
    label = np.where(flipped, 1 - label, label)
    observed = pd.to_datetime(joined[LABEL_TIME], utc=True)
    return [
        {"request_id": str(request_id), "label": int(value), "observed_at": when.isoformat()}
        for request_id, value, when in zip(joined["request_id"], label, observed, strict=True)
    ]
