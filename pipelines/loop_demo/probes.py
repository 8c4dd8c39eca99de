"""What the closed-loop demo (pipelines/loop_demo/run.py) watches: each stage read from the real process
that owns it (the drift service's /metrics, Prometheus' alerts API, the retrain trigger's run table, the
router's routes, the model registry)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.local_stack_runner import LocalMonitoringStack

ALERT = "ModelInputDriftDetected"
TERMINAL = ("succeeded", "failed")


class LoopDemoError(RuntimeError):
    """A stage of the demo did not happen, or cannot start; the message names it and where to look."""


@dataclass
class RetrainRun:
    """The retrain trigger's record of the run it started (local mode: a process group led by `pid`)."""

    id: int
    model: str
    reason: str
    status: str
    pid: int | None
    log_path: Path

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the run's process group (its kfp.local steps with it), SIGKILL after `grace_s`."""
        if self.pid is None:
            return
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _group_alive(self.pid):
                time.sleep(0.2)
            if not _group_alive(self.pid):
                return


class LoopProbes:
    def __init__(self, stack: LocalMonitoringStack, runtime_info: Any, model: str, champion: str) -> None:
        self.stack, self.runtime, self.model, self.champion = stack, runtime_info, model, champion

    def logs_hint(self) -> str:
        return str(self.stack.logs_dir)

    def window_size(self) -> int:
        from core.spec.model import load_specs

        (spec,) = load_specs(names=[self.model])
        return int(self.stack.buffer_size or spec.monitoring.window.size)

    def drift_detected(self) -> bool:
        labels = {"model": self.model, "version": self.champion}
        return _metric(self.stack.url("drift"), "mlops_drift_detected", labels) == 1

    def rejected_events(self) -> float:
        """Events the drift service refused (a payload it cannot read: see its log for the reason)."""
        return _metric_sum(self.stack.url("drift"), "mlops_drift_events_rejected_total")

    def alert_firing(self) -> list[dict]:
        body = _get_json(f"{self.stack.url('prometheus')}/api/v1/alerts")
        return [
            a
            for a in body["data"]["alerts"]
            if a["labels"].get("alertname") == ALERT and a["labels"].get("model") == self.model
            if a["state"] == "firing"
        ]

    def retrain_run(self) -> RetrainRun | None:
        """The newest run the trigger submitted for the model (None before one is submitted)."""
        database = self.stack.config_dir / "retrain-trigger.sqlite"
        if not database.exists():
            return None
        query = "SELECT id, model, reason, status, external_id FROM runs WHERE model = ? ORDER BY id DESC"
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            row = connection.execute(query, (self.model,)).fetchone()
        if row is None or row[3] == "pending":
            return None
        external = row[4] or ""
        pid = int(external.removeprefix("pid:")) if external.startswith("pid:") else None
        return RetrainRun(row[0], row[1], row[2], row[3], pid, self.stack.logs_dir / f"retrain-{row[0]}.log")

    def finished_run(self) -> RetrainRun | None:
        run = self.retrain_run()
        return run if run is not None and run.finished else None

    def canary_version(self) -> str | None:
        """The version the router serves next to the champion (a canary), once it routes one."""
        with contextlib.suppress(OSError, ValueError):
            versions = _get_json(f"{self.runtime.router_http_url}/v2/models/{self.model}").get("versions")
            if isinstance(versions, list) and len(versions) == 2 and versions[0] == self.champion:
                return str(versions[1])
        return None

    def release_summary(self, run: RetrainRun) -> str:
        """The model's line in the run's release section (its canary decision), else the aliases."""
        from core.registry import resolve_alias

        text = run.log_path.read_text(errors="replace") if run.log_path.exists() else ""
        _, marker, release = text.rpartition("release (")  # the last run's, should the log hold more
        found = [line.strip() for line in release.splitlines() if line.strip().startswith(f"{self.model}: ")]
        if marker and found:
            return found[0]
        aliases = {alias: resolve_alias(self.model, alias) for alias in ("champion", "challenger")}
        return ", ".join(f"{alias} v{ref.version}" for alias, ref in aliases.items() if ref) or "no alias"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _metric(url: str, name: str, labels: dict[str, str]) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _metric_sum(url: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
