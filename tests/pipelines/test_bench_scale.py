"""`make bench-scale`'s harness (pipelines/bench_scale): the slope and verdict logic on real figures, the row
counts read from the steps' own log lines, the measuring of a subprocess tree, bad arguments, and the
harness end to end writing its table, JSON and chart. The fast tests stand in for the pipeline with
recorded scale results; one real run at a tiny size (two pipeline runs, 262 s on 2 cores) is in the
`acceptance` tier."""

from __future__ import annotations

import json
import math
import sys

import pytest

from pipelines.bench_scale import __main__ as harness
from pipelines.bench_scale import scale_run
from pipelines.bench_scale.measure import run_measured
from pipelines.bench_scale.report import memory_verdict, slope, step_series, ten_x_verdict
from pipelines.bench_scale.rows import read_pipeline_log

GIB = 24 * 1024


def _result(scale, pipeline_s, steps, failure=None):
    """A scale's result as run_scale returns it; a failure outside the data stages failed the pipeline."""
    failed_pipeline = failure is not None and failure["where"] not in ("demo_data", "feast_bootstrap")
    return {
        "scale": scale,
        "customers": scale * 1000,
        "steps": steps,
        "failures": [failure] if failure else [],
        "pipeline": {
            "seconds": pipeline_s,
            "peak_tree_mb": 12.0 * scale,
            "returncode": 1 if failed_pipeline else 0,
            "timed_out": False,
        },
    }


def _step(step, seconds, rows, peak=400.0, model="conversion-xgboost"):
    return {"step": step, "model": model, "seconds": seconds, "rows": rows, "peak_rss_mb": peak}


RECORDED = [
    _result(1, 120.0, [_step("demo_data", 1.5, 130_000, model="-"), _step("train", 6.0, 14_000)]),
    _result(10, 300.0, [_step("demo_data", 4.0, 1_300_000, model="-"), _step("train", 60.0, 140_000)]),
    _result(
        100, 2400.0, [_step("demo_data", 36.0, 13_000_000, model="-"), _step("train", 1200.0, 1_400_000)]
    ),
]


# ------------------------------------------------------------------------------------- slope and verdicts
def test_slope_is_the_log_ratio_of_time_over_rows():
    assert slope(6.0, 60.0, 14_000, 140_000) == pytest.approx(1.0)  # linear
    assert slope(60.0, 1200.0, 140_000, 1_400_000) == pytest.approx(math.log10(20))  # 1.30: worse
    assert slope(5.0, 5.0, 1000, 10_000) == pytest.approx(0.0)  # fixed cost
    assert slope(5.0, 5.0, 1000, 1000) is None  # the same size: no ratio
    assert slope(0.0, 5.0, 1000, 10_000) is None


def test_series_uses_rows_and_falls_back_to_customers():
    results = [
        _result(1, 100.0, [_step("train", 6.0, 14_000), _step("register", 2.0, None)]),
        _result(10, 200.0, [_step("train", 60.0, 140_000), _step("register", 4.0, None)]),
    ]
    series = step_series(results)
    train = series[("train", "conversion-xgboost")][1]
    assert (train["slope"], train["slope_by"]) == (pytest.approx(1.0), "rows")
    register = series[("register", "conversion-xgboost")][1]
    assert (register["slope"], register["slope_by"]) == (pytest.approx(math.log10(2)), "customers")


def test_ten_x_verdict_met_and_not_met():
    assert ten_x_verdict(RECORDED).startswith("10x pipeline < 3x the 1x time: met (300 s at 10x = 2.50x")
    slower = [RECORDED[0], _result(10, 400.0, [])]
    assert "NOT MET (400 s at 10x = 3.33x the 120 s at 1x)" in ten_x_verdict(slower)
    failed = [RECORDED[0], _result(10, 400.0, [], failure={"where": "train", "error": "x"})]
    assert "not measured (10x did not finish)" in ten_x_verdict(failed)


def test_a_failed_feast_stage_with_keep_going_still_gives_the_pipeline_figure():
    check = {"where": "feast_bootstrap", "error": "sqlite3.OperationalError: too many SQL variables"}
    results = [RECORDED[0], _result(10, 330.0, [], failure=check)]
    assert "met (330 s at 10x = 2.75x the 120 s at 1x)" in ten_x_verdict(results)
    verdict = memory_verdict([_result(100, 900.0, [], failure=check)], GIB)
    assert "not decided, no out-of-memory in what ran (feast_bootstrap: sqlite3.Operational" in verdict


def test_memory_verdict_tells_an_oom_kill_from_other_failures_and_time_limits():
    assert memory_verdict(RECORDED, GIB).startswith(
        "100x: no step ran out of memory: met (peak 1.2 GiB of 24"
    )
    killed = {"where": "train", "error": "killed by signal 9 (SIGKILL: out of memory?); no output"}
    assert "NOT MET (train: killed" in memory_verdict([_result(100, 9.0, [], failure=killed)], GIB)
    stopped = {"where": "pipeline", "error": "stopped at the 1500 s time limit"}
    assert "not decided, no out-of-memory in what ran" in memory_verdict(
        [_result(100, 9.0, [], stopped)], GIB
    )
    assert "not measured" in memory_verdict(RECORDED[:1], GIB)


# ------------------------------------------------------------------------------------- rows from the log
LOG = """\
    training set for conversion-sklearn: 2052 rows, 2026-08-02 23:17 .. 2026-10-31 23:17 (the spec's ...)
    [train conversion-sklearn] conversion-sklearn: train 1436 rows, valid 308 rows, test 308 rows
    training set for intent-transformer: 89485 rows, 2026-05-05 .. 2026-10-31 (...), from request fields
    [train intent-transformer] intent-transformer: train 62640 rows, valid 8948 rows, test 17897 rows
    components.validate_data.validation.ValidationError: validate_data: conversion-sklearn: check 'min_rows'
06:02:44.555 - ERROR - Task \x1b[96m'validate-data'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
"""


def test_rows_per_step_come_from_the_steps_log_lines_and_the_fit_cap():
    parsed = read_pipeline_log(LOG)
    sklearn = parsed.rows["conversion-sklearn"]
    assert [sklearn.for_step(s) for s in ("load_features", "train", "evaluate", "register")] == [
        2052,
        1436,
        308,
        None,
    ]
    text = parsed.rows["intent-transformer"]
    text.fit_cap = 12_000  # the spec's max_train_rows: the trainer fits the newest 12,000
    assert (text.for_step("train"), text.for_step("export_triton")) == (12_000, 17_897)
    assert parsed.failed_tasks == ["validate-data"]
    assert parsed.errors[-1].startswith("ValidationError: validate_data: conversion-sklearn")


# ------------------------------------------------------------------------------------------- measuring
def test_each_timing_line_has_the_step_process_peak_memory(tmp_path, monkeypatch):
    from core.timing import read_timings, timed_step

    monkeypatch.setenv("MLOPS_TIMINGS_FILE", str(tmp_path / "timings.jsonl"))
    with timed_step("train", "conversion-sklearn"):
        held = bytearray(200 * 2**20)
    del held
    (line,) = read_timings(tmp_path / "timings.jsonl")
    assert set(line) == {"step", "model", "seconds", "peak_rss_mb"}
    assert line["peak_rss_mb"] > 200  # this process's peak, in MiB (Linux reports KiB)


def test_run_measured_sees_the_memory_of_a_grandchild_and_stops_at_the_time_limit(tmp_path):
    grandchild = "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1]])"
    hold = "b = bytearray(300 * 2**20); import time; time.sleep(1.5)"
    measured = run_measured([sys.executable, "-c", grandchild, hold], {}, tmp_path / "a.log")
    assert measured.returncode == 0 and not measured.timed_out
    assert measured.peak_tree_mb > 300
    slept = run_measured([sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path / "b.log", 1.0)
    assert slept.timed_out and slept.seconds < 30


# ------------------------------------------------------------------------------------------- the harness
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--scales", "0"], "--scales: 0 is not a positive integer"),
        (["--scales", "1,abc"], "--scales: 'abc' is not a positive integer"),
        (["--models", "no-such-model"], "--models: no spec named no-such-model"),
        (["--base-customers", "-5"], "--base-customers: -5"),
    ],
)
def test_bad_arguments_give_one_line_naming_the_value(argv, named, tmp_path, capsys):
    assert harness.main([*argv, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and named in error and "\n" not in error
    assert not (tmp_path / "scale.json").exists()


def test_harness_writes_table_json_and_chart_and_reports_a_failed_scale(tmp_path, monkeypatch, capsys):
    recorded = {r["scale"]: r for r in RECORDED}
    recorded[100] = _result(
        100, 50.0, RECORDED[2]["steps"][:1], failure={"where": "train", "error": "killed by signal 9"}
    )
    calls = []

    def fake_run_scale(scale, customers, models, out, timeout_s, keep_going):
        calls.append((scale, customers, models))
        return recorded[scale]

    monkeypatch.setattr(scale_run, "run_scale", fake_run_scale)
    argv = ["--scales", "10,1,100", "--models", "conversion-sklearn", "--base-customers", "50"]
    assert harness.main([*argv, "--out", str(tmp_path)]) == 0
    assert calls == [
        (1, 50, ["conversion-sklearn"]),
        (10, 500, ["conversion-sklearn"]),
        (100, 5000, ["conversion-sklearn"]),
    ]
    table = (tmp_path / "scale.md").read_text()
    assert "| train | conversion-xgboost | 6.0 | 14,000 | 2,333 | 400 | 60.0 | 140,000 |" in table
    assert "- 10x pipeline < 3x the 1x time: met" in table
    assert "- 100x: no step ran out of memory: NOT MET (train: killed by signal 9" in table
    assert "| 100x | 100,000 |" in table and "train: killed by signal 9" in table
    raw = json.loads((tmp_path / "scale.json").read_text())
    assert [s["scale"] for s in raw["scales"]] == [1, 10, 100] and len(raw["verdicts"]) == 3
    assert (tmp_path / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "10x pipeline < 3x the 1x time: met" in capsys.readouterr().out


@pytest.mark.acceptance
def test_a_real_tiny_run_measures_every_step(tmp_path):
    """Two real scales of one tabular model (100 and 200 customers): every pipeline step has a time and a
    peak, the data steps have rows, the slope exists."""
    argv = ["--scales", "1,2", "--base-customers", "100", "--models", "conversion-sklearn"]
    assert harness.main([*argv, "--out", str(tmp_path)]) == 0
    raw = json.loads((tmp_path / "scale.json").read_text())
    assert all(not scale["failures"] for scale in raw["scales"]), raw["scales"]
    series = {(s["step"], s["model"]): s["points"] for s in raw["series"]}
    train = series[("train", "conversion-sklearn")]
    assert len(train) == 2 and all(p["rows"] > 0 and p["peak_rss_mb"] > 0 for p in train)
    assert train[1]["rows"] > train[0]["rows"] and train[1]["slope"] is not None
    assert {"demo_data", "feast_bootstrap", "load_features", "evaluate", "register"} <= {k[0] for k in series}
    assert (tmp_path / "scale.png").stat().st_size > 10_000
