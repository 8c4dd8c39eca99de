"""One logged inference, decoded once where it enters the drift service: the value its detector buffers,
its score histogram and the quality tracker all read, so none of them goes back to the payload.

Model: the `inferenceservicename` extension, else the payload's `model_name`; a model with no detector for
any version is rejected (`unknown_model`). Version, first that applies: the version annotation in the
`annotations` extension, the payload's `model_version` when a detector has it, the model's only loaded
version, else the payload's `model_version`; with none of them the version is `UNKNOWN_VERSION`.

Only what KServe's logger sends is read (kserve v0.20.0, commit 1fb78105, pkg/logger/worker.go). Deploy
lists the version annotation in the InferenceService's `logger.metadataAnnotations`; KServe's agent
injector copies that pod annotation into the agent's flags (pkg/webhook/admission/pod/agent_injector.go),
and each Knative revision's pods keep the value of the template they were created from, so during a canary
the stable and the canary revision each name their own registry version. Triton answers with its
repository version ("1"), not the registry's, which is why the payload ranks below the annotation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.untrusted_json import UntrustedJsonError, loads_untrusted
from inference.deploy.annotations import MODEL_VERSION_KEY
from monitoring.payloads.cloudevents import CloudEvent, event_json
from monitoring.payloads.errors import EventError
from monitoring.payloads.oip import (
    payload_field,
    request_rows,
    response_probabilities,
    response_scores,
    row_count,
)
from monitoring.payloads.rows import RowBlock

UNKNOWN_VERSION = "unknown"

Key = tuple[str, str]  # (model, version)
VersionSource = Literal["annotation", "payload", "only_loaded", "none"]


@dataclass(frozen=True)
class TensorLayout:
    """How a detector reads a request: named inputs are its columns; a model's single [n, k] tensor input
    (a text model's embedding-free features) has its `features` as columns, in order."""

    features: tuple[str, ...]


@dataclass(frozen=True)
class LoggedInference:
    event_id: str
    """The CloudEvent id (`ce-id`): a request and its response share it."""
    request_id: str
    """The payload's `id` when the client set one, else the event id: what outcomes name."""
    kind: Literal["request", "response"]
    model: str
    version: str
    """Concrete: the first source that names one (see the module doc), else `UNKNOWN_VERSION`."""
    version_source: VersionSource
    rows: RowBlock | None = None
    """Request: the decoded inputs; None when they cannot be decoded without a detector's layout."""
    row_count: int = 0
    """Request: rows in the payload (validated)."""
    scores: np.ndarray | None = None
    """Response: class probabilities [n, k]; None when the response has none."""
    scores_problem: str | None = None
    """Response: why `scores` is None."""

    @property
    def key(self) -> Key:
        return (self.model, self.version)

    @property
    def version_named(self) -> bool:
        """False when no source named a version (the version is then `UNKNOWN_VERSION`)."""
        return self.version_source != "none"


def logged_inference(
    event: CloudEvent, layouts: Mapping[Key, TensorLayout], rankers: frozenset[str] = frozenset()
) -> LoggedInference:
    """Decode `event` once. `layouts` has one entry per loaded detector: it names the known models and
    versions (for routing) and how a request's tensor becomes that detector's rows; a response of one of
    `rankers` holds scores [n, 1], not probabilities."""
    payload = event_json(event)
    model = _model_of(event, payload, layouts)
    version, source = resolve_version(event, payload, [v for m, v in layouts if m == model])
    request_id = _request_id(event.id, payload)
    if event.kind == "response":
        try:
            read = response_scores if model in rankers else response_probabilities
            scores, problem = read(payload), None
        except EventError as exc:  # e.g. a transformer answering class names only: accepted, not scored
            scores, problem = None, str(exc)
        return LoggedInference(
            event.id, request_id, "response", model, version, source, scores=scores, scores_problem=problem
        )
    layout = layouts.get((model, version)) if source != "none" else None
    rows, count = _request_rows(payload, layout)
    return LoggedInference(event.id, request_id, "request", model, version, source, rows, count)


def resolve_version(event: CloudEvent, payload: Any, loaded: Sequence[str]) -> tuple[str, VersionSource]:
    """The event's concrete version and which source named it; `loaded`: the model's detector versions."""
    if annotated := annotated_version(event):
        return annotated, "annotation"
    from_payload = payload_field(payload, "model_version")
    if from_payload in loaded:
        return from_payload, "payload"
    if len(loaded) == 1:
        return loaded[0], "only_loaded"
    if from_payload:
        return from_payload, "payload"
    return UNKNOWN_VERSION, "none"


def _model_of(event: CloudEvent, payload: Any, layouts: Mapping[Key, TensorLayout]) -> str:
    model = event.attribute("inferenceservicename") or payload_field(payload, "model_name")
    if not model:
        raise EventError("unknown_model", f"CloudEvent {event.id}: no ce-inferenceservicename or model_name")
    if not any(m == model for m, _ in layouts):
        raise EventError("unknown_model", f"CloudEvent {event.id}: no detector for model {model!r}")
    return model


def annotated_version(event: CloudEvent) -> str | None:
    """The registry version in the `annotations` extension (the agent sends the listed pod annotations as
    one JSON object: {"<key>": "<value>"}); None when it names none (raises EventError when unreadable)."""
    text = event.attribute("annotations")
    if not text:
        return None
    try:
        annotations = loads_untrusted(text, f"CloudEvent {event.id}: ce-annotations")
    except UntrustedJsonError as exc:
        raise EventError("bad_attribute", str(exc)) from None
    if not isinstance(annotations, dict):
        raise EventError("bad_attribute", f"CloudEvent {event.id}: ce-annotations must be a JSON object")
    value = annotations.get(MODEL_VERSION_KEY)
    return str(value) if value not in (None, "") else None


def _request_id(event_id: str, payload: Any) -> str:
    value = payload.get("id") if isinstance(payload, dict) else None
    return str(value) if value not in (None, "") else event_id


def _request_rows(payload: Any, layout: TensorLayout | None) -> tuple[RowBlock | None, int]:
    if layout is not None:
        rows = request_rows(payload, layout.features)
        return rows, len(rows)
    count = row_count(payload)  # validates the payload: a bad one is rejected, not logged
    try:
        return request_rows(payload), count
    except EventError:  # a single [n, k] tensor has no column names without a detector
        return None, count
