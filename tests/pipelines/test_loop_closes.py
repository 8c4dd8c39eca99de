"""The monitoring loop closes on this machine: drifted payloads -> drift service -> Prometheus alert ->
Alertmanager -> retrain trigger -> one local retraining run, and only one per drift episode.

Real processes throughout (Prometheus, Alertmanager, the drift service in the serving environment, the
retrain trigger); the alert timers are time-scaled (x30) in the generated local files only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from core.settings import variable
from inference.deploy.annotations import NAMESPACE
from monitoring.local_stack_config import duration_s, scaled
from monitoring.local_stack_runner import SERVING_PYTHON, LocalMonitoringStack, StackError
from tests.helpers.drifted_demo import DRIFT_START, drifted_tables, session_rows
from tests.helpers.environment import require_executable
from tests.helpers.kserve_events import kserve_headers
from tests.helpers.specs import FIXTURE_SPEC_DIR
from tests.helpers.waiting import wait_for

MODEL, VERSION, ALERT = "conversion-xgboost", "1", "ModelInputDriftDetected"
TIME_SCALE = 30
WINDOW_ROWS = 250
WAIT_S = 90.0


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------ fast: config
def test_durations_are_scaled_to_whole_seconds_never_below_one():
    assert duration_s("1h30m") == 5400 and duration_s("500ms") == 0.5
    assert (scaled("5m", 30), scaled("30m", 30), scaled("30s", 30), scaled("5m", 1)) == (
        "10s",
        "60s",
        "1s",
        "300s",
    )
    with pytest.raises(ValueError, match="'5 minutes'"):
        duration_s("5 minutes")


def test_generated_configuration_passes_promtool_and_amtool(tmp_path):
    promtool = require_executable("promtool", "make deb-packages")
    amtool = require_executable("amtool", "make deb-packages")
    stack = LocalMonitoringStack(tmp_path / "detectors", home=tmp_path, time_scale=TIME_SCALE)
    prometheus_yml, alertmanager_yml = stack.write_configs()

    config = yaml.safe_load(prometheus_yml.read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs == {
        "drift-detector": [f"127.0.0.1:{stack.ports['drift']}"],
        "retrain-trigger": [f"127.0.0.1:{stack.ports['trigger']}"],
    }
    # the target label the Operator adds on a cluster, which the rules keep and the route matches
    assert {job["static_configs"][0]["labels"]["namespace"] for job in config["scrape_configs"]} == {
        NAMESPACE
    }
    assert config["global"]["evaluation_interval"] == "1s"
    checked = _run(promtool, "check", "config", prometheus_yml)  # loads the rule files too
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rule_files = [Path(p) for p in config["rule_files"]]
    checked = _run(promtool, "check", "rules", *rule_files)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = {
        r.get("alert"): r
        for f in rule_files
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
    }
    assert (rules[ALERT]["for"], rules[ALERT]["keep_firing_for"]) == ("10s", "60s")

    alertmanager = yaml.safe_load(alertmanager_yml.read_text())
    (retrain_route,) = alertmanager["route"]["routes"]
    assert (retrain_route["group_wait"], retrain_route["group_interval"]) == ("1s", "10s")
    (webhook,) = next(r for r in alertmanager["receivers"] if r["name"] == "retrain")["webhook_configs"]
    assert webhook["url"] == f"{stack.url('trigger')}/v1/alerts"
    assert Path(webhook["http_config"]["authorization"]["credentials_file"]).read_text().strip()
    checked = _run(amtool, "check-config", alertmanager_yml)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_predictor_target_adds_the_predictor_scrape_job(tmp_path):
    stack = LocalMonitoringStack(tmp_path, home=tmp_path, predictor_target="127.0.0.1:8002")
    config = yaml.safe_load(stack.write_configs()[0].read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "inference-predictor"]
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:8002"], "labels": {"namespace": NAMESPACE, "pod": "local-triton"}}
    ]
    assert not [job for job in config["scrape_configs"] if job["job_name"] == "router"]
    assert config["global"]["scrape_interval"] == "15s"  # no time scale: the real durations


@pytest.mark.serving
def test_a_process_that_dies_at_start_up_is_named_and_the_rest_are_stopped(tmp_path):
    stack = LocalMonitoringStack(tmp_path / "no-such-detectors", home=tmp_path, ready_timeout_s=60)
    with pytest.raises(StackError, match=r"drift-service exited during start-up: see .*drift-service\.log"):
        stack.__enter__()
    assert "--detectors" in (tmp_path / "logs" / "drift-service.log").read_text()
    assert not stack._processes  # stopped and waited for, the three that did start included


# ------------------------------------------------------------------------------ slow: the real loop
def _demo_sessions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training-set shaped demo rows: (pre-drift, drifted on sessions_7d with magnitude 2)."""
    frame = session_rows(drifted_tables())
    before = frame["event_timestamp"] < DRIFT_START
    return frame[before].reset_index(drop=True), frame[~before].reset_index(drop=True)


def _cloud_event(url: str, rows: pd.DataFrame, columns: list[str], event_id: str) -> urllib.request.Request:
    """A KServe-logger request event (binary mode) carrying an OIP v2 request, one input per column."""
    inputs = []
    for column in columns:
        values = rows[column]
        if pd.api.types.is_numeric_dtype(values):
            data, datatype = values.astype("float64").fillna(np.nan).tolist(), "FP64"
        else:
            data, datatype = values.astype(str).tolist(), "BYTES"
        inputs.append({"name": column, "shape": [len(rows)], "datatype": datatype, "data": data})
    headers = kserve_headers(MODEL, VERSION, event_id)
    body = json.dumps({"inputs": inputs}, allow_nan=True).encode()
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _metric(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("loop")
    fit_rows, drifted = _demo_sessions()
    training_set = root / "train.parquet"
    fit_rows.to_parquet(training_set, index=False)
    bundle = root / "detectors" / MODEL / VERSION
    with pytest.MonkeyPatch.context() as patch:
        # The detector fit and the stack's services read the model's spec by name.
        patch.setenv(variable("spec_dir"), str(FIXTURE_SPEC_DIR))
        fitted = _run(
            SERVING_PYTHON,
            "-m",
            "monitoring.detectors.fit",
            "--model",
            MODEL,
            "--training-set",
            training_set,
            "--version",
            VERSION,
            "--out",
            bundle,
            "--reference-rows",
            "500",
        )
        assert fitted.returncode == 0, fitted.stderr
        runs_file = root / "runs.jsonl"
        record_argv = (
            f"import json, sys; open({str(runs_file)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')"
        )
        stack = LocalMonitoringStack(
            root / "detectors",
            home=root / "home",
            time_scale=TIME_SCALE,
            cooldown_s=86400,
            local_command=[sys.executable, "-c", record_argv],
            buffer_size=WINDOW_ROWS,
            max_age_s=3600,
        )
        with stack:
            columns = json.loads((bundle / "detector.json").read_text())["features"]
            yield {"stack": stack, "drifted": drifted, "runs_file": runs_file, "columns": columns}
    assert not stack.exited() and not stack._processes  # stop() waited for every process


def _post_drifted(loop: dict[str, Any], start: int, prefix: str) -> None:
    stack, rows = loop["stack"], loop["drifted"].iloc[start : start + WINDOW_ROWS]
    for offset in range(0, WINDOW_ROWS, 125):
        request = _cloud_event(
            f"{stack.url('drift')}/", rows.iloc[offset : offset + 125], loop["columns"], f"{prefix}-{offset}"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def _runs(loop: dict[str, Any]) -> list[list[str]]:
    path: Path = loop["runs_file"]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _resend_as_alertmanager(stack: LocalMonitoringStack, alert: dict[str, Any]) -> list[str]:
    """Post `alert` (as Alertmanager's API lists it) to the trigger in webhook v4 form; the outcomes."""
    webhook_alert = {
        key: alert[key] for key in ("labels", "annotations", "startsAt", "endsAt", "fingerprint")
    }
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "retrain",
        "alerts": [{**webhook_alert, "status": "firing"}],
    }
    request = urllib.request.Request(
        f"{stack.url('trigger')}/v1/alerts",
        data=json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "authorization": f"Bearer {stack.token_file.read_text().strip()}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    return [result["outcome"] for result in answer["alerts"]]


@pytest.mark.slow
@pytest.mark.serving
def test_drift_fires_the_alert_and_submits_exactly_one_retrain(loop):
    stack = loop["stack"]
    _post_drifted(loop, 0, "episode-a")
    drift = stack.url("drift")
    _wait_for(
        "drift detected", lambda: _metric(drift, "mlops_drift_detected", model=MODEL, version=VERSION) == 1
    )

    firing = _wait_for(
        "Prometheus alert firing",
        lambda: [
            a
            for a in _get_json(f"{stack.url('prometheus')}/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == ALERT and a["state"] == "firing"
        ],
    )
    assert firing[0]["labels"]["model"] == MODEL and firing[0]["labels"]["action"] == "retrain"
    alertmanager = stack.url("alertmanager")
    in_alertmanager = _wait_for("Alertmanager holds the alert", lambda: _alertmanager_alerts(alertmanager))
    assert in_alertmanager[0]["labels"]["model"] == MODEL
    trigger = stack.url("trigger")
    _wait_for(
        "trigger run submitted",
        lambda: _metric(trigger, "mlops_retrain_trigger_runs_total", model=MODEL, status="submitted") == 1,
    )
    assert _metric(trigger, "mlops_retrain_trigger_webhooks_total", outcome="triggered") == 1
    (argv,) = _wait_for("local command ran", lambda: _runs(loop))
    assert argv[argv.index("--models") + 1] == MODEL
    assert ALERT in argv[argv.index("--reason") + 1]

    # The same episode goes on: more drifted windows, detector runs again, the alert keeps firing.
    last_run = _metric(drift, "mlops_drift_last_run_timestamp_seconds", model=MODEL, version=VERSION)
    _post_drifted(loop, WINDOW_ROWS, "episode-a-more")

    def newer_run() -> float:
        run = _metric(drift, "mlops_drift_last_run_timestamp_seconds", model=MODEL, version=VERSION)
        return run if run > last_run else 0.0

    rerun_at = _wait_for("second detector run", newer_run)
    # That nothing is resent can only be watched for, not seen: the window is Alertmanager's own chances to
    # resend, i.e. it received the alert after the second run and then flushed the group twice (each flush
    # queries its notification log once; the retrain receiver is the only one with an integration).
    _wait_for(
        "Alertmanager received the alert after the second run",
        lambda: [a for a in _alertmanager_alerts(alertmanager) if _unix_s(a["updatedAt"]) > rerun_at],
    )
    flushes = _metric(alertmanager, "alertmanager_nflog_queries_total")
    _wait_for(
        "Alertmanager flushed the alert's group twice",
        lambda: _metric(alertmanager, "alertmanager_nflog_queries_total") >= flushes + 2,
    )
    assert len(_runs(loop)) == 1

    # Alertmanager delivers at least once: a resend of this very alert (its real fingerprint) is a no-op.
    assert _resend_as_alertmanager(stack, in_alertmanager[0]) == ["deduplicated"]
    assert len(_runs(loop)) == 1
    assert _metric(trigger, "mlops_retrain_trigger_runs_total", model=MODEL, status="submitted") == 1
    assert _metric(trigger, "mlops_retrain_trigger_webhooks_total", outcome="triggered") == 1


def _wait_for(what: str, check: Callable[[], Any]) -> Any:
    return wait_for(check, what, WAIT_S, interval_s=1.0)


def _alertmanager_alerts(url: str) -> list[dict[str, Any]]:
    return [a for a in _get_json(f"{url}/api/v2/alerts") if a["labels"]["alertname"] == ALERT]


def _unix_s(rfc3339: str) -> float:
    return pd.Timestamp(rfc3339).timestamp()
