"""The drift service's errors and the one place that maps them to HTTP status codes.

KServe's logger does not retry, so a 4xx only tells the sender (and the rejected counter) that the event
was unusable; it never means "send again".
"""

from __future__ import annotations


class DriftServiceError(Exception):
    """Base class; `str()` is one line naming what went wrong and where."""

    status_code = 500


class EventError(DriftServiceError, ValueError):
    """The event is not a usable CloudEvent / Open Inference Protocol payload (invalid input).

    `reason` is the `mlops_drift_events_rejected_total` label, one of `REJECT_REASONS`."""

    status_code = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotEnabledError(DriftServiceError):
    """An endpoint of a feature this service was built without (e.g. quality tracking in a test)."""

    status_code = 404


class ConfigError(DriftServiceError):
    """The detectors folder or a checkpoint cannot be used (raised at start, never per request)."""


REJECT_REASONS = (
    "missing_attribute",  # a required CloudEvents attribute (id, source, specversion, type) is absent
    "unsupported_specversion",
    "unknown_type",  # ce-type is neither the KServe request nor the response type
    "unsupported_content_type",  # e.g. batched CloudEvents, non-JSON data
    "bad_json",
    "bad_payload",  # JSON, but not an Open Inference Protocol v2 payload we can turn into rows
    "unknown_model",  # no detector for any version of this model
)


def status_for(exc: BaseException) -> int:
    """The HTTP status for an error raised while handling an event (unknown errors are 500s)."""
    return exc.status_code if isinstance(exc, DriftServiceError) else 500
