"""Shadow rollout, locally: the router plays the Gateway's `RequestMirror` filter for a route that names a
shadow version (`serving.mlops-loop.io/shadow-version`, isvc.py).

On a cluster (Standard mode) the Gateway API HTTPRoute that inference/deploy/shadow.py renders copies each
live infer request to the shadow InferenceService, and the Gateway "MUST ignore" the mirror's responses
(gateway-api v1.5.1 apis/v1/httproute_types.go, HTTPRouteFilterRequestMirror). Here the router does the
same: after it has produced a live answer, it schedules `ShadowMirror.offer` on its event loop (it runs once
the request's task has handed its answer to the server), which puts the request on a bounded queue and
returns; worker threads send the copy to the shadow's Triton model (`<model>__v<shadow>`) over OIP REST and
pass both answers to the comparator (shadow_compare.py). Nothing of the shadow's answer is ever written to
a client: the workers hold no reference to the client's connection, and the answers go to the comparator
only.

Never slows or fails a live request: the offer is a non-blocking put (a full queue drops the copy and counts
it, `mlops_shadow_requests_total{result="dropped"}`); the shadow's failures, timeouts and a shadow version
Triton does not serve are counted as `result="error"` in the workers. What the workers still share with the
live path on one machine is the CPU: the workers and the shadow's Triton model instances run at the lowest
CPU priority (shadow_priority.py, the stand-in for the shadow's own pods on a cluster), and `make bench`
measures the live latency with and without a shadow (docs/measured.md).

gRPC requests are copied as their OIP JSON (oip_proto.py), converted in the worker, as the payload logger
does; the Gateway mirror renders only the REST infer path (inference/deploy/shadow.py says why).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from inference.router.isvc import Target
from inference.router.shadow_compare import Answer, ShadowComparator
from inference.router.shadow_priority import ShadowPriority

DEFAULT_QUEUE_SIZE = 256
DEFAULT_WORKERS = 1  # one shadow call at a time: the shadow competes with live requests for the CPU
DEFAULT_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)

Body = bytes | Callable[[], bytes]


@dataclass(frozen=True)
class ShadowCopy:
    shadow: Target
    request: Body
    live_answer: Body
    live_latency_s: float


class ShadowMirror:
    """Bounded queue + worker threads that call Triton's HTTP endpoint; `offer` never blocks."""

    def __init__(
        self,
        triton_url: str,
        comparator: ShadowComparator,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        workers: int = DEFAULT_WORKERS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        priority: ShadowPriority | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(triton_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"shadow mirror: Triton URL {triton_url!r} must be http://host:port")
        self._address = (parts.hostname, parts.port or 80)
        self.comparator = comparator
        self.workers = workers
        self.timeout_s = timeout_s
        self.priority = priority or ShadowPriority()
        self._queue: queue.Queue[ShadowCopy | None] = queue.Queue(maxsize=queue_size)
        self._threads: list[threading.Thread] = []

    def offer(self, shadow: Target, request: Body, live_answer: Body, live_latency_s: float) -> None:
        """Queue a copy of one answered live request for `shadow`; a full queue drops it (counted)."""
        try:
            self._queue.put_nowait(ShadowCopy(shadow, request, live_answer, live_latency_s))
        except queue.Full:
            self.comparator.dropped(shadow.model, shadow.version)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def start(self) -> ShadowMirror:
        self._threads = [
            threading.Thread(target=self._work, name=f"shadow-mirror-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Finish what is queued (up to `timeout_s`), then end the workers."""
        for _ in self._threads:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout_s)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._threads = []

    def _work(self) -> None:
        # Linux schedules threads on their own: the lowest priority for this one leaves the cores to the
        # live path whenever both want them (the copy waits, then the queue drops, as designed)
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        connection: http.client.HTTPConnection | None = None
        while (copy := self._queue.get()) is not None:
            try:
                connection = connection or http.client.HTTPConnection(*self._address, timeout=self.timeout_s)
                self._mirror(connection, copy)
            except Exception as exc:  # any failure is the shadow's: count it, keep serving the queue
                self.comparator.failed(copy.shadow.model, copy.shadow.version, _one_line(exc))
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def _mirror(self, connection: http.client.HTTPConnection, copy: ShadowCopy) -> None:
        shadow = copy.shadow
        request = copy.request() if callable(copy.request) else copy.request
        path = f"/v2/models/{shadow.triton_name}/infer"
        self.priority.lower(shadow.triton_name)
        started = time.perf_counter()
        connection.request("POST", path, body=request, headers={"content-type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        latency_s = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"triton answered {response.status} for {path}: {body[:200]!r}")
        live = copy.live_answer() if callable(copy.live_answer) else copy.live_answer
        self.comparator.compare(
            shadow.model, shadow.version, Answer(live, copy.live_latency_s), Answer(body, latency_s)
        )


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
