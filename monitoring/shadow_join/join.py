"""The cluster's shadow comparison: KServe's payload events of the live and of the shadow InferenceService,
joined by the request id the Gateway's mirror copies, then handed to the same comparator the local mirror
uses (inference/router/shadow_compare.py), so both paths serve the same `mlops_shadow_*` series.

What each event carries, as KServe's agent sends it (kserve master aaac4e294dae2c7b1aa1886447793f3aa1c30912,
pkg/logger/handler.go and worker.go):
- `ce-inferenceservicename`: `<model>` for the live service, `<model>-shadow` for the shadow (render_shadow);
- `ce-metadata`: JSON `{"<header>": ["<value>", ...]}` of the request headers listed in the service's
  `logger.metadataHeaders`. The agent compares Go's canonical header names with that list verbatim, so the
  list must say `X-Request-Id`. Envoy (Envoy Gateway's data plane) sets `x-request-id` on every request it
  routes (envoy docs/root/configuration/http/http_conn_man/headers.rst, "x-request-id") and the
  `RequestMirror` copy carries the same headers, so a live event and its shadow twin name the same id.
  The agent's own `ce-id` is a fresh UUID per pod unless the client sent `Ce-Id` (getOrCreateID), so it
  cannot join the two services;
- `ce-time`: the agent's clock when the request arrived (request event) or its answer was read (response
  event): response minus request is the latency each version's pod took, as its agent saw it;
- `ce-annotations`: the pod annotations listed in `logger.metadataAnnotations`; the version annotation names
  the shadow's registry version (render.py lists it).
The agent logs a response only when the model answered 200 (handler.go), so a shadow request whose response
never arrives within the join window is the shadow's error, as a failed call is for the local mirror.

At-least-once delivery (Knative's broker retries): an event already joined, or one repeated while its pair
waits, counts once. The state is memory only: a restart loses the pairs still waiting and resets the
counters, and the verdict reads "wait" until `min_compared` requests are compared again; never a false go.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from inference.deploy.annotations import REQUEST_ID_HEADER, SHADOW_SUFFIX
from inference.router.shadow_compare import Answer, ShadowComparator
from monitoring.payloads.cloudevents import CloudEvent
from monitoring.payloads.errors import EventError
from monitoring.payloads.logged import annotated_version

DEFAULT_PENDING_S = 60.0
DEFAULT_MAX_PENDING = 50_000
Role = Literal["live", "shadow"]
Outcome = Literal["waiting", "compared", "duplicate"]


@dataclass
class _Side:
    requested_at: datetime | None = None  # ce-time of the request event
    answered_at: datetime | None = None  # ce-time of the response event
    body: bytes | None = None

    @property
    def whole(self) -> bool:
        return self.requested_at is not None and self.answered_at is not None


@dataclass
class _Pair:
    first_seen: float  # the join's clock, for the window
    version: str | None = None  # the shadow's, from its events
    sides: dict[str, _Side] = field(default_factory=lambda: {"live": _Side(), "shadow": _Side()})


class JoinMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.unjoined = Counter(
            "mlops_shadow_unjoined",
            "Requests whose other side's events did not arrive within the join window, by what was missing"
            " (shadow: not mirrored or its events lost; live: the live answer's events lost)",
            ["model", "missing"],
            registry=registry,
        )
        self.rejected = Counter(
            "mlops_shadow_events_rejected",
            "Events refused with a 400, by reason",
            ["reason"],
            registry=registry,
        )
        self.pending = Gauge("mlops_shadow_pending", "Requests waiting for their pair", registry=registry)


class ShadowJoin:
    """Not thread-safe: one event loop calls `add` and `expire`."""

    def __init__(
        self,
        comparator: ShadowComparator,
        registry: CollectorRegistry,
        pending_s: float = DEFAULT_PENDING_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] | None = None,
        models: frozenset[str] | None = None,
    ) -> None:
        """`models`: the model names whose events are taken (None: any); another name is refused, so a
        stray sender cannot grow the metrics' label sets."""
        self.comparator = comparator
        self.models = models
        self.metrics = JoinMetrics(registry)
        self.pending_s = pending_s
        self.max_pending = max_pending
        self._clock = clock or time.monotonic
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()  # oldest first
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()  # joined keys, for duplicates

    def add(self, event: CloudEvent) -> Outcome:
        """Take one event (raises EventError, reason as the rejected counter's label)."""
        try:
            role, model = _role_and_model(event)
            if self.models is not None and model not in self.models:
                raise EventError("unknown_model", f"CloudEvent {event.id}: no model spec names {model!r}")
            key = (model, _request_id(event))
            at = _event_time(event)
            version = annotated_version(event) if role == "shadow" else None
            if role == "shadow" and version is None:
                raise EventError("bad_attribute", f"CloudEvent {event.id}: a shadow event names no version")
            body = _body(event) if event.kind == "response" else None
        except EventError as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            raise
        self.expire()
        if key in self._done:
            return "duplicate"
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = _Pair(self._clock())
            self._evict_over_capacity()
        side = pair.sides[role]
        if event.kind == "request":
            side.requested_at = at
        else:
            side.answered_at, side.body = at, body
        pair.version = pair.version or version
        outcome = self._try_compare(key, pair)
        self.metrics.pending.set(len(self._pairs))
        return outcome

    def expire(self) -> int:
        """Settle the pairs older than the window; returns how many."""
        deadline = self._clock() - self.pending_s
        settled = 0
        while self._pairs:
            key, pair = next(iter(self._pairs.items()))
            if pair.first_seen > deadline:
                break
            self._settle(key, pair)
            settled += 1
        self.metrics.pending.set(len(self._pairs))
        return settled

    def _try_compare(self, key: tuple[str, str], pair: _Pair) -> Outcome:
        live, shadow = pair.sides["live"], pair.sides["shadow"]
        if not (live.whole and shadow.whole and pair.version):
            return "waiting"
        self._finish(key)
        model = key[0]
        self.comparator.compare(
            model,
            pair.version,
            Answer(live.body or b"", _latency(live)),
            Answer(shadow.body or b"", _latency(shadow)),
        )
        return "compared"

    def _settle(self, key: tuple[str, str], pair: _Pair) -> None:
        """A pair the window closed on: the shadow's error, or an unjoined request."""
        self._finish(key)
        model, shadow = key[0], pair.sides["shadow"]
        if shadow.requested_at is not None and shadow.answered_at is None and pair.version:
            reason = f"no 200 answer logged by the shadow within {self.pending_s:g} s"
            self.comparator.failed(model, pair.version, reason)
        elif not shadow.whole:
            self.metrics.unjoined.labels(model, "shadow").inc()
        else:
            self.metrics.unjoined.labels(model, "live").inc()

    def _finish(self, key: tuple[str, str]) -> None:
        self._pairs.pop(key, None)
        self._done[key] = None
        while len(self._done) > self.max_pending:
            self._done.popitem(last=False)

    def _evict_over_capacity(self) -> None:
        while len(self._pairs) > self.max_pending:  # a flood of one side: the oldest settle early
            key, pair = next(iter(self._pairs.items()))
            self._settle(key, pair)


def _role_and_model(event: CloudEvent) -> tuple[Role, str]:
    name = event.attribute("inferenceservicename")
    if not name:
        raise EventError("missing_attribute", f"CloudEvent {event.id}: missing ce-inferenceservicename")
    if name.endswith(SHADOW_SUFFIX) and len(name) > len(SHADOW_SUFFIX):
        return "shadow", name[: -len(SHADOW_SUFFIX)]
    return "live", name


def _request_id(event: CloudEvent) -> str:
    text = event.attribute("metadata") or "{}"
    try:
        metadata = json.loads(text)
    except ValueError:
        raise EventError("bad_attribute", f"CloudEvent {event.id}: ce-metadata is not JSON") from None
    values = metadata.get(REQUEST_ID_HEADER) if isinstance(metadata, dict) else None
    if not isinstance(values, list) or not values or not isinstance(values[0], str) or not values[0]:
        raise EventError(
            "bad_attribute",
            f"CloudEvent {event.id}: ce-metadata has no {REQUEST_ID_HEADER}"
            f" (list it in the InferenceService's logger.metadataHeaders)",
        )
    return values[0]


def _event_time(event: CloudEvent) -> datetime:
    text = event.attribute("time") or ""
    try:
        at = datetime.fromisoformat(text)
        return at if at.tzinfo else at.replace(tzinfo=UTC)  # RFC 3339 has an offset; be lenient without one
    except ValueError:
        problem = f"ce-time {text!r} is not RFC 3339" if text else "missing ce-time"
        raise EventError("bad_attribute", f"CloudEvent {event.id}: {problem}") from None


def _body(event: CloudEvent) -> bytes:
    data = event.data
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data).encode()  # structured mode's decoded `data`


def _latency(side: _Side) -> float:
    assert side.requested_at is not None and side.answered_at is not None
    # two events of one agent: one clock; exact to the microsecond (a float of epoch seconds is not)
    return max(0.0, (side.answered_at - side.requested_at).total_seconds())
