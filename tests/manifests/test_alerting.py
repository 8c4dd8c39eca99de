"""The cluster's alert routing is the one local mode and amtool check: the AlertmanagerConfig equals
manifests/monitoring/alertmanager.yaml's retrain route, and the Operator selectors docs/cluster.md tells the
platform team to set match the labels the rendered objects carry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from inference.deploy.annotations import NAMESPACE
from manifests.validate import referenced_secrets, render

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
MATCHER = re.compile(r'^(?P<name>\w+)(?P<op>=~|!~|!=|=)"(?P<value>.*)"$')


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[dict]]:
    return {env: render(ROOT / "kustomize" / "overlays" / env) for env in ENVS}


@pytest.fixture(scope="module")
def local_config() -> dict:
    return yaml.safe_load((ROOT / "manifests" / "monitoring" / "alertmanager.yaml").read_text())


def only(objects: list[dict], kind: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


def operator_matchers(matchers: list[str]) -> list[dict]:
    """Alertmanager's `name="value"` matcher strings in the Operator's {name, value, matchType} form."""
    parsed = []
    for text in matchers:
        match = MATCHER.match(text)
        assert match, f"unparsed matcher {text!r}"
        parsed.append({"name": match["name"], "value": match["value"], "matchType": match["op"]})
    return parsed


def retrain_route(config: dict) -> dict:
    routes = [r for r in config["route"]["routes"] if r["receiver"] == "retrain"]
    assert len(routes) == 1
    return routes[0]


def namespace_matcher(config: dict) -> dict:
    """What the Operator's default (OnNamespace) matcher strategy appends to an AlertmanagerConfig's route
    and to both sides of its inhibit rules (prometheus-operator commit 6adcebc5, pkg/alertmanager/amcfg.go
    `namespaceEnforcer`)."""
    return {"name": "namespace", "value": config["metadata"]["namespace"], "matchType": "="}


def test_route_equals_the_local_config(overlays, local_config):
    config = only(overlays["prod"], "AlertmanagerConfig")
    route = config["spec"]["route"]
    local = retrain_route(local_config)
    assert route["receiver"] == local["receiver"]
    assert [*route["matchers"], namespace_matcher(config)] == operator_matchers(local["matchers"])
    assert route["groupBy"] == local_config["route"]["group_by"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        camel = re.sub(r"_(\w)", lambda m: m[1].upper(), key)
        assert route[camel] == local[key], key


def test_receiver_equals_the_local_one_with_the_token_from_the_trigger_secret(overlays, local_config):
    receiver = only(overlays["prod"], "AlertmanagerConfig")["spec"]["receivers"][0]
    local = next(r for r in local_config["receivers"] if r["name"] == "retrain")["webhook_configs"][0]
    webhook = receiver["webhookConfigs"][0]
    assert receiver["name"] == "retrain"
    assert webhook["url"] == local["url"] and webhook["sendResolved"] == local["send_resolved"]
    authorization = webhook["httpConfig"]["authorization"]
    assert authorization["type"] == local["http_config"]["authorization"]["type"] == "Bearer"
    assert authorization["credentials"] == {"name": "retrain-trigger-token", "key": "token"}


def test_webhook_url_names_the_trigger_service_in_the_rendered_namespace(overlays):
    for env in ENVS:
        config = only(overlays[env], "AlertmanagerConfig")
        service = next(
            o for o in overlays[env] if o["kind"] == "Service" and o["metadata"]["name"] == "retrain-trigger"
        )
        url = config["spec"]["receivers"][0]["webhookConfigs"][0]["url"]
        namespace = service["metadata"]["namespace"]
        port = service["spec"]["ports"][0]["port"]
        assert config["metadata"]["namespace"] == namespace, env
        assert url == f"http://retrain-trigger.{namespace}.svc:{port}/v1/alerts", env


def test_inhibit_rules_equal_the_local_ones(overlays, local_config):
    config = only(overlays["prod"], "AlertmanagerConfig")
    enforced = namespace_matcher(config)
    rules = [
        {
            **rule,
            "sourceMatch": [*rule["sourceMatch"], enforced],
            "targetMatch": [*rule["targetMatch"], enforced],
        }
        for rule in config["spec"]["inhibitRules"]
    ]
    expected = [
        {
            "sourceMatch": operator_matchers(rule["source_matchers"]),
            "targetMatch": operator_matchers(rule["target_matchers"]),
            **({"equal": rule["equal"]} if "equal" in rule else {}),
        }
        for rule in local_config["inhibit_rules"]
    ]
    assert rules == expected


def test_local_scrapes_label_the_namespace_the_overlays_deploy_into(overlays):
    for env in ENVS:
        assert only(overlays[env], "AlertmanagerConfig")["metadata"]["namespace"] == NAMESPACE, env


def test_the_token_secret_counts_as_referenced(overlays):
    config = only(overlays["prod"], "AlertmanagerConfig")
    assert referenced_secrets([config]) == {"retrain-trigger-token"}


def readme_selectors() -> dict[str, dict]:
    """`fieldSelector: {matchLabels: {...}}` lines of docs/cluster.md."""
    section = (ROOT / "docs" / "cluster.md").read_text()
    found = {}
    for name, labels in re.findall(r"(\w+Selector): \{matchLabels: (\{[^}]*\})\}", section):
        found[name] = yaml.safe_load(labels)
    return found


def test_readme_selectors_match_the_rendered_labels(overlays):
    selectors = readme_selectors()
    objects = overlays["prod"]
    pairs = {
        "ruleSelector": "PrometheusRule",
        "serviceMonitorSelector": "ServiceMonitor",
        "podMonitorSelector": "PodMonitor",
        "alertmanagerConfigSelector": "AlertmanagerConfig",
    }
    assert set(pairs) <= set(selectors), f"docs/cluster.md lacks {sorted(set(pairs) - set(selectors))}"
    for selector, kind in pairs.items():
        for obj in (o for o in objects if o["kind"] == kind):
            labels = obj["metadata"]["labels"]
            assert selectors[selector].items() <= labels.items(), f"{selector} misses {kind}"
    namespace = selectors["alertmanagerConfigNamespaceSelector"]
    assert namespace == {"kubernetes.io/metadata.name": only(objects, "Namespace")["metadata"]["name"]}


def test_no_cluster_wide_matcher_strategy_is_asked_for_and_every_aggregation_keeps_the_namespace(overlays):
    # The Operator's default strategy matches the AlertmanagerConfig's namespace: the alerts must keep it.
    assert "alertmanagerConfigMatcherStrategy" not in (ROOT / "docs" / "cluster.md").read_text()
    assert (
        "alertmanagerConfigMatcherStrategy:"
        not in (ROOT / "manifests" / "monitoring" / "alertmanager-config.yaml").read_text()
    )
    rule = only(overlays["prod"], "PrometheusRule")
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            for clause in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", item["expr"]):
                labels = {label.strip() for label in clause.split(",")}
                assert "namespace" in labels, (
                    f"{item.get('alert') or item.get('record')}: ({clause}) drops namespace"
                )
