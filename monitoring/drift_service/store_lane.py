"""The payload-store lane: a thread of the drift service that reads the batches KServe's agent writes to
S3-compatible storage (`logger.url: s3://bucket/prefix`, monitoring/payloads/batch_log.py) instead of
receiving one HTTP POST per inference.

Every `poll_s` it lists the objects under the prefix (boto3's paginator; the endpoint and credentials come
from boto3's own configuration: `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`: what KServe's storage secret sets), reads each one the ledger has
not finished, and ingests it exactly once (object_ingest.py). Objects are left in the bucket: expiring
them is the bucket's lifecycle rule. A store that cannot be listed or read is logged and counted
(`mlops_drift_store_objects_total{outcome="failed"}`) and tried again at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitoring.drift_service.errors import ConfigError, UnavailableError
from monitoring.drift_service.journal import JournalError
from monitoring.drift_service.object_ingest import ObjectReport, ingest_object
from monitoring.drift_service.object_ledger import ObjectLedger
from monitoring.drift_service.service import DriftService
from monitoring.payloads.batch_log import FORMATS, decode_batch, format_of
from monitoring.payloads.errors import EventError

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 10.0
MAX_OBJECT_BYTES = 256 * 1024 * 1024  # a batch is batchSize events; this is far past any sane one


class StoreError(OSError):
    """The store could not be listed or an object read (network, credentials, a vanished object)."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme not in ("s3", "s3a") or not parts.netloc:
            raise ConfigError(f"--payload-store {url!r}: expected s3://bucket[/prefix]")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    def url(self, name: str) -> str:
        return f"s3://{self.bucket}/{name}"


class S3Source:
    def __init__(self, location: S3Location) -> None:
        import boto3  # imported when a store is configured: the HTTP-only service never loads it

        self.location = location
        self._client = boto3.client("s3")

    def names(self) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"listing {self.location.url(self.location.prefix)}: {exc}") from None

    def read(self, name: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_object(Bucket=self.location.bucket, Key=name)
            if answer["ContentLength"] > MAX_OBJECT_BYTES:
                raise EventError("bad_payload", f"{self.location.url(name)}: over {MAX_OBJECT_BYTES} bytes")
            return answer["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"reading {self.location.url(name)}: {exc}") from None


class StoreLane:
    def __init__(
        self, service: DriftService, ledger: ObjectLedger, source: S3Source, poll_s: float = DEFAULT_POLL_S
    ) -> None:
        self.service = service
        self.ledger = ledger
        self.source = source
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drift-store-lane", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the object being read, then end (its rows are then in the journal)."""
        self._stop.set()
        self._thread.join(timeout_s)

    def poll(self) -> list[ObjectReport]:
        """Read every object not finished yet: the ones a crash interrupted first."""
        reports = []
        try:
            names = [*self.ledger.begun(), *self.source.names()]
        except StoreError as exc:
            self.service.metrics.objects.labels("failed").inc()
            log.error("payload store: %s", exc)
            return reports
        seen: set[str] = set()
        for name in names:
            if self._stop.is_set():
                break
            if name in seen or self.ledger.finished(name):
                continue
            seen.add(name)
            if (report := self.read(name)) is not None:
                reports.append(report)
        return reports

    def read(self, name: str) -> ObjectReport | None:
        metrics, where = self.service.metrics, self.source.location.url(name)
        fmt = format_of(name)
        try:
            if fmt is None:
                raise EventError("unsupported_content_type", f"{where}: not one of {FORMATS}")
            events = decode_batch(self.source.read(name), fmt, where)
            report = ingest_object(self.service, self.ledger, name, events)
        except EventError as exc:  # the whole object is unusable: say so once, never read it again
            metrics.count_rejected(exc.reason)
            metrics.objects.labels("rejected").inc()
            self.ledger.reject(name, str(exc))
            log.warning("payload store: rejected %s", exc)
            return None
        except (StoreError, JournalError, UnavailableError) as exc:
            metrics.objects.labels("failed").inc()
            log.error("payload store: %s not ingested, read again at the next poll: %s", where, exc)
            return None
        metrics.objects.labels("ingested").inc()
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # a bug in one poll must not end the lane
                log.exception("payload store poll failed")
            self._stop.wait(self.poll_s)
