"""`python -m inference.bench [--duration-s 10] [--concurrency 1,8,32] [--out build/bench] [--paths ...]`

The serving benchmark (issue #4): one XGBoost model, one request body, closed-loop load at each concurrency
against in-process prediction, Triton (HTTP, gRPC), the canary router (HTTP; gRPC when the router has it),
the router with a shadow version (`router-shadow`, bench/shadow.py) and MLServer (HTTP, gRPC). HTTP load
is `wrk`; gRPC load is `inference.bench.grpc_load` in the serving env.
Writes `serving.md` and `serving.json` under `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.paths import REPO_ROOT
from inference.bench import model as bench_model
from inference.bench import servers, wrk
from inference.bench.results import Measurement, measurement, write_report
from inference.bench.shadow import shadow_cpus

PATHS = ("in-process", "triton", "router", "router-shadow", "mlserver")
SERVING_PYTHON = REPO_ROOT / ".venv-serving" / "bin" / "python"


class Bench:
    """Runs every (path, protocol, concurrency) with the same body and settings; collects Measurements."""

    def __init__(self, built: bench_model.BenchModel, args: argparse.Namespace, work: Path) -> None:
        self.model, self.args, self.work = built, args, work
        self.rows: list[Measurement] = []
        self.script = wrk.write_script(built.body_file, work / "post.lua")
        self.mlserver_script = wrk.write_script(built.mlserver_body_file, work / "post-matrix.lua")
        self.notes: list[str] = []
        self.extra: dict = {}

    def each_concurrency(
        self, path: str, protocol: str, load: Callable[[int], dict], concurrency: int | None = None
    ) -> None:
        """`load` at every concurrency of the run, or at `concurrency` alone."""
        for level in self.args.concurrency if concurrency is None else [concurrency]:
            summary = load(level)
            row = measurement(path, protocol, level, summary)
            self.rows.append(row)
            print(
                f"{path:10} {protocol:6} c={level:<3} {row.throughput:9,.0f} req/s  "
                f"p50 {row.p50_ms:7.2f} ms  p99 {row.p99_ms:7.2f} ms  errors {row.errors}",
                flush=True,
            )

    def http(self, path: str, url: str, script: Path | None = None, concurrency: int | None = None) -> None:
        def load(concurrency: int) -> dict:
            if self.args.warmup_s > 0:
                wrk.run_wrk(url, script or self.script, concurrency, self.args.warmup_s)
            return wrk.run_wrk(url, script or self.script, concurrency, self.args.duration_s)

        self.each_concurrency(path, "http", load, concurrency)

    def grpc(
        self, path: str, address: str, model: str, body: Path | None = None, concurrency: int | None = None
    ) -> None:
        target = ["--target", address, "--model", model]
        body = body or self.model.body_file
        self.each_concurrency(path, "grpc", lambda c: grpc_load(target, body, c, self.args), concurrency)

    def inprocess(self) -> None:
        from inference.bench.inprocess import run_inprocess

        self.each_concurrency(
            "in-process",
            "python",
            lambda c: run_inprocess(self.model.artifacts, self.model.inputs, c, self.args.duration_s),
        )


def grpc_load(target: list[str], body: Path, concurrency: int, args: argparse.Namespace) -> dict:
    """One run of the gRPC load generator in the serving env; its summary line."""
    timing = ["--duration-s", str(args.duration_s), "--warmup-s", str(args.warmup_s)]
    command = [
        str(SERVING_PYTHON), "-m", "inference.bench.grpc_load", *target, "--body", str(body),
        "--concurrency", str(concurrency), *timing,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=args.duration_s + 120
    )
    if done.returncode != 0:
        raise RuntimeError(f"gRPC load generator failed ({' '.join(target)}): {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_triton_and_router(bench: Bench, paths: set[str], logs: Path) -> None:
    from inference.triton_local import TritonLocal

    built = bench.model
    with TritonLocal(log_path=logs / "triton.log").start(built.triton_repository) as triton:
        direct = f"{triton.http_url}/v2/models/{built.triton_model}/infer"
        if "triton" in paths:
            bench.http("triton", direct)
            bench.grpc("triton", triton.grpc_address, built.triton_model)
        if "router" in paths:
            run_router(bench, triton, logs)
        if "router-shadow" in paths:
            from inference.bench.shadow import run_router_shadow

            run_router_shadow(bench, triton, logs)


def run_router(bench: Bench, triton: Any, logs: Path) -> None:
    """The plain router (canary split, payload events to a sink) at every concurrency and protocol."""
    built = bench.model
    with (
        servers.EventSink() as sink,
        servers.router(
            built.isvc_file, triton.http_url, triton.grpc_address, sink.url, logs / "router.log"
        ) as router,
    ):
        bench.http("router", f"{router.http_url}/v2/models/{bench_model.MODEL}/infer")
        if router.grpc_address:
            bench.grpc("router", router.grpc_address, bench_model.MODEL)
        else:
            bench.notes.append("router gRPC: not measured (this router has no --grpc-port)")
        time.sleep(1.0)  # the router's logger posts asynchronously; let its queue drain
        sent = sum(m.requests + m.errors for m in bench.rows if m.path == "router")
        bench.extra["router_events"] = dict(sink.counts)
        metrics = f"{router.http_url}/metrics"
        dropped = servers.metric_total(metrics, "mlops_router_logger_dropped_total")
        bench.extra["router_events_dropped"] = dropped
        bench.extra["router_events_sent"] = servers.metric_total(metrics, "mlops_router_logger_sent_total")
        bench.notes.append(
            f"router: {dropped:,.0f} CloudEvents dropped by its logger (queue full or post failed): "
            "the router sheds payload events rather than slow requests down"
        )
        bench.notes.append(
            f"router: canary split {bench_model.CANARY_PERCENT}% to a copy of the model; CloudEvents "
            f"to a minimal HTTP sink: {sink.total():,} events received for {sent:,} measured requests "
            "(plus warm-up ones; 2 events per request when none is dropped), by type/endpoint: "
            f"{dict(sink.counts)}"
        )


def run_mlserver(bench: Bench, logs: Path) -> None:
    built = bench.model
    with servers.mlserver(
        built.mlserver_repository, bench_model.MODEL, logs / "mlserver.log", bench.args.mlserver_workers
    ) as server:
        url = f"{server.http_url}/v2/models/{bench_model.MODEL}/infer"
        bench.http("mlserver", url, bench.mlserver_script)
        bench.grpc("mlserver", server.grpc_address, bench_model.MODEL, built.mlserver_body_file)
        bench.notes.append(
            f"MLServer 1.7.1 + mlserver-xgboost: parallel_workers={server.workers}, "
            "debug=false (access log off); it serves the trees alone on the encoded matrix (its XGBoost "
            "runtime cannot run the version's preprocessing graph), so it does less work per request"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference.bench", description=__doc__.splitlines()[2])
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="unmeasured seconds before each run")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"subset of {','.join(PATHS)}")
    parser.add_argument(
        "--shadow-percent", type=int, default=100, help="router-shadow: share of live requests copied"
    )
    parser.add_argument(
        "--shadow-cpus",
        default="auto",
        help="router-shadow: the shadow runs on these CPUs, the live path on the others (auto: the last"
        " CPU when there are two or more; none: all share every CPU)",
    )
    parser.add_argument(
        "--mlserver-workers", type=int, default=servers.MLSERVER_WORKERS, help="parallel_workers"
    )
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--concurrency {args.concurrency!r}: expected integers like 1,8,32")
    args.paths = {p.strip() for p in args.paths.split(",") if p.strip()}
    try:
        args.shadow_cpus = shadow_cpus(args.shadow_cpus)
    except ValueError as exc:
        parser.error(f"--shadow-cpus: {exc}")
    if not 0 <= args.shadow_percent <= 100:
        parser.error(f"--shadow-percent {args.shadow_percent}: expected 0..100")
    if not args.concurrency or min(args.concurrency) < 1 or not args.paths <= set(PATHS):
        parser.error(f"need --concurrency >= 1 and --paths among {','.join(PATHS)}")
    return args


def run(args: argparse.Namespace) -> Path:
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        work = Path(tmp)
        built = bench_model.build(work)
        bench = Bench(built, args, work)
        logs = args.out / "logs"
        if "in-process" in args.paths:
            bench.inprocess()
        if args.paths & {"triton", "router", "router-shadow"}:
            run_triton_and_router(bench, args.paths, logs)
        if "mlserver" in args.paths:
            run_mlserver(bench, logs)
        if args.paths & {"triton", "router", "router-shadow", "mlserver"}:
            ceiling = grpc_load(["--ceiling"], built.body_file, max(args.concurrency), args)
            bench.extra["grpc_generator_ceiling"] = ceiling
            bench.notes.append(
                f"gRPC load generator against a Python grpc.aio echo server (c={max(args.concurrency)}): "
                f"{ceiling['requests'] / ceiling['duration_s']:,.0f} req/s, p99 {ceiling['p99_ms']:.2f} ms; "
                "a lower bound of its ceiling (the echo server is Python too): a gRPC row close to the "
                "larger of this and the best gRPC row is limited by the generator, not the server"
            )
        bench.notes += environment_notes(built, args)
        return write_report(args.out, bench.rows, bench.notes, {**bench.extra, "args": vars(args)})


def environment_notes(built: bench_model.BenchModel, args: argparse.Namespace) -> list[str]:
    return [
        f"machine: {os.cpu_count()} CPU(s); the load generators (wrk -t{wrk.WRK_THREADS}, the gRPC "
        "generator) and the servers share them, so every number includes the generator's own CPU use",
        f"model: XGBoost ({bench_model.MAX_ROUNDS} rounds max, early stopping), one row of "
        f"{len(built.inputs)} raw features per request (the preprocessing graph, then the trees); "
        "Triton: Python backend, 1 instance, "
        "dynamic batching from the spec; Triton logs no requests by default, the router runs uvicorn "
        "at log level warning",
        f"closed loop: each client sends its next request when answered; {args.duration_s:g} s measured "
        f"after {args.warmup_s:g} s warm-up per run; HTTP load: wrk, gRPC load: "
        "inference.bench.grpc_load (grpc.aio)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (servers.ServerError, wrk.WrkError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.read_text())
    print(f"written: {report} and {report.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
