"""KServe-logger-style CloudEvents (binary mode) for each inference request and response.

The drift detector receives the same events locally as from KServe's logger in the cluster: one POST per
event, CloudEvent attributes as `ce-*` headers, the OIP JSON as the body, and the same `ce-id` for a
request and its response. Delivery is asynchronous through a bounded queue: a slow or absent receiver
never delays a request; what cannot be queued or posted is counted in `mlops_router_logger_dropped_total`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from inference.router.metrics import RouterMetrics
from inference.router.routing import Target

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_TIMEOUT_S = 5.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CloudEvent:
    headers: dict[str, str]
    body: bytes


def event_headers(
    event_id: str, event_type: str, target: Target, namespace: str, time: datetime | None = None
) -> dict[str, str]:
    """The binary-mode headers KServe's logger sets (endpoint `default` for stable, `canary` for canary)."""
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": event_type,
        "ce-source": f"http://localhost/{target.model}",
        "ce-time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "ce-inferenceservicename": target.model,
        "ce-namespace": namespace,
        "ce-component": "predictor",
        "ce-endpoint": "canary" if target.role == "canary" else "default",
        "ce-modelversion": target.version,
        "content-type": "application/json",
    }


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
        self._queue: queue.Queue[CloudEvent | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None

    def log_pair(self, target: Target, request_body: bytes, response_body: bytes) -> str:
        """Queue the request and response events of one inference; returns their shared ce-id."""
        event_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        for event_type, body in ((REQUEST_TYPE, request_body), (RESPONSE_TYPE, response_body)):
            headers = event_headers(event_id, event_type, target, self.namespace, now)
            self._enqueue(CloudEvent(headers, body))
        return event_id

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
        with httpx.Client(timeout=self.timeout_s) as client:
            while (event := self._queue.get()) is not None:
                self._post(client, event)

    def _post(self, client: httpx.Client, event: CloudEvent) -> None:
        try:
            response = client.post(self.url, content=event.body, headers=event.headers)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.metrics.logger_dropped.labels("post_failed").inc()
            log.warning("cloudevent %s to %s failed: %s", event.headers["ce-type"], self.url, exc)
            return
        self.metrics.logger_sent.inc()
