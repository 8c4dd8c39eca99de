"""A ranker's requests and answers at the transformer: one query and its candidate list in, the candidates
ranked by score out.

Client request (Open Inference Protocol, REST or gRPC): each query key (every entity key but the item key:
`session_id`, `customer_id`) as one id, shape `[1]` or `[1, 1]`, and the item key (`offer_id`) holding the
candidates, `[n]` with 1 <= n <= the spec's `serving.max_batch_size`, all distinct. Every (query, candidate)
pair's features come from one Feast online read, and Triton scores the n rows in one request.
Client response: `<item key>` INT64 `[n]`, the candidates best first, and `score` FP32 `[n]` in the same
order (the model's raw score: only its order within the query means something).

An empty, duplicated, too long or unknown candidate list, or a query key given more than once, is the
client's error (InvalidInput: a one-line 400 over REST, INVALID_ARGUMENT over gRPC).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

from core.spec.label import RANKING_OUTPUT
from inference.transformer.tensors import entity_ids, named_inputs, predictor_output

SCORE = RANKING_OUTPUT


def candidate_rows(
    request: InferRequest, entity_keys: Sequence[str], item_key: str, max_rows: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """One Feast entity row per candidate (the query's keys repeated), and the candidates in order."""
    tensors = named_inputs(request, entity_keys, f" (the query's ids and the candidate {item_key}s)")
    query: dict[str, int] = {}
    for key in entity_keys:
        if key == item_key:
            continue
        ids = entity_ids(tensors[key])
        if len(ids) != 1:
            raise InvalidInput(f"input {key}: one id per request (the query), got {len(ids)}")
        query[key] = ids[0]
    candidates = entity_ids(tensors[item_key])
    if not candidates:
        raise InvalidInput(f"input {item_key}: the candidate list is empty")
    if len(candidates) > max_rows:
        raise InvalidInput(
            f"input {item_key}: at most {max_rows} candidates per request (got {len(candidates)})"
        )
    seen: set[int] = set()
    repeated = [c for c in candidates if c in seen or seen.add(c)]
    if repeated:
        shown = ", ".join(map(str, dict.fromkeys(repeated)))
        raise InvalidInput(f"input {item_key}: duplicate candidates {shown}")
    return [{**query, item_key: candidate} for candidate in candidates], candidates


def ranking_response(
    predictor_response: InferResponse,
    output_name: str,
    item_key: str,
    candidates: Sequence[int],
    model_name: str,
    model_version: str | None,
) -> InferResponse:
    """The client's response: the candidates best first with their scores (ties keep the request's order)."""
    scores = predictor_output(predictor_response, output_name).reshape(-1)
    if len(scores) != len(candidates):
        raise RuntimeError(f"predictor scored {len(scores)} rows for {len(candidates)} candidates")
    order = np.argsort(-scores, kind="stable")
    ranked = np.asarray(candidates, dtype=np.int64)[order]
    result = [InferOutput(item_key, [len(ranked)], "INT64"), InferOutput(SCORE, [len(ranked)], "FP32")]
    result[0].set_data_from_numpy(ranked, binary_data=False)
    result[1].set_data_from_numpy(scores[order], binary_data=False)
    return InferResponse(
        response_id=predictor_response.id,
        model_name=model_name,
        model_version=model_version,
        infer_outputs=result,
    )
