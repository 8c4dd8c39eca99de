"""The rendered NetworkPolicies, evaluated like the API's semantics for the flows the loop needs: default
deny, then each allow admits exactly its peers. Pods are described by the labels KServe, Knative and the
Prometheus Operator really put on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from manifests.validate import render

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "mlops"


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    named_ports: dict[str, int] = field(default_factory=dict)


def kserve_pod(component: str) -> Pod:
    return Pod(
        NAMESPACE, {"serving.kserve.io/inferenceservice": "conversion-xgboost", "component": component}
    )


PREDICTOR = kserve_pod("predictor")
TRANSFORMER = kserve_pod("transformer")
FEATURE_SERVER = Pod(NAMESPACE, {"app.kubernetes.io/name": "feast-feature-server"}, {"http": 6566})
DRIFT_DETECTOR = Pod(NAMESPACE, {"app.kubernetes.io/name": "drift-detector"}, {"http": 8080})
SHADOW_COMPARATOR = Pod(NAMESPACE, {"app.kubernetes.io/name": "shadow-comparator"}, {"http": 8080})
ISTIO_GATEWAY = Pod("istio-system", {"istio": "ingressgateway"})
ACTIVATOR = Pod("knative-serving", {"app": "activator"})
AUTOSCALER = Pod("knative-serving", {"app": "autoscaler"})
BROKER_INGRESS = Pod("knative-eventing", {"eventing.knative.dev/brokerRole": "ingress"})
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
MLFLOW = Pod(NAMESPACE, {"app.kubernetes.io/name": "mlflow"}, {"http": 5000})
OTHER_APP = Pod(NAMESPACE, {"app.kubernetes.io/name": "something-else"})


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        present = key in labels
        ok = {
            "In": present and labels.get(key) in expression.get("values", []),
            "NotIn": labels.get(key) not in expression.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


def peer_matches(peer: dict, policy_namespace: str, pod: Pod) -> bool:
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": pod.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), pod.labels)


def port_matches(rule: dict, port: int, owner: Pod) -> bool:
    if "ports" not in rule:
        return True
    for entry in rule["ports"]:
        number = owner.named_ports.get(entry["port"]) if isinstance(entry["port"], str) else entry["port"]
        if number == port:
            return True
    return False


def allowed(policies: list[dict], source: Pod, target: Pod, port: int, external: bool = False) -> bool:
    """Both ends must allow: the target's ingress and the source's egress (when the source is ours)."""
    return _side(policies, "Ingress", target, source, port, target) and (
        source.namespace != NAMESPACE or _side(policies, "Egress", source, target, port, target, external)
    )


def _side(
    policies: list[dict], kind: str, subject: Pod, peer: Pod, port: int, owner: Pod, external: bool = False
) -> bool:
    if subject.namespace != NAMESPACE:
        return True  # other namespaces' policies are not ours to render
    relevant = [
        p
        for p in policies
        if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject.labels)
    ]
    assert relevant, f"no {kind} policy selects {subject.labels}: default deny must cover every pod"
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in relevant:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            peer_ok = peers is None or any(peer_matches(x, NAMESPACE, peer) for x in peers)
            if peer_ok and port_matches(rule, port, owner):
                return True
    return False


@pytest.fixture(scope="module")
def policies() -> list[dict]:
    objects = render(ROOT / "kustomize" / "overlays" / "prod")
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize("source", [ISTIO_GATEWAY, ACTIVATOR], ids=["ingress-gateway", "activator"])
@pytest.mark.parametrize("target", [PREDICTOR, TRANSFORMER], ids=["predictor", "transformer"])
def test_knative_data_path_reaches_the_queue_proxy(policies, source, target):
    assert allowed(policies, source, target, 8012)
    assert not allowed(policies, source, target, 8022), "queue-proxy's admin port stays closed"


def test_autoscaler_and_prometheus_read_the_inference_pods_metrics(policies):
    assert allowed(policies, AUTOSCALER, PREDICTOR, 9090)
    assert allowed(policies, PROMETHEUS, PREDICTOR, 9091)
    assert not allowed(policies, AUTOSCALER, PREDICTOR, 8012)


def test_nothing_else_in_the_namespace_reaches_the_inference_pods(policies):
    for source in (OTHER_APP, MLFLOW, DRIFT_DETECTOR):
        assert not allowed(policies, source, PREDICTOR, 8012)


def test_inference_pods_log_payloads_to_the_broker(policies):
    for pod in (PREDICTOR, TRANSFORMER):
        assert allowed(policies, pod, BROKER_INGRESS, 8080)


def test_only_transformers_reach_the_feature_server(policies):
    assert allowed(policies, TRANSFORMER, FEATURE_SERVER, 6566)
    assert not allowed(policies, PREDICTOR, FEATURE_SERVER, 6566)
    assert not allowed(policies, OTHER_APP, FEATURE_SERVER, 6566)
    assert not allowed(policies, TRANSFORMER, FEATURE_SERVER, 6379)


def test_transformers_read_the_online_store_and_registry_and_predictors_do_not(policies):
    # inference.transformer reads Feast with its embedded SDK (manifests/serving/README.md).
    store = Pod("external", {})
    for port in (5432, 6379):
        assert _side(policies, "Egress", TRANSFORMER, store, port, store)
        assert not _side(policies, "Egress", PREDICTOR, store, port, store)


def test_transformers_call_their_predictor_through_the_local_gateway(policies):
    assert allowed(policies, TRANSFORMER, ISTIO_GATEWAY, 8081)
    assert not allowed(policies, PREDICTOR, ISTIO_GATEWAY, 8081)


def test_the_feature_server_reaches_its_stores_only(policies):
    for port in (5432, 6379):
        assert _side(policies, "Egress", FEATURE_SERVER, Pod("external", {}), port, FEATURE_SERVER)
    assert not _side(policies, "Egress", FEATURE_SERVER, MLFLOW, 5000, MLFLOW)


def test_the_broker_still_delivers_to_the_drift_detector(policies):
    broker_filter = Pod("knative-eventing", {"eventing.knative.dev/brokerRole": "filter"})
    assert allowed(policies, broker_filter, DRIFT_DETECTOR, 8080)
    assert not allowed(policies, BROKER_INGRESS, DRIFT_DETECTOR, 8080)


def test_the_shadow_comparator_gets_the_brokers_and_the_predictors_events_and_nothing_else(policies):
    broker_filter = Pod("knative-eventing", {"eventing.knative.dev/brokerRole": "filter"})
    assert allowed(policies, broker_filter, SHADOW_COMPARATOR, 8080)  # the live service's, via Triggers
    assert allowed(policies, PREDICTOR, SHADOW_COMPARATOR, 8080)  # the shadow's logger posts directly
    assert allowed(policies, PROMETHEUS, SHADOW_COMPARATOR, 8080)
    for source in (TRANSFORMER, OTHER_APP, BROKER_INGRESS, DRIFT_DETECTOR):
        assert not allowed(policies, source, SHADOW_COMPARATOR, 8080), source
    assert not allowed(policies, PREDICTOR, SHADOW_COMPARATOR, 9090)


def test_the_feature_server_port_in_the_policy_is_the_container_port():
    objects = render(ROOT / "kustomize" / "overlays" / "dev")
    deployment = next(
        o for o in objects if o["metadata"]["name"] == "feast-feature-server" and o["kind"] == "Deployment"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 6566}
    assert "--port=6566" in container["args"]
    service = next(
        o for o in objects if o["metadata"]["name"] == "feast-feature-server" and o["kind"] == "Service"
    )
    assert service["spec"]["ports"][0]["port"] == 6566
    assert selects(
        {"matchLabels": service["spec"]["selector"]}, deployment["spec"]["template"]["metadata"]["labels"]
    )
