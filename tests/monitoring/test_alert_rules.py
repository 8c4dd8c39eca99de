"""Alert rules, their promtool tests and the Alertmanager config, checked with the real promtool/amtool.

Nothing is skipped: without promtool or amtool these tests fail and name the make target that installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from core.paths import REPO_ROOT
from core.prometheus_rules import DEFAULT_SOURCE, ExtractError, extract, find_prometheus_rules
from core.spec.monitoring import Monitoring
from inference.deploy.annotations import NAMESPACE
from monitoring.rules.alertmanager_config import DEFAULT_CONFIG, render
from monitoring.rules.check import DEFAULT_TESTS
from tests.helpers.environment import require_executable

RULE_MANIFEST = REPO_ROOT / "manifests" / "monitoring" / "prometheus-rule.yaml"
RUNBOOK = REPO_ROOT / "monitoring" / "RUNBOOK.md"
RUNBOOK_URL = "https://github.com/mlops-loop/mlops-loop/blob/main/monitoring/RUNBOOK.md#{anchor}"
RETRAIN_ALERTS = {"ModelInputDriftDetected", "ModelQualityBelowFloor"}
SEVERITIES = set(get_args(Monitoring.model_fields["alert_severity"].annotation))
# Alerts whose severity is the model spec's monitoring.alert_severity, joined from the drift service's
# `mlops_model_alert_severity{model,severity}` (monitoring/spec_metrics.py) instead of a fixed label.
SPEC_SEVERITY_ALERTS = {"ModelInputDriftDetected"}


def _run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(map(str, command)), cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_executable("promtool", "make deb-packages")


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_executable("amtool", "make deb-packages")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    (document,) = [d for d in yaml.safe_load_all(RULE_MANIFEST.read_text()) if d]
    return document


@pytest.fixture(scope="module")
def alerts(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rules = [rule for group in manifest["spec"]["groups"] for rule in group["rules"]]
    named = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert len(named) == sum("alert" in rule for rule in rules), "duplicate alert names"
    return named


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extracted rules with the promtool test files beside them (as the check tool lays them out)."""
    out = tmp_path_factory.mktemp("rules")
    extract(DEFAULT_SOURCE, out)
    for test in DEFAULT_TESTS.glob("*.yaml"):
        shutil.copy2(test, out / test.name)
    return out


@pytest.fixture(scope="module")
def test_cases() -> list[dict[str, Any]]:
    """Every `alert_rule_test` entry of every promtool test file."""
    cases = []
    for path in sorted(DEFAULT_TESTS.glob("*.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


# ------------------------------------------------------------------------------------------ extraction
def test_manifest_is_one_prometheus_rule_that_the_rule_selector_matches(manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert (
        manifest["metadata"]["labels"].items()
        >= {
            "app.kubernetes.io/name": "mlops-alerts",
            "app.kubernetes.io/part-of": "mlops-loop",
            "prometheus": "mlops",
            "role": "alert-rules",
        }.items()
    )


def test_extraction_writes_exactly_the_groups(manifest: dict[str, Any], tmp_path: Path) -> None:
    (path,) = extract(DEFAULT_SOURCE, tmp_path)  # the folder also holds alertmanager.yaml: not a rule
    assert path.name == "mlops-alerts.rules.yaml"
    assert yaml.safe_load(path.read_text()) == {"groups": manifest["spec"]["groups"]}


def test_extract_command_line_writes_the_rule_file(tmp_path: Path) -> None:
    done = _run(sys.executable, "-m", "core.prometheus_rules", "--out", tmp_path, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "mlops-alerts.rules.yaml")


def test_extraction_names_the_file_when_nothing_is_found(tmp_path: Path) -> None:
    (tmp_path / "deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    with pytest.raises(ExtractError, match=r"deployment.yaml|no PrometheusRule"):
        find_prometheus_rules(tmp_path)
    (tmp_path / "broken.yaml").write_text("groups: [\n")
    with pytest.raises(ExtractError, match=r"broken\.yaml: not valid YAML"):
        find_prometheus_rules(tmp_path)


# ----------------------------------------------------------------------------------- promtool, for real
def test_promtool_check_rules_passes(promtool: str, rules_dir: Path) -> None:
    done = _run(promtool, "check", "rules", rules_dir / "mlops-alerts.rules.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_pass(promtool: str, rules_dir: Path) -> None:
    names = sorted(p.name for p in DEFAULT_TESTS.glob("*.yaml"))
    assert len(names) >= 5
    done = _run(promtool, "test", "rules", *names, cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(names)


# ------------------------------------------------------------------------------------ alert conventions
def test_every_alert_follows_the_conventions(alerts: dict[str, dict[str, Any]]) -> None:
    assert len(alerts) == 9
    for name, rule in alerts.items():
        assert re.fullmatch(r"[A-Z][A-Za-z]+", name), name
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name}: no for:"
        if name in SPEC_SEVERITY_ALERTS:  # a fixed label would override the joined one
            assert "severity" not in rule["labels"], name
            assert "group_left (severity)" in rule["expr"], name
            assert "mlops_model_alert_severity" in rule["expr"], name
        else:
            assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["labels"]["component"], name
        annotations = rule["annotations"]
        assert annotations["summary"] and "{{" in annotations["description"], name
        assert annotations["runbook_url"] == RUNBOOK_URL.format(anchor=name.lower()), name


def test_only_drift_and_quality_alerts_ask_for_a_retrain(alerts: dict[str, dict[str, Any]]) -> None:
    retrain = {name for name, rule in alerts.items() if rule["labels"].get("action") == "retrain"}
    assert retrain == RETRAIN_ALERTS
    for name in retrain:  # the trigger needs the model label, and one episode must stay one alert
        assert "by (namespace, model, version)" in alerts[name]["expr"], name
        assert alerts[name].get("keep_firing_for"), name


def test_runbook_has_a_complete_section_per_alert(alerts: dict[str, dict[str, Any]]) -> None:
    sections = re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)[1:]
    by_heading = {section.splitlines()[0].strip(): section for section in sections}
    assert set(by_heading) == set(alerts)
    for name, section in by_heading.items():
        for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
            assert part in section, f"RUNBOOK.md {name}: no {part}"


def test_every_alert_is_tested_firing_and_not_firing(
    alerts: dict[str, dict[str, Any]], test_cases: list[dict[str, Any]]
) -> None:
    firing = {case["alertname"] for case in test_cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in test_cases if not case.get("exp_alerts")}
    assert set(alerts) <= firing, f"never expected firing: {sorted(set(alerts) - firing)}"
    assert set(alerts) <= quiet, f"never expected quiet: {sorted(set(alerts) - quiet)}"
    assert (firing | quiet) <= set(alerts), "a test names an alert that does not exist"


def test_firing_cases_check_labels_and_every_annotation(
    alerts: dict[str, dict[str, Any]], test_cases: list[dict[str, Any]]
) -> None:
    for case in test_cases:
        rule = alerts[case["alertname"]]
        for expected in case.get("exp_alerts") or []:
            assert expected["exp_labels"].items() >= rule["labels"].items(), case["alertname"]
            assert set(expected["exp_annotations"]) == set(rule["annotations"]), case["alertname"]


def test_spec_severity_alerts_fire_with_every_spec_severity(test_cases: list[dict[str, Any]]) -> None:
    for name in SPEC_SEVERITY_ALERTS:
        seen = {
            expected["exp_labels"]["severity"]
            for case in test_cases
            if case["alertname"] == name
            for expected in case.get("exp_alerts") or []
        }
        assert seen == SEVERITIES, f"{name}: firing cases cover severities {sorted(seen)}"


# ----------------------------------------------------------------------------------- Alertmanager config
def test_amtool_accepts_the_committed_config(amtool: str) -> None:
    done = _run(amtool, "check-config", DEFAULT_CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr


def test_local_rendering_changes_only_the_webhook_and_passes_amtool(amtool: str, tmp_path: Path) -> None:
    token = tmp_path / "secrets" / "retrain-token"
    rendered = yaml.safe_load(render(url="http://127.0.0.1:8085/v1/alerts", token_file=token))
    committed = yaml.safe_load(DEFAULT_CONFIG.read_text())
    (webhook,) = next(r for r in rendered["receivers"] if r["name"] == "retrain")["webhook_configs"]
    assert webhook["url"] == "http://127.0.0.1:8085/v1/alerts"
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": str(token)}
    assert webhook["send_resolved"] is True
    assert {k: v for k, v in rendered.items() if k != "receivers"} == {
        k: v for k, v in committed.items() if k != "receivers"
    }
    (tmp_path / "alertmanager.yaml").write_text(yaml.safe_dump(rendered))
    done = _run(amtool, "check-config", tmp_path / "alertmanager.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_render_without_arguments_keeps_the_cluster_endpoints() -> None:
    assert yaml.safe_load(render()) == yaml.safe_load(DEFAULT_CONFIG.read_text())


NS = f"namespace={NAMESPACE}"


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=ModelInputDriftDetected", "action=retrain", NS, "model=conversion-xgboost"], "retrain"),
        (["alertname=ModelInputDriftDetected", "action=retrain", NS, "severity=critical"], "retrain"),
        (["alertname=ModelInputDriftDetected", "action=retrain", NS, "severity=info"], "retrain"),
        (["alertname=ModelQualityBelowFloor", "action=retrain", NS, "model=conversion-mlp"], "retrain"),
        # the route matches the loop's namespace only, as the Operator makes the AlertmanagerConfig's do
        (["alertname=ModelInputDriftDetected", "action=retrain", "namespace=team-b", "model=m"], "null"),
        (["alertname=ModelInputDriftDetected", "action=retrain", "model=m"], "null"),
        (["alertname=InferenceCanaryErrorRateHigh", NS, "model=conversion-xgboost", "role=canary"], "null"),
        (["alertname=InferenceCanaryLatencyHigh", NS, "model=conversion-mlp", "severity=warning"], "null"),
    ],
)
def test_alertmanager_routes_only_retrain_alerts_to_the_trigger(
    amtool: str, labels: list[str], receiver: str
) -> None:
    done = _run(amtool, "config", "routes", "test", f"--config.file={DEFAULT_CONFIG}", *labels)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [receiver]


def test_retrain_route_repeats_rarely_and_groups_by_model() -> None:
    route = yaml.safe_load(DEFAULT_CONFIG.read_text())["route"]
    assert route["group_by"] == ["alertname", "model"]
    (retrain,) = [r for r in route["routes"] if r["receiver"] == "retrain"]
    assert retrain["repeat_interval"] == "12h"


# ------------------------------------------------------------------------------------------ check tool
def _check(*args: str | Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path is not None else None
    command = [sys.executable, "-m", "monitoring.rules.check", *map(str, args)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_check_tool_passes_on_the_committed_files(promtool: str, amtool: str) -> None:
    done = _check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout and done.stdout.count("ok ") >= 6


def test_check_tool_fails_clearly_on_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    broken = yaml.safe_load(RULE_MANIFEST.read_text())
    broken["spec"]["groups"][0]["rules"][0]["expr"] = "max by (model) (mlops_drift_detected == "
    (tmp_path / "rule.yaml").write_text(yaml.safe_dump(broken))
    done = _check("--source", tmp_path / "rule.yaml")
    assert done.returncode == 1
    assert "FAIL promtool check rules" in done.stdout
    assert '"ModelInputDriftDetected": could not parse expression' in done.stdout
    assert f"{tmp_path / 'rule.yaml'} -> mlops-alerts.rules.yaml" in done.stdout  # names the source
    assert "rules check failed: promtool check rules" in done.stderr


def test_check_tool_fails_when_a_promtool_test_fails(promtool: str, tmp_path: Path) -> None:
    test = yaml.safe_load((DEFAULT_TESTS / "drift.yaml").read_text())
    test["tests"][0]["alert_rule_test"][0]["eval_time"] = "7m"  # the alert fires at 7m, not "none"
    (tmp_path / "drift.yaml").write_text(yaml.safe_dump(test))
    done = _check("--tests", tmp_path)
    assert done.returncode == 1
    assert "FAIL promtool test rules" in done.stdout and "ModelInputDriftDetected" in done.stdout


def test_check_tool_says_to_run_make_install_without_the_tools(tmp_path: Path) -> None:
    done = _check(path=str(tmp_path))  # an empty PATH: neither promtool nor amtool
    assert done.returncode == 2
    assert "promtool not found on PATH" in done.stderr and "run `make install`" in done.stderr
