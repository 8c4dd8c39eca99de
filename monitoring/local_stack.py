"""The monitoring loop on one machine: Prometheus, Alertmanager, the drift service and the retrain trigger.

    python -m monitoring.local_stack --detectors DIR [--triton-metrics 127.0.0.1:8002] [--time-scale 1]

runs in the foreground until Ctrl-C, scraping a live `make serve`'s Triton unless `--triton-metrics`
names one, and says where it listens in `$MLOPS_HOME/monitoring/runtime.json` (a `make serve` started
afterwards points its payload logger at the drift service from there); `LocalMonitoringStack` is the same
as a context manager. Under `$MLOPS_HOME/monitoring/` it writes `prometheus.yml` (scrape jobs
`drift-detector`, `retrain-trigger` and an optional `inference-predictor`, Triton as the cluster's
PodMonitor scrapes it; the rules extracted from the PrometheusRule objects; the local Alertmanager) and
`alertmanager.yml` (the committed configuration with the retrain webhook pointed at the local trigger and
its bearer token file). Every process listens on a free loopback port and logs to `$MLOPS_HOME/logs/`.

`time_scale` exists for the end-to-end TEST ONLY: with `time_scale=30` the generated copies have every
rule's `for:`/`keep_firing_for:`, Alertmanager's group_wait/group_interval/repeat_interval and the scrape,
evaluation and resend intervals divided by 30 (at least 1 s; `for: 5m` -> `10s`). The committed rules and
configuration keep their real durations; promtool tests (`monitoring/rules/tests/`) cover those.

This module is the command line; `LocalMonitoringStack` and `StackError` live in `local_stack_runner.py`
and are re-exported here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from core import paths
from monitoring.local_stack_runner import (
    LocalMonitoringStack,
    StackError,
)


def wait_for_exit(stack: LocalMonitoringStack) -> str:
    """Blocks until a process of the stack exits; returns its name (the caller stops the rest)."""
    while not stack.exited():
        time.sleep(1.0)
    return stack.exited()[0].name


def live_triton_target() -> str | None:
    """host:port of a live `make serve`'s Triton metrics (its runtime.json), so monitoring scrapes it
    unasked."""
    from inference.runtime_file import attach

    info = attach()
    return urlsplit(info.triton_metrics_url).netloc if info is not None else None


def write_runtime_file(stack: LocalMonitoringStack) -> Path:
    """Say where the stack listens (`core.paths.monitoring_runtime_file()`): a `make serve` started later
    points its payload logger at the drift service without a port copied by hand."""
    path = paths.monitoring_runtime_file()
    urls = {f"{name}_url": stack.url(name) for name in ("prometheus", "alertmanager", "drift", "trigger")}
    paths.write_text_atomically(path, json.dumps({**urls, "pid": os.getpid()}))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.local_stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--detectors", type=Path, default=None, help="detector bundles (default: $MLOPS_HOME/detectors)"
    )
    parser.add_argument(
        "--triton-metrics",
        default=None,
        help="host:port of Triton's metrics, scraped as job `inference-predictor` "
        "(default: a live `make serve`'s)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="divide alert timers by this (tests, demos)"
    )
    parser.add_argument("--cooldown-s", type=float, default=None, help="the trigger's per-model cool-down")
    parser.add_argument("--local-command", default=None, help="the trigger's local run command")
    args = parser.parse_args(argv)
    detectors = args.detectors or paths.state_root() / "detectors"
    if not detectors.is_dir():
        parser.error(
            f"--detectors {detectors}: not a folder (fit one with python -m monitoring.detectors.fit)"
        )
    command = shlex.split(args.local_command) if args.local_command else None
    stack = LocalMonitoringStack(
        detectors,
        time_scale=args.time_scale,
        predictor_target=args.triton_metrics or live_triton_target(),
        cooldown_s=args.cooldown_s,
        local_command=command,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly under `kill` as under Ctrl-C
    try:
        with stack:
            for name in ("prometheus", "alertmanager", "drift", "trigger"):
                print(f"{name:13} {stack.url(name)}", flush=True)
            write_runtime_file(stack)
            print(f"logs          {stack.logs_dir}  (Ctrl-C stops everything)", flush=True)
            name = wait_for_exit(stack)
            print(f"local stack: {name} exited: see {stack.logs_dir}", file=sys.stderr)
            return 1
    except StackError as error:
        print(f"local stack: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        paths.monitoring_runtime_file().unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
