"""Parsing and validation of Alertmanager's webhook body (JSON version "4").

Alertmanager 0.25 posts:

    {"receiver": "...", "status": "firing", "alerts": [{"status": "firing", "labels": {...},
     "annotations": {...}, "startsAt": "<RFC 3339>", "endsAt": "...", "generatorURL": "...",
     "fingerprint": "..."}], "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...},
     "externalURL": "...", "version": "4", "groupKey": "...", "truncatedAlerts": 0}

Unknown fields are allowed (newer Alertmanagers add some). Anything unusable raises `PayloadError` with one
line naming the field, e.g. `alerts[0].startsAt: Input should be a valid datetime (got 'yesterday')`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core.untrusted_json import UntrustedJsonError, loads_untrusted
from monitoring.retrain_trigger.errors import PayloadError

WEBHOOK_VERSION = "4"
MODEL_LABEL = "model"
ACTION_LABEL = "action"
RETRAIN_ACTION = "retrain"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Alert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1)

    @property
    def model(self) -> str:
        return self.labels[MODEL_LABEL]

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def starts_at_utc(self) -> str:
        """`startsAt` in one canonical spelling, so HA peers' copies compare equal as text."""
        return self.starts_at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    @property
    def wants_retrain(self) -> bool:
        return self.labels.get(ACTION_LABEL) == RETRAIN_ACTION

    def reason(self) -> str:
        """Why the run exists, as recorded in the pipeline run and MLflow."""
        return f"{self.alertname or 'alert'} fingerprint={self.fingerprint} startsAt={self.starts_at_utc}"


class WebhookPayload(_Lenient):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")


def parse_webhook(body: bytes, known_models: Collection[str]) -> WebhookPayload:
    """Decode and validate a webhook body; every alert must carry a `model` label naming a known model."""
    data = _decode_json(body)
    if not isinstance(data, dict):
        raise PayloadError(
            f"body: expected a JSON object (Alertmanager webhook version {WEBHOOK_VERSION}), "
            f"got a JSON {_json_kind(data)}"
        )
    if "version" in data and data["version"] != WEBHOOK_VERSION:
        raise PayloadError(
            f"version: unsupported webhook version {data['version']!r} (expected {WEBHOOK_VERSION!r})"
        )
    try:
        payload = WebhookPayload.model_validate(data)
    except ValidationError as exc:
        raise PayloadError(_first_problem(exc)) from None
    for index, alert in enumerate(payload.alerts):
        _check_model_label(index, alert, known_models)
    return payload


def _decode_json(body: bytes) -> object:
    if not body.strip():
        raise PayloadError("body: empty; expected an Alertmanager webhook JSON object")
    try:
        return loads_untrusted(body, "body")
    except UntrustedJsonError as exc:
        raise PayloadError(str(exc)) from None


def _json_kind(value: object) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _check_model_label(index: int, alert: Alert, known_models: Collection[str]) -> None:
    where = f"alerts[{index}].labels.{MODEL_LABEL}"
    name = alert.labels.get(MODEL_LABEL)
    if not name:
        raise PayloadError(
            f"{where}: required label is missing (alert {alert.alertname or alert.fingerprint!r} "
            "must name the model to retrain)"
        )
    if name not in known_models:
        raise PayloadError(f"{where}: unknown model {name!r}; known: {', '.join(sorted(known_models))}")


def _first_problem(exc: ValidationError) -> str:
    """The first pydantic error as `<path>: <problem> (got <value>)`, e.g. `alerts[0].startsAt: ...`."""
    error = exc.errors(include_url=False)[0]
    path = _dotted(error["loc"]) or "body"
    if error["type"] == "missing":
        return f"{path}: required field is missing"
    problem = error["msg"]
    value = error.get("input")
    if isinstance(value, str | int | float | bool):
        shown = repr(value)
        problem += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return f"{path}: {problem}"


def _dotted(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
