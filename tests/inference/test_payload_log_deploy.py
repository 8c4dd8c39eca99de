"""Deploy with batched payload logs (#15): with PAYLOAD_LOG_STORE set, the rendered InferenceService's
logger writes to object storage in KServe's batch fields, in both deployment modes, and passes the KServe
SDK's schema (generated from the CRDs); unset, nothing changes. Bad values stop the step with one line."""

from __future__ import annotations

import pytest

from core.settings import SettingsError, settings, variable
from core.spec.model import load_specs
from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.deploy.kserve_schema import sdk_problems
from inference.deploy.payload_logs import STORE_PATH, PayloadLogStore
from inference.deploy.render import render_inference_service
from monitoring.drift_service.store_lane import S3Location
from tests.helpers.deploy_registry import version_ref
from tests.helpers.specs import FIXTURE_SPEC_DIR

MODEL = "conversion-xgboost"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> PayloadLogStore:
    monkeypatch.setenv(variable("payload_log_store"), "s3://payload-logs/mlops")
    monkeypatch.setenv(variable("payload_log_format"), "parquet")
    monkeypatch.setenv(variable("payload_log_batch_size"), "500")
    monkeypatch.setenv(variable("payload_log_batch_interval"), "30s")
    store = PayloadLogStore.from_settings()
    assert store is not None
    return store


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_the_logger_writes_batches_to_the_store(configured: PayloadLogStore, mode: str) -> None:
    (spec,) = load_specs(FIXTURE_SPEC_DIR, names=[MODEL])
    # Standard mode refuses a canary behind a transformer (this spec has one): its stable predictor then
    canary = version_ref(MODEL, "2") if mode == "Knative" else None
    service = render_inference_service(
        spec, version_ref(MODEL, "1"), canary, "mlops", mode=mode, payload_store=configured
    )
    predictors = [service["spec"]["predictor"], *(c for c in service["spec"].get("canary", []) or [])]
    for predictor in predictors:
        logger = predictor["logger"]
        assert logger["url"] == "s3://payload-logs/mlops" and logger["mode"] == "all"
        assert logger["storage"] == {
            "path": STORE_PATH,
            "parameters": {"format": "parquet"},
            "serviceAccountName": "logger-sa",
        }
        assert (logger["batchSize"], logger["batchInterval"]) == (500, "30s")
        assert logger["metadataAnnotations"] == [MODEL_VERSION_KEY]  # versions still attributed
    assert sdk_problems(service) == []
    # the drift service reads what the logger writes: the same bucket and prefix
    assert S3Location.parse(configured.url) == S3Location("payload-logs", "mlops/")


def test_without_a_store_the_logger_posts_each_event() -> None:
    assert PayloadLogStore.from_settings() is None
    (spec,) = load_specs(FIXTURE_SPEC_DIR, names=[MODEL])
    service = render_inference_service(spec, version_ref(MODEL, "1"), None, "mlops", payload_store=None)
    assert set(service["spec"]["predictor"]["logger"]) == {"mode", "url", "metadataAnnotations"}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("payload_log_store", "https://bucket/x", "not s3://bucket"),
        ("payload_log_format", "avro", "PAYLOAD_LOG_FORMAT"),
        ("payload_log_batch_size", "0", "PAYLOAD_LOG_BATCH_SIZE"),
        ("payload_log_batch_interval", "ten seconds", "not a Go duration"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, field, value, says) -> None:
    monkeypatch.setenv(variable(field), value)
    with pytest.raises(SettingsError) as caught:
        settings()
    assert says in str(caught.value) and "\n" not in str(caught.value)
