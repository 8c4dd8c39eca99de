"""`python -m monitoring.reports --model NAME [--version V | --alias champion] [--window-hours H]
--source URL|DIR`: Evidently drift (and, with outcomes, quality) reports of the version's recent traffic
against its training set, logged to its MLflow run and summarised in tags on the model version.

--source is the drift service (`http://drift-detector` in the cluster) or its --state-dir (local mode).
The tracking store is the project's (core.registry.configure_tracking): --tracking-uri, else
MLFLOW_TRACKING_URI, else the local store under MLOPS_HOME; never a file in the current directory.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from monitoring.reports.sources import ReportError, fetch_rows, rows_frame


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m monitoring.reports", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", action="append", required=True, help="registered model (= spec name); repeat for several"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", default=None, help="model version (default: the --alias version)")
    which.add_argument("--alias", default="champion", help="alias to report on (default: champion)")
    parser.add_argument("--window-hours", type=float, default=24.0, help="recent rows: the last H hours")
    parser.add_argument("--source", required=True, help="drift service URL, or its --state-dir")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="default: MLFLOW_TRACKING_URI, else the local store in MLOPS_HOME",
    )
    parser.add_argument(
        "--spec-dir",
        default=None,
        help="model specs (class names); default: MLOPS_SPEC_DIR, else pipelines/models",
    )
    args = parser.parse_args(argv)
    if args.window_hours <= 0:
        parser.error("--window-hours must be > 0")
    if args.version is not None and len(args.model) > 1:
        parser.error("--version names one model's version: give one --model, or use --alias")
    return args


def model_classes(model: str, spec_dir: str | None) -> list[str] | None:
    from core.errors import SpecError
    from core.spec.model import load_specs

    try:
        (spec,) = load_specs(spec_dir, names=[model])
    except SpecError as exc:
        raise ReportError(str(exc)) from None
    return list(spec.label.classes) if spec.label.classes else None


def run(args: argparse.Namespace, model: str, now: datetime | None = None) -> str:
    from mlflow import MlflowClient

    from core.registry import configure_tracking
    from monitoring.reports.build import build_reports
    from monitoring.reports.publish import publish, resolve_version, training_set

    now = now or datetime.now(UTC)
    client = MlflowClient(tracking_uri=configure_tracking(args.tracking_uri))
    version = resolve_version(client, model, args.version, args.alias)
    since = (now - timedelta(hours=args.window_hours)).timestamp()
    classes = model_classes(model, args.spec_dir)
    current = rows_frame(fetch_rows(args.source, model, version, since), classes)
    if current.empty:
        raise ReportError(
            f"{model} version {version}: no requests logged in the last {args.window_hours:g} h"
            f" at {args.source}"
        )
    reports = build_reports(training_set(client, model, version), current, classes)
    return publish(client, model, version, reports, now)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    failed = 0
    for model in args.model:  # one model without recent traffic must not cost the others their report
        try:
            print(f"{model}: {run(args, model)}")
        except ReportError as exc:
            print(f"monitoring reports: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
