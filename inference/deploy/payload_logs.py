"""The InferenceService logger's batched mode: KServe's agent writes the payload logs to S3-compatible
storage in batches instead of posting one CloudEvent per request and response, and the drift service
reads them (`--payload-store`, monitoring/drift_service/store_lane.py).

Fields as kserve v0.20.0 reads them (commit 1fb781055dd1567164358233e1125142ca6ef1fe):
pkg/apis/serving/v1beta1/inference_service.go `LoggerSpec` (`url`, `storage`, `batchSize`,
`batchInterval`) and `LoggerStorageSpec` (`path`, `parameters`, `serviceAccountName`);
pkg/webhook/admission/pod/agent_injector.go passes `storage.path` as `--log-store-path` (without it the
agent stores nothing), `storage.parameters.format` as `--log-store-format`, the batch fields as
`--log-batch-size`/`--log-batch-interval`, and mounts the S3 secret of `storage.serviceAccountName`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.settings import Settings, settings

STORE_PATH = "payload-logs"  # under <prefix>/<namespace>/<isvc>/<component>/ (store.go getObjectKey)


@dataclass(frozen=True)
class PayloadLogStore:
    url: str  # s3://bucket/prefix
    format: str = "json"
    batch_size: int = 1000
    batch_interval: str = "10s"
    service_account: str = "logger-sa"

    @classmethod
    def from_settings(cls, values: Settings | None = None) -> PayloadLogStore | None:
        """The configured store (ConfigMap key PAYLOAD_LOG_STORE and its companions), None when unset."""
        values = values or settings()
        if not values.payload_log_store:
            return None
        return cls(
            values.payload_log_store,
            values.payload_log_format,
            values.payload_log_batch_size,
            values.payload_log_batch_interval,
            values.payload_log_service_account,
        )

    def apply(self, logger: dict[str, Any]) -> None:
        """Point a rendered `logger` block at the store (mode and metadata annotations stay)."""
        logger["url"] = self.url
        logger["storage"] = {
            "path": STORE_PATH,
            "parameters": {"format": self.format},
            "serviceAccountName": self.service_account,
        }
        logger["batchSize"] = self.batch_size
        logger["batchInterval"] = self.batch_interval
