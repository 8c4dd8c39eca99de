"""The drift service's own errors and the one place that maps them, and the payload errors it answers
(`monitoring.payloads.errors.EventError`, 400), to HTTP status codes."""

from __future__ import annotations

from monitoring.payloads.errors import EventError


class DriftServiceError(Exception):
    """Base class; `str()` is one line naming what went wrong and where."""

    status_code = 500


class NotEnabledError(DriftServiceError):
    """An endpoint of a feature this service was built without (e.g. quality tracking in a test)."""

    status_code = 404


class UnavailableError(DriftServiceError):
    """The event could not be stored durably (the journal's disk): not acknowledged, the sender may retry."""

    status_code = 503


class ConfigError(DriftServiceError):
    """The detectors folder or a checkpoint cannot be used (raised at start, never per request)."""


def status_for(exc: BaseException) -> int:
    """The HTTP status for an error raised while handling an event (unknown errors are 500s)."""
    return exc.status_code if isinstance(exc, DriftServiceError | EventError) else 500
