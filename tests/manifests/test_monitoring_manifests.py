"""The drift detector's wiring (Triggers, Service, PodMonitor, NetworkPolicies) and the Grafana dashboard
in the rendered prod overlay: the dashboard only queries metrics the contract or the rules define."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from manifests.validate import render
from tests.helpers.specs import DEMO_MODELS

ROOT = Path(__file__).resolve().parents[2]
LOGGER_TYPES = {"org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"}
# The metric contract (issue 5): what the services export. Histograms also expose _bucket/_sum/_count.
CONTRACT = {
    "mlops_drift_events_received_total",
    "mlops_drift_events_rejected_total",
    "mlops_drift_events_dropped_total",
    "mlops_drift_test_statistic",
    "mlops_drift_p_value",
    "mlops_drift_threshold",
    "mlops_drift_detected",
    "mlops_drift_last_run_timestamp_seconds",
    "mlops_drift_detector_duration_seconds",
    "mlops_model_quality_accuracy",
    "mlops_model_quality_roc_auc",
    "mlops_model_quality_log_loss",
    "mlops_model_quality_labeled_total",
    "mlops_model_quality_floor",
    # the specs' alert settings (monitoring/spec_metrics.py)
    "mlops_canary_max_error_rate",
    "mlops_canary_max_p95_latency_ratio",
    "mlops_canary_min_p95_latency_increase_seconds",
    "mlops_drift_window_max_age_seconds",
    "mlops_model_alert_severity",
    "mlops_retrain_trigger_webhooks_total",
    "mlops_retrain_trigger_runs_total",
    "mlops_retrain_trigger_runs_in_flight",
}
METRIC = re.compile(r"[a-z_:]*mlops_[a-z_:0-9]+")


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return render(ROOT / "kustomize" / "overlays" / "prod")


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels and In-expressions, the only forms these manifests use."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(
        e["operator"] == "In" and labels.get(e["key"]) in e["values"]
        for e in selector.get("matchExpressions", [])
    )


@pytest.fixture(scope="module")
def dashboard(objects) -> dict:
    config_map = find(objects, "ConfigMap", "mlops-loop-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    text = config_map["data"]["mlops-loop.json"]
    assert text == (ROOT / "manifests" / "dashboards" / "mlops-loop.json").read_text()
    return json.loads(text)


def exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def known_metric(name: str, rule_names: set[str]) -> bool:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return name in CONTRACT or base in CONTRACT or name in rule_names


def test_dashboard_queries_only_contract_or_rule_metrics(dashboard, objects):
    rule = find(objects, "PrometheusRule", "mlops-alerts")
    rule_names = {r["record"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}
    used = {name for expr in exprs(dashboard) for name in METRIC.findall(expr)}
    assert used and not {name for name in used if not known_metric(name, rule_names)}
    # Every panel the issue asks for is there: traffic, drift, drops, quality and floor, retrain outcomes.
    for name in (
        "model_version:mlops_inference_requests:rate5m",
        "model_version:mlops_inference_error_ratio:rate5m",
        "model_version:mlops_inference_request_duration_seconds:p95",
        "mlops_drift_detected",
        "mlops_drift_p_value",
        "mlops_drift_events_dropped_total",
        "mlops_drift_events_rejected_total",
        "mlops_model_quality_floor",
        "mlops_retrain_trigger_webhooks_total",
    ):
        assert name in used, name


def test_an_unknown_metric_would_be_caught():
    assert not known_metric("mlops_drift_pvalue", set())
    assert known_metric("mlops_drift_detector_duration_seconds_bucket", set())


def test_dashboard_uses_the_datasource_variable_everywhere(dashboard):
    assert dashboard["schemaVersion"] == 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    sources = [p["datasource"] for p in dashboard["panels"]]
    sources += [t["datasource"] for p in dashboard["panels"] for t in p["targets"]]
    assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_triggers_filter_exactly_the_logger_types_into_the_detector_service(objects):
    triggers = [o for o in objects if o["kind"] == "Trigger"]
    assert {t["spec"]["filter"]["attributes"]["type"] for t in triggers} == LOGGER_TYPES
    assert len(triggers) == 2
    service = find(objects, "Service", "drift-detector")
    for trigger in triggers:
        assert trigger["spec"]["broker"] == "default"
        assert set(trigger["spec"]["filter"]["attributes"]) == {"type"}
        assert trigger["spec"]["subscriber"]["ref"] == {
            "apiVersion": "v1",
            "kind": "Service",
            "name": "drift-detector",
        }
        assert trigger["metadata"]["namespace"] == service["metadata"]["namespace"]


def test_service_and_pod_monitor_reach_the_detector_pods(objects):
    pod = find(objects, "Deployment", "drift-detector")["spec"]["template"]
    labels = pod["metadata"]["labels"]
    service = find(objects, "Service", "drift-detector")["spec"]
    assert selects({"matchLabels": service["selector"]}, labels)
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "drift-detector")
    port_names = {p["name"] for p in container["ports"]}
    assert service["ports"][0]["targetPort"] in port_names
    monitor = find(objects, "PodMonitor", "drift-detector")["spec"]
    assert selects(monitor["selector"], labels)
    assert monitor["podMetricsEndpoints"][0]["port"] in port_names
    assert container["args"][:2] == ["--host=0.0.0.0", "--port=8080"]
    assert "--checkpoint-dir=/var/lib/drift-detector/checkpoints" in container["args"]


def test_detectors_are_pulled_from_mlflow_before_the_service_starts(objects):
    spec = find(objects, "Deployment", "drift-detector")["spec"]["template"]["spec"]
    init = spec["initContainers"][0]
    assert init["command"] == ["python", "-m", "monitoring.detectors.pull"]
    assert {"--alias=champion", "--alias=challenger"} <= set(init["args"])
    models = {arg.split("=", 1)[1] for arg in init["args"] if arg.startswith("--model=")}
    assert models == set(DEMO_MODELS)  # the demo's models, which the committed manifests deploy
    out = next(a for a in init["args"] if a.startswith("--out=")).split("=", 1)[1]
    main = spec["containers"][0]
    assert f"--detectors={out}" in main["args"]
    mounts = {m["mountPath"]: m["name"] for c in (init, main) for m in c["volumeMounts"]}
    assert mounts[out] == "detectors"


def ingress_allowed(objects: list[dict], pod_labels: dict, peer_ns: str, peer_labels: dict) -> bool:
    """True if some NetworkPolicy selecting the pod admits the peer (namespace by its name label)."""
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"], pod_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                ns_ok = selects(peer.get("namespaceSelector", {}), {"kubernetes.io/metadata.name": peer_ns})
                if "namespaceSelector" not in peer:
                    ns_ok = peer_ns == "mlops"
                if ns_ok and selects(peer.get("podSelector", {}), peer_labels):
                    return True
    return False


def test_network_policies_admit_broker_prometheus_and_the_mlflow_pull(objects):
    detector = {"app.kubernetes.io/name": "drift-detector"}
    broker_filter = {"eventing.knative.dev/brokerRole": "filter"}
    assert ingress_allowed(objects, detector, "knative-eventing", broker_filter)
    assert ingress_allowed(objects, detector, "monitoring", {"app.kubernetes.io/name": "prometheus"})
    assert not ingress_allowed(objects, detector, "default", broker_filter)
    assert ingress_allowed(objects, {"app.kubernetes.io/name": "mlflow"}, "mlops", detector)
    egress = find(objects, "NetworkPolicy", "drift-detector-to-mlflow")["spec"]["egress"][0]
    assert egress["ports"] == [{"protocol": "TCP", "port": 5000}]


def _meta_annotation(key: str) -> str:
    """Prometheus' Kubernetes SD name for a pod annotation (non-alphanumerics become `_`)."""
    return "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def test_the_predictor_pod_monitor_reads_the_annotations_kserve_and_deploy_set(objects):
    from inference.deploy.annotations import MODEL_VERSION_KEY

    monitor = find(objects, "PodMonitor", "inference-predictors")
    assert monitor["metadata"]["labels"]["prometheus"] == "mlops"  # the Prometheus' podMonitorSelector
    assert monitor["spec"]["selector"]["matchLabels"] == {"component": "predictor"}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    sources = {label for rule in endpoint["relabelings"] for label in rule.get("sourceLabels", [])}
    runtime = find(objects, "ServingRuntime", "kserve-tritonserver-mlops")["spec"]
    (port_key,) = [key for key in runtime["annotations"] if key.endswith("/port")]
    assert {_meta_annotation(MODEL_VERSION_KEY), _meta_annotation(port_key)} <= sources
    version = next(r for r in endpoint["relabelings"] if r.get("targetLabel") == "model_version")
    assert version["sourceLabels"] == [_meta_annotation(MODEL_VERSION_KEY)]
    port = runtime["annotations"][port_key]
    args = runtime["containers"][0]["args"]
    assert f"--metrics-port={port}" in args and "--metrics-config=summary_latencies=true" in args
    policy = find(objects, "NetworkPolicy", "inference-services-from-knative")["spec"]
    assert any({"protocol": "TCP", "port": int(port)} in rule["ports"] for rule in policy["ingress"])
