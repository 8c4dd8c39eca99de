"""The trigger's errors and the one place that maps them to HTTP status codes.

Alertmanager retries a webhook only on 5xx, so the mapping encodes a promise: 4xx means "this request will
never succeed, do not resend it", 5xx means "nothing was lost, send it again".
"""

from __future__ import annotations


class TriggerError(Exception):
    """Base class; `str()` is one line naming what went wrong and where."""

    status_code = 500


class PayloadError(TriggerError, ValueError):
    """The webhook body is not a usable Alertmanager v4 payload (invalid input)."""

    status_code = 400


class Unauthorized(TriggerError):
    """Missing or wrong bearer token."""

    status_code = 401


class PayloadTooLarge(TriggerError):
    """The body is over the configured limit."""

    status_code = 413


class PayloadTimeout(TriggerError):
    """The body did not arrive whole in time."""

    status_code = 408


class PersistError(TriggerError):
    """The state database could not record the alert; the sender should retry."""

    status_code = 503


class SubmitError(TriggerError):
    """The pipeline run could not be started; the alert was forgotten so a retry can start it."""

    status_code = 503


def status_for(exc: BaseException) -> int:
    """The HTTP status for an error raised while handling a webhook (unknown errors are 500s)."""
    return exc.status_code if isinstance(exc, TriggerError) else 500
