"""The router's parts that need no Triton: InferenceService files become routes (and a render landing mid-
check is not lost), seeded canary draws, staging a version for Triton, the CloudEvent logger (a full queue
drops, a dropped connection is reopened), public model names in Triton's answers, and the CLI."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference.deploy.annotations import MODEL_VERSION_KEY, STABLE_VERSION_KEY
from inference.local_runtime import FolderIsvcWatcher
from inference.router.__main__ import main, parse_args, uvicorn_options
from inference.router.isvc import Route, RouteError, Target, route_from_isvc
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, RouteTable, stage_model_version
from inference.router.upstream import RouterFailure, public_names
from tests.helpers.router_stack import isvc, write_isvc
from tests.helpers.waiting import wait_for


def test_a_render_landing_during_a_check_is_loaded_by_the_next_one(tmp_path: Path) -> None:
    """A rollback writes two renders back to back (canary at 0, then the champion alone). If the second
    lands while the watcher checks the first, the next check must still load it."""
    path = tmp_path / "demo.yaml"
    write_isvc(path, isvc("1", "3", 0))
    table = RouteTable([Route("demo", "1", "3", 20)])

    def servable_while_the_next_render_lands(_target: Target) -> bool:
        write_isvc(path, isvc("1"))
        return True

    watcher = IsvcWatcher([path], table, is_servable=servable_while_the_next_render_lands)
    assert watcher.check_once() and table.get("demo") == Route("demo", "1", "3", 0)
    watcher.is_servable = None
    assert watcher.check_once() and table.get("demo") == Route("demo", "1")
    assert not watcher.check_once()  # nothing new


def test_a_folder_watcher_leaves_other_kinds_alone_and_an_explicit_path_refuses_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`deploy shadow --out` writes a shadow's HTTPRoute and Triggers next to the InferenceServices."""
    write_isvc(tmp_path / "inferenceservice-demo.yaml", isvc("1"))
    for kind in ("HTTPRoute", "Trigger"):
        other = {"apiVersion": "v1", "kind": kind, "metadata": {"name": f"demo-shadow-{kind.lower()}"}}
        (tmp_path / f"{kind.lower()}-demo-shadow.yaml").write_text(yaml.safe_dump(other))
    table = RouteTable([])
    watcher = FolderIsvcWatcher(tmp_path, table, is_servable=None, interval_s=0.5)
    with caplog.at_level(logging.ERROR):
        assert watcher.check_once() and table.get("demo") == Route("demo", "1")
        assert not watcher.check_once() and not watcher.check_once()
    assert caplog.records == [] and watcher.last_error is None
    explicit = IsvcWatcher([tmp_path / "trigger-demo-shadow.yaml"], RouteTable([]))
    assert not explicit.check_once()
    assert explicit.last_error.endswith(
        "trigger-demo-shadow.yaml: no InferenceService document, only ['Trigger']"
    )


def test_isvc_fields_become_routes_with_knative_promotion_semantics() -> None:
    assert route_from_isvc(isvc("1", "2", 20)) == Route("demo", "1", "2", 20)
    assert route_from_isvc(isvc("1", "2", 0)).pick(0.0).role == "stable"  # rolled back
    assert route_from_isvc(isvc("1", "2")) == Route("demo", "2")  # field removed: canary promoted
    assert route_from_isvc(isvc("1")) == Route("demo", "1")
    # inference/deploy's render: model-version is the newest (storageUri) version, stable-version the stable
    rendered = isvc("2", "2", 20)
    rendered["metadata"]["annotations"][STABLE_VERSION_KEY] = "1"
    assert route_from_isvc(rendered) == Route("demo", "1", "2", 20)
    # each revision's events carry the version it serves (logger.metadataAnnotations, as KServe's agent)
    logged = {t.role: t.logged_annotations for t in route_from_isvc(rendered).targets}
    assert logged == {"stable": ((MODEL_VERSION_KEY, "1"),), "canary": ((MODEL_VERSION_KEY, "2"),)}
    rendered["spec"]["predictor"]["logger"]["metadataAnnotations"] = "model-version"
    with pytest.raises(RouteError, match=r"logger.metadataAnnotations must be a list of strings"):
        route_from_isvc(rendered)
    with pytest.raises(RouteError, match=r"f.yaml: spec.predictor.canaryTrafficPercent must be in 0..100"):
        route_from_isvc(isvc("1", "2", 120), "f.yaml")
    with pytest.raises(RouteError, match=r"model-version.*missing"):
        route_from_isvc({"metadata": {"name": "demo"}, "spec": {"predictor": {}}})
    with pytest.raises(RouteError, match=r"metadata\.name is missing"):
        route_from_isvc({"metadata": {}})


def test_seeded_draws_repeat_and_split_by_the_percent() -> None:
    def roles(seed: int) -> list[str]:
        table = RouteTable([Route("demo", "1", "2", 30)], seed=seed)
        return [table.choose("demo").role for _ in range(5000)]  # type: ignore[union-attr]

    first = roles(7)
    assert first == roles(7) and first != roles(8)
    assert 0.27 < first.count("canary") / 5000 < 0.33
    assert RouteTable([Route("demo", "1", "2", 100)]).choose("demo").role == "canary"  # type: ignore[union-attr]
    assert RouteTable().choose("demo") is None


def test_staging_a_version_renames_the_triton_model(tmp_path: Path) -> None:
    source = tmp_path / "export" / "demo"
    (source / "1").mkdir(parents=True)
    (source / "config.pbtxt").write_text('name: "demo"\nbackend: "python"\n')
    staged = stage_model_version(source, tmp_path / "repo", "demo", "7")
    assert staged.name == "demo__v7"
    assert (staged / "config.pbtxt").read_text().startswith('name: "demo__v7"\n')
    with pytest.raises(FileNotFoundError, match=r"no config\.pbtxt"):
        stage_model_version(tmp_path / "nowhere", tmp_path / "repo", "demo", "1")


def test_logger_counts_drops_when_its_queue_is_full_and_never_blocks() -> None:
    metrics = RouterMetrics()
    logger = EventLogger("http://127.0.0.1:9/none", metrics, queue_size=3)  # worker not started
    logged = threading.Event()

    def log_three_pairs() -> None:
        for _ in range(3):
            logger.log_pair(Target("demo", "1", "stable"), b"{}", b"{}")
        logged.set()

    threading.Thread(target=log_three_pairs, daemon=True).start()
    # Nothing drains the queue, so a put that waited for room would wait for ever.
    assert logged.wait(timeout=30), "log_pair blocked on the full queue"
    assert logger.pending == 3
    assert metrics.logger_dropped.labels("queue_full")._value.get() == 3


class _SilentCloser(BaseHTTPRequestHandler):
    """Answers like HTTP/1.1 keep-alive, then drops the connection unannounced (an idle-timeout receiver)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.server.bodies.append(self.rfile.read(int(self.headers["content-length"])))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *_: Any) -> None:
        pass


class _DroppingReceiver(ThreadingHTTPServer):
    """Counts the connections it has closed, so a test can wait until the client's one is gone."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.dropped = 0
        super().__init__(("127.0.0.1", 0), _SilentCloser)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.dropped += 1


def test_logger_reopens_a_connection_the_receiver_dropped_and_loses_no_event() -> None:
    server = _DroppingReceiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    metrics = RouterMetrics()
    logger = EventLogger(f"http://127.0.0.1:{server.server_address[1]}/events", metrics).start()
    try:
        for i in range(3):
            logger.log_pair(Target("demo", "1", "stable"), f"q{i}".encode(), lambda i=i: f"a{i}".encode())
            # The next pair must find the logger's kept-alive connection already dropped by the receiver.
            wait_for(lambda i=i: server.dropped >= 2 * (i + 1), f"receiver dropped pair {i}'s connections")
    finally:
        logger.stop()
        server.shutdown()
    assert sorted(server.bodies) == [b"a0", b"a1", b"a2", b"q0", b"q1", b"q2"]
    assert metrics.logger_sent._value.get() == 6


def test_triton_answers_get_public_names_without_touching_the_tensors() -> None:
    target = Target("demo", "2", "canary")
    plain = b'{"model_name":"demo__v2","model_version":"1","outputs":[{"data":[0.25]}]}'
    assert (
        public_names(plain, target)
        == b'{"model_name":"demo","model_version":"2","outputs":[{"data":[0.25]}]}'
    )
    with_id = b'{"id":"a\\"b","model_name":"demo__v2","model_version":"1","outputs":[]}'
    assert json.loads(public_names(with_id, target)) == {
        "id": 'a"b',
        "model_name": "demo",
        "model_version": "2",
        "outputs": [],
    }
    reordered = b'{"outputs":[],"model_name":"demo__v2"}'  # not Triton's layout: re-encoded whole
    assert json.loads(public_names(reordered, target)) == {
        "outputs": [],
        "model_name": "demo",
        "model_version": "2",
    }
    with pytest.raises(RouterFailure, match="invalid JSON"):
        public_names(b"<html>", target)


def test_cli_serves_without_access_log_on_the_fastest_loop_installed() -> None:
    options = uvicorn_options("127.0.0.1", 8081)
    assert options["access_log"] is False
    assert options["loop"] == "uvloop" and options["http"] == "httptools"  # both in platform.lock
    with pytest.raises(SystemExit):
        parse_args(["--isvc", "f.yaml", "--triton-url", "http://t", "--grpc-port", "8082"])


def test_cli_refuses_an_invalid_isvc_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "isvc.yaml"
    write_isvc(path, isvc("1", "2", -5))
    assert main(["--isvc", str(path), "--triton-url", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err.strip().endswith("canaryTrafficPercent must be in 0..100, got -5")
