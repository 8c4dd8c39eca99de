"""The pieces of a local serving stack the router tests build: a tiny scikit-learn model exported for
Triton's Python backend and staged as `demo__v<version>`, the InferenceService files the router watches,
OIP tensors, and a loopback receiver for the router's KServe-logger CloudEvents."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families

from inference import python_backend_model
from inference.deploy.annotations import CANARY_VERSION_KEY, MODEL_VERSION_KEY, SHADOW_VERSION_KEY
from inference.router.routing import stage_model_version
from inference.triton_config import render_config
from tests.helpers.specs import fixture_spec
from tests.helpers.tiny_bundles import sklearn_to_onnx
from tests.helpers.waiting import wait_for

N_FEATURES = 5
Event = tuple[dict[str, str], dict]
"""One received CloudEvent: (lower-cased headers, parsed JSON body)."""


def isvc(
    stable: str,
    canary: str | None = None,
    percent: int | None = None,
    name: str = "demo",
    shadow: str | None = None,
) -> dict:
    annotations = {MODEL_VERSION_KEY: stable, **({CANARY_VERSION_KEY: canary} if canary else {})}
    if shadow is not None:
        annotations[SHADOW_VERSION_KEY] = shadow
    predictor: dict[str, Any] = {
        "model": {"modelFormat": {"name": "triton"}},
        "logger": {"mode": "all", "metadataAnnotations": [MODEL_VERSION_KEY]},  # as deploy renders it
    }
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"predictor": predictor},
    }


def write_isvc(path: Path, document: dict) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(yaml.safe_dump(document))
    partial.replace(path)  # atomic, as `kubectl`-style renders should be


def tensor(rows: np.ndarray, datatype: str = "FP32") -> dict:
    return {
        "name": "input__0",
        "shape": list(rows.shape),
        "datatype": datatype,
        "data": rows.ravel().tolist(),
    }


def export_local_model(model: Any, dest: Path) -> Path:
    """A `local/demo/` folder as export_triton writes it: Python backend running the ONNX artifact."""
    (dest / "1").mkdir(parents=True)
    (dest / "1" / "model.onnx").write_bytes(sklearn_to_onnx(model, N_FEATURES))
    (dest / "1" / "model.py").write_bytes(Path(python_backend_model.__file__).read_bytes())
    inputs = [{"name": "input__0", "datatype": "FP32", "dims": [N_FEATURES]}]
    outputs = [{"name": "output__0", "datatype": "FP32", "dims": [2]}]
    config = render_config(
        "demo", inputs, outputs, fixture_spec("conversion-sklearn").serving, "local", "model.onnx"
    )
    (dest / "config.pbtxt").write_text(config)
    return dest


def fit_model(seed: int, flipped: bool = False) -> Any:
    """A logistic regression on seeded data; `flipped` learns the opposite labels, so its class-1 score is
    1 minus the unflipped model's (the loss is symmetric): every top class disagrees, ranks reverse."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, N_FEATURES))
    label = (features @ rng.normal(size=N_FEATURES) > 0).astype(int)
    return LogisticRegression().fit(features, 1 - label if flipped else label)


def stage_two_versions(root: Path) -> tuple[dict[str, Any], Path]:
    """`demo` v1 and v2 (two real models) staged under `root/repo`, and an InferenceService file that
    canaries v2 at 20%."""
    models = {"1": fit_model(0), "2": fit_model(1)}
    stage_versions(root, models)
    path = root / "isvc.yaml"
    write_isvc(path, isvc("1", "2", 20))
    return models, path


def stage_versions(root: Path, models: dict[str, Any]) -> Path:
    """Each `version -> model` exported and staged as `demo__v<version>` under `root/repo` (returned)."""
    for version, model in models.items():
        source = export_local_model(model, root / f"export-v{version}" / "local" / "demo")
        stage_model_version(source, root / "repo", "demo", version)
    return root / "repo"


class Receiver(ThreadingHTTPServer):
    """Collects posted CloudEvents as `Event`s."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.events.append(  # type: ignore[attr-defined]
            ({k.lower(): v for k, v in self.headers.items()}, json.loads(body))
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def logged_pairs(receiver: Receiver, ids: dict[str, str]) -> dict[str, tuple[Event, Event]]:
    """Per role, the (request, response) CloudEvents logged for the request with that id (waits for them)."""

    def events_for(request_id: str) -> list[Event]:
        return [e for e in list(receiver.events) if e[1].get("id") == request_id]

    wait_for(lambda: all(len(events_for(i)) == 2 for i in ids.values()), "both events of each request")
    return {role: tuple(events_for(request_id)) for role, request_id in ids.items()}  # type: ignore[misc]


def assert_kserve_logger_headers(pair: tuple[Event, Event], endpoint: str, version: str) -> None:
    """The binary-mode headers KServe's logger sets, on both events of one inference."""
    (req_headers, _), (resp_headers, _) = pair
    assert req_headers["ce-id"] == resp_headers["ce-id"]
    assert req_headers["ce-type"] == "org.kubeflow.serving.inference.request"
    assert resp_headers["ce-type"] == "org.kubeflow.serving.inference.response"
    for headers in (req_headers, resp_headers):
        assert headers["ce-specversion"] == "1.0" and headers["ce-endpoint"] == endpoint
        assert json.loads(headers["ce-annotations"]) == {MODEL_VERSION_KEY: version}
        assert headers["ce-inferenceservicename"] == "demo" and "ce-modelversion" not in headers
        assert headers["ce-source"].startswith("demo-predictor-") and headers["ce-component"] == "predictor"
        assert headers["content-type"] == "application/json" and headers["ce-time"].endswith("Z")


def triton_counts(metrics_url: str) -> dict[tuple[str, str], float]:
    """(Triton model, family) -> value of Triton's request counters, read from its /metrics."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
        if family.name not in ("nv_inference_request_success", "nv_inference_request_failure"):
            continue
        for sample in family.samples:  # the parser names counter samples `<family>_total`
            key = (sample.labels["model"], family.name)
            found[key] = found.get(key, 0.0) + sample.value
    return found
