"""Shadow rollout through the real router and a real Triton: clients get only live answers (REST and gRPC),
the shadow version gets a copy of every answered request and its answers are compared in the mirror's own
process (its /metrics), a full shadow queue drops copies instead of holding requests, and a shadow Triton
does not serve never fails a live request.

Triton serves `demo__v1` (live) and `demo__v3`, the shadow: the same data with the labels flipped, so its
class-1 score is 1 minus v1's (tests/helpers/router_stack.py). A shadow answer that leaked to a client would
show as version 3 or as v1's scores reversed; every top class disagrees and the ranks reverse exactly.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inference.router.__main__ import build_settings, parse_args
from inference.router.app import RouterSettings, create_app
from inference.router.grpc_app import GrpcRouter
from inference.router.isvc import Route
from inference.router.metrics import RouterMetrics
from inference.router.routing import RouteTable
from inference.router.shadow import ShadowMirror
from inference.router.shadow_priority import stub_pids
from inference.triton_local import TritonLocal
from tests.helpers.environment import served_test
from tests.helpers.metrics_text import sample_value
from tests.helpers.router_stack import (
    N_FEATURES,
    fit_model,
    isvc,
    stage_versions,
    tensor,
    triton_counts,
    write_isvc,
)
from tests.helpers.servers import serving_in_thread
from tests.helpers.triton_clients import GrpcClient
from tests.helpers.waiting import wait_for


class ShadowStack:
    def __init__(self, url: str, settings: Any, models: dict, path: Path, triton: Any, grpc: GrpcRouter):
        self.url, self.settings, self.models, self.isvc, self.triton = url, settings, models, path, triton
        self.grpc = grpc
        self.rows = np.random.default_rng(1).normal(size=(3, N_FEATURES)).astype(np.float32)
        self.client = httpx.Client(base_url=url, timeout=10)

    def expected(self, version: str) -> np.ndarray:
        return self.models[version].predict_proba(self.rows.astype(np.float64))

    def infer(self, client: httpx.Client | None = None) -> httpx.Response:
        return (client or self.client).post("/v2/models/demo/infer", json={"inputs": [tensor(self.rows)]})

    def metric(self, name: str, **labels: str) -> float:
        """A comparator's series from the mirror's process, a router's own from the router."""
        url = self.settings.shadow.metrics_url if name.startswith("mlops_shadow_") else f"{self.url}/metrics"
        text = httpx.get(url, timeout=10).text
        return sample_value(text, name, model="demo", **labels) or 0.0

    def triton_successes(self, version: str) -> float:
        counts = triton_counts(self.triton.metrics_url)
        return counts.get((f"demo__v{version}", "nv_inference_request_success"), 0.0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShadowStack]:
    root = tmp_path_factory.mktemp("shadow")
    models = {"1": fit_model(0), "3": fit_model(0, flipped=True)}
    stage_versions(root, models)
    path = root / "isvc.yaml"
    write_isvc(path, isvc("1", shadow="3"))
    with TritonLocal(log_path=root / "triton.log").start(root / "repo") as triton:
        flags = ["--isvc", str(path), "--triton-url", triton.http_url, "--reload-interval-s", "0.05"]
        settings = build_settings(parse_args(flags))
        grpc = GrpcRouter(settings, triton.grpc_address)
        with serving_in_thread(create_app(settings)) as url:
            grpc.start()
            try:
                yield ShadowStack(url, settings, models, path, triton, grpc)
            finally:
                grpc.stop()


def outputs(response: httpx.Response) -> np.ndarray:
    out = response.json()["outputs"][0]
    return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])


def compared(stack: ShadowStack, version: str = "3") -> float:
    return stack.metric("mlops_shadow_requests_total", version=version, result="compared")


@served_test
def test_rest_clients_get_only_live_answers_and_the_shadow_compares_each_copy(stack: ShadowStack) -> None:
    live, shadow = stack.expected("1"), stack.expected("3")
    assert np.abs(live - shadow).min() > 0.01  # a leaked shadow answer would be told apart
    np.testing.assert_allclose(shadow[:, 1], 1 - live[:, 1], atol=1e-3)
    before = {"compared": compared(stack), "rows": stack.metric("mlops_shadow_rows_total", version="3")}
    before["agree"] = stack.metric("mlops_shadow_agreement_total", version="3")
    before["triton"] = stack.triton_successes("3")
    n = 150
    for _ in range(n):
        response = stack.infer()
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == "1"
        np.testing.assert_allclose(outputs(response), live, atol=1e-5, rtol=0)
    wait_for(lambda: compared(stack) - before["compared"] >= n, "the shadow compared every copy")
    assert compared(stack) - before["compared"] == n
    assert stack.triton_successes("3") - before["triton"] == n  # Triton itself served the copies
    assert stack.metric("mlops_shadow_rows_total", version="3") - before["rows"] == 3 * n
    assert stack.metric("mlops_shadow_agreement_total", version="3") == before["agree"]  # none agrees
    assert stack.metric("mlops_shadow_rank_correlation", version="3") == pytest.approx(-1.0)
    for role in ("live", "shadow"):
        assert stack.metric("mlops_shadow_latency_seconds_count", version="3", role=role) >= n
    assert stack.metric("mlops_router_shadow_dropped_total", version="3") == 0
    # the mirror's process runs at the lowest CPU priority too, the router's is untouched
    assert os.getpriority(os.PRIO_PROCESS, stack.settings.shadow.pid) == 19
    assert os.sched_getscheduler(stack.settings.shadow.pid) == os.SCHED_IDLE
    # the shadow's Triton instance runs at the lowest CPU priority, the live one's is untouched
    (shadow_stub,), (live_stub,) = stub_pids("demo__v3"), stub_pids("demo__v1")
    assert os.getpriority(os.PRIO_PROCESS, shadow_stub) == 19
    assert os.sched_getscheduler(shadow_stub) == os.SCHED_IDLE
    assert os.sched_getscheduler(live_stub) == os.sched_getscheduler(0)
    assert os.getpriority(os.PRIO_PROCESS, live_stub) == os.getpriority(os.PRIO_PROCESS, 0)
    mean_difference = stack.metric("mlops_shadow_score_abs_difference_sum", version="3") / stack.metric(
        "mlops_shadow_score_abs_difference_count", version="3"
    )
    assert mean_difference == pytest.approx(np.abs(live - shadow).mean(), abs=1e-3)


@served_test
def test_grpc_clients_get_only_live_answers_and_the_shadow_gets_a_copy_of_each(stack: ShadowStack) -> None:
    before, before_triton = compared(stack), stack.triton_successes("3")
    client = GrpcClient(stack.grpc.address)
    try:
        n = 60
        result = client.infer(stack.rows, repeat=n)
    finally:
        client.close()
    assert result["code"] == "OK", result
    assert {(name, version) for name, version, _ in result["answers"]} == {("demo", "1")}
    for _, _, data in result["answers"]:
        np.testing.assert_allclose(np.asarray(data, dtype=np.float64), stack.expected("1"), atol=1e-5)
    wait_for(lambda: compared(stack) - before >= n, "the shadow compared every gRPC copy")
    assert compared(stack) - before == n
    assert stack.triton_successes("3") - before_triton == n


@served_test
def test_a_shadow_triton_does_not_serve_never_fails_a_live_request(stack: ShadowStack) -> None:
    def errors() -> float:
        return stack.metric("mlops_shadow_requests_total", version="9", result="error")

    write_isvc(stack.isvc, isvc("1", shadow="9"))  # accepted: a shadow never holds a render back
    try:
        wait_for(lambda: stack.settings.table.get("demo") == Route("demo", "1", shadow_version="9"))
        before, n = errors(), 20
        for _ in range(n):
            response = stack.infer()
            assert response.status_code == 200 and response.json()["model_version"] == "1", response.text
            np.testing.assert_allclose(outputs(response), stack.expected("1"), atol=1e-5, rtol=0)
        wait_for(lambda: errors() - before >= n, "each failed copy counted as an error")
        assert errors() - before == n
    finally:
        write_isvc(stack.isvc, isvc("1", shadow="3"))
        wait_for(lambda: stack.settings.table.get("demo") == Route("demo", "1", shadow_version="3"))


@served_test
def test_a_malformed_shadow_annotation_is_refused_naming_it_and_serving_goes_on(stack: ShadowStack) -> None:
    bad = isvc("1")
    bad["metadata"]["annotations"]["serving.mlops-loop.io/shadow-version"] = "3 4"
    write_isvc(stack.isvc, bad)
    try:
        wait_for(lambda: stack.settings.watcher.last_error is not None, "the watcher refused the render")
        error = stack.settings.watcher.last_error
        assert str(stack.isvc) in error and "\n" not in error
        assert "metadata.annotations['serving.mlops-loop.io/shadow-version']" in error
        assert stack.settings.table.get("demo") == Route("demo", "1", shadow_version="3")
        assert stack.infer().status_code == 200
    finally:  # the same bytes as the loaded render: the watcher sees no change and keeps the route
        write_isvc(stack.isvc, isvc("1", shadow="3"))


@served_test
def test_with_the_repository_the_shadow_runs_on_a_triton_of_its_own_at_the_lowest_priority(
    stack: ShadowStack,
) -> None:
    metrics = RouterMetrics()
    cpus = frozenset({max(os.sched_getaffinity(0))})  # --shadow-cpus: the mirror and its Triton there only
    mirror = ShadowMirror(stack.triton.http_url, metrics, repository=stack.isvc.parent / "repo", cpus=cpus)
    route = Route("demo", "1", shadow_version="3")
    settings = RouterSettings(RouteTable([route]), stack.triton.http_url, metrics, shadow=mirror)
    before = stack.triton_successes("3")
    with serving_in_thread(create_app(settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
        n = 30
        for _ in range(n):
            response = stack.infer(client)
            assert response.status_code == 200 and response.json()["model_version"] == "1"

        def compared_here() -> float:
            text = httpx.get(mirror.metrics_url, timeout=10).text
            return sample_value(text, "mlops_shadow_requests_total", version="3", result="compared") or 0.0

        wait_for(lambda: compared_here() >= n, "the shadow's own Triton answered every copy", timeout_s=120)
        assert compared_here() == n
        assert stack.triton_successes("3") == before  # the live Triton served no shadow request
        (triton_pid,) = _children(mirror.pid, "tritonserver")
        assert os.sched_getscheduler(triton_pid) == os.SCHED_IDLE  # inherited from the mirror's process
        assert os.sched_getaffinity(triton_pid) == os.sched_getaffinity(mirror.pid) == cpus
    wait_for(lambda: not Path(f"/proc/{triton_pid}").exists(), "the shadow's Triton stopped with the mirror")


def _children(pid: int | None, name: str) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/comm").read_text().strip() == name:
                found.append(int(child))
    return found


class StalledServer:
    """Accepts connections and reads what arrives, never answers: a shadow that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.received = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(connection)
            if connection.recv(65536):
                self.received.set()

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.close()


@served_test
def test_a_full_shadow_queue_drops_copies_holds_no_live_request_and_loses_none(stack: ShadowStack) -> None:
    stalled, metrics = StalledServer(), RouterMetrics()
    # the smallest send buffer the kernel allows (about 4.5 KiB): a few copies of this request fill it
    # a stalled call fails after timeout_s: long enough for the live requests below, short for the test
    mirror = ShadowMirror(stalled.url, metrics, queue_bytes=1, timeout_s=10)
    route = Route("demo", "1", shadow_version="3")
    settings = RouterSettings(RouteTable([route]), stack.triton.http_url, metrics, shadow=mirror)
    try:
        with serving_in_thread(create_app(settings)) as url, httpx.Client(base_url=url, timeout=5) as client:
            assert stack.infer(client).status_code == 200
            wait_for(stalled.received.is_set, "the worker sent its copy to the stalled shadow", timeout_s=60)
            n = 40  # the worker waits on the stalled shadow: a few copies fit the buffer, the rest drop
            for _ in range(n):
                response = stack.infer(client)
                assert response.status_code == 200 and response.json()["model_version"] == "1"

            def count(url: str, name: str, **labels: str) -> float:
                return sample_value(httpx.get(url, timeout=5).text, name, **labels) or 0.0

            def dropped() -> float:
                return count(f"{url}/metrics", "mlops_router_shadow_dropped_total", reason="queue_full")

            assert 0 < dropped() < n
            stalled.close()  # the worker's call fails, so do the buffered copies' (nothing listens any more)

            def accounted() -> float:
                shadow_metrics = mirror.metrics_url
                errors = count(shadow_metrics, "mlops_shadow_requests_total", version="3", result="error")
                return dropped() + errors

            # every live request's copy is dropped (counted by the router) or failed (counted by the mirror)
            wait_for(lambda: accounted() >= n + 1, "each copy accounted for", timeout_s=60)
            assert accounted() == n + 1
    finally:
        stalled.close()
