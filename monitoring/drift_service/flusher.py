"""The drift service's background flusher: one daemon thread that runs `DriftService.run_due` at least every
`tick_s`, so windows that only grow old are scored too (a full window is scored by the event that fills
it, `DriftService.run_full`; the buffers' wakeup event still wakes this thread for one a request thread
left); a failing run is logged and flushing goes on. Each turn also flushes the journal to disk and
commits the logged predictions.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitoring.drift_service.service import DriftService

log = logging.getLogger(__name__)


class Flusher:
    """Background thread that runs `run_due` when a buffer fills and at least every `tick_s` (for age)."""

    def __init__(self, service: DriftService, tick_s: float | None = None) -> None:
        self.service = service
        self.tick_s = tick_s if tick_s is not None else min(1.0, service.max_age_s / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-flusher", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self.service.buffers.wakeup.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        wakeup = self.service.buffers.wakeup
        while not self._stop.is_set():
            wakeup.wait(self.tick_s)
            wakeup.clear()
            try:
                self.service.run_due()
                self.service.sync()
            except Exception:  # e.g. a checkpoint write failing: log it, keep flushing
                log.exception("drift flush failed")
