"""Keeps the local runtime's Triton serving: a thread that notices `tritonserver` has exited on its own (a
crash, `kill -9`, the OOM killer) and starts it again on the same repository and ports, with back-off.

It does for the one process local mode owns what the kubelet does for a crashed predictor container on a
cluster (restart, CrashLoopBackOff). The restart serves every staged version again: explicit model control
with `--load-model=*` loads the whole repository. The dead server's process group (its Python-backend stubs:
Triton starts in a session of its own) is killed and its shared-memory regions removed first, so nothing
is left orphaned. While it is down the router's liveness answers 503 and requests get 502; the runtime's
Prometheus records `up == 0` for the Triton job and Triton's counters restart from zero, so the gap shows in
the metrics.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from inference.triton_dist import TritonError
from inference.triton_local import TritonLocal

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
"""Waits before successive restarts; a server that stays up `STABLE_S` starts the sequence over."""
STABLE_S = 60.0


class TritonSupervisor:
    def __init__(
        self,
        triton: TritonLocal,
        repository: Path,
        backoff_s: Sequence[float] = BACKOFF_S,
        poll_s: float = 0.25,
    ) -> None:
        self.triton = triton
        self.repository = Path(repository)
        self.backoff_s = tuple(backoff_s)
        self.poll_s = poll_s
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="triton-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the runtime stops Triton itself, so that is not taken for a crash)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.triton.startup_timeout_s + 10)

    def _loop(self) -> None:
        failures, up_since = 0, 0.0
        while not self._stop.wait(self.poll_s):
            if self.triton.running:
                up_since += self.poll_s
                if up_since >= STABLE_S:
                    failures = 0
                continue
            delay = self.backoff_s[min(failures, len(self.backoff_s) - 1)]
            failures, up_since = failures + 1, 0.0
            log.warning(
                "tritonserver is not running (log %s); restarting in %.1f s", self.triton.log_path, delay
            )
            self._reap()
            if self._stop.wait(delay):
                return
            try:
                self.triton.start(self.repository, self.triton.ports)
            except TritonError as error:
                log.error("tritonserver restart failed: %s", error)
                continue
            self.restarts += 1
            log.warning("tritonserver serving again (restart %d)", self.restarts)

    def _reap(self) -> None:
        """Kill what is left of the dead server's process group, then clean its files up."""
        pid = self.triton.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.triton.stop(timeout_s=0)
