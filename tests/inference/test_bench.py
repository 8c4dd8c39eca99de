"""The serving benchmark: its parsing and bookkeeping, and one short real run of every path."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from inference.bench.__main__ import parse_args, run
from inference.bench.results import (
    Measurement,
    markdown_table,
    percentile,
    summarize,
    verdicts,
)
from inference.bench.servers import BENCH_VENV
from inference.bench.wrk import RESULT_MARK, WrkError, parse_output, write_script
from tests.helpers.environment import require_executable, require_file

WRK_STDOUT = f"""Running 2s test @ http://127.0.0.1:8000/v2/models/m/infer
  1 threads and 8 connections
  1000 requests in 2.00s, 200.00KB read
{RESULT_MARK}{{"requests": 1000, "duration_us": 2000000, "socket_errors": 1, "status_errors": 10, \
"p50_us": 1500, "p99_us": 4200}}
"""


def row(path: str, protocol: str, rps: float, p99: float = 5.0, c: int = 32, errors: int = 0) -> Measurement:
    return Measurement(path, protocol, c, int(rps * 10), errors, 10.0, 1.0, p99)


def test_wrk_result_line_is_parsed_and_failed_answers_are_not_throughput() -> None:
    summary = parse_output(WRK_STDOUT)
    assert summary == {"requests": 990, "errors": 11, "duration_s": 2.0, "p50_ms": 1.5, "p99_ms": 4.2}


def test_wrk_output_without_result_line_is_an_error() -> None:
    with pytest.raises(WrkError, match="no WRK_RESULT line"):
        parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_wrk_script_posts_the_body_file_with_extra_headers(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text("{}")
    script = write_script(body, tmp_path / "post.lua", {"ce-type": "x.y"}).read_text()
    assert f'io.open("{body.resolve()}"' in script and 'wrk.headers["ce-type"] = "x.y"' in script
    assert 'wrk.method = "POST"' in script and RESULT_MARK in script


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0] * 20  # 100 values, 20 of each
    assert percentile(values, 50) == 3.0
    assert percentile(values, 99) == 5.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summarize_reports_milliseconds_and_counts() -> None:
    summary = summarize([0.001] * 98 + [0.010, 0.020], duration_s=2.0, errors=3)
    assert summary["requests"] == 100 and summary["errors"] == 3
    assert summary["p50_ms"] == pytest.approx(1.0) and summary["p99_ms"] == pytest.approx(10.0)


def test_markdown_table_has_one_line_per_measurement() -> None:
    table = markdown_table([row("triton", "http", 12_600.4), row("mlserver", "grpc", 900)])
    lines = table.splitlines()
    assert lines[0].startswith("| path | protocol | concurrency | req/s | p50 ms | p99 ms |")
    assert lines[2] == "| triton | http | 32 | 12,600 | 1.00 | 5.00 | 0 |"
    assert len(lines) == 4


def test_verdicts_judge_ratios_and_p99_at_concurrency_32() -> None:
    rows = [
        row("triton", "http", 9000),
        row("mlserver", "http", 1000),
        row("router", "http", 4000, p99=12.0),
        row("triton", "grpc", 3000),
        row("router", "http", 99_999, c=8),  # another concurrency must not count
    ]
    by_target = {v.target: v for v in verdicts(rows)}
    assert by_target["direct Triton >= 8x MLServer (http, c=32)"].met is True
    assert by_target["router >= 1/2 Triton (http, c=32)"].met is False  # 4000 < 4500
    assert "4,000 vs 9,000" in by_target["router >= 1/2 Triton (http, c=32)"].evidence
    assert by_target["router >= 1/2 Triton (grpc, c=32)"].met is None  # router gRPC not measured
    assert by_target["p99 < 10 ms, router http, c=32"].met is False
    assert by_target["p99 < 10 ms, triton grpc, c=32"].met is True


def test_bad_concurrency_flag_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--concurrency", "1,x"])
    assert parse_args(["--concurrency", "1, 8"]).concurrency == [1, 8]


@pytest.mark.slow
@pytest.mark.serving
def test_short_real_run_measures_every_path(tmp_path: Path) -> None:
    require_executable("wrk", "make bench-packages")
    require_file(BENCH_VENV / "bin" / "mlserver", "the bench environment", "make .venv-bench/.synced")
    args = parse_args(
        ["--duration-s", "1", "--warmup-s", "0.5", "--concurrency", "4", "--out", str(tmp_path)]
    )
    before = os.sched_getaffinity(0)
    report = run(args)
    body = json.loads((tmp_path / "serving.json").read_text())
    measured = {(m["path"], m["protocol"]) for m in body["measurements"]}
    expected = {("in-process", "python"), ("triton", "http"), ("triton", "grpc"), ("router", "http")}
    expected |= {("mlserver", "http"), ("mlserver", "grpc")}
    # the same load without, with and again without a shadow version
    expected |= {(f"router-shadow-{run}", p) for run in ("off-1", "on", "off-2") for p in ("http", "grpc")}
    assert expected <= measured
    for m in body["measurements"]:
        assert m["concurrency"] == 4 and m["errors"] == 0, m
        assert m["requests"] > 0 and m["throughput_rps"] > 0, m
        assert 0 < m["p50_ms"] <= m["p99_ms"] < 10_000, m
    events = body["router_events"]  # payload events reached the sink, from both sides of the split
    assert events.get("request/default", 0) > 0 and events.get("request/canary", 0) > 0, events
    assert events.get("response/default", 0) > 0, events
    assert body["router_events_sent"] > 0 and body["router_events_dropped"] >= 0  # read from its /metrics
    assert body["grpc_generator_ceiling"]["requests"] > 0
    assert body["shadow"]["compared"] > 0 and body["shadow"]["error"] == 0  # the shadow got its copies
    assert "live p99 with a shadow, grpc c=4: " in report.read_text()  # against both runs without
    # default placement: the shadow on the last CPU, the live path on the others, and back afterwards
    assert f"ran on CPU(s) [{os.cpu_count() - 1}] only" in report.read_text()
    assert os.sched_getaffinity(0) == before
    assert "| triton | http | 4 |" in report.read_text()
    assert (tmp_path / "serving.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")  # the chart
