"""The detector alone, through the project's `DriftDetector` interface: clean streams (false alarms and
throughput) and shifted streams (detection delay).

Batch detectors score consecutive full windows of the spec's size, as the drift service does. Online ones
score one request at a time; after an alarm they are reset to their fitted state, because the expected run
time they are configured with is the mean number of requests from a reset to a false alarm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.bench.stats import Throughput, batch_alarm_positions, detection_delay


@dataclass
class StreamResult:
    alarms: list[int]  # 1-based request numbers at which an alarm was raised
    throughput: Throughput


def run_stream(detector, rows: pd.DataFrame, window: int) -> StreamResult:
    """Feed `rows` in order; timed in wall and process CPU time (the process runs one thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    alarms = _online_alarms(detector, rows) if detector.online else _batch_alarms(detector, rows, window)
    used = Throughput(len(rows), time.perf_counter() - wall, time.process_time() - cpu)
    return StreamResult(alarms, used)


def _batch_alarms(detector, rows: pd.DataFrame, window: int) -> list[int]:
    full = len(rows) // window
    verdicts = [detector.score(rows.iloc[i * window : (i + 1) * window]).drift for i in range(full)]
    return batch_alarm_positions(verdicts, window)


def _online_alarms(detector, rows: pd.DataFrame) -> list[int]:
    fitted = detector.state()
    alarms = []
    for index in range(len(rows)):
        if detector.score(rows.iloc[index : index + 1]).drift:
            alarms.append(index + 1)
            detector.restore(fitted)
    detector.restore(fitted)
    return alarms


def shift_delay(detector, streams, window: int, seed: int, drifted_rows: int) -> tuple[int | None, int]:
    """Detection delay on clean rows followed by shifted ones, and the false alarms raised before the shift.

    The shift starts at a seeded random point inside a window (batch) or after a seeded burn-in (online):
    a real shift does not wait for a window to begin.
    """
    rng = np.random.default_rng(seed)
    clean_rows = window + int(rng.integers(0, window))
    rows = streams.shifted_stream(clean_rows, drifted_rows, seed)
    alarms = run_stream(detector, rows, window).alarms
    before = [a for a in alarms if a <= clean_rows]
    if detector.online and before:  # an online alarm resets the detector; measure from the last reset
        alarms = [a for a in alarms if a > clean_rows]
    return detection_delay(alarms, clean_rows), len(before)
