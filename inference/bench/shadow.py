"""The shadow rollout's cost to live traffic (issue #16, point 8): the same load through a second router
whose InferenceService also names a shadow version (a third copy of the model), measured right after the
plain router on the same Triton; rows `router-shadow` next to `router` in `serving.md`, and the shadow's
own counters (compared and error from the comparator's /metrics, dropped from the router's).

Placement (`--shadow-cpus`, default: the last CPU of two or more): the shadow (the mirror's process and the
Triton of its own) runs there and the whole live path (load generators, the live Triton, both routers) on
the other CPUs, the stand-in for a cluster, where the shadow InferenceService has its own pods and the
Gateway mirrors without waiting for the copy (inference/deploy/shadow.py). With `--shadow-cpus none` all
share every CPU, and the difference is the shadow's inference competing with the live path for them.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from inference.bench import model as bench_model
from inference.bench import servers
from inference.bench.results import find
from inference.router.shadow_priority import parse_cpus, pin_to, pin_tree

if TYPE_CHECKING:
    from inference.bench.__main__ import Bench

ON, OFF, OFF_AGAIN = "router-shadow-on", "router-shadow-off-1", "router-shadow-off-2"
PATHS = (OFF, ON, OFF_AGAIN)
RESULTS = ("compared", "dropped", "error")


def shadow_isvc(isvc_file: Path, dest: Path, percent: int) -> Path:
    """The bench's InferenceService with the shadow annotations added (the canary split unchanged)."""
    from inference.deploy.annotations import SHADOW_PERCENT_KEY, SHADOW_VERSION_KEY

    document = yaml.safe_load(isvc_file.read_text())
    document["metadata"]["annotations"][SHADOW_VERSION_KEY] = bench_model.SHADOW
    document["metadata"]["annotations"][SHADOW_PERCENT_KEY] = str(percent)
    dest.write_text(yaml.safe_dump(document, sort_keys=False))
    return dest


def shadow_counts(router: servers.Router) -> dict[str, float]:
    """The shadow's copies by result: `mlops_shadow_requests_total` from the comparator's /metrics, the
    dropped ones from the router's `mlops_router_shadow_dropped_total`."""
    counts = dict.fromkeys(RESULTS, 0.0)
    for url in (router.shadow_metrics_url, f"{router.http_url}/metrics"):
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if family.name == "mlops_shadow_requests" and sample.name.endswith("_total"):
                    counts[sample.labels["result"]] += sample.value
                elif family.name == "mlops_router_shadow_dropped" and sample.name.endswith("_total"):
                    counts["dropped"] += sample.value
    return counts


def shadow_cpus(text: str) -> frozenset[int] | None:
    """`--shadow-cpus`: "auto" (the last CPU, with two or more), "none", or CPU numbers (parse_cpus)."""
    if text == "none" or (text == "auto" and (os.cpu_count() or 1) < 2):
        return None
    return frozenset({(os.cpu_count() or 1) - 1}) if text == "auto" else parse_cpus(text)


@contextlib.contextmanager
def live_path_on(cpus: frozenset[int], triton_pid: int | None) -> Iterator[None]:
    """The bench process (so the routers and load generators it starts) and the running live Triton (every
    thread, its backend stubs too) on `cpus` only, as before afterwards."""
    before = frozenset(os.sched_getaffinity(0))
    pin_to(cpus)
    if triton_pid is not None:
        pin_tree(triton_pid, cpus)
    try:
        yield
    finally:
        pin_to(before)
        if triton_pid is not None:
            pin_tree(triton_pid, before)


def run_router_shadow(bench: Bench, triton: Any, logs: Path) -> None:
    """Off, on, off again at each protocol and concurrency, back to back: two routers side by side (the
    plain one and one whose InferenceService names a shadow), so a change in the machine's other load
    shows as a difference between the two `off` runs (the noise) rather than as the shadow's cost. With
    `--shadow-cpus`, the shadow runs on those CPUs and the whole live path on the others."""
    cpus = bench.args.shadow_cpus
    placement = (
        live_path_on(frozenset(os.sched_getaffinity(0)) - cpus, triton.pid)
        if cpus
        else contextlib.nullcontext()
    )
    with placement:
        _run_router_shadow(bench, triton.http_url, triton.grpc_address, logs)


def _run_router_shadow(bench: Bench, triton_http: str, triton_grpc: str, logs: Path) -> None:
    percent = bench.args.shadow_percent
    isvc = shadow_isvc(bench.model.isvc_file, bench.work / "isvc-shadow.yaml", percent)
    with (
        servers.EventSink() as sink,
        servers.router(
            bench.model.isvc_file, triton_http, triton_grpc, sink.url, logs / "router-off.log"
        ) as off,
        servers.router(
            isvc,
            triton_http,
            triton_grpc,
            sink.url,
            logs / "router-shadow.log",
            bench.model.triton_repository,  # the shadow on a Triton of its own, as on a cluster
            bench.args.shadow_cpus,
        ) as on,
    ):
        http = f"/v2/models/{bench_model.MODEL}/infer"
        for concurrency in bench.args.concurrency:
            for path, router in ((OFF, off), (ON, on), (OFF_AGAIN, off)):
                bench.http(path, router.http_url + http, concurrency=concurrency)
        if on.grpc_address and off.grpc_address:
            for concurrency in bench.args.concurrency:
                for path, router in ((OFF, off), (ON, on), (OFF_AGAIN, off)):
                    bench.grpc(path, router.grpc_address, bench_model.MODEL, concurrency=concurrency)
        counts = shadow_counts(on)
    bench.extra["shadow"] = counts
    bench.notes.append(
        f"{ON}: the router's InferenceService plus a shadow version (a third copy of the model) that gets "
        f"{percent}% of the live requests (serving.mlops-loop.io/shadow-percent), measured "
        f"between two runs of the plain router ({OFF}, {OFF_AGAIN}) at the same load; the shadow's copies: "
        f"{counts['compared']:,.0f} compared, {counts['dropped']:,.0f} dropped (queue full), "
        f"{counts['error']:,.0f} failed; no shadow answer reaches a client (tests/inference/"
        "test_router_shadow.py)"
    )
    if bench.args.shadow_cpus:
        shown = sorted(bench.args.shadow_cpus)
        bench.notes.append(
            f"{ON}: the shadow (the mirror's process and its own Triton) ran on CPU(s) {shown} only,"
            " and everything else of this bench (load generators, Triton, both routers) on the others"
            " (--shadow-cpus): the stand-in for the shadow's pods on other nodes"
        )
    bench.notes += p99_differences(bench)


def p99_differences(bench: Bench) -> list[str]:
    """Per protocol and concurrency: the live p99 with the shadow against the two runs without; within
    noise when it is no higher than the worse `off` run plus the two `off` runs' difference."""
    lines = []
    for m in sorted((m for m in bench.rows if m.path == ON), key=lambda m: (m.protocol, m.concurrency)):
        before, after = (find(bench.rows, p, m.protocol, m.concurrency) for p in (OFF, OFF_AGAIN))
        if before is None or after is None:
            continue
        noise = abs(before.p99_ms - after.p99_ms)
        verdict = "within noise" if m.p99_ms <= max(before.p99_ms, after.p99_ms) + noise else "ABOVE noise"
        lines.append(
            f"live p99 with a shadow, {m.protocol} c={m.concurrency}: {m.p99_ms:.2f} ms against "
            f"{before.p99_ms:.2f} / {after.p99_ms:.2f} ms without (p50 {m.p50_ms:.2f} against "
            f"{before.p50_ms:.2f} / {after.p50_ms:.2f}): {verdict}"
        )
    return lines
