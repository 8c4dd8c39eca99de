"""`make serve` and `make monitor` find each other through runtime files under $MLOPS_HOME, the way the
pipeline finds the serving runtime: no port copied by hand, and a file left by a dead process is ignored and
removed (unless a new runtime has replaced it meanwhile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

from core.paths import monitoring_runtime_file
from inference.runtime_file import RuntimeInfo, monitoring_logger_url, remove_if_unchanged, runtime_file
from monitoring.local_stack import live_triton_target, write_runtime_file

STACK_PORTS = {"prometheus": 9090, "alertmanager": 9093, "drift": 8085, "trigger": 8086}


class _Listening:
    """What write_runtime_file reads of a running stack: the URL of each of its processes."""

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{STACK_PORTS[name]}"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_serve_finds_the_drift_service_of_a_live_monitor(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    assert monitoring_logger_url() is None  # no monitor: the logger stays off
    path = write_runtime_file(_Listening())
    assert path == monitoring_runtime_file()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    assert monitoring_logger_url() == "http://127.0.0.1:8085/"
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": _dead_pid()}))
    assert monitoring_logger_url() is None  # its monitor is gone...
    assert not path.exists()  # ...and so is the file that pointed at it


def test_monitor_scrapes_the_triton_of_a_live_serve(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    assert live_triton_target() is None
    info = RuntimeInfo(
        router_http_url="http://127.0.0.1:8181",
        router_grpc_address="127.0.0.1:8182",
        triton_http_url="http://127.0.0.1:9000",
        triton_grpc_address="127.0.0.1:9001",
        triton_metrics_url="http://127.0.0.1:9002/metrics",
        prometheus_url="http://127.0.0.1:9090",
        repository=str(tmp_path / "repo"),
        isvc_dir=str(tmp_path / "isvc"),
        pid=os.getpid(),
    )
    runtime_file().parent.mkdir(parents=True)
    runtime_file().write_text(json.dumps(asdict(info)))
    assert live_triton_target() == "127.0.0.1:9002"
    stale = json.dumps(asdict(info) | {"pid": _dead_pid()})
    runtime_file().write_text(stale)
    assert live_triton_target() is None  # `kill -9` of the serve: nothing attaches to its ports...
    assert not runtime_file().exists()  # ...and the file is gone


def test_a_stale_file_replaced_meanwhile_is_kept(tmp_path):
    path = tmp_path / "runtime.json"
    path.write_text('{"pid": 1}')  # a new runtime wrote its own after the reader saw the stale one
    remove_if_unchanged(path, '{"pid": 999999}')
    assert path.read_text() == '{"pid": 1}'
    remove_if_unchanged(path, '{"pid": 1}')
    assert not path.exists()
