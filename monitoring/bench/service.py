"""The drift service end to end: `python -m monitoring.drift_service` on loopback, fed KServe-logger-style
request CloudEvents (binary mode, one row each) by `wrk`, with the detector running on full windows, and
(unless `--no-journal`) checkpoints and the write-ahead journal on as the cluster's manifest runs it.

Per-core throughput is events over the CPU time the service process used while under load (read from
/proc), so the load generator's own CPU on the shared cores is not counted against the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from core.ports import free_ports
from core.raw_features import oip_inputs
from inference.bench import wrk
from inference.bench.servers import HOST
from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.router import logger
from inference.router.isvc import Route
from inference.router.logger import REQUEST_TYPE
from monitoring.bench.stats import Throughput

READY_TIMEOUT_S = 120.0
SETTLE_AGE_S = 1.0
SETTLE_TIMEOUT_S = 30.0


def event_body(row: pd.Series) -> dict:
    """An OIP request with one input per raw feature column, as the tabular transformer sends them
    (core/raw_features.py: numbers FP32 [1], text BYTES [1])."""
    arrays = {
        str(name): np.array([value], dtype=object if isinstance(value, str) else np.float32)
        for name, value in row.items()
    }
    return {"inputs": oip_inputs(arrays)}


def event_headers(model: str, version: str) -> dict[str, str]:
    """What KServe's logger sends for a request to the revision serving `version` (the router's headers)."""
    target = Route(model, version, logged_annotations=((MODEL_VERSION_KEY, version),)).targets[0]
    return logger.event_headers("bench", REQUEST_TYPE, target, "default")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def drift_service(
    detectors: Path,
    buffer_size: int,
    log: Path,
    state: Path | None = None,
    extra: Sequence[str] = (),
    environment: dict[str, str] | None = None,
) -> Iterator[tuple[str, int]]:
    port = free_ports(1)[0]
    command = [
        sys.executable, "-m", "monitoring.drift_service", "--port", str(port), "--detectors", str(detectors),
        "--buffer-size", str(buffer_size), "--max-pending", str(max(10_000, buffer_size)),
        "--log-level", "warning",
        # A partial last window is scored a second after the load stops, so every row can be counted.
        "--max-age-s", str(SETTLE_AGE_S),
    ]  # fmt: skip
    if state is not None:  # as deployed: progress checkpoints and the journal of acknowledged rows
        command += ["--checkpoint-dir", str(state / "checkpoints"), "--journal-dir", str(state / "journal")]
    command += extra
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        env = {**os.environ, **(environment or {})}
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://{HOST}:{port}"
    try:
        _wait_ready(process, f"{url}/readyz", log)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"drift service exited with code {process.returncode} while starting (log {log})"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"drift service not ready at {url} after {READY_TIMEOUT_S:.0f} s (log {log})")


def _totals(url: str) -> dict[str, float]:
    """Request events received, rows scored and rows dropped, summed over models and versions."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals = dict.fromkeys(("received", "scored", "dropped"), 0.0)
    for line in text.splitlines():
        if line.startswith("mlops_drift_events_received_total{") and 'kind="request"' in line:
            totals["received"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("mlops_drift_rows_scored_total{"):
            totals["scored"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("mlops_drift_events_dropped_total{"):
            totals["dropped"] += float(line.rsplit(" ", 1)[1])
    return totals


def received_requests(url: str) -> float:
    """`mlops_drift_events_received` for requests, summed over models and versions."""
    return _totals(url)["received"]


def settled(url: str, expected: int = 0, timeout_s: float = SETTLE_TIMEOUT_S) -> dict[str, float]:
    """The totals once `expected` requests were received and every received row is scored or counted
    dropped (one row per event), or as they stand after `timeout_s`: the caller reports `unscored`."""
    deadline = time.monotonic() + timeout_s
    while True:
        totals = _totals(url)
        totals["unscored"] = totals["received"] - totals["scored"] - totals["dropped"]
        done = totals["received"] >= expected and totals["unscored"] <= 0
        if done or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


def measure_service(
    detector_dir: Path, row: pd.Series, model: str, version: str, window: int, work: Path, args
) -> tuple[Throughput, dict, dict[str, float]]:
    """Events per second (wall and per core of the service) at `args.service_concurrency` connections."""
    body = work / "event.json"
    body.write_text(json.dumps(event_body(row)))
    script = wrk.write_script(body, work / "event.lua", event_headers(model, version))
    state = None if args.no_journal else work / "drift-state"
    with drift_service(detector_dir.parent, window, work / "drift-service.log", state) as (url, pid):
        wrk.run_wrk(url + "/", script, args.service_concurrency, 1)  # warm-up
        before_cpu, before_count = cpu_seconds(pid), received_requests(url)
        summary = wrk.run_wrk(url + "/", script, args.service_concurrency, args.duration_s)
        used_cpu, counted = cpu_seconds(pid) - before_cpu, received_requests(url) - before_count
        totals = settled(url)  # warm-up included: every event the service ever acknowledged
    accepted = int(summary["requests"])
    extra = {"wrk": summary, "events_counted_by_service": counted, "service_cpu_s": used_cpu}
    extra["journal"] = state is not None
    return Throughput(accepted, float(summary["duration_s"]), used_cpu), extra, totals
