"""`make serve`: the registered models served locally in the foreground until Ctrl-C (or SIGTERM).

    python -m inference.serve [--models a,b] [--port 8081] [--logger-url URL]

The same stack the local rollout runs (see inference/local_rollout.py): each model's InferenceService
(a canary when a `challenger` exists) rendered under `$MLOPS_HOME/serving/isvc/`, the served versions
staged into one Triton repository, Triton behind the router. Here the router listens on a fixed port and
nothing is decided: the stack serves until a signal, then stops the router first (no new requests reach
a stopping Triton) and Triton second, and the command exits 0.
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

from components.common.errors import SpecError
from components.common.model_spec import load_specs
from components.common.paths import logs_dir, state_root
from components.register.registry import configure_tracking
from inference.deploy.apply import FileApplier
from inference.deploy.rollout import Rollout
from inference.local_rollout import (
    NAMESPACE,
    Plan,
    plan_model,
    serve_router,
    stage_detectors,
    stage_repository,
)
from inference.router.routing import RouteTable
from inference.triton_local import HOST, TritonLocal

DEFAULT_PORT = 8081
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
    configure_tracking()
    serving = state_root() / "serving"
    rollout = Rollout(FileApplier(serving / "isvc"), NAMESPACE, logger_url)
    plans = [p for spec in load_specs(spec_dir, names=models) if (p := plan_model(spec, rollout, say))]
    if not plans:
        raise LookupError("serve: no model has a 'champion' version; run the training pipeline first")
    repository = stage_repository(plans, serving / "repository", None)
    stage_detectors(plans, state_root() / "detectors", say)
    triton = TritonLocal(log_path=logs_dir() / "triton-serve.log")
    with triton.start(repository), serve_router(plans, triton.http_url, logger_url, seed, port) as (url, s):
        for line in describe(url, triton, s.table, plans, logger_url):
            say(line)
        (stop or threading.Event()).wait()
    say("serve: router and Triton stopped")


def describe(
    url: str, triton: TritonLocal, table: RouteTable, plans: Sequence[Plan], logger_url: str | None
) -> list[str]:
    """The lines a user needs: where to send requests, where Triton and its metrics are, what is routed."""
    lines = [
        f"router (OIP REST):  {url}/v2/models/<model>/infer   metrics: {url}/metrics",
        f"triton HTTP:        {triton.http_url}",
        f"triton gRPC:        {triton.grpc_url}",
        f"triton metrics:     {triton.metrics_url}",
        f"inference logger:   {logger_url or 'off (--logger-url)'}",
    ]
    for plan in plans:
        route = table.get(plan.spec.name)
        if route is None:
            lines.append(f"{plan.spec.name}: no route (see the router's log)")
        elif route.canary_version is None:
            lines.append(f"{route.model}: stable v{route.stable_version} (100%)")
        else:
            stable_share = 100 - route.canary_percent
            lines.append(
                f"{route.model}: stable v{route.stable_version} ({stable_share}%), "
                f"canary v{route.canary_version} ({route.canary_percent}%)"
            )
    lines.append("serving; Ctrl-C (SIGINT) or SIGTERM stops the router, then Triton")
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
    parser.add_argument("--logger-url", help="where the router posts CloudEvents (the drift detector)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    for stop_signal in STOP_SIGNALS:  # installed first: a signal during startup also stops cleanly
        signal.signal(stop_signal, _raise_stop)
    try:
        serve(models, args.port, args.logger_url, seed=args.seed, say=lambda line: print(line, flush=True))
    except Stop as stop:
        print(f"serve: stopped on {stop}", flush=True)
    except (LookupError, ValueError, SpecError, FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
