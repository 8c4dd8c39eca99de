"""The monitoring benchmark: alarm bookkeeping, event bodies, and one short real run (serving env)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.spec.model import DEFAULT_SPEC_DIR, load_specs
from monitoring.bench.service import cpu_seconds, event_body, event_headers
from monitoring.bench.stats import (
    DetectorReport,
    Throughput,
    batch_alarm_positions,
    delay_summary,
    detection_delay,
    markdown,
    verdict_lines,
)
from tests.helpers.environment import require_executable

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_batch_alarms_are_placed_where_their_window_completes() -> None:
    assert batch_alarm_positions([False, True, False, True], window=500) == [1000, 2000]
    assert batch_alarm_positions([], window=500) == []


def test_detection_delay_counts_from_the_first_shifted_request() -> None:
    # shift after request 700: the window ending at 1000 holds 300 shifted rows and raised the alarm
    assert detection_delay([500, 1000, 1500], shift_start=700) == 300
    assert detection_delay([500], shift_start=700) is None  # only an alarm before the shift: missed
    assert detection_delay([701], shift_start=700) == 1


def test_a_missed_detection_makes_median_and_max_missing() -> None:
    assert delay_summary([300, 500, 400]) == (400.0, 500)
    assert delay_summary([300, None]) == (None, None)
    assert delay_summary([]) == (None, None)


def test_throughput_per_core_uses_cpu_time() -> None:
    used = Throughput(events=10_000, wall_s=4.0, cpu_s=2.0)
    assert used.per_s == 2_500 and used.per_core_s == 5_000
    assert Throughput(0, 0.0, 0.0).per_core_s == 0.0


def test_report_rates_false_alarms_per_10k_and_judges_the_targets() -> None:
    good = DetectorReport("m1", "tabular", "p 0.01", alone=Throughput(50_000, 2.0, 1.0))
    good.clean_requests, good.false_alarms, good.delays = 50_000, 2, [400, 450, 480]
    good.fit_s, good.load_s = 3.0, 0.4
    bad = DetectorReport("m2", "cvm_online", "ERT 500", alone=Throughput(4_000, 2.0, 1.0))
    bad.clean_requests, bad.false_alarms, bad.delays = 10_000, 20, [30, None]
    bad.fit_s, bad.load_s = 7.0, 7.0  # thresholds simulated on load
    assert good.false_alarms_per_10k == pytest.approx(0.4) and bad.false_alarms_per_10k == 20
    assert math.isnan(DetectorReport("m", "ks", "").false_alarms_per_10k)
    lines = verdict_lines([good, bad])
    assert sum("**met**" in line for line in lines[:4]) == 4
    assert all("**NOT met**" in line for line in lines[4:])
    table = markdown([good, bad]).splitlines()
    assert len(table) == 4 and "| 0.40 (2) | 450 | 480 | 3.0 | 0.4 |" in table[2] and "missed" in table[3]


def test_the_service_is_judged_per_core_and_on_every_acknowledged_event_scored() -> None:
    fast = DetectorReport("m1", "tabular", "", alone=Throughput(30_000, 1.0, 1.0))
    fast.service, fast.acknowledged, fast.unscored = Throughput(12_000, 1.0, 1.0), 12_500, 0
    slow = DetectorReport("m2", "tabular", "", alone=Throughput(30_000, 1.0, 1.0))
    slow.service, slow.acknowledged, slow.unscored = Throughput(4_000, 1.0, 1.0), 4_100, 3
    lagging = DetectorReport("m3", "cvm_online", "", alone=Throughput(400, 1.0, 1.0))
    lagging.service, lagging.acknowledged, lagging.unscored = Throughput(4_000, 1.0, 1.0), 4_100, 0
    lagging.dropped = 3_000  # the detector could not keep up: counted, yet not scored
    judged = verdict_lines([fast, slow, lagging])
    lines = [line for line in judged if "service end to end" in line or "scored" in line]
    assert lines == [
        "- m1 (tabular): service end to end >= 10,000 events/s per core: **met** (12,000; limit: the detector"
        " alone, 30,000)",
        "- m1 (tabular): every acknowledged event scored: **met** (12,500 acknowledged, 0 counted dropped,"
        " 0 unscored)",
        "- m2 (tabular): service end to end >= 10,000 events/s per core: **NOT met** (4,000; limit: the"
        " detector alone, 30,000)",
        "- m2 (tabular): every acknowledged event scored: **NOT met** (4,100 acknowledged, 0 counted"
        " dropped, 3 unscored)",
        "- m3 (cvm_online): service end to end >= 10,000 events/s per core: **NOT met** (4,000; limit: the"
        " detector alone, 400)",
        "- m3 (cvm_online): every acknowledged event scored: **NOT met** (4,100 acknowledged, 3,000 counted"
        " dropped, 0 unscored)",
    ]


def test_event_body_has_one_typed_input_per_raw_column() -> None:
    body = event_body(pd.Series({"sessions_7d": 3, "plan_tier": "pro"}))
    assert body["inputs"] == [
        {"name": "sessions_7d", "shape": [1], "datatype": "FP32", "data": [3.0]},
        {"name": "plan_tier", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
    ]
    headers = event_headers("conversion-xgboost", "1")
    assert headers["ce-type"] == "org.kubeflow.serving.inference.request"
    assert headers["ce-annotations"] == '{"serving.mlops-loop.io/model-version":"1"}'
    assert headers["ce-inferenceservicename"] == "conversion-xgboost" and "ce-modelversion" not in headers


def test_cpu_seconds_grow_with_work() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds(os.getpid()) > before


@pytest.mark.slow
@pytest.mark.serving
def test_short_real_run_of_a_batch_detector(tmp_path: Path) -> None:
    require_executable("wrk", "make bench-packages")
    command = [
        sys.executable, "-m", "monitoring.bench", "--models", "conversion-xgboost",
        "--clean-requests", "1000", "--seeds", "2", "--duration-s", "1", "--out", str(tmp_path),
        "--store-events", "2000", "--batch-events", "200",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (report,) = json.loads((tmp_path / "monitoring.json").read_text())["reports"]
    assert report["model"] == "conversion-xgboost" and report["kind"] == "tabular"
    (spec,) = load_specs(DEFAULT_SPEC_DIR, names=["conversion-xgboost"])  # the bench runs the demo specs
    window = spec.monitoring.window.size
    # the clean streams, plus the clean window before each shift
    assert report["clean_requests"] == 2 * (1000 + window)
    assert report["alone"]["events"] == 2000 and report["alone"]["cpu_s"] > 0
    assert report["service"]["events"] > 0 and report["service"]["cpu_s"] > 0
    # every event the service acknowledged (warm-up included) was scored once the load stopped
    assert report["unscored"] == report["dropped"] == 0
    assert report["acknowledged"] >= report["service"]["events"]
    # the payload-store run: 10 objects of 100 inferences, every request row read and scored
    assert report["store_expected"] == report["store"]["events"] == 1000 and report["store"]["cpu_s"] > 0
    assert report["store_unscored"] == 0
    assert len(report["delays"]) == 2 and all(d is not None and 0 < d <= 2000 for d in report["delays"])
    assert "| conversion-xgboost | tabular |" in (tmp_path / "monitoring.md").read_text()
    assert (tmp_path / "monitoring.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")  # the chart
