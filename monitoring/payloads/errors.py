"""The one error a logged inference event can fail with, and the reasons it names.

KServe's logger does not retry, so the 400 it maps to only tells the sender (and the rejected counter)
that the event was unusable; it never means "send again".
"""

from __future__ import annotations


class EventError(ValueError):
    """The event is not a usable CloudEvent / Open Inference Protocol payload (invalid input).

    `reason` is the `mlops_drift_events_rejected_total` label, one of `REJECT_REASONS`."""

    status_code = 400

    def __init__(self, reason: str, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status_code = status_code  # 413 for a body over the limit, else 400


REJECT_REASONS = (
    "missing_attribute",  # a required CloudEvents attribute (id, source, specversion, type) is absent
    "bad_attribute",  # an extension KServe sets cannot be read (ce-annotations that is not a JSON object)
    "unsupported_specversion",
    "unknown_type",  # ce-type is neither the KServe request nor the response type
    "unsupported_content_type",  # e.g. batched CloudEvents, non-JSON data
    "bad_json",
    "bad_payload",  # JSON, but not an Open Inference Protocol v2 payload we can turn into rows
    "unknown_model",  # no detector for any version of this model
)
