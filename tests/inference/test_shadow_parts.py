"""The parts of a shadow rollout that need no Triton: the shadow annotation read from an InferenceService,
the comparator's metrics from two answers, the mirror's bounded queue and its process's end when the router's
is killed (through the real router and Triton: test_router_shadow.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from core.paths import REPO_ROOT
from inference.deploy.annotations import SHADOW_PERCENT_KEY, SHADOW_VERSION_KEY
from inference.router.isvc import Route, RouteError, Target, route_from_isvc
from inference.router.metrics import RouterMetrics
from inference.router.shadow import ShadowMirror
from inference.router.shadow_compare import Answer, ShadowComparator
from inference.router.shadow_priority import ShadowPriority, parse_cpus, pin_tree, stub_pids
from tests.helpers.metrics_text import sample_value
from tests.helpers.router_stack import isvc
from tests.helpers.waiting import wait_for


def answer(class1: list[float], datatype: str = "FP32") -> bytes:
    data = [value for p in class1 for value in (1 - p, p)]
    output = {"name": "output__0", "datatype": datatype, "shape": [len(class1), 2], "data": data}
    return json.dumps({"model_name": "demo", "outputs": [output]}).encode()


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return sample_value(generate_latest(registry).decode(), name, model="demo", version="3", **labels)


# ------------------------------------------------------------------------------------ the annotation
def test_the_shadow_version_is_read_from_the_annotation_next_to_the_split() -> None:
    assert route_from_isvc(isvc("1", shadow="3")) == Route("demo", "1", shadow_version="3")
    route = route_from_isvc(isvc("1", "2", 20, shadow="3"))
    assert route == Route("demo", "1", "2", 20, shadow_version="3")
    assert route.shadow == Target("demo", "3", "shadow", route.shadow.logged_annotations)
    assert [t.role for t in route.targets] == ["stable", "canary"]  # the shadow never takes a request
    assert route_from_isvc(isvc("1")).shadow is None


_VERSION_PROBLEM, _PERCENT_PROBLEM = "must be a registry version", "must be an integer percent in 0..100"


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [(SHADOW_VERSION_KEY, v, _VERSION_PROBLEM) for v in ["3 4", ["3"], True, "../3", "-3"]]
    + [(SHADOW_PERCENT_KEY, v, _PERCENT_PROBLEM) for v in ["101", "-1", "12.5", "half", True, ["25"]]],
)
def test_a_malformed_shadow_annotation_is_one_line_naming_file_and_annotation(key, value, problem) -> None:
    document = isvc("1", shadow="3") if key == SHADOW_PERCENT_KEY else isvc("1")
    document["metadata"]["annotations"][key] = value
    with pytest.raises(RouteError) as refused:
        route_from_isvc(document, "isvc/demo.yaml")
    message = str(refused.value)
    assert message.startswith(f"isvc/demo.yaml: metadata.annotations[{key!r}]")
    assert problem in message and "\n" not in message


def test_the_shadow_percent_is_read_from_its_annotation_and_drawn_by_the_mirror() -> None:
    document = isvc("1", shadow="3")
    assert route_from_isvc(document).shadow_percent == 100  # no annotation: every request
    document["metadata"]["annotations"][SHADOW_PERCENT_KEY] = "25"
    assert route_from_isvc(document) == Route("demo", "1", shadow_version="3", shadow_percent=25)
    mirror = ShadowMirror("http://127.0.0.1:9", RouterMetrics(), seed=7)
    draws = [mirror.draw(25) for _ in range(4000)]
    assert 900 < sum(draws) < 1100  # 1000 expected, sd 27
    assert all(mirror.draw(100) for _ in range(100)) and not any(mirror.draw(0) for _ in range(100))


@pytest.mark.parametrize("live", [isvc("3", shadow="3"), isvc("1", "3", 20, shadow="3")])
def test_a_shadow_of_a_live_version_is_refused(live) -> None:
    with pytest.raises(RouteError, match="names 3, which already serves live traffic"):
        route_from_isvc(live, "demo.yaml")


# ----------------------------------------------------------------------------------- the comparator
def test_flipped_scores_disagree_on_every_row_and_rank_in_reverse() -> None:
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry)
    live = [0.03 + 0.08 * i for i in range(12)]  # 12 rows on both sides of 0.5, none at 0.5
    comparator.compare("demo", "3", Answer(answer(live), 0.002), Answer(answer([1 - p for p in live]), 0.004))
    assert metric(registry, "mlops_shadow_requests_total", result="compared") == 1
    assert metric(registry, "mlops_shadow_rows_total") == 12
    assert metric(registry, "mlops_shadow_agreement_total") == 0
    assert metric(registry, "mlops_shadow_rank_correlation") == pytest.approx(-1.0)
    difference = np.mean([abs(2 * p - 1) for p in live])  # |p - (1 - p)| for both classes
    assert metric(registry, "mlops_shadow_score_abs_difference_sum") == pytest.approx(difference * 12)
    assert metric(registry, "mlops_shadow_latency_seconds_sum", role="shadow") == pytest.approx(0.004)
    assert metric(registry, "mlops_shadow_latency_seconds_sum", role="live") == pytest.approx(0.002)


def test_the_rank_correlation_is_spearmans_rho_over_the_window() -> None:
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry, window=10)
    live = [0.05 * i for i in range(1, 11)]
    swapped = [*live[:3], live[4], live[3], *live[5:]]  # one adjacent pair swapped: sum of d^2 = 2
    comparator.compare("demo", "3", Answer(answer([0.9] * 30), 0.001), Answer(answer([0.9] * 30), 0.001))
    comparator.compare("demo", "3", Answer(answer(live), 0.001), Answer(answer(swapped), 0.001))
    assert math.isnan(metric(registry, "mlops_shadow_rank_correlation"))  # recomputed every 20 rows
    comparator.compare("demo", "3", Answer(answer(live), 0.001), Answer(answer(swapped), 0.001))
    n = 10  # the window holds the last 10 rows only: the constant ones are gone
    assert metric(registry, "mlops_shadow_rank_correlation") == pytest.approx(1 - 6 * 2 / (n * (n * n - 1)))
    assert metric(registry, "mlops_shadow_agreement_total") == 50  # the swapped pair keeps its classes


def test_too_few_or_constant_scores_give_no_correlation() -> None:
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry)
    comparator.compare("demo", "3", Answer(answer([0.2, 0.7]), 0.001), Answer(answer([0.3, 0.6]), 0.001))
    assert metric(registry, "mlops_shadow_rank_correlation") is None  # 2 rows: below MIN_ROWS
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry)
    comparator.compare("demo", "3", Answer(answer([0.4] * 20), 0.001), Answer(answer([0.4] * 20), 0.001))
    assert math.isnan(metric(registry, "mlops_shadow_rank_correlation"))  # nothing to rank


def scores(values: list[float]) -> bytes:
    output = {"name": "output__0", "datatype": "FP32", "shape": [len(values), 1], "data": values}
    return json.dumps({"model_name": "demo", "outputs": [output]}).encode()


def test_a_rankers_scores_agree_where_both_versions_put_a_candidate_at_the_same_rank() -> None:
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry)
    live = [2.0, -1.0, 0.5, -3.0, 1.0, 0.0]  # ranks 1 5 3 6 2 4
    shadow = [1.8, -0.7, 0.9, -2.5, 0.6, 0.1]  # ranks 1 5 2 6 3 4: two candidates swap places
    comparator.compare("demo", "3", Answer(scores(live), 0.002), Answer(scores(shadow), 0.003))
    assert metric(registry, "mlops_shadow_requests_total", result="compared") == 1
    assert metric(registry, "mlops_shadow_rows_total") == 6
    assert metric(registry, "mlops_shadow_agreement_total") == 4


@pytest.mark.parametrize(
    "shadow_body",
    [
        b"not json",
        json.dumps(
            {"outputs": [{"name": "label", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]}
        ),
        json.dumps({"outputs": [{"name": "p", "datatype": "FP32", "shape": [1, 1], "data": [0.5]}]}),
        answer([0.1, 0.2, 0.3]),  # three rows where the live answer has two
    ],
)
def test_an_answer_that_cannot_be_compared_is_an_error_not_a_comparison(shadow_body) -> None:
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry)
    body = shadow_body if isinstance(shadow_body, bytes) else shadow_body.encode()
    comparator.compare("demo", "3", Answer(answer([0.1, 0.2]), 0.001), Answer(body, 0.001))
    assert metric(registry, "mlops_shadow_requests_total", result="error") == 1
    assert metric(registry, "mlops_shadow_requests_total", result="compared") is None
    assert metric(registry, "mlops_shadow_rows_total") is None


# ------------------------------------------------------------------------------------------ the mirror
def dropped(metrics: RouterMetrics, reason: str) -> float | None:
    return metric(metrics.registry, "mlops_router_shadow_dropped_total", reason=reason)


def test_offers_a_mirror_cannot_take_are_dropped_and_counted_by_reason() -> None:
    metrics = RouterMetrics()
    mirror = ShadowMirror("http://127.0.0.1:9", metrics, queue_bytes=64 * 1024)
    shadow = Target("demo", "3", "shadow")
    mirror.offer(shadow, b"{}", b"{}", 0.001)  # not started yet
    assert dropped(metrics, "stopped") == 1
    mirror.start()
    try:
        mirror.offer(shadow, b"x" * (1 << 20), b"{}", 0.001)  # more than the socket's buffer can hold
        assert dropped(metrics, "too_large") == 1
        # the mirror compares (and fails: no Triton on port 9) slower than these arrive: the buffer fills
        for _ in range(2000):
            mirror.offer(shadow, b"y" * 4096, b"{}", 0.001)
        assert (dropped(metrics, "queue_full") or 0) > 0
    finally:
        mirror.stop()
    mirror.offer(shadow, b"{}", b"{}", 0.001)
    assert dropped(metrics, "stopped") == 2


def test_shadow_cpus_are_some_but_not_all_of_the_machines(monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert parse_cpus("1") == {1} and parse_cpus("2, 3") == {2, 3}
    for text, problem in [
        ("x", "expected numbers"),
        ("", "expected some"),
        ("0,1,2,3", "not all"),
        ("4", "not all"),
    ]:
        with pytest.raises(ValueError, match=problem) as refused:
            parse_cpus(text)
        assert "\n" not in str(refused.value)


# A process with a second thread and a child process, each reporting the CPUs it may run on when asked
_TREE = """
import os, subprocess, sys, threading, time
if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    print(child.pid, flush=True)
    sys.stdin.readline()
    child.kill()
"""


def test_pin_tree_moves_every_thread_of_a_running_process_and_its_children() -> None:
    cpus = frozenset({max(os.sched_getaffinity(0))})
    parent = subprocess.Popen([sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdin is not None
        child = int(parent.stdout.readline())
        tasks = [int(t.name) for pid in (parent.pid, child) for t in Path(f"/proc/{pid}/task").iterdir()]
        assert len(tasks) >= 3  # the parent's two threads and the child
        assert pin_tree(parent.pid, cpus) >= 3
        assert all(os.sched_getaffinity(task) == cpus for task in tasks)
        parent.stdin.write(b"\n")
        parent.stdin.flush()
    finally:
        parent.kill()
        parent.wait()


def test_a_mirror_needs_an_http_triton_url() -> None:
    with pytest.raises(ValueError, match="must be http://host:port"):
        ShadowMirror("127.0.0.1:8000", RouterMetrics())


# A router that starts its mirror, hands it a copy, prints the mirror's pid and waits to be killed
_ROUTER = """
import sys, time
from inference.router.isvc import Target
from inference.router.metrics import RouterMetrics
from inference.router.shadow import ShadowMirror
if __name__ == "__main__":
    mirror = ShadowMirror("http://127.0.0.1:9", RouterMetrics()).start()
    mirror.offer(Target("demo", "3", "shadow"), b"{}", b"{}", 0.001)
    mirror.metrics_url  # up and serving
    print(mirror.pid, flush=True)
    time.sleep(120)
"""


def test_the_mirrors_process_ends_when_the_routers_is_killed() -> None:
    router = subprocess.Popen([sys.executable, "-c", _ROUTER], stdout=subprocess.PIPE, cwd=REPO_ROOT)
    try:
        assert router.stdout is not None
        mirror_pid = int(router.stdout.readline())
        assert os.getpriority(os.PRIO_PROCESS, mirror_pid) == 19
        assert os.sched_getscheduler(mirror_pid) == os.SCHED_IDLE
        router.kill()  # SIGKILL: no stop(), no atexit; the mirror's socket reads end of file
        router.wait()
        wait_for(lambda: not _alive(mirror_pid), "the orphaned mirror process ended", timeout_s=30)
    finally:
        router.kill()
        router.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; its parent (gone) would have reaped it


# --------------------------------------------------------------------------------------- the priority
@contextmanager
def fake_stub(folder: Path, model_file: str) -> Iterator[subprocess.Popen]:
    """A process whose command line looks like Triton's Python backend stub serving `model_file`."""
    folder.mkdir(parents=True, exist_ok=True)
    stub = folder / "triton_python_backend_stub"
    stub.symlink_to(sys.executable)
    code = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)"
    process = subprocess.Popen([str(stub), "-c", code, model_file], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_only_the_shadow_models_stub_threads_get_the_lowest_priority(tmp_path: Path) -> None:
    with (
        fake_stub(tmp_path / "a", "/repo/demo__v3/1/model.py") as shadow,
        fake_stub(tmp_path / "b", "/repo/demo__v1/1/model.py") as live,
    ):
        assert stub_pids("demo__v3") == [shadow.pid]
        priority = ShadowPriority()
        assert priority.lower("demo__v3") >= 1
        assert os.getpriority(os.PRIO_PROCESS, shadow.pid) == 19
        assert os.sched_getscheduler(shadow.pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, live.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        assert priority.lower("demo__v3") == 0  # checked again only after RECHECK_S
        assert ShadowPriority().lower("demo__v9") == 0  # no such stub: nothing to do, no error
