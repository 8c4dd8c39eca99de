"""The local router: OIP REST and (with --grpc-port) OIP gRPC in front of Triton, with the canary split.

    python -m inference.router --isvc FILE --triton-url URL [--port 8081] [--logger-url URL] [--seed N]
        [--grpc-port 8082 --triton-grpc HOST:PORT] [--shadow-queue-bytes 4194304 --shadow-workers 1]
        [--shadow-metrics-port 0] [--shadow-repository DIR] [--shadow-cpus 1]

Serves the models of the InferenceService files (one route each; `--isvc` repeats), reloading them when
they change. Both protocols share one route table, one canary draw sequence, one set of metrics and one
CloudEvent logger; a route's shadow version (if the file names one) gets a copy of each answered request,
compared by the shadow mirror's own process, which serves `mlops_shadow_*` on its own port
(--shadow-metrics-port; logged at start; inference/router/shadow.py). Triton must already
serve each version as `<model>__v<version>` (`routing.stage_model_version`). SIGINT/SIGTERM stop both
servers cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from core.http_body import DEFAULT_READ_TIMEOUT_S
from inference.router.app import DEFAULT_MAX_BODY_BYTES, RouterSettings, create_app, triton_readiness
from inference.router.isvc import RouteError, load_isvc_file
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, RouteTable
from inference.router.shadow import DEFAULT_QUEUE_BYTES, DEFAULT_WORKERS, ShadowMirror
from inference.router.shadow_priority import parse_cpus

if TYPE_CHECKING:
    from inference.router.grpc_app import GrpcRouter


def build_settings(args: argparse.Namespace) -> RouterSettings:
    triton_url = args.triton_url.rstrip("/")
    table = RouteTable([load_isvc_file(path) for path in args.isvc], seed=args.seed)
    metrics = RouterMetrics()
    watcher = IsvcWatcher(args.isvc, table, triton_readiness(triton_url), args.reload_interval_s)
    watcher.check_once()  # records the files' digests so only later edits count as changes
    event_logger = (
        EventLogger(args.logger_url, metrics, namespace=args.namespace) if args.logger_url else None
    )
    return RouterSettings(
        table=table,
        triton_url=triton_url,
        metrics=metrics,
        event_logger=event_logger,
        watcher=watcher,
        shadow=ShadowMirror(
            triton_url,
            metrics,
            queue_bytes=args.shadow_queue_bytes,
            workers=args.shadow_workers,
            metrics_port=args.shadow_metrics_port,
            seed=args.seed,
            repository=args.shadow_repository,
            cpus=args.shadow_cpus,
        ),
        max_body_bytes=args.max_body_bytes,
        read_timeout_s=args.read_timeout_s,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference.router", description=__doc__.splitlines()[0])
    parser.add_argument("--isvc", required=True, action="append", type=Path, help="InferenceService YAML")
    parser.add_argument(
        "--triton-url", required=True, help="Triton's HTTP endpoint, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--grpc-port", type=int, default=0, help="OIP gRPC port (default 0: no gRPC)")
    parser.add_argument(
        "--triton-grpc", help="Triton's gRPC endpoint, e.g. 127.0.0.1:8001 (required with --grpc-port)"
    )
    parser.add_argument("--logger-url", help="where request/response CloudEvents go (the drift detector)")
    parser.add_argument("--namespace", default="default", help="ce-namespace of the CloudEvents")
    parser.add_argument("--seed", type=int, help="seed of the split and shadow draws (default: random)")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--read-timeout-s", type=float, default=DEFAULT_READ_TIMEOUT_S, help="a request body's, or 408"
    )
    parser.add_argument("--reload-interval-s", type=float, default=0.5)
    parser.add_argument(
        "--shadow-queue-bytes",
        type=int,
        default=DEFAULT_QUEUE_BYTES,
        help="copies waiting for the shadow, in bytes (capped by net.core.wmem_max); more are dropped",
    )
    parser.add_argument("--shadow-workers", type=int, default=DEFAULT_WORKERS, help="shadow calls at once")
    parser.add_argument(
        "--shadow-metrics-port",
        type=int,
        default=0,
        help="the comparator's /metrics (default 0: any free port)",
    )
    parser.add_argument(
        "--shadow-repository",
        type=Path,
        help="Triton's model repository: a shadow then gets a Triton of its own (the stand-in for its pods)",
    )
    parser.add_argument(
        "--shadow-cpus",
        type=parse_cpus,
        help="run the shadow (mirror and its own Triton) on these CPUs only, e.g. 1 (default: any)",
    )
    args = parser.parse_args(argv)
    if args.grpc_port and not args.triton_grpc:
        parser.error("--grpc-port needs --triton-grpc (Triton's gRPC endpoint, e.g. 127.0.0.1:8001)")
    if args.shadow_queue_bytes < 1 or args.shadow_workers < 1:
        parser.error("--shadow-queue-bytes and --shadow-workers must be at least 1")
    if args.logger_url and not args.logger_url.startswith("http://"):
        parser.error(f"--logger-url {args.logger_url!r}: expected an http:// URL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per readiness probe otherwise
    try:
        settings = build_settings(args)
    except RouteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # uvicorn re-raises the signal that stopped it once it is done; exiting through SystemExit instead of
    # the default handler lets the gRPC router drain and stop too
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    try:
        grpc_router = start_grpc(settings, args)
    except RuntimeError as exc:  # GrpcRouterError: the port is taken or not bindable
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        uvicorn.run(create_app(settings), **uvicorn_options(args.host, args.port))
    finally:
        if grpc_router is not None:
            grpc_router.stop()
    return 0


def start_grpc(settings: RouterSettings, args: argparse.Namespace) -> GrpcRouter | None:
    if not args.grpc_port:
        return None
    # imported here: kserve's protobuf modules take a second to load and REST-only runs need none of it
    from inference.router.grpc_app import GrpcRouter

    router = GrpcRouter(settings, args.triton_grpc, host=args.host, port=args.grpc_port)
    router.start()
    logging.getLogger(__name__).info("OIP gRPC on %s -> triton %s", router.address, args.triton_grpc)
    return router


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """No access log and the fastest event loop and HTTP parser installed (uvloop, httptools)."""
    return {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }


if __name__ == "__main__":
    sys.exit(main())
