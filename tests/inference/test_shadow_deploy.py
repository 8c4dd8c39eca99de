"""The cluster's shadow rollout (inference/deploy/shadow.py): a Gateway API HTTPRoute whose RequestMirror
filter copies the infer path to the shadow InferenceService, checked against the HTTPRoute v1 schema of the
Gateway API release KServe pins (tests/fixtures/gateway_api/, provenance in its `$comment`), the shadow
InferenceService against the KServe SDK's models and the webhook's rules, and what it refuses.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from inference.deploy.annotations import SHADOW_VERSION_KEY
from inference.deploy.kserve_schema import sdk_problems
from inference.deploy.render import render_inference_service
from inference.deploy.shadow import render_shadow
from inference.router.isvc import Route, route_from_isvc
from tests.helpers.deploy_registry import version_ref
from tests.helpers.kserve_webhook import refusals
from tests.helpers.specs import fixture_spec

MODEL = "intent-transformer"  # no Feast transformer: the gateway's copy reaches the predictor as sent
NAMESPACE = "mlops-test"
SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "gateway_api" / "httproute-v1-spec.schema.json"


def _closed(schema: Any) -> Any:
    """The schema with unknown fields refused: the API server prunes them silently, which would turn a
    misspelled `requestMirror` into a route that mirrors nothing."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in schema:
            closed.setdefault("additionalProperties", False)
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


VALIDATOR = Draft202012Validator(_closed(json.loads(SCHEMA.read_text())))


def spec_problems(route: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(route["spec"])
    ]


def _live(mode: str = "Standard", canary: str | None = None, model: str = MODEL) -> dict[str, Any]:
    spec = fixture_spec(model)
    canary_ref = version_ref(model, canary) if canary else None
    return render_inference_service(spec, version_ref(model, "1"), canary_ref, NAMESPACE, mode=mode)


def test_the_mirror_route_fits_the_pinned_gateway_api_schema_and_the_check_bites() -> None:
    _, _, route = render_shadow(_live(), version_ref(MODEL, "2"), percent=50)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    assert spec_problems(route) == []
    misspelled = copy.deepcopy(route)
    rule = misspelled["spec"]["rules"][0]
    rule["filters"][1]["requestMirrror"] = rule["filters"][1].pop("requestMirror")
    too_much = copy.deepcopy(route)
    too_much["spec"]["rules"][0]["filters"][1]["requestMirror"]["percent"] = 101
    assert any("requestMirrror" in p for p in spec_problems(misspelled))
    assert any("101" in p for p in spec_problems(too_much))


def test_the_infer_path_is_answered_by_the_stable_predictor_and_copied_to_the_shadow() -> None:
    live, shadow, route = render_shadow(_live(), version_ref(MODEL, "2"))
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "Exact", "value": f"/v2/models/{MODEL}/infer"}}]
    service = {"kind": "Service", "namespace": NAMESPACE, "port": 80}
    assert rule["backendRefs"] == [{**service, "name": f"{MODEL}-v1-predictor"}]
    headers, mirror = rule["filters"]
    assert mirror == {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {**service, "name": f"{MODEL}-shadow-v2-predictor"}, "percent": 100},
    }
    assert headers["requestHeaderModifier"]["set"] == [
        {"name": "KServe-Isvc-Name", "value": MODEL},
        {"name": "KServe-Isvc-Namespace", "value": NAMESPACE},
    ]
    hosts = [f"{MODEL}-{NAMESPACE}.example.com", f"{MODEL}-predictor-{NAMESPACE}.example.com"]
    assert route["spec"]["hostnames"] == hosts
    assert route["spec"]["parentRefs"][0] == {
        "group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "kserve",
        "name": "kserve-ingress-gateway",
    }  # fmt: skip
    # the Services the route names are the ones KServe creates for the two predictors
    assert shadow["metadata"]["name"] + "-" + shadow["spec"]["predictor"]["name"] + "-predictor" == (
        f"{MODEL}-shadow-v2-predictor"
    )
    assert live["spec"]["predictor"]["name"] == "v1"


def test_the_shadow_service_passes_kserve_and_the_router_reads_the_shadow_from_the_live_one() -> None:
    live, shadow, _ = render_shadow(_live(), version_ref(MODEL, "2"))
    for service in (live, shadow):
        assert sdk_problems(service) == [] and refusals(service) == []
    assert live["metadata"]["annotations"][SHADOW_VERSION_KEY] == "2"
    assert route_from_isvc(live) == Route(MODEL, "1", shadow_version="2")
    # the mirror's percent reaches the router through the same annotation the route's filter is rendered from
    live, _, route = render_shadow(_live(), version_ref(MODEL, "2"), percent=25)
    (rule,) = route["spec"]["rules"]
    (mirror,) = [f["requestMirror"] for f in rule["filters"] if f["type"] == "RequestMirror"]
    assert mirror["percent"] == 25 and route_from_isvc(live).shadow_percent == 25
    assert route_from_isvc(shadow) == Route(f"{MODEL}-shadow", "2")  # serves the shadow alone, no shadow
    predictor = shadow["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == version_ref(MODEL, "2").storage_uri
    assert predictor["annotations"]["serving.mlops-loop.io/model-version"] == "2"
    assert predictor["logger"]["mode"] == "all"  # its answers are logged: what a cluster comparator reads


@pytest.mark.parametrize(
    ("live", "version", "percent", "message"),
    [
        (lambda: _live("Knative"), "2", 100, "a shadow needs KServe Standard mode"),
        (lambda: _live(canary="2"), "3", 100, "a shadow runs before a canary"),
        (lambda: _live(model="conversion-xgboost"), "2", 100, "no shadow behind the Feast transformer"),
        (_live, "1", 100, "is not another version of intent-transformer"),
        (_live, "2", 101, "shadow percent must be an integer in 0..100"),
    ],
)
def test_what_the_gateway_cannot_mirror_is_refused_in_one_line(live, version, percent, message) -> None:
    service = live()
    name = service["metadata"]["name"]
    with pytest.raises(ValueError, match=message) as refused:
        render_shadow(service, version_ref(name, version), percent=percent)
    assert str(refused.value).startswith(f"deploy: {name}: ") and "\n" not in str(refused.value)
