"""A logged inference is decoded once, at the drift service's entry: every field from KServe-shaped
events, and the version precedence (the version annotation KServe's logger sends, the payload, the only
loaded version)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inference.deploy.annotations import MODEL_VERSION_KEY
from monitoring.payloads.cloudevents import parse_http_event
from monitoring.payloads.errors import EventError
from monitoring.payloads.logged import UNKNOWN_VERSION, TensorLayout, logged_inference

DATA = Path(__file__).parent / "data" / "kserve_logger_events.json"
MODEL = "conversion-xgboost"
FEATURES = ("plan_tier", "company_size", "lifetime_value", "sessions_7d")
LAYOUT = TensorLayout(FEATURES)


def kserve_event(kind: str, headers: dict[str, str | None] | None = None, body: dict | None = None):
    sample = json.loads(DATA.read_text())[kind]
    merged = {k: v for k, v in {**sample["headers"], **(headers or {})}.items() if v is not None}
    return parse_http_event(merged, json.dumps(sample["body"] if body is None else body).encode())


def _annotated(version: str) -> str:
    return json.dumps({MODEL_VERSION_KEY: version})


def layouts(*versions: str) -> dict[tuple[str, str], TensorLayout]:
    return {(MODEL, version): LAYOUT for version in versions}


def test_a_kserve_request_gives_every_field_once():
    logged = logged_inference(kserve_event("request"), layouts("3"))
    ce_id = "5b6f4c3e-8a1d-4f0e-9d2b-1c7a3e9f0a42"
    assert (logged.event_id, logged.request_id, logged.kind) == (ce_id, ce_id, "request")
    assert (logged.model, logged.version, logged.version_source) == (MODEL, "3", "annotation")
    assert logged.key == (MODEL, "3") and logged.version_named
    expected = pd.DataFrame(
        {
            "plan_tier": ["pro", "free"],
            "company_size": [120, 4],
            "lifetime_value": np.array([1830.5, 0.0], dtype=np.float32),
            "sessions_7d": [9, 1],
        }
    )
    pd.testing.assert_frame_equal(logged.rows.frame(), expected, check_dtype=False)
    assert logged.row_count == 2
    assert logged.scores is None and logged.scores_problem is None


def test_a_kserve_response_gives_its_probabilities_and_the_logged_version():
    logged = logged_inference(kserve_event("response"), layouts("1", "3"))
    # The revision's version annotation ranks above the payload's Triton repository version "1".
    assert (logged.kind, logged.version, logged.version_source) == ("response", "3", "annotation")
    np.testing.assert_allclose(logged.scores, [[0.31, 0.69], [0.94, 0.06]], rtol=1e-6)
    assert logged.rows is None and logged.row_count == 0 and logged.scores_problem is None


def test_the_payload_id_is_the_request_id_and_the_event_id_stands_in_without_one():
    body = json.loads(DATA.read_text())["request"]["body"]
    named = logged_inference(kserve_event("request", {"Ce-Id": "ce-1"}, body), layouts("3"))
    assert (named.event_id, named.request_id) == ("ce-1", body["id"])
    del body["id"]
    bare = logged_inference(kserve_event("request", {"Ce-Id": "ce-2"}, body), layouts("3"))
    assert (bare.event_id, bare.request_id) == ("ce-2", "ce-2")


PRECEDENCE = {
    # case: (ce-annotations, payload model_version, loaded) -> (version, source)
    "annotation beats payload": ((_annotated("7"), "4", ["3", "4"]), ("7", "annotation")),
    "other annotations name no version": (('{"team":"growth"}', "4", ["3", "4"]), ("4", "payload")),
    "payload when a detector has it": ((None, "4", ["3", "4"]), ("4", "payload")),
    "only loaded beats an unloaded payload": ((None, "1", ["3"]), ("3", "only_loaded")),
    "only loaded without a payload version": ((None, None, ["3"]), ("3", "only_loaded")),
    "unloaded payload among several": ((None, "9", ["3", "4"]), ("9", "payload")),
    "nothing names one": ((None, None, ["3", "4"]), (UNKNOWN_VERSION, "none")),
}


@pytest.mark.parametrize("case", PRECEDENCE)
def test_version_precedence(case):
    (annotations, payload_version, loaded), expected = PRECEDENCE[case]
    body = {**json.loads(DATA.read_text())["response"]["body"], "model_version": payload_version}
    event = kserve_event("response", {"Ce-Annotations": annotations}, body)
    logged = logged_inference(event, layouts(*loaded))
    assert (logged.version, logged.version_source) == expected
    assert logged.version_named == (expected[1] != "none")


@pytest.mark.parametrize("annotations", ["{not json", '["3"]'])
def test_a_malformed_annotations_extension_is_a_named_bad_event(annotations):
    with pytest.raises(EventError, match="ce-annotations") as caught:
        logged_inference(kserve_event("request", {"Ce-Annotations": annotations}), layouts("3"))
    assert caught.value.reason == "bad_attribute"


def test_a_tensor_request_takes_its_detectors_layout_and_is_logged_empty_without_one():
    values = [2, 30.5, 4, 60.0]  # sessions_7d, duration_s per row
    tensor = {"inputs": [{"name": "input__0", "shape": [2, 2], "datatype": "FP32", "data": values}]}
    routed = {(MODEL, "3"): TensorLayout(("sessions_7d", "duration_s"))}
    logged = logged_inference(kserve_event("request", body=tensor), routed)
    assert logged.rows.frame().to_dict("list") == {"sessions_7d": [2.0, 4.0], "duration_s": [30.5, 60.0]}
    assert logged.row_count == 2
    # Version 9 has no detector: without its feature names the tensor is counted, its inputs not decoded.
    unrouted = logged_inference(kserve_event("request", {"Ce-Annotations": _annotated("9")}, tensor), routed)
    assert (unrouted.version, unrouted.rows, unrouted.row_count) == ("9", None, 2)


def test_a_response_without_probabilities_is_kept_with_the_reason():
    names = {"outputs": [{"name": "predicted_class", "datatype": "BYTES", "shape": [1], "data": ["1"]}]}
    logged = logged_inference(kserve_event("response", body=names), layouts("3"))
    assert logged.scores is None
    assert "predicted_class" in logged.scores_problem and "\n" not in logged.scores_problem


NO_DATA = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32"}]}
SHORT_DATA = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0]}]}


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"Ce-Inferenceservicename": "no-such-model"}, None, "unknown_model"),
        ({"Ce-Inferenceservicename": None}, {"inputs": []}, "unknown_model"),
        ({"Ce-Modelversion": "9"}, NO_DATA, "bad_payload"),
        ({}, SHORT_DATA, "bad_payload"),
    ],
    ids=["no-detector-for-model", "no-model-named", "no-data-unrouted", "short-data-routed"],
)
def test_unusable_events_raise_one_line_with_the_reject_reason(headers, body, reason):
    with pytest.raises(EventError) as raised:
        logged_inference(kserve_event("request", headers, body), layouts("3"))
    assert raised.value.reason == reason and "\n" not in str(raised.value)
