"""Entry point: `python -m monitoring.drift_service --port 8080 --detectors DIR [--checkpoint-dir DIR
[--journal-dir DIR [--journal-fsync]]] [--state-dir DIR] [--buffer-size N] [--max-age-s S]
[--max-pending N] [--spec-dir DIR] [--quality-window N] [--quality-max-age-s S]
[--payload-store s3://bucket/prefix [--payload-store-poll-s S]]`.

Without --state-dir the logged predictions waiting for outcomes live in memory (lost on restart). Without
--journal-dir acknowledged rows wait for their window in memory: SIGTERM scores them, `kill -9` loses them."""

from __future__ import annotations

import argparse
import gc
import logging
import sqlite3
import sys
from collections.abc import Sequence

from core.http_body import DEFAULT_READ_TIMEOUT_S
from core.settings import SettingsError, settings
from monitoring.drift_service.app import DEFAULT_MAX_BODY_BYTES, create_app
from monitoring.drift_service.checkpoint import CheckpointStore
from monitoring.drift_service.detectors import load_detectors
from monitoring.drift_service.errors import ConfigError
from monitoring.drift_service.journal import Journal
from monitoring.drift_service.metrics import DriftMetrics
from monitoring.drift_service.object_ledger import ObjectLedger
from monitoring.drift_service.service import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_PENDING,
    DriftService,
)
from monitoring.drift_service.store_lane import DEFAULT_POLL_S, S3Location, S3Source, StoreLane
from monitoring.quality.metrics import QualityMetrics
from monitoring.quality.store import DEFAULT_MAX_AGE_S as DEFAULT_STORE_AGE_S
from monitoring.quality.store import DEFAULT_MAX_ROWS, PredictionStore
from monitoring.quality.tracker import (
    DEFAULT_WINDOW_MAX_AGE_S,
    DEFAULT_WINDOW_SIZE,
    QualityTracker,
    labels_from_specs,
)
from monitoring.spec_metrics import export_spec_metrics, loadable_specs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m monitoring.drift_service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--detectors", required=True, help="folder holding detector bundles (detector.json)")
    parser.add_argument(
        "--checkpoint-dir", default=None, help="where each detector's progress and online state are kept"
    )
    parser.add_argument(
        "--journal-dir",
        default=None,
        help="write-ahead journal of acknowledged rows (needs --checkpoint-dir); a PVC",
    )
    parser.add_argument(
        "--journal-fsync",
        action="store_true",
        help="fsync each event before answering (survives the machine's crash, not only the process's)",
    )
    parser.add_argument("--buffer-size", type=int, default=DEFAULT_BUFFER_SIZE, help="rows per detector run")
    parser.add_argument("--max-age-s", type=float, default=DEFAULT_MAX_AGE_S, help="flush older rows anyway")
    parser.add_argument(
        "--max-pending", type=int, default=DEFAULT_MAX_PENDING, help="rows waiting, per model"
    )
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--read-timeout-s", type=float, default=DEFAULT_READ_TIMEOUT_S, help="a request body's, or 408"
    )
    parser.add_argument(
        "--state-dir", default=None, help="keeps logged predictions and outcomes (quality.sqlite); a PVC"
    )
    parser.add_argument("--spec-dir", default=None, help="model specs (floors, classes); default: the repo's")
    parser.add_argument(
        "--quality-window", type=int, default=DEFAULT_WINDOW_SIZE, help="newest joined outcomes scored"
    )
    parser.add_argument(
        "--quality-max-age-s",
        type=float,
        default=DEFAULT_WINDOW_MAX_AGE_S,
        help="older outcomes leave the window",
    )
    parser.add_argument(
        "--store-max-rows", type=int, default=DEFAULT_MAX_ROWS, help="logged prediction rows kept"
    )
    parser.add_argument(
        "--store-max-age-s",
        type=float,
        default=DEFAULT_STORE_AGE_S,
        help="how long a prediction waits for its outcome",
    )
    parser.add_argument(
        "--payload-store",
        default=None,
        help="also read KServe's batched payload logs from s3://bucket/prefix (needs --journal-dir; "
        "default: $PAYLOAD_LOG_STORE)",
    )
    parser.add_argument(
        "--payload-store-poll-s", type=float, default=DEFAULT_POLL_S, help="how often to list the store"
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    if args.journal_dir and not args.checkpoint_dir:
        parser.error("--journal-dir needs --checkpoint-dir (it records how far the journal is scored)")
    if args.payload_store is None:  # the platform's one key: deploy points the loggers at the same store
        try:
            args.payload_store = settings().payload_log_store
        except SettingsError as exc:
            parser.error(str(exc))
    if args.payload_store and not args.journal_dir:
        parser.error("--payload-store needs --journal-dir (its ledger records which objects were read)")
    if args.payload_store_poll_s <= 0:
        parser.error("need --payload-store-poll-s > 0")
    if args.buffer_size < 1 or args.max_pending < args.buffer_size or args.max_age_s <= 0:
        parser.error("need --buffer-size >= 1, --max-pending >= --buffer-size and --max-age-s > 0")
    if (
        min(args.quality_window, args.store_max_rows) < 1
        or min(args.quality_max_age_s, args.store_max_age_s) <= 0
    ):
        parser.error(
            "need --quality-window, --store-max-rows >= 1 and --quality-max-age-s, --store-max-age-s > 0"
        )
    return args


def build_quality(args: argparse.Namespace, metrics: DriftMetrics, models: list[str]) -> QualityTracker:
    bounds = {"max_rows": args.store_max_rows, "max_age_s": args.store_max_age_s}
    try:
        store = (
            PredictionStore.in_folder(args.state_dir, **bounds)
            if args.state_dir
            else PredictionStore(**bounds)
        )
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"--state-dir {args.state_dir}: cannot open the prediction store ({exc})") from exc
    return QualityTracker(
        store,
        QualityMetrics(metrics.registry, metrics.version_label),
        labels_from_specs(models, args.spec_dir),
        window_size=args.quality_window,
        window_max_age_s=args.quality_max_age_s,
    )


def build_service(args: argparse.Namespace) -> DriftService:
    checkpoints = CheckpointStore(args.checkpoint_dir) if args.checkpoint_dir else None
    detectors = load_detectors(args.detectors)
    metrics = DriftMetrics()
    export_spec_metrics(metrics.registry, loadable_specs(args.spec_dir))
    return DriftService(
        detectors,
        metrics=metrics,
        buffer_size=args.buffer_size,
        max_age_s=args.max_age_s,
        max_pending=args.max_pending,
        checkpoints=checkpoints,
        quality=build_quality(args, metrics, [model for model, _ in detectors]),
        journal=Journal(args.journal_dir, fsync=args.journal_fsync) if args.journal_dir else None,
    )


def build_store_lane(args: argparse.Namespace, service: DriftService) -> StoreLane | None:
    if not args.payload_store:
        return None
    source = S3Source(S3Location.parse(args.payload_store))
    try:
        ledger = ObjectLedger(args.journal_dir)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"--journal-dir {args.journal_dir}: cannot open the object ledger ({exc})") from exc
    return StoreLane(service, ledger, source, args.payload_store_poll_s)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        service = build_service(args)
        store_lane = build_store_lane(args, service)
    except ConfigError as exc:
        print(f"drift service: {exc}", file=sys.stderr)
        return 2
    app = create_app(
        service,
        max_body_bytes=args.max_body_bytes,
        read_timeout_s=args.read_timeout_s,
        store_lane=store_lane,
    )
    # The detectors, torch and pandas leave millions of long-lived objects that every full garbage
    # collection would walk again, about 30 us per event at load (measured): move them out of its sight.
    gc.collect()
    gc.freeze()
    # No access log: a line per logged event would cost more than handling it. No proxy headers: the
    # logger posts here directly, and reading them costs per request.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
