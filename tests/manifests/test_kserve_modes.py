"""The KServe deployment mode is an overlay's choice: the base ConfigMap says Knative, the component
kserve-standard (used by the overlay dev-standard) says Standard and swaps the inference pods' Knative
NetworkPolicy for one that admits what reaches them in Standard mode, where KServe's Services target the
payload logger's agent (9081) or the container port (8080)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import settings
from manifests.validate import policy_violations, render

ROOT = Path(__file__).resolve().parents[2]
CONFIG_MAP = "mlops-platform-config"


@pytest.fixture(scope="module")
def standard() -> list[dict]:
    return render(ROOT / "kustomize" / "overlays" / "dev-standard")


def _named(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _ports(rule: dict) -> set[int]:
    return {port["port"] for port in rule["ports"]}


def test_each_overlay_names_its_mode_in_the_configmap_the_rollout_steps_read(standard) -> None:
    dev = render(ROOT / "kustomize" / "overlays" / "dev")
    modes = {name: _named(objects, "ConfigMap")[CONFIG_MAP]["data"]["KSERVE_DEPLOYMENT_MODE"]
             for name, objects in (("dev", dev), ("dev-standard", standard))}  # fmt: skip
    assert modes == {"dev": "Knative", "dev-standard": "Standard"}
    # the value parses as the setting deploy reads
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KSERVE_DEPLOYMENT_MODE", modes["dev-standard"])
        assert settings().kserve_deployment_mode == "Standard"
    assert _named(dev, "Deployment").keys() == _named(standard, "Deployment").keys()  # only the mode differs


def test_standard_mode_admits_the_gateway_the_transformer_and_prometheus(standard) -> None:
    policies = _named(standard, "NetworkPolicy")
    assert "inference-services-from-knative" not in policies
    ingress = policies["inference-services-from-gateway"]["spec"]["ingress"]
    sources = [peer for rule in ingress for peer in rule["from"]]
    namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in sources
        if "namespaceSelector" in p
    }
    assert namespaces == {"envoy-gateway-system", "monitoring"}
    assert {"podSelector": {"matchLabels": {"component": "transformer"}}} in sources
    assert _ports(ingress[0]) == {8080, 9081}
    runtime = _named(standard, "ServingRuntime")["kserve-tritonserver-mlops"]["spec"]
    metrics_port = int(runtime["annotations"]["prometheus.kserve.io/port"])
    assert _ports(ingress[1]) == {metrics_port}
    egress = policies["inference-transformers-to-predictors"]["spec"]["egress"]
    assert egress == [{"to": [{"podSelector": {"matchLabels": {"component": "predictor"}}}],
                       "ports": [{"protocol": "TCP", "port": 9081}]}]  # fmt: skip
    assert policy_violations(standard) == []
