"""CloudEvents (binary mode) for each inference request and response, exactly as KServe's logger sends them.

The drift detector receives the same events locally as from KServe's logger in the cluster: one POST per
event, CloudEvent attributes as `ce-*` headers, the OIP JSON as the body, and the same `ce-id` for a
request and its response. The attributes are the ones KServe's agent sets and nothing else (kserve
v0.20.0, commit 1fb781055dd1567164358233e1125142ca6ef1fe: pkg/logger/worker.go `sendCloudEvent`,
pkg/logger/handler.go `ServeHTTP`; cloudevents sdk-go v2.16.2 writes the headers; the fixture
tests/monitoring/data/kserve_logger_events.json records them). The version a revision serves reaches the
drift service only as that revision's pod annotation, listed in the InferenceService's
`logger.metadataAnnotations` and sent in the `annotations` extension (docs/signals.md).

Delivery is asynchronous through a bounded queue: a slow or absent receiver never delays a request; what
cannot be queued or posted is counted in `mlops_router_logger_dropped_total`. The worker posts what is
queued pipelined on one connection (`event_post.py`): still one POST per event. A body may also be a
function that produces it (the gRPC router's protobuf -> JSON conversion): it is called in the worker
thread, off the request path.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from inference.router.event_post import PipelinedConnection
from inference.router.isvc import Target
from inference.router.metrics import RouterMetrics

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_TIMEOUT_S = 5.0
MAX_BATCH = 256  # events written in one round (pipelined, event_post.py)
_EMPTY_METADATA = "{}"  # no logger.metadataHeaders: the agent marshals an empty map (handler.go)
log = logging.getLogger(__name__)


Body = bytes | Callable[[], bytes]


@dataclass(frozen=True)
class CloudEvent:
    headers: dict[str, str]
    body: Body


def event_headers(
    event_id: str, event_type: str, target: Target, namespace: str, time: datetime | None = None
) -> dict[str, str]:
    """The binary-mode headers KServe's logger sets (endpoint `default` for stable, `canary` for canary)."""
    stamp = _rfc3339(time or datetime.now(UTC))
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": event_type,
        # the agent's --source_uri is the pod name; Knative names predictor pods after the revision
        "ce-source": f"{target.model}-predictor-{target.role}",
        "ce-time": stamp,
        "ce-recordedtime": stamp,
        "ce-inferenceservicename": target.model,
        "ce-namespace": namespace,
        "ce-component": "predictor",
        "ce-endpoint": "canary" if target.role == "canary" else "default",
        "ce-metadata": _EMPTY_METADATA,
        "content-type": "application/json",
    }
    if target.logged_annotations:  # set only when non-empty (worker.go)
        headers["ce-annotations"] = _annotations_header(target.logged_annotations)
    return headers


@functools.lru_cache(maxsize=256)  # on the request path; a handful of targets per router
def _annotations_header(logged: tuple[tuple[str, str], ...]) -> str:
    # sdk-go v2.16.2 (KServe's pin) writes extension values as they are, JSON quotes included
    # (v2/protocol/http/write_request.go `SetExtension`); Go's json.Marshal has no spaces
    return json.dumps(dict(logged), separators=(",", ":"))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class EventLogger:
    """Posts CloudEvents from a worker thread; `log_pair` never blocks (full queue -> counted drop)."""

    def __init__(
        self,
        url: str,
        metrics: RouterMetrics,
        namespace: str = "default",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.metrics = metrics
        self.namespace = namespace
        self.timeout_s = timeout_s
        PipelinedConnection(url, timeout_s)  # an unusable URL fails here, at start, not in the worker
        self._queue: queue.Queue[CloudEvent | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None

    def log_pair(self, target: Target, request_body: Body, response_body: Body) -> str:
        """Queue the request and response events of one inference; returns their shared ce-id."""
        # uuid4() reads os.urandom, a syscall that gives up the GIL on the request path; version-4 UUIDs
        # from the process's PRNG are as unique for event ids
        event_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
        now = datetime.now(UTC)
        for event_type, body in ((REQUEST_TYPE, request_body), (RESPONSE_TYPE, response_body)):
            headers = event_headers(event_id, event_type, target, self.namespace, now)
            self._enqueue(CloudEvent(headers, body))
        return event_id

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> EventLogger:
        self._thread = threading.Thread(target=self._deliver, name="cloudevent-logger", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then end the worker."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):  # a full queue still drains; the join below bounds the wait
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout=timeout_s)
        self._thread = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _enqueue(self, event: CloudEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.metrics.logger_dropped.labels("queue_full").inc()

    def _deliver(self) -> None:
        connection = PipelinedConnection(self.url, self.timeout_s)
        try:
            while True:
                batch = [self._queue.get()]  # wait for one, then take what else is queued
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                stop = batch[-1] is None
                events = [event for event in batch if event is not None]
                if events:
                    self._post(connection, events)
                if stop:
                    return
        finally:
            connection.close()

    def _post(self, connection: PipelinedConnection, events: list[CloudEvent]) -> None:
        encoded: list[tuple[dict[str, str], bytes]] = []
        for event in events:
            try:
                body = event.body() if callable(event.body) else event.body
            except Exception as exc:  # a payload the converter cannot read must not end the worker
                self.metrics.logger_dropped.labels("encode_failed").inc()
                log.warning("cloudevent %s not encoded: %s", event.headers["ce-type"], exc)
                continue
            encoded.append((event.headers, body))
        statuses = connection.post_all(encoded)
        delivered = sum(1 for status in statuses if 200 <= status < 300)
        if delivered:
            self.metrics.logger_sent.inc(delivered)
        for (headers, _), status in zip(encoded, statuses, strict=True):
            if not 200 <= status < 300:
                self.metrics.logger_dropped.labels("post_failed").inc()
                failure = f"status {status}" if status else "no answer"
                log.warning("cloudevent %s to %s failed: %s", headers["ce-type"], self.url, failure)
