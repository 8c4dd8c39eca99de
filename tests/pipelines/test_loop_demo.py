"""`python -m pipelines.loop_demo.run`: the closed loop with the real serving path (Triton + router whose
CloudEvents reach the drift service), real Prometheus, Alertmanager and retrain trigger, and a real
retraining run (fast specs) that deploys its challenger as a canary into the demo's runtime."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.paths import REPO_ROOT
from pipelines.loop_demo import run as loop_demo_run
from pipelines.loop_demo.probes import LoopDemoError
from pipelines.loop_demo.run import DemoOptions, Timeline, run_demo
from pipelines.loop_demo.world import shifted_rows
from tests.helpers.fast_specs import fast_specs

MODEL = "conversion-xgboost"
DEMO_TIMEOUT_S = 600


# ----------------------------------------------------------------------------------------- fast
def test_shifted_rows_move_only_the_named_features_by_their_spread():
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"sessions_7d": rng.integers(0, 10, 400), "duration_s": rng.uniform(5, 50, 400)})
    shifted = shifted_rows(rows, ["sessions_7d"], 2.0)
    moved = shifted["sessions_7d"] - rows["sessions_7d"]
    assert abs(moved.mean() - 2.0 * rows["sessions_7d"].std()) < 1.0  # rounded to whole sessions
    assert shifted["sessions_7d"].dtype == rows["sessions_7d"].dtype
    pd.testing.assert_series_equal(shifted["duration_s"], rows["duration_s"])
    with pytest.raises(LoopDemoError, match="no column pricing_messages"):
        shifted_rows(rows, ["pricing_messages"], 1.0)


def test_any_models_numeric_columns_shift_without_the_demo_generator():
    rows = pd.DataFrame({"m00": [0.0, 1.0, 2.0, 3.0], "m01": [5.0] * 4, "label": ["a", "b", "a", "b"]})
    shifted = shifted_rows(rows, ["m00", "m01"], 2.0, demo=False)
    np.testing.assert_allclose(shifted["m00"] - rows["m00"], 2.0 * rows["m00"].std())
    np.testing.assert_allclose(shifted["m01"], 7.0)  # a constant column moves by the magnitude itself
    pd.testing.assert_series_equal(shifted["label"], rows["label"])
    with pytest.raises(LoopDemoError, match="label: not numeric"):
        shifted_rows(rows, ["label"], 1.0, demo=False)


def test_timeline_counts_from_the_shift(monkeypatch):
    clock = iter([1000.0, 1002.5])  # the monotonic clock at each mark
    monkeypatch.setattr(loop_demo_run, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    timeline = Timeline()
    timeline.mark("shift start", 500)
    timeline.mark("first detection", 700)
    (name, seconds, requests) = timeline.events[1]
    assert (name, requests) == ("first detection", 200) and seconds == 2.5
    assert timeline.events[0][1:] == (0.0, 0)
    assert "first detection" in timeline.lines()[2]


def test_bad_options_fail_with_the_flag_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="--stop-after 'never'"):
        run_demo(DemoOptions(stop_after="never"), say=lambda _: None)
    with pytest.raises(LoopDemoError, match="--drift-features no_such_feature"):
        run_demo(DemoOptions(drift_features=("no_such_feature",)), say=lambda _: None)


# ------------------------------------------------------------------------------- slow: the loop
def _run(argv: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture(scope="module")
def platform_home(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """100 customers, Feast applied and materialized, fast specs, and a first champion of MODEL."""
    home = tmp_path_factory.mktemp("loop-demo")
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow/mlflow.db",
        "MLOPS_SPEC_DIR": str(home / "specs"),
    }
    env.pop("FEATURE_DATA_URI", None)
    fast_specs(home / "specs")
    for argv in (
        ["-m", "feature_repo.demo_data", "--customers", "100"],
        ["-m", "feature_repo.store", "bootstrap"],
        ["-m", "pipelines.local_run", "--models", MODEL, "--reason", "test: first champion"],
    ):
        done = _run(argv, env, 600)
        assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return home, env


def _processes_under(home: Path) -> list[str]:
    """Command lines of live processes that name `home` (Prometheus, Alertmanager, Triton, services)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(home) in argv:
            found.append(f"{proc.name}: {argv[:200]}")
    return found


@pytest.mark.slow
@pytest.mark.serving
def test_drifted_traffic_starts_one_retraining_run_and_everything_stops(platform_home):
    # Up to "run start": the retraining run itself (~2 min here) and its canary are covered by the
    # pipeline tests; the whole demo was measured by hand (README / report).
    home, env = platform_home
    # An earlier demo's run logs: the trigger's ids restart at 1 and its logs are appended to.
    (home / "logs").mkdir(parents=True, exist_ok=True)
    (home / "logs" / "retrain-1.log").write_text(f"release (earlier run):\n  {MODEL}: rollback v1 (stale)\n")
    (home / "logs" / "retrain-2.exit").write_text("0\n")
    argv = ["-m", "pipelines.loop_demo.run", "--model", MODEL, "--time-scale", "30", "--window-size", "200"]
    done = _run([*argv, "--stop-after", "run-start"], env, DEMO_TIMEOUT_S)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]

    # The world drifted: the retraining run's window (the demo data's range) holds shifted rows.
    manifest = json.loads((home / "data" / "manifest.json").read_text())
    assert manifest["drift"][0]["features"] == ["sessions_7d"] and manifest["drift"][0]["kind"] == "covariate"

    events = _timeline(done.stdout)
    assert list(events) == [
        "shift start",
        "first detection",
        "alert firing (ModelInputDriftDetected)",
        "retraining run started",
    ]
    seconds = [s for s, _ in events.values()]
    assert seconds == sorted(seconds)
    saved = json.loads((home / "logs" / "loop-demo-timeline.json").read_text())
    assert {name: (round(e["seconds"], 1), e["requests"]) for name, e in saved.items()} == events
    # One detector window (200 rows) of shifted requests flags drift: not fewer, and not many windows.
    assert 200 <= events["first detection"][1] <= 400
    reason = re.search(r"retraining run: '(ModelInputDriftDetected fingerprint=\w+ startsAt=\S+)'", output)
    assert reason, output[-3000:]
    # The trigger started exactly one run (its log file; the run's own output is still buffered).
    runs = [
        p.name for p in (home / "logs").glob("retrain-*.log") if re.fullmatch(r"retrain-\d+\.log", p.name)
    ]
    assert runs == ["retrain-1.log"]
    assert "(stale)" not in (home / "logs" / "retrain-1.log").read_text()
    assert not (home / "logs" / "retrain-2.exit").exists()

    # Everything stopped: the services, Triton, and the retraining run the demo left unfinished.
    pid = int(re.search(r"stopping the retraining run \(pid (\d+)\)", output)[1])
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert _processes_under(home) == [], "the demo left processes running"


def _timeline(output: str) -> dict[str, tuple[float, int]]:
    table = output.split("closed loop timeline", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    events = {}
    for line in table[1:]:
        match = re.match(r"^(.+?)\s+(\d+\.\d)\s+(\d+)$", line)
        assert match, line
        events[match[1]] = (float(match[2]), int(match[3]))
    return events
