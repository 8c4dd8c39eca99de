"""The retrain trigger end to end: HTTP app on a tmp sqlite with a recording submitter (our own interface),
one real-socket run with the real LocalSubmitter, and the KfpSubmitter against a tiny fake KFP API."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from core.spec.model import load_specs
from monitoring.retrain_trigger.__main__ import main as trigger_main
from monitoring.retrain_trigger.alerts import parse_webhook
from monitoring.retrain_trigger.app import TriggerService, create_app
from monitoring.retrain_trigger.deployed import DeployedPipeline
from monitoring.retrain_trigger.state import RunRecord, StateStore
from monitoring.retrain_trigger.submitters import (
    DEFAULT_PIPELINE_PACKAGE,
    KfpSubmitter,
    LocalSubmitter,
)
from tests.helpers.kfp_api import fake_kfp
from tests.helpers.metrics_text import sample_value
from tests.helpers.raw_http import stalled_upload_answer
from tests.helpers.servers import serving_in_thread
from tests.helpers.specs import FIXTURE_SPEC_DIR
from tests.helpers.trigger_doubles import AUTH, SAMPLE, TOKEN, Clock, FakeSubmitter, payload
from tests.helpers.waiting import wait_for

# Servers in threads and waits on them: a hang fails here in minutes, not at the suite-wide timeout.
pytestmark = pytest.mark.timeout(120)
HOUR = 3600.0


@pytest.fixture(scope="module")
def models() -> list[str]:
    return [spec.name for spec in load_specs(FIXTURE_SPEC_DIR)]


@pytest.fixture
def fake() -> Iterator[FakeSubmitter]:
    submitter = FakeSubmitter()
    yield submitter
    submitter.release_all()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "trigger.db"


@contextmanager
def running_app(db: Path, submitter, models, clock) -> Iterator[tuple[TestClient, TriggerService]]:
    service = TriggerService(StateStore(db), submitter, models, clock=clock)
    with TestClient(create_app(service, TOKEN)) as client:
        yield client, service


@pytest.fixture
def app(db, fake, models, clock) -> Iterator[tuple[TestClient, TriggerService]]:
    with running_app(db, fake, models, clock) as pair:
        yield pair


def post(client: TestClient, body: dict) -> list[dict]:
    response = client.post("/v1/alerts", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["alerts"]


def outcome(client: TestClient, body: dict) -> str:
    return post(client, body)[0]["outcome"]


def metric(text: str, name: str, **labels: str) -> float:
    value = sample_value(text, name, **labels)
    assert value is not None, f"{name}{labels} not exported"
    return value


# ------------------------------------------------------------------------------------------- payloads
def test_sample_payload_parses_with_alertmanager_fields(models):
    body = json.loads(SAMPLE.read_text())
    body["alerts"][0]["newFieldFromAFutureAlertmanager"] = {"x": 1}
    parsed = parse_webhook(json.dumps(body).encode(), models)
    alert = parsed.alerts[0]
    assert (parsed.version, parsed.truncated_alerts, parsed.group_labels["model"]) == ("4", 0, alert.model)
    assert alert.starts_at_utc == "2026-11-22T10:15:30.123456Z"  # nanoseconds cut to one canonical form
    assert alert.wants_retrain and alert.reason().startswith("ModelInputDriftDetected fingerprint=")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "expected 'Bearer <token>'"), ({"Authorization": "Bearer nope"}, "wrong bearer token")],
)
def test_requests_without_the_token_are_unauthorized(app, fake, headers, reason):
    client, _ = app
    response = client.post("/v1/alerts", json=payload(), headers=headers)
    assert response.status_code == 401 and reason in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer" and fake.submitted == []
    assert (
        metric(client.get("/metrics").text, "mlops_retrain_trigger_webhooks_total", outcome="unauthorized")
        == 1
    )


def _mutated(change: Callable[[dict], object]) -> bytes:
    body = payload()
    change(body)
    return json.dumps(body).encode()


BAD_BODIES = [
    (b"\xff\xfe\x00garbage", "body: not valid JSON"),
    (b"[1, 2]", "body: expected a JSON object (Alertmanager webhook version 4), got a JSON array"),
    (_mutated(lambda b: b.update(version="3")), "version: unsupported webhook version '3'"),
    (_mutated(lambda b: b.pop("alerts")), "alerts: required field is missing"),
    (_mutated(lambda b: b["alerts"][0]["labels"].pop("model")), "alerts[0].labels.model: required label"),
    (
        _mutated(lambda b: b["alerts"][0]["labels"].update(model="nope")),
        "alerts[0].labels.model: unknown model",
    ),
    (_mutated(lambda b: b["alerts"][0].update(startsAt="yesterday")), "alerts[0].startsAt: "),
    (_mutated(lambda b: b["alerts"][0].update(startsAt="2026-11-22T10:15:30")), "alerts[0].startsAt: "),
    (_mutated(lambda b: b["alerts"][0].pop("fingerprint")), "alerts[0].fingerprint: required field"),
]


@pytest.mark.parametrize(("body", "reason"), BAD_BODIES)
def test_malformed_webhooks_are_rejected_with_the_field(app, fake, body, reason):
    client, _ = app
    response = client.post("/v1/alerts", content=body, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith(reason) and "\n" not in error
    assert fake.submitted == []
    assert (
        metric(client.get("/metrics").text, "mlops_retrain_trigger_webhooks_total", outcome="rejected") == 1
    )


def test_oversized_bodies_are_refused(db, fake, models, clock):
    service = TriggerService(StateStore(db), fake, models, clock=clock)
    with TestClient(create_app(service, TOKEN, max_body_bytes=512)) as client:
        response = client.post("/v1/alerts", json=payload(padding="x" * 1000), headers=AUTH)
    assert response.status_code == 413 and "512-byte limit" in response.json()["error"]


def test_a_stalled_body_is_answered_408_and_starts_nothing(db, fake, models, clock):
    service = TriggerService(StateStore(db), fake, models, clock=clock)
    with serving_in_thread(create_app(service, TOKEN, read_timeout_s=0.5)) as url:
        answer = stalled_upload_answer(url, {**AUTH, "content-type": "application/json"}, path="/v1/alerts")
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'{"error":"body: not received whole within 0.5 s"}' in answer
    assert sample_value(metrics, "mlops_retrain_trigger_webhooks_total", outcome="rejected") == 1
    assert fake.submitted == []


def test_resolved_and_non_retrain_alerts_are_ignored(app, fake):
    client, _ = app
    resolved_alert = payload()
    resolved_alert["alerts"][0]["status"] = "resolved"
    resolved_group = payload(fingerprint="aa")
    resolved_group["status"] = "resolved"
    results = [
        post(client, body)[0] for body in (resolved_alert, resolved_group, payload("bb", action="page"))
    ]
    assert [(r["outcome"], r["reason"]) for r in results] == [
        ("ignored", "resolved"),
        ("ignored", "resolved"),
        ("ignored", "no action=retrain label"),
    ]
    assert fake.submitted == []
    text = client.get("/metrics").text
    assert metric(text, "mlops_retrain_trigger_webhooks_total", outcome="ignored_resolved") == 2


# ------------------------------------------------------------------------------------------ decisions
def test_a_failed_run_frees_the_model_after_the_short_back_off(app, fake, clock):
    client, service = app
    first = post(client, payload())[0]
    fake.finish(first["run_id"], succeeded=False)
    wait_for(lambda: service.store.run(first["run_id"]).status == "failed")
    clock.now += 60  # within the back-off: still cooling down
    assert outcome(client, payload("second")) == "cooldown"
    clock.now += service.failure_backoff_s  # long before the 6-hour cool-down would end
    second = post(client, payload("third"))[0]
    assert second["outcome"] == "triggered" and len(fake.submitted) == 2
    fake.finish(second["run_id"])
    wait_for(lambda: service.store.run(second["run_id"]).status == "succeeded")
    clock.now += service.failure_backoff_s  # a run that succeeded keeps the whole cool-down
    assert outcome(client, payload("fourth")) == "cooldown"


def test_dedup_cooldown_in_flight_and_retrigger(app, fake, clock):
    client, service = app
    first = post(client, payload())[0]
    assert first["outcome"] == "triggered" and [r.model for r in fake.submitted] == ["conversion-xgboost"]
    assert fake.submitted[0].reason.startswith("ModelInputDriftDetected fingerprint=5f3a2c9b8e1d7a46")
    # The same alert again, and as an HA peer spells the same instant in another zone: duplicates.
    assert outcome(client, payload()) == "deduplicated"
    assert outcome(client, payload(starts_at="2026-11-22T11:15:30.123456+01:00")) == "deduplicated"
    clock.now += HOUR
    assert outcome(client, payload("second")) == "cooldown"
    assert outcome(client, payload("other-model", model="conversion-mlp")) == "triggered"
    clock.now += 6 * HOUR  # cool-down over, but the first run still runs
    assert outcome(client, payload("third")) == "in_flight"
    fake.finish(first["run_id"])
    wait_for(lambda: service.store.run(first["run_id"]).status == "succeeded")
    assert outcome(client, payload("fourth")) == "triggered"
    assert len(fake.submitted) == 3
    text = client.get("/metrics").text
    for name, expected in [("triggered", 3), ("deduplicated", 2), ("cooldown", 1), ("in_flight", 1)]:
        assert metric(text, "mlops_retrain_trigger_webhooks_total", outcome=name) == expected
    assert (
        metric(text, "mlops_retrain_trigger_runs_total", model="conversion-xgboost", status="submitted") == 2
    )
    assert metric(text, "mlops_retrain_trigger_runs_in_flight", model="conversion-xgboost") == 1
    assert metric(text, "mlops_retrain_trigger_runs_in_flight", model="intent-transformer") == 0


def test_ha_pair_sending_the_same_alert_at_once_starts_one_run(app, fake):
    _, service = app
    parsed = parse_webhook(json.dumps(payload()).encode(), service.models)
    barrier, outcomes = threading.Barrier(4), []

    def deliver() -> None:
        barrier.wait()
        outcomes.append(service.handle(parsed)[0].outcome)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["deduplicated"] * 3 + ["triggered"] and len(fake.submitted) == 1


def test_failed_submission_answers_503_and_the_resend_triggers(app, fake):
    client, service = app
    fake.fail_with = RuntimeError("KFP API unreachable")
    response = client.post("/v1/alerts", json=payload(), headers=AUTH)
    assert response.status_code == 503 and "KFP API unreachable" in response.json()["error"]
    assert [run.status for run in service.store.runs()] == ["failed"]
    fake.fail_with = None
    assert outcome(client, payload()) == "triggered"  # not deduplicated, not cooled down
    text = client.get("/metrics").text
    assert metric(text, "mlops_retrain_trigger_runs_total", model="conversion-xgboost", status="failed") == 1


def test_unusable_state_database_answers_503(app, db, fake):
    client, _ = app
    for leftover in db.parent.glob(f"{db.name}-*"):
        leftover.unlink()
    db.write_bytes(b"this is not a sqlite database" * 100)
    response = client.post("/v1/alerts", json=payload(), headers=AUTH)
    assert response.status_code == 503 and str(db) in response.json()["error"]
    assert client.get("/readyz").status_code == 503 and fake.submitted == []


def test_restart_neither_loses_nor_repeats_a_run(db, models, clock):
    # A crash between persisting and submitting: the alert and its `pending` run are on disk, nothing ran.
    store = StateStore(db)
    store.initialize()
    crashed = store.admit(
        fingerprint="5f3a2c9b8e1d7a46",
        starts_at="2026-11-22T10:15:30.123456Z",
        model="conversion-xgboost",
        alertname="ModelInputDriftDetected",
        reason="from before the crash",
        now=clock(),
        cooldown_s=HOUR,
    )
    first, second = FakeSubmitter(), FakeSubmitter()
    try:
        with running_app(db, first, models, clock) as (client, _):
            assert [run.id for run in first.submitted] == [crashed.run.id]
            assert outcome(client, payload()) == "deduplicated"  # Alertmanager's resend of that alert
        with running_app(db, second, models, clock) as (client, service):
            assert second.submitted == [] and outcome(client, payload()) == "deduplicated"
            wait_for(lambda: second.waited == [crashed.run.id])  # resumed watching, not resubmitted
            second.finish(crashed.run.id, succeeded=False)
            wait_for(lambda: service.store.run(crashed.run.id).status == "failed")
            assert client.get("/readyz").json() == {"status": "ready"}
    finally:
        first.release_all()
        second.release_all()


# ---------------------------------------------------------------------------------- real processes
def test_real_socket_with_the_local_submitter(tmp_path, db, models, clock):
    command = [sys.executable, "-c", "import sys; print('args', sys.argv[1:]); sys.exit(0)"]
    submitter = LocalSubmitter(command, logs_dir=tmp_path / "logs", poll_s=0.05)
    service = TriggerService(StateStore(db), submitter, models, clock=clock)
    with serving_in_thread(create_app(service, TOKEN)) as url:
        assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}
        response = httpx.post(f"{url}/v1/alerts", json=payload(), headers=AUTH)
        assert response.status_code == 200 and response.json()["counts"] == {"triggered": 1}
        run_id = response.json()["alerts"][0]["run_id"]
        wait_for(lambda: service.store.run(run_id).status == "succeeded")
        assert "mlops_retrain_trigger_runs_in_flight" in httpx.get(f"{url}/metrics").text
    log = (tmp_path / "logs" / f"retrain-{run_id}.log").read_text()
    assert "'--models', 'conversion-xgboost', '--reason', 'ModelInputDriftDetected fingerprint=" in log
    assert "--start" not in log and "--end" not in log  # the spec's own window, nothing demo-specific
    assert service.store.run(run_id).finished_at == clock.now


def test_local_submitter_reads_the_exit_code_of_a_run_started_before_a_restart(tmp_path):
    command = [sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(3)"]
    run = RunRecord(7, "conversion-mlp", "test", "pending", 0.0, None, None, None, None)
    external_id = LocalSubmitter(command, logs_dir=tmp_path, poll_s=0.05).submit(run)
    restarted = LocalSubmitter(command, logs_dir=tmp_path, poll_s=0.05)  # not the parent: polls
    running: list[bool] = []
    result = restarted.wait(
        RunRecord(7, "conversion-mlp", "test", "submitted", 0.0, 0.0, None, external_id, None),
        on_running=lambda: running.append(True),
    )
    assert running == [True] and not result.succeeded and "exit code 3" in result.detail


@pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")
def test_kfp_submitter_creates_and_follows_a_run_on_the_kfp_api():
    runs, states = [], ["PENDING", "RUNNING", "RUNNING"]
    run = RunRecord(
        5, "conversion-sklearn", "DriftAlert fingerprint=ab", "pending", 0.0, None, None, None, None
    )
    with serving_in_thread(fake_kfp(runs, states)) as url:
        submitter = KfpSubmitter(url, DEFAULT_PIPELINE_PACKAGE, poll_s=0.01)
        external_id = submitter.submit(run)
        running: list[bool] = []
        result = submitter.wait(
            RunRecord(5, run.model, run.reason, "submitted", 0.0, 0.0, None, external_id, None),
            on_running=lambda: running.append(True),
        )
    assert external_id == "kfp-run-1" and result.succeeded and running == [True] and states == []
    body = runs[0]
    assert body["display_name"] == "retrain-conversion-sklearn-5" and body["experiment_id"] == "exp-1"
    assert body["runtime_config"]["parameters"] == {"models": ["conversion-sklearn"], "reason": run.reason}
    # the PipelineVersion GitOps deployed from this image's commit, by id (what was synced is what runs)
    current = DeployedPipeline.of_package(DEFAULT_PIPELINE_PACKAGE)
    assert body["pipeline_version_reference"]["pipeline_version_id"] == f"pv-{current.version}"


def test_entry_point_refuses_a_missing_token_file(tmp_path, capsys):
    argv = [
        "--state-db",
        str(tmp_path / "s.db"),
        "--token-file",
        str(tmp_path / "missing"),
        "--mode",
        "local",
    ]
    assert trigger_main(argv) == 2
    assert "token file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ crash points
def _pending_run(db: Path, clock) -> RunRecord:
    store = StateStore(db)
    store.initialize()
    admission = store.admit(
        fingerprint="c0ffee", starts_at="2026-12-05T10:00:00Z", model="conversion-xgboost",
        alertname="ModelInputDriftDetected", reason="before the crash", now=clock(), cooldown_s=HOUR,
    )  # fmt: skip
    return admission.run


@pytest.mark.parametrize("crash", ["after_persisting", "after_starting"])
def test_a_crash_at_any_point_of_submission_starts_the_run_once(tmp_path, db, models, clock, crash):
    """kill -9 of the trigger after it persisted the run (nothing started) or after it started the run's
    process but before it recorded that: the restart starts or adopts the run, never both."""
    starts = tmp_path / "starts"
    command = [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); import time; time.sleep(0.5)"]
    run = _pending_run(db, clock)
    if crash == "after_starting":  # the dead trigger's submission: the process runs on in its session
        LocalSubmitter(command, logs_dir=tmp_path / "logs", poll_s=0.05).submit(run)
    restarted = TriggerService(
        StateStore(db), LocalSubmitter(command, logs_dir=tmp_path / "logs", poll_s=0.05), models, clock=clock
    )
    restarted.recover()
    wait_for(lambda: restarted.store.run(run.id).status == "succeeded", "the run finished", 30)
    assert starts.read_text() == "x"  # started exactly once
    assert restarted.store.runs(("pending", "submitted", "running")) == []


def test_a_pending_run_waits_while_the_submitter_cannot_tell_whether_it_started(db, models, clock):
    class Unsure(FakeSubmitter):
        def __init__(self) -> None:
            super().__init__()
            self.asked = 0

        def started(self, run: RunRecord) -> str | None:
            self.asked += 1
            if self.asked < 3:
                raise ConnectionError("KFP API unreachable")
            return None

    run = _pending_run(db, clock)
    submitter = Unsure()
    service = TriggerService(StateStore(db), submitter, models, clock=clock, resume_retry_s=0.05)
    try:
        service.recover()
        assert service.store.run(run.id).status == "pending" and submitter.submitted == []
        wait_for(lambda: [r.id for r in submitter.submitted] == [run.id], "submitted once it could tell", 10)
        assert submitter.asked == 3
    finally:
        submitter.release_all()


@pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")
def test_kfp_submitter_finds_a_run_it_started_by_its_name():
    runs: list[dict] = []
    run = RunRecord(9, "conversion-mlp", "DriftAlert", "pending", 0.0, None, None, None, None)
    other = RunRecord(10, "conversion-mlp", "DriftAlert", "pending", 0.0, None, None, None, None)
    with serving_in_thread(fake_kfp(runs, [])) as url:
        assert KfpSubmitter(url, DEFAULT_PIPELINE_PACKAGE).started(run) is None
        external_id = KfpSubmitter(url, DEFAULT_PIPELINE_PACKAGE).submit(run)
        restarted = KfpSubmitter(url, DEFAULT_PIPELINE_PACKAGE)  # a new process: no memory of the submit
        assert restarted.started(run) == external_id and restarted.started(other) is None
    assert len(runs) == 1
