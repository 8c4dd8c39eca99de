"""`python -m inference.router --isvc FILE --triton-url URL [--port 8081] [--logger-url URL] [--seed N]`

Serves OIP REST for the models of the InferenceService files (one route each; `--isvc` repeats), reloading
them when they change. Triton must already serve each version as `<model>__v<version>`
(`routing.stage_model_version`). gRPC is not routed: gRPC clients talk to Triton's gRPC endpoint directly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from inference.router.app import DEFAULT_MAX_BODY_BYTES, RouterSettings, create_app, triton_readiness
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, RouteError, RouteTable, load_isvc_file


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
        max_body_bytes=args.max_body_bytes,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference.router", description=__doc__.splitlines()[0])
    parser.add_argument("--isvc", required=True, action="append", type=Path, help="InferenceService YAML")
    parser.add_argument(
        "--triton-url", required=True, help="Triton's HTTP endpoint, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--logger-url", help="where request/response CloudEvents go (the drift detector)")
    parser.add_argument("--namespace", default="default", help="ce-namespace of the CloudEvents")
    parser.add_argument("--seed", type=int, help="seed of the stable/canary draw (default: random)")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--reload-interval-s", type=float, default=0.5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = build_settings(args)
    except RouteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
