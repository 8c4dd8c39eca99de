"""Where the shadow mirror sends a shadow model's copies (local mode): the shadow's own Triton, or the
router's.

With the model repository known (`--shadow-repository`; the serving runtime and the bench pass it), the
mirror's process starts a Triton of its own on that repository at the first copy (explicit model control:
it loads only the shadow models it is asked for, through Triton's repository API). That Triton is the local
stand-in for the shadow InferenceService's own pods: it shares no HTTP frontend, scheduler or model instance
with the live Triton, and as a child of the mirror's process it inherits nice 19 and SCHED_IDLE. Measured
with `make bench` (docs/measured.md): the live p99 stayed above the plain router's spread while the shadow
ran on the live Triton, and its cost came from there (a mirror that read the copies and dropped them left
the live latency unchanged).

Without a repository (a router pointed at someone else's Triton) the copies go to the router's Triton,
whose shadow model instances are lowered instead (shadow_priority.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from inference.router.shadow import triton_address
from inference.router.shadow_priority import ShadowPriority
from inference.triton_local import TritonError, TritonLocal, repository_call

RETRY_START_S = 30.0  # a Triton that failed to start is not tried again for each copy


class ShadowTriton:
    def __init__(self, shared_url: str, repository: Path | None) -> None:
        self.shared = triton_address(shared_url)
        self.repository = repository
        self.priority = ShadowPriority()
        self._triton: TritonLocal | None = None
        self._loaded: set[str] = set()
        self._failed: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def address(self, triton_name: str) -> tuple[str, int]:
        """The Triton that serves `triton_name` for the shadow (raises with one line when it cannot)."""
        if self.repository is None:
            self.priority.lower(triton_name)
            return self.shared
        with self._lock:
            triton = self._started()
            address = triton_address(triton.http_url)
            if triton_name not in self._loaded:
                repository_call(triton.http_url, "load", triton_name)
                self._loaded.add(triton_name)
            return address

    def stop(self) -> None:
        with self._lock:
            if self._triton is not None:
                self._triton.stop()
            self._triton = None

    def _started(self) -> TritonLocal:
        if self._triton is not None:
            return self._triton
        if self._failed is not None and time.monotonic() - self._failed[0] < RETRY_START_S:
            raise RuntimeError(self._failed[1])
        assert self.repository is not None
        try:
            self._triton = TritonLocal(model_control_mode="explicit", load_models=[]).start(self.repository)
        except TritonError as exc:
            message = f"the shadow's Triton did not start: {' '.join(str(exc).split())[:200]}"
            self._failed = (time.monotonic(), message)
            raise RuntimeError(message) from None
        return self._triton
