"""The outcomes payload of `POST /v1/outcomes`, and how an outcome's id and label map onto logged rows.

    {"outcomes": [{"request_id": "abc", "label": 1, "observed_at": "2026-11-22T10:00:00Z"}, ...]}

Ids. `request_id` is the OIP request's `id` when the client set one, else the CloudEvent id (`ce-id`,
which KServe's logger and the local router give both events of an inference). A batched request has one
logged row per input row: `"abc#3"` labels row 3; a bare `"abc"` labels a single-row request and is
`ambiguous` (counted, never guessed) for a request of several rows. An id used by several requests (or
the same id sent to several models) labels each of them.

Labels. An integer class index (0/1 for a binary model), a boolean, or a class name from the model
spec's `label.classes`. `observed_at` (ISO 8601 or Unix seconds) is kept with the row; the rolling
quality window runs on arrival time, so historical outcomes replayed today still count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.untrusted_json import UntrustedJsonError, loads_untrusted
from monitoring.payloads.errors import EventError

ROW_SEPARATOR = "#"
MAX_OUTCOMES = 10_000


class OutcomeError(EventError):
    """The outcomes body is unusable (answered 400 like a bad event); `reason` labels
    `mlops_model_quality_outcomes_rejected_total`, one of `REJECT_REASONS`."""


REJECT_REASONS = ("bad_json", "bad_payload", "too_large", "timeout")


@dataclass(frozen=True)
class Outcome:
    request_id: str
    row: int | None  # None: the bare id (a single-row request)
    label: int | str
    observed_at: float | None


def parse_outcomes(body: bytes, max_outcomes: int = MAX_OUTCOMES) -> list[Outcome]:
    """Every outcome of the body, or OutcomeError naming the first problem (nothing is applied then)."""
    try:
        document = loads_untrusted(body, "outcomes body")
    except UntrustedJsonError as exc:
        raise OutcomeError("bad_json", str(exc)) from None
    items = document.get("outcomes") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise OutcomeError(
            "bad_payload", 'outcomes body: expected {"outcomes": [...]} with at least one item'
        )
    if len(items) > max_outcomes:
        raise OutcomeError(
            "too_large", f"outcomes body: {len(items)} outcomes, at most {max_outcomes} per request"
        )
    return [_outcome(position, item) for position, item in enumerate(items)]


def _outcome(position: int, item: object) -> Outcome:
    where = f"outcomes[{position}]"
    if not isinstance(item, dict):
        raise OutcomeError("bad_payload", f"{where}: expected an object")
    unknown = sorted(set(item) - {"request_id", "label", "observed_at"})
    if unknown:
        raise OutcomeError("bad_payload", f"{where}: unknown field {unknown[0]!r}")
    request_id, row = _split_id(item.get("request_id"), where)
    return Outcome(request_id, row, _label(item.get("label"), where), _time(item.get("observed_at"), where))


def _split_id(value: object, where: str) -> tuple[str, int | None]:
    if not isinstance(value, str) or not value.strip():
        raise OutcomeError("bad_payload", f"{where}.request_id: must be a non-empty string")
    base, separator, suffix = value.rpartition(ROW_SEPARATOR)
    if separator and base and suffix.isdigit():
        return base, int(suffix)
    return value, None


def _label(value: object, where: str) -> int | str:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value:
        return value
    raise OutcomeError(
        "bad_payload", f"{where}.label: must be a class index (>= 0), a boolean or a class name"
    )


def _time(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    raise OutcomeError(
        "bad_payload", f"{where}.observed_at: must be Unix seconds or ISO 8601 with a time zone"
    )


def class_index(label: int | str, classes: Sequence[str] | None, n_classes: int) -> int | None:
    """The label as an output index of a model with `n_classes` outputs, None when it is not one of them.

    A binary model (no class names) also takes "0"/"1"; a multiclass one takes its class names."""
    if isinstance(label, str):
        if classes is not None and label in classes:
            return list(classes).index(label)
        if label.isdigit():
            label = int(label)
        else:
            return None
    return label if 0 <= label < n_classes else None
