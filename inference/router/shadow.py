"""Shadow rollout, locally: the router plays the Gateway's `RequestMirror` filter for a route that names a
shadow version (`serving.mlops-loop.io/shadow-version`, isvc.py) and copies the share of live requests
its `serving.mlops-loop.io/shadow-percent` names (default all).

On a cluster (Standard mode) the Gateway API HTTPRoute that inference/deploy/shadow.py renders copies each
live infer request (`percent` of them) to the shadow InferenceService, and the Gateway "MUST ignore" the
mirror's responses (gateway-api v1.5.1 apis/v1/httproute_types.go, HTTPRouteFilterRequestMirror). Here the
router does the same: after it has produced a live answer, it schedules `ShadowMirror.offer` on its event
loop (it runs once the request's task has handed its answer to the server), which sends the copy, as one
message, to the mirror's own process (shadow_worker.py) and returns. That process sends it to the shadow's
Triton model (`<model>__v<shadow>`) over OIP REST, compares both answers (shadow_compare.py) and serves the
comparison on its own /metrics (`metrics_url`). Nothing of the shadow's answer is ever written to a client:
the router never receives it.

Why a process of its own, fed by a non-blocking socket: with the mirror's threads and the comparison in the
router's process, and again with a `multiprocessing` queue (whose feeder thread must take the interpreter
lock for every copy), the live p99 rose above the plain router's run-to-run spread in `make bench`
(docs/measured.md): any thread of the router's that runs Python per copy makes the event loop wait for the
lock. Here the event loop itself pickles the copy and `send`s it on a SOCK_SEQPACKET socket pair (one
message per copy, never partial) and nothing else runs in the router. On a cluster the mirroring is the
Gateway's (Envoy, outside the model's process) and the shadow has its own pods; the process at the lowest
CPU priority is their stand-in.

Never slows or fails a live request: the socket is non-blocking and its send buffer is the queue
(`queue_bytes`; the kernel caps it at net.core.wmem_max): a full buffer, or a copy larger than the buffer
can ever hold, drops the copy and counts it in the router's own `mlops_router_shadow_dropped_total{reason}`;
the shadow's failures, timeouts and a shadow version Triton does not serve are the comparator's
`mlops_shadow_requests_total{result="error"}`. If the router's process dies, the mirror's socket reads end
of file and its process ends too.

gRPC requests are copied as their protobuf wire bytes and converted to OIP JSON in the mirror's process
(oip_proto.py), as the payload logger converts them; the Gateway mirror renders only the REST infer path
(inference/deploy/shadow.py says why).
"""

from __future__ import annotations

import pickle
import random
import select
import socket
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.paths import REPO_ROOT
from core.ports import HOST
from inference.router.isvc import Target
from inference.router.metrics import RouterMetrics
from inference.router.shadow_priority import format_cpus

DEFAULT_QUEUE_BYTES = 4 * 1024 * 1024
DEFAULT_WORKERS = 1  # one shadow call at a time: the shadow competes with live requests for the CPU
DEFAULT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0  # the mirror's process imports numpy and prometheus_client before it answers


@dataclass(frozen=True)
class ShadowCopy:
    """One answered live request for the mirror's process: the request and the live answer as OIP JSON
    (REST) or as the protobuf messages' wire bytes (`grpc`: converted to OIP JSON over there). Bytes only:
    kserve's generated messages do not pickle."""

    shadow: Target
    request: bytes
    live_answer: bytes
    live_latency_s: float
    grpc: bool = False


def triton_address(triton_url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(triton_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"shadow mirror: Triton URL {triton_url!r} must be http://host:port")
    return parts.hostname, parts.port or 80


class ShadowMirror:
    """The router's side: a non-blocking socket to the mirror's process; `offer` never blocks."""

    def __init__(
        self,
        triton_url: str,
        metrics: RouterMetrics,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        workers: int = DEFAULT_WORKERS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        metrics_port: int = 0,
        seed: int | None = None,
        repository: Path | None = None,
        cpus: frozenset[int] | None = None,
    ) -> None:
        triton_address(triton_url)  # a bad URL is the caller's error now, not the child's later
        self.triton_url, self.workers, self.timeout_s = triton_url, workers, timeout_s
        self.queue_bytes, self.metrics_port = queue_bytes, metrics_port
        self.repository = repository  # known: the shadow gets a Triton of its own (shadow_triton.py)
        self.cpus = cpus  # the mirror's process and its Triton run there only (shadow_priority.pin_to)
        self.metrics = metrics
        self._random = random.Random(seed)  # the route's shadow percent: which live requests are copied
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._metrics_url: str | None = None

    def draw(self, percent: int) -> bool:
        """Whether to copy this live request, `percent` of the time (the Gateway mirror's `percent`)."""
        return percent >= 100 or (percent > 0 and self._random.random() * 100 < percent)

    def offer(self, shadow: Target, request: Any, live_answer: Any, live_latency_s: float) -> None:
        """Send a copy of one answered live request for `shadow` (OIP JSON bytes, or the gRPC messages) to
        the mirror's process; a full buffer, a copy too large for it or a stopped mirror drops it
        (counted)."""
        if isinstance(request, bytes):
            copy = ShadowCopy(shadow, request, live_answer, live_latency_s)
        else:  # microseconds (protobuf's C serializer), the rest of the conversion is the mirror's
            wire = request.SerializeToString(), live_answer.SerializeToString()
            copy = ShadowCopy(shadow, *wire, live_latency_s, grpc=True)
        reason = "stopped"
        if self._socket is not None:
            try:
                self._socket.send(pickle.dumps(copy, protocol=pickle.HIGHEST_PROTOCOL))
                return
            except BlockingIOError:
                reason = "queue_full"
            except OSError:  # EMSGSIZE: more than the send buffer can ever hold
                reason = "too_large"
        self.metrics.shadow_dropped.labels(shadow.model, shadow.version, reason).inc()

    @property
    def pid(self) -> int | None:
        """The mirror's process, while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> ShadowMirror:
        """Start the mirror's process (it reads the socket once it has imported what it needs)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.queue_bytes)
        # what the kernel made of it (doubled, capped by net.core.wmem_max): no message can be larger
        buffer_bytes = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        command = [
            sys.executable, "-m", "inference.router.shadow_worker", "--fd", str(theirs.fileno()),
            "--max-message-bytes", str(buffer_bytes), "--triton-url", self.triton_url,
            "--workers", str(self.workers), "--timeout-s", str(self.timeout_s),
            "--metrics-host", HOST, "--metrics-port", str(self.metrics_port),
        ] + (["--repository", str(self.repository)] if self.repository else []) + (
            ["--cpus", format_cpus(self.cpus)] if self.cpus else []
        )  # fmt: skip
        try:
            self._process = subprocess.Popen(command, pass_fds=[theirs.fileno()], cwd=REPO_ROOT)
        finally:
            theirs.close()  # the child's copy keeps it open: our end reads EOF once the child is gone
        ours.setblocking(False)
        self._socket = ours
        return self

    @property
    def metrics_url(self) -> str:
        """The comparator's /metrics (waits for the mirror's process to have bound its port)."""
        if self._metrics_url is None:
            if self._socket is None:
                raise RuntimeError("shadow mirror: not started")
            readable, _, _ = select.select([self._socket], [], [], START_TIMEOUT_S)
            port = self._socket.recv(64) if readable else b""
            if not port.isdigit():
                raise RuntimeError(f"shadow mirror: its process did not start within {START_TIMEOUT_S:.0f} s")
            self._metrics_url = f"http://{HOST}:{int(port)}/metrics"
        return self._metrics_url

    def stop(self, timeout_s: float = 30.0) -> None:
        """Close the socket: the mirror's process finishes what it holds and stops its Triton (up to
        `timeout_s`), then ends."""
        if self._socket is not None:
            self._socket.close()
        if self._process is not None:
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout_s)
        self._socket, self._process, self._metrics_url = None, None, None
