"""Canaries in both KServe deployment modes: Knative (`canaryTrafficPercent`) and Standard (`spec.canary`).
Each rendering walks the KServe SDK's models and every rollout's sequence of applies passes the rules of
KServe's admission webhook (tests/helpers/kserve_webhook.py, transcribed from kserve v0.20.0); the canary
KServe would build from a Standard entry (stable predictor merged with the entry, mergo.WithOverride) names
the canary's version where the PodMonitor and the payload logger read it; the local router routes both."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from core.registry import CHALLENGER, CHAMPION, get_alias_version, resolve_alias, set_alias
from core.settings import variable
from inference.deploy.__main__ import main
from inference.deploy.annotations import MODEL_VERSION_KEY
from inference.deploy.apply import FileApplier
from inference.deploy.kserve_schema import sdk_problems
from inference.deploy.render import render_inference_service
from inference.deploy.rollout import Rollout
from inference.router.isvc import RouteError, route_from_isvc
from tests.helpers.deploy_registry import two_version_registry, version_ref
from tests.helpers.kserve_webhook import MODE_KEY, ApiServer, refusals
from tests.helpers.specs import fixture_spec

MODEL = "intent-transformer"  # no Feast transformer: it can canary in both modes
NAMESPACE = "mlops-test"
MODES = ("Knative", "Standard")


@pytest.fixture(scope="module")
def spec():
    return fixture_spec(MODEL)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    with two_version_registry(tmp_path_factory.mktemp("mlops_home"), (MODEL,)) as home:
        yield home


def _render(spec, stable: str, canary: str | None, mode: str, percent: int | None = None) -> dict:
    canary_ref = version_ref(MODEL, canary) if canary else None
    return render_inference_service(
        spec, version_ref(MODEL, stable), canary_ref, NAMESPACE, percent, mode=mode
    )


def _merged(stable: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """mergo.Merge(&stable, entry, WithOverride) over the JSON forms: maps merge key by key, a set value in
    the entry wins, lists are replaced (kserve components/predictor.go buildCanaryPredictor)."""
    merged = copy.deepcopy(stable)
    for key, value in entry.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ------------------------------------------------------------------------------------------- rendering
def test_a_standard_canary_is_a_named_entry_beside_the_named_stable_predictor(spec) -> None:
    service = _render(spec, "1", "2", "Standard")
    assert service["metadata"]["annotations"][MODE_KEY] == "Standard"
    stable, (entry,) = service["spec"]["predictor"], service["spec"]["canary"]
    assert (stable["name"], stable["model"]["storageUri"]) == ("v1", version_ref(MODEL, "1").storage_uri)
    assert entry["trafficPercent"] == spec.canary.traffic_percent
    assert "canaryTrafficPercent" not in stable
    # Knative's concurrency autoscaling fields would mean nothing to the HPA (and are refused on a canary)
    assert not {"scaleMetric", "scaleTarget"} & set(stable) and not {"scaleMetric", "scaleTarget"} & set(
        entry
    )
    assert sdk_problems(service) == [] and refusals(service) == []


def test_the_pods_of_each_standard_predictor_name_their_own_version(spec) -> None:
    service = _render(spec, "1", "2", "Standard")
    stable, (entry,) = service["spec"]["predictor"], service["spec"]["canary"]
    canary = _merged(stable, entry["predictor"])
    for predictor, version in ((stable, "1"), (canary, "2")):
        # pod annotations: the InferenceService's, then the predictor's own win (buildObjectMeta)
        pod = {**service["metadata"]["annotations"], **predictor["annotations"]}
        assert pod[MODEL_VERSION_KEY] == version and predictor["labels"][MODEL_VERSION_KEY] == version
        assert predictor["model"]["storageUri"] == version_ref(MODEL, version).storage_uri
        assert predictor["logger"]["metadataAnnotations"] == [MODEL_VERSION_KEY]
        assert predictor["model"]["resources"] == stable["model"]["resources"]  # the GPU, when asked
        assert predictor["name"] == f"v{version}"


def test_standard_mode_refuses_what_kserve_cannot_route(spec) -> None:
    feature_model = fixture_spec("conversion-xgboost")  # served behind the Feast transformer
    with pytest.raises(ValueError, match="no Standard-mode canary behind a transformer"):
        render_inference_service(
            feature_model, version_ref(feature_model.name, "1"), version_ref(feature_model.name, "2"),
            NAMESPACE, mode="Standard",
        )  # fmt: skip
    alone = render_inference_service(
        feature_model, version_ref(feature_model.name, "1"), None, NAMESPACE, mode="Standard"
    )
    assert alone["spec"]["transformer"] and sdk_problems(alone) == []  # served alone it is fine
    long = spec.model_copy(update={"name": "m" * 47})  # the longest name Knative mode allows
    with pytest.raises(ValueError, match="longer than a 63-character DNS label"):
        render_inference_service(
            long, version_ref(long.name, "1"), version_ref(long.name, "12345"), "ns", mode="Standard"
        )


def test_the_webhook_rules_bite(spec) -> None:
    created = _render(spec, "1", None, "Knative")
    stored = {**created, "status": {"deploymentMode": "Knative"}}
    named = copy.deepcopy(created)
    named["spec"]["predictor"]["model"]["name"] = "kserve-container"
    assert refusals(named) == ["the 'name' field is not allowed in standard predictor"]
    legacy = copy.deepcopy(created)
    legacy["metadata"]["annotations"][MODE_KEY] = "Serverless"  # what the template used to write
    assert refusals(legacy, stored) == ["deploymentMode cannot be changed from Knative to Serverless"]
    standard = _render(spec, "1", "2", "Standard")
    as_knative = copy.deepcopy(standard)
    as_knative["metadata"]["annotations"][MODE_KEY] = "Knative"
    assert refusals(as_knative) == ["canary is only supported in Standard deployment mode"]
    greedy = copy.deepcopy(standard)
    greedy["spec"]["canary"][0] |= {"trafficPercent": 101}
    greedy["spec"]["canary"][0]["predictor"]["scaleMetric"] = "cpu"
    assert refusals(greedy) == [
        "canary 'v2' trafficPercent must be between 0 and 100",
        "canary 'v2' must not set scaleMetric",
        "sum of canary trafficPercent values (101) must be <= 100",
    ]
    renamed = copy.deepcopy(standard)
    renamed["spec"]["predictor"]["name"] = "v9"
    old = {**standard, "status": {"deploymentMode": "Standard"}}
    assert refusals(renamed, old) == ["predictor.name change requires a model change (e.g. storageUri)"]


# -------------------------------------------------------------------------------------------- rollouts
@pytest.mark.parametrize("mode", MODES)
def test_canary_rollback_canary_promote_pass_the_webhook(spec, registry: Path, mode: str) -> None:
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 2)
    api = ApiServer()
    rollout = Rollout(api, NAMESPACE, mode=mode)
    rollout.deploy(spec)
    rollout.start_canary(spec)
    canary = api.get("InferenceService", MODEL, NAMESPACE)
    route = route_from_isvc(canary)
    assert (route.stable_version, route.canary_version, route.canary_percent) == ("1", "2", 20)
    applies = len(api.applied)
    rollout.rollback(spec, "p95 too high")
    rolled_back = api.get("InferenceService", MODEL, NAMESPACE)
    assert len(api.applied) - applies == (2 if mode == "Knative" else 1)
    assert route_from_isvc(rolled_back).targets == route_from_isvc(api.applied[0]).targets  # v1 alone
    assert "canary" not in rolled_back["spec"]
    set_alias(MODEL, CHALLENGER, 2)
    rollout.start_canary(spec)
    rollout.promote(spec)
    promoted = api.get("InferenceService", MODEL, NAMESPACE)
    assert [t.version for t in route_from_isvc(promoted).targets] == ["2"]
    assert promoted["spec"]["predictor"]["model"]["storageUri"] == resolve_alias(MODEL, CHAMPION).storage_uri
    if mode == "Standard":  # the canary's name moves onto the stable predictor (KServe adopts it)
        assert promoted["spec"]["predictor"]["name"] == "v2" and "canary" not in promoted["spec"]
    assert all(sdk_problems(obj) == [] for obj in api.applied)
    assert str(get_alias_version(MODEL, CHAMPION).version) == "2"


def test_the_cli_follows_the_overlays_mode(
    registry: Path, tmp_path: Path, monkeypatch, fixture_specs
) -> None:
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 2)
    monkeypatch.setenv(variable("kserve_deployment_mode"), "RawDeployment")  # KServe's legacy name
    assert main(["canary", "--model", MODEL, "--namespace", NAMESPACE, "--out", str(tmp_path)]) == 0
    served = FileApplier(tmp_path).get("InferenceService", MODEL, NAMESPACE)
    assert served["metadata"]["annotations"][MODE_KEY] == "Standard" and served["spec"]["canary"]
    monkeypatch.setenv(variable("kserve_deployment_mode"), "Istio")
    assert main(["promote", "--model", MODEL, "--out", str(tmp_path)]) == 1


def test_the_router_refuses_a_malformed_standard_canary(spec) -> None:
    service = _render(spec, "1", "2", "Standard")
    service["spec"]["canary"][0]["trafficPercent"] = "20"
    with pytest.raises(RouteError, match=r"spec.canary\[0\].trafficPercent must be an integer"):
        route_from_isvc(service, "isvc.yaml")
    del service["spec"]["canary"][0]["predictor"]["annotations"]
    service["spec"]["canary"][0]["trafficPercent"] = 20
    with pytest.raises(RouteError, match=r"spec.canary\[0\].predictor.annotations\['serving.mlops"):
        route_from_isvc(service, "isvc.yaml")
