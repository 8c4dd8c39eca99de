"""A Triton killed under load serves again (#18 item 11): `kill -9` of the local runtime's tritonserver while
a client keeps sending requests through the router; the supervisor reaps its process group and restarts it
on the same ports and repository, every staged version loads again, the router's liveness follows Triton
(503 while it is down), and the gap shows in Triton's own counters, which restart from zero."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from inference.router.__main__ import build_settings, parse_args
from inference.router.app import create_app
from inference.triton_local import TritonLocal
from inference.triton_supervisor import TritonSupervisor
from tests.helpers.environment import served_test
from tests.helpers.router_stack import N_FEATURES, stage_two_versions, tensor, triton_counts
from tests.helpers.servers import serving_in_thread
from tests.helpers.waiting import wait_for

RECOVERY_S = 30.0  # the acceptance: serving again within 30 s
BODY = {"inputs": [tensor(np.ones((2, N_FEATURES), dtype=np.float32))]}


def _successes(triton: TritonLocal) -> float:
    counts = triton_counts(triton.metrics_url).items()
    return sum(value for (_, family), value in counts if family == "nv_inference_request_success")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@served_test
@pytest.mark.timeout(300)
def test_a_killed_triton_is_restarted_and_serves_every_version_again(tmp_path: Path) -> None:
    _, isvc = stage_two_versions(tmp_path)
    triton = TritonLocal(log_path=tmp_path / "triton.log", model_control_mode="explicit")
    with triton.start(tmp_path / "repo"):
        supervisor = TritonSupervisor(triton, tmp_path / "repo", backoff_s=(0.5,))
        supervisor.start()
        settings = build_settings(parse_args(["--isvc", str(isvc), "--triton-url", triton.http_url]))
        with serving_in_thread(create_app(settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
            codes: list[int] = []
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(base_url=url, timeout=10) as loader:
                    while not stop.is_set():
                        codes.append(loader.post("/v2/models/demo/infer", json=BODY).status_code)

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            wait_for(lambda: codes.count(200) >= 20, "traffic before the kill", 30)
            old_pid = triton.pid
            os.kill(old_pid, signal.SIGKILL)
            served = len(codes)
            wait_for(lambda: supervisor.restarts == 1 and triton.is_ready(), "Triton restarted", RECOVERY_S)
            for version in ("1", "2"):  # the restart loaded every staged version
                wait_for(lambda v=version: triton.is_model_ready(f"demo__v{v}"), f"demo__v{version}", 30)
                answer = client.post(f"/v2/models/demo/versions/{version}/infer", json=BODY)
                assert answer.status_code == 200, answer.text
            wait_for(lambda: codes[served:].count(200) >= 20, "traffic after the restart", 30)
            stop.set()
            loader.join(30)
            assert not _group_alive(old_pid), "the dead server's stubs were left running"
            assert set(codes) <= {200, 502, 503}, set(codes)  # the gap failed fast, nothing hung
            # Triton's counters restarted from zero: short of every answer the client got by the 20+ it
            # got before the kill.
            assert _successes(triton) + 10 < codes.count(200) + 2
            assert client.get("/v2/health/live").status_code == 200
            assert client.get("/v2").json()["name"] == "triton"

            supervisor.stop()  # unsupervised, a dead Triton leaves the router not live
            os.kill(triton.pid, signal.SIGKILL)
            wait_for(lambda: client.get("/v2/health/live").status_code == 503, "liveness follows Triton", 30)
            assert client.post("/v2/models/demo/infer", json=BODY).status_code == 502
