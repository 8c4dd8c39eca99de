"""Entry point: `python -m monitoring.retrain_trigger --port 8080 --state-db PATH --token-file PATH
--mode local|kfp [--kfp-host URL] [--cooldown-s N] [--failure-backoff-s N] [--pipeline-package PATH]
[--upload-package] [--local-command CMD]`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from core.errors import SpecError
from core.http_body import DEFAULT_READ_TIMEOUT_S
from core.spec.model import load_specs
from monitoring.retrain_trigger.app import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_FAILURE_BACKOFF_S,
    DEFAULT_MAX_BODY_BYTES,
    TriggerService,
    create_app,
    load_token,
)
from monitoring.retrain_trigger.state import StateStore
from monitoring.retrain_trigger.submitters import (
    DEFAULT_LOCAL_COMMAND,
    DEFAULT_PIPELINE_PACKAGE,
    KfpSubmitter,
    LocalSubmitter,
    Submitter,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m monitoring.retrain_trigger", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--state-db", required=True, help="sqlite file for alerts seen and runs started")
    parser.add_argument("--token-file", required=True, help="file holding the bearer token")
    parser.add_argument("--mode", choices=("local", "kfp"), required=True)
    parser.add_argument("--kfp-host", default=None, help="KFP API server URL (required with --mode kfp)")
    parser.add_argument("--cooldown-s", type=float, default=DEFAULT_COOLDOWN_S, help="per-model cool-down")
    parser.add_argument(
        "--failure-backoff-s",
        type=float,
        default=DEFAULT_FAILURE_BACKOFF_S,
        help="after a run that failed, wait this long (not the whole cool-down) before the next one",
    )
    parser.add_argument(
        "--pipeline-package",
        default=str(DEFAULT_PIPELINE_PACKAGE),
        help="compiled pipeline: its hash names the deployed PipelineVersion that runs",
    )
    parser.add_argument(
        "--upload-package",
        action="store_true",
        help="fallback: upload the package with each run instead of running the deployed version",
    )
    parser.add_argument("--kfp-poll-s", type=float, default=30.0, help="how often to poll a KFP run")
    parser.add_argument(
        "--local-command",
        default=shlex.join(DEFAULT_LOCAL_COMMAND),
        help="command for local runs; `--models M --reason R` are appended",
    )
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--read-timeout-s", type=float, default=DEFAULT_READ_TIMEOUT_S, help="a request body's, or 408"
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    if args.mode == "kfp" and not args.kfp_host:
        parser.error("--kfp-host is required with --mode kfp")
    if args.cooldown_s < 0 or args.failure_backoff_s < 0:
        parser.error("--cooldown-s and --failure-backoff-s must be >= 0")
    return args


def build_submitter(args: argparse.Namespace) -> Submitter:
    if args.mode == "kfp":
        return KfpSubmitter(
            args.kfp_host, args.pipeline_package, poll_s=args.kfp_poll_s, upload_package=args.upload_package
        )
    return LocalSubmitter(shlex.split(args.local_command))


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        models = [spec.name for spec in load_specs()]
        token = load_token(args.token_file)
        submitter = build_submitter(args)
    except (SpecError, ValueError) as exc:
        print(f"retrain trigger: {exc}", file=sys.stderr)
        return 2
    service = TriggerService(
        StateStore(args.state_db),
        submitter,
        models,
        cooldown_s=args.cooldown_s,
        failure_backoff_s=args.failure_backoff_s,
    )
    app = create_app(service, token, max_body_bytes=args.max_body_bytes, read_timeout_s=args.read_timeout_s)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
