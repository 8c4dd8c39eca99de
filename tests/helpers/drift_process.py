"""The drift service as a real process to kill: `python -m tests.helpers.drift_process --port P --home DIR
[--journal] [--payload-store s3://bucket/prefix]` serves `create_app` over the online mean-bound detector
(`drift_doubles`), with checkpoints in DIR/checkpoints and, with --journal, the journal (and the payload
store's ledger) in DIR/journal, under uvicorn as `python -m monitoring.drift_service` runs it. The
detector's checkpointed state counts every row it has seen."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from monitoring.drift_service.app import create_app
from monitoring.drift_service.checkpoint import CheckpointStore
from monitoring.drift_service.journal import Journal
from monitoring.drift_service.object_ledger import ObjectLedger
from monitoring.drift_service.store_lane import S3Location, S3Source, StoreLane
from tests.helpers.drift_doubles import MeanBoundDetector
from tests.helpers.drift_events import make_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--journal", action="store_true")
    parser.add_argument("--buffer-size", type=int, default=50)
    parser.add_argument("--payload-store", default=None, help="also read batched payload logs (polls 20/s)")
    args = parser.parse_args()
    logging.basicConfig(level="INFO")
    service = make_service(
        [MeanBoundDetector(online=True)],
        buffer_size=args.buffer_size,
        max_age_s=3600.0,  # windows are scored when full, or drained: never by age in these tests
        max_pending=100_000,
        checkpoints=CheckpointStore(args.home / "checkpoints"),
        journal=Journal(args.home / "journal") if args.journal else None,
    )
    lane = None
    if args.payload_store:
        source = S3Source(S3Location.parse(args.payload_store))
        lane = StoreLane(service, ObjectLedger(args.home / "journal"), source, poll_s=0.05)
    app = create_app(service, tick_s=0.05, store_lane=lane)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
