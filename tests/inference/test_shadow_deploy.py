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

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry, make_asgi_app

from core.paths import REPO_ROOT
from core.registry import CHALLENGER, CHAMPION, set_alias
from inference.deploy.__main__ import main
from inference.deploy.annotations import MODEL_VERSION_KEY, SHADOW_VERSION_KEY
from inference.deploy.apply import FileApplier
from inference.deploy.kserve_schema import sdk_problems
from inference.deploy.payload_logs import PayloadLogStore
from inference.deploy.render import default_logger_url, render_inference_service
from inference.deploy.rollout import Rollout
from inference.deploy.shadow import comparator_url, render_shadow, shadow_object_keys
from inference.router.isvc import Route, route_from_isvc
from inference.router.logger import REQUEST_TYPE, RESPONSE_TYPE
from inference.router.shadow_compare import Answer, ShadowComparator
from manifests.validate import render
from tests.helpers.custom_schemas import validate
from tests.helpers.deploy_registry import two_version_registry, version_ref
from tests.helpers.fast_specs import write_spec
from tests.helpers.kserve_webhook import refusals
from tests.helpers.servers import serving_in_thread
from tests.helpers.specs import fixture_spec, fixture_spec_data

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


def _live(mode: str = "Standard", canary: str | None = None, model: str = MODEL, **kwargs) -> dict[str, Any]:
    spec = fixture_spec(model)
    canary_ref = version_ref(model, canary) if canary else None
    return render_inference_service(spec, version_ref(model, "1"), canary_ref, NAMESPACE, mode=mode, **kwargs)


def test_the_mirror_route_fits_the_pinned_gateway_api_schema_and_the_check_bites() -> None:
    route = render_shadow(_live(), version_ref(MODEL, "2"), percent=50).route
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
    objects = render_shadow(_live(), version_ref(MODEL, "2"))
    live, shadow, route = objects.live, objects.shadow, objects.route
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
    objects = render_shadow(_live(), version_ref(MODEL, "2"))
    live, shadow = objects.live, objects.shadow
    for service in (live, shadow):
        assert sdk_problems(service) == [] and refusals(service) == []
    assert live["metadata"]["annotations"][SHADOW_VERSION_KEY] == "2"
    assert route_from_isvc(live) == Route(MODEL, "1", shadow_version="2")
    # the mirror's percent reaches the router through the same annotation the route's filter is rendered from
    objects = render_shadow(_live(), version_ref(MODEL, "2"), percent=25)
    live, route = objects.live, objects.route
    (rule,) = route["spec"]["rules"]
    (mirror,) = [f["requestMirror"] for f in rule["filters"] if f["type"] == "RequestMirror"]
    assert mirror["percent"] == 25 and route_from_isvc(live).shadow_percent == 25
    assert route_from_isvc(shadow) == Route(f"{MODEL}-shadow", "2")  # serves the shadow alone, no shadow
    predictor = shadow["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == version_ref(MODEL, "2").storage_uri
    assert predictor["annotations"]["serving.mlops-loop.io/model-version"] == "2"
    assert predictor["logger"]["mode"] == "all"  # its answers are logged: what the comparator reads


@pytest.mark.parametrize(
    ("live", "version", "percent", "message"),
    [
        (lambda: _live("Knative"), "2", 100, "a shadow needs KServe Standard mode"),
        (lambda: _live(canary="2"), "3", 100, "a shadow runs before a canary"),
        (lambda: _live(model="conversion-xgboost"), "2", 100, "no shadow behind the Feast transformer"),
        (_live, "1", 100, "is not another version of intent-transformer"),
        (_live, "2", 101, "shadow percent must be an integer in 0..100"),
        (
            lambda: _live(payload_store=PayloadLogStore("s3://logs/payloads")),
            "2",
            100,
            "the live logger batches into object storage",
        ),
        (lambda: _live(logger_url="http://sink.example/"), "2", 100, "not a Knative broker"),
    ],
)
def test_what_the_gateway_cannot_mirror_is_refused_in_one_line(live, version, percent, message) -> None:
    service = live()
    name = service["metadata"]["name"]
    with pytest.raises(ValueError, match=message) as refused:
        render_shadow(service, version_ref(name, version), percent=percent)
    assert str(refused.value).startswith(f"deploy: {name}: ") and "\n" not in str(refused.value)


def test_both_loggers_name_the_request_id_and_the_shadows_events_go_to_the_comparator() -> None:
    objects = render_shadow(_live(), version_ref(MODEL, "2"))
    live, shadow = (o["spec"]["predictor"]["logger"] for o in (objects.live, objects.shadow))
    assert live["url"] == default_logger_url(NAMESPACE) and live["metadataHeaders"] == ["X-Request-Id"]
    # not the broker: the drift detector's Triggers take every inference event from it
    assert shadow == {
        "metadataAnnotations": [MODEL_VERSION_KEY],
        "mode": "all",
        "url": comparator_url(NAMESPACE),
        "metadataHeaders": ["X-Request-Id"],
    }
    assert sdk_problems(objects.live) == [] and sdk_problems(objects.shadow) == []


def test_the_live_events_reach_the_comparator_through_triggers_that_fit_knatives_schema() -> None:
    triggers = list(render_shadow(_live(), version_ref(MODEL, "2")).triggers)
    code, report = validate(triggers)
    assert code == 0, report
    assert [t["spec"]["filter"]["attributes"] for t in triggers] == [
        {"type": REQUEST_TYPE, "inferenceservicename": MODEL},
        {"type": RESPONSE_TYPE, "inferenceservicename": MODEL},
    ]
    assert {t["spec"]["broker"] for t in triggers} == {"default"}  # the one the live logger posts to
    # the subscriber is the comparator the platform deploys, where the shadow's logger posts too
    platform = render(REPO_ROOT / "kustomize" / "overlays" / "dev-standard")
    (service,) = [
        o for o in platform if o["kind"] == "Service" and o["metadata"]["name"] == "shadow-comparator"
    ]
    assert {t["spec"]["subscriber"]["ref"]["name"] for t in triggers} == {service["metadata"]["name"]}
    namespace = service["metadata"]["namespace"]
    assert comparator_url(namespace) == f"http://shadow-comparator.{namespace}.svc.cluster.local"
    (deployment,) = [
        o for o in platform if o["kind"] == "Deployment" and o["metadata"]["name"] == "shadow-comparator"
    ]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "monitoring.shadow_join"
    broken = copy.deepcopy(triggers[0])
    broken["spec"]["subscribr"] = broken["spec"].pop("subscriber")
    assert validate([broken])[0] == 1


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    with two_version_registry(tmp_path_factory.mktemp("mlops_home"), (MODEL,)) as home:
        yield home


def test_a_shadow_rollout_applies_its_objects_and_the_canary_deletes_them(registry, tmp_path) -> None:
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 2)
    applier, spec = FileApplier(tmp_path), fixture_spec(MODEL)
    rollout = Rollout(applier, NAMESPACE, mode="Standard")
    result = rollout.start_shadow(spec, 30)
    assert (result.state, result.champion.version, result.challenger.version) == ("shadow", "1", "2")
    for _, kind, name in shadow_object_keys(MODEL):
        assert applier.get(kind, name, NAMESPACE) is not None, (kind, name)
    live = applier.get("InferenceService", MODEL, NAMESPACE)
    assert route_from_isvc(live) == Route(MODEL, "1", shadow_version="2", shadow_percent=30)
    rollout.start_canary(spec)
    assert [applier.get(kind, name, NAMESPACE) for _, kind, name in shadow_object_keys(MODEL)] == [None] * 4
    live = applier.get("InferenceService", MODEL, NAMESPACE)
    assert SHADOW_VERSION_KEY not in live["metadata"]["annotations"] and live["spec"]["canary"]


def test_the_command_starts_and_ends_a_shadow(registry, tmp_path, capsys, fixture_specs) -> None:
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 2)
    args = [
        "--model",
        MODEL,
        "--namespace",
        NAMESPACE,
        "--out",
        str(tmp_path),
        "--deployment-mode",
        "Standard",
    ]
    assert main(["shadow", *args, "--percent", "10"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{MODEL}: shadow: champion v1, challenger v2"
    assert FileApplier(tmp_path).get("HTTPRoute", f"{MODEL}-shadow-mirror", NAMESPACE) is not None
    assert main(["end-shadow", *args]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{MODEL}: serving: champion v1"
    assert sorted(p.name for p in (tmp_path / NAMESPACE).iterdir()) == [f"inferenceservice-{MODEL}.yaml"]
    assert main(["shadow", *args, "--percent", "101"]) == 1
    assert "shadow percent must be an integer in 0..100" in capsys.readouterr().err


def _probabilities(p1: np.ndarray) -> bytes:
    data = np.column_stack([1 - p1, p1]).ravel().tolist()
    return json.dumps(
        {"outputs": [{"name": "p", "datatype": "FP32", "shape": [len(p1), 2], "data": data}]}
    ).encode()


def _compared(requests: int) -> CollectorRegistry:
    """A comparator after `requests` comparisons of version 1 (live) with a close version 2 (shadow)."""
    registry = CollectorRegistry()
    comparator, rng = ShadowComparator(registry), np.random.default_rng(5)
    for _ in range(requests):
        live = rng.uniform(0.05, 0.95, 4)
        bodies = [_probabilities(p) for p in (live, np.clip(live + rng.normal(0, 0.01, 4), 0, 1))]
        comparator.compare(MODEL, "2", Answer(bodies[0], 0.002), Answer(bodies[1], 0.002))
    return registry


def test_the_canary_starts_only_when_the_shadow_run_says_go(registry, tmp_path, capsys) -> None:
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 2)
    data = fixture_spec_data(MODEL)
    data["canary"]["shadow"] = {"min_compared": 50, "min_agreement": 0.9}
    specs, out = tmp_path / "specs", tmp_path / "out"
    specs.mkdir()
    write_spec(specs, MODEL, data)
    args = ["--model", MODEL, "--namespace", NAMESPACE, "--out", str(out), "--deployment-mode", "Standard"]
    args += ["--spec-dir", str(specs)]
    assert main(["shadow", *args]) == 0
    for requests, code in ((20, 1), (60, 0)):
        with serving_in_thread(make_asgi_app(_compared(requests))) as base:
            assert main(["canary", *args, "--shadow-metrics-url", base]) == code
        live = FileApplier(out).get("InferenceService", MODEL, NAMESPACE)
        if code:  # "wait" is not a go: nothing applied, the shadow keeps running
            assert "shadow v2: wait: not enough traffic yet: 20 of 50" in capsys.readouterr().err
            assert live["metadata"]["annotations"][SHADOW_VERSION_KEY] == "2" and "canary" not in live["spec"]
    assert live["spec"]["canary"] and SHADOW_VERSION_KEY not in live["metadata"]["annotations"]
    assert capsys.readouterr().out.splitlines()[-1] == f"{MODEL}: canary: champion v1, challenger v2"
