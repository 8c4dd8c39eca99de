"""Doubles for the retrain trigger's tests: a recording submitter whose runs stay in flight until the test
finishes them, a settable clock, the bearer token, and Alertmanager webhook payloads (version 4) built from
the recorded sample."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from monitoring.retrain_trigger.state import RunRecord
from monitoring.retrain_trigger.submitters import RunOutcome

SAMPLE = Path(__file__).resolve().parents[1] / "monitoring" / "data" / "alertmanager_webhook_v4.json"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeSubmitter:
    """Records submissions; each run stays in flight until the test calls `finish`."""

    def __init__(self) -> None:
        self.submitted: list[RunRecord] = []
        self.waited: list[int] = []
        self.fail_with: Exception | None = None
        self._done: dict[int, tuple[threading.Event, list[RunOutcome]]] = {}

    def submit(self, run: RunRecord) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.submitted.append(run)
        return f"fake-{run.id}"

    def started(self, run: RunRecord) -> str | None:
        return None  # the restart tests here crash before starting; tests below crash after it

    def wait(self, run: RunRecord, on_running: Callable[[], None]) -> RunOutcome:
        self.waited.append(run.id)
        on_running()
        event, outcome = self._slot(run.id)
        event.wait(30)
        return outcome[0] if outcome else RunOutcome(False, "test ended")

    def finish(self, run_id: int, succeeded: bool = True) -> None:
        event, outcome = self._slot(run_id)
        outcome.append(RunOutcome(succeeded, "finished by the test"))
        event.set()

    def release_all(self) -> None:
        for event, _ in self._done.values():
            event.set()

    def _slot(self, run_id: int) -> tuple[threading.Event, list[RunOutcome]]:
        return self._done.setdefault(run_id, (threading.Event(), []))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def payload(fingerprint: str = "5f3a2c9b8e1d7a46", starts_at: str | None = None, **labels: str) -> dict:
    body = json.loads(SAMPLE.read_text())
    alert = body["alerts"][0]
    alert["fingerprint"] = fingerprint
    alert["startsAt"] = starts_at or alert["startsAt"]
    alert["labels"].update(labels)
    return body
