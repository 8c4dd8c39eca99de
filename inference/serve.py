"""`make serve`: the registered models served locally in the foreground until Ctrl-C (or SIGTERM).

    python -m inference.serve [--models a,b] [--port 8081] [--logger-url URL]

Starts the local serving runtime (inference/local_runtime.py: Triton with explicit model control, the
REST router on `--port`, the gRPC router, and KServe's transformer for each feature-service model, which
takes entity ids) and deploys each model's registry state with the pipeline's deploy step: the champion
alone, or the champion with its `challenger` as a canary at the spec's share.
Nothing is decided here. While it runs, `$MLOPS_HOME/serving/runtime.json` lets other commands attach
(a pipeline run releases into this runtime). A signal stops the routers first (no new requests reach a
stopping Triton) and Triton second, and the command exits 0.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from core.errors import SpecError
from core.ports import HOST
from core.registry import CHALLENGER, CHAMPION, ModelVersionRef, configure_tracking, resolve_alias
from core.spec.model import ModelSpec, load_specs
from inference.canary.deploy import deploy_canary
from inference.local_runtime import LocalServingRuntime
from inference.router.routing import RouteTable
from inference.runtime_file import RuntimeInfo, attach, monitoring_logger_url

DEFAULT_PORT = 8081
TRANSFORMER_START_TIMEOUT_S = 180.0  # kserve and Feast import for seconds; several start at once
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop(BaseException):
    """Raised by the signal handler so that every `with` block on the way out stops what it started."""


def serve(
    models: Sequence[str] | None = None,
    port: int = DEFAULT_PORT,
    logger_url: str | None = None,
    spec_dir: Path | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Serve until `stop` is set (default: never; the CLI ends it with a signal via `Stop`)."""
    _require_free_port(port)
    live = attach()
    if live is not None:
        raise RuntimeError(
            f"serve: a local serving runtime is already live (pid {live.pid}, router {live.router_http_url})"
        )
    configure_tracking()
    plans = [plan for spec in load_specs(spec_dir, names=models) if (plan := _plan(spec, say))]
    if not plans:
        raise LookupError("serve: no model has a 'champion' version; run the training pipeline first")
    runtime = LocalServingRuntime(logger_url=logger_url, router_port=port, seed=seed, transformers=True)
    with runtime:
        assert runtime.info is not None and runtime.transformers is not None
        for spec, champion, challenger in plans:
            ref, alias = (challenger, CHALLENGER) if challenger else (champion, CHAMPION)
            deploy_canary(spec.name, ref.version, alias, "local", lambda _: None, spec_dir)
        names = [spec.name for spec, _, _ in plans]
        runtime.transformers.wait_ready(names, TRANSFORMER_START_TIMEOUT_S)
        for line in describe(runtime.info, runtime.table, names):
            say(line)
        (stop or threading.Event()).wait()
    say("serve: router and Triton stopped")


def _plan(
    spec: ModelSpec, say: Callable[[str], None]
) -> tuple[ModelSpec, ModelVersionRef, ModelVersionRef | None] | None:
    champion = resolve_alias(spec.name, CHAMPION)
    if champion is None:
        say(f"{spec.name}: no champion in the registry: skipped")
        return None
    challenger = resolve_alias(spec.name, CHALLENGER)
    if challenger is not None and challenger.version == champion.version:
        challenger = None
    return spec, champion, challenger


def describe(info: RuntimeInfo, table: RouteTable, models: Sequence[str]) -> list[str]:
    """The lines a user needs: where to send requests, where Triton and its metrics are, what is routed."""
    url = info.router_http_url
    lines = [
        f"router (OIP REST):  {url}/v2/models/<model>/infer   metrics: {url}/metrics",
        f"router (OIP gRPC):  {info.router_grpc_address or 'off (no inference.router.grpc_app)'}",
        f"triton HTTP:        {info.triton_http_url}",
        f"triton gRPC:        {info.triton_grpc_address}",
        f"triton metrics:     {info.triton_metrics_url}",
        f"prometheus:         {info.prometheus_url}   (Triton scraped as on a cluster, the committed rules)",
        f"inference logger:   {info.logger_url or 'off (--logger-url)'}",
    ]
    for model, endpoint in sorted(info.transformers.items()):
        lines.append(
            f"{model} transformer (entity ids in): {endpoint['http']}/v2/models/{model}/infer   "
            f"gRPC {endpoint['grpc']}"
        )
    for model in models:
        route = table.get(model)
        if route is None:
            lines.append(f"{model}: no route (see the router's log)")
        elif route.canary_version is None:
            lines.append(f"{route.model}: stable v{route.stable_version} (100%)")
        else:
            stable_share = 100 - route.canary_percent
            lines.append(
                f"{route.model}: stable v{route.stable_version} ({stable_share}%), "
                f"canary v{route.canary_version} ({route.canary_percent}%)"
            )
    lines.append("serving; Ctrl-C (SIGINT) or SIGTERM stops the routers, then Triton")
    return lines


def _require_free_port(port: int) -> None:
    # Checked before Triton starts: uvicorn only fails on a taken port after the whole stack is up.
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError as error:
            raise RuntimeError(
                f"serve: port {port} on {HOST} is not free ({error.strerror}); pick --port"
            ) from None


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    # A second signal while stopping must not interrupt the cleanup the first one started.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated spec names (default: every spec)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="the router's port (default: %(default)s)"
    )
    parser.add_argument(
        "--logger-url",
        help="where the router posts CloudEvents (default: the drift service of a live `make monitor`)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    for stop_signal in STOP_SIGNALS:  # installed first: a signal during startup also stops cleanly
        signal.signal(stop_signal, _raise_stop)
    try:
        logger_url = args.logger_url or monitoring_logger_url()
        serve(models, args.port, logger_url, seed=args.seed, say=lambda line: print(line, flush=True))
    except Stop as stop:
        print(f"serve: stopped on {stop}", flush=True)
    except (LookupError, ValueError, SpecError, FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
