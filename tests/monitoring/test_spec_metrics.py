"""The specs drive the alerts: the drift service exports each spec's canary thresholds, drift window and
alert severity per model (monitoring/spec_metrics.py), and the rules that used to copy those values into
PromQL join the exported series instead (their promtool cases are in monitoring/rules/tests/)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from core.spec.model import DEFAULT_SPEC_DIR, ModelSpec, load_specs
from monitoring.spec_metrics import export_spec_metrics, loadable_specs
from tests.helpers.specs import DEMO_MODELS, FIXTURE_SPEC_DIR, fixture_spec, fixture_spec_data

RULE_MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "monitoring" / "prometheus-rule.yaml"
# The alerts whose spec values the exported series replace, and the series each must join.
SPEC_DRIVEN = {
    "ModelInputDriftDetected": {"mlops_model_alert_severity"},
    "InferenceCanaryErrorRateHigh": {"mlops_canary_max_error_rate"},
    "InferenceCanaryLatencyHigh": {
        "mlops_canary_max_p95_latency_ratio",
        "mlops_canary_min_p95_latency_increase_seconds",
    },
    "DriftDetectorStale": {"mlops_drift_window_max_age_seconds"},
}


def _churn_spec(name: str, canary: dict[str, Any], monitoring: dict[str, Any]) -> dict[str, Any]:
    data = fixture_spec_data("conversion-xgboost")
    data["name"] = name
    data["canary"]["success"] = {**data["canary"]["success"], **canary}
    data["monitoring"] = {**data["monitoring"], **monitoring}
    return data


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """Two valid specs with thresholds unlike the demo's, and one that does not load."""
    specs = {
        "churn-strict": _churn_spec(
            "churn-strict",
            {"max_error_rate": 0.037, "max_p95_latency_ratio": 1.25, "min_p95_latency_increase_ms": 12.5},
            {"window": {"size": 80, "max_age_s": 5400}, "alert_severity": "critical"},
        ),
        "churn-loose": _churn_spec(
            "churn-loose",
            {"max_error_rate": 0.4, "max_p95_latency_ratio": 4},
            {"window": {"size": 500, "max_age_s": 86400}, "alert_severity": "info"},
        ),
    }
    del specs["churn-loose"]["canary"]["success"]["min_p95_latency_increase_ms"]  # the default, 0 ms
    for name, data in specs.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    broken = _churn_spec("churn-broken", {}, {"alert_severity": "page"})
    (tmp_path / "churn-broken.yaml").write_text(yaml.safe_dump(broken, sort_keys=False))
    return tmp_path


def test_gauges_equal_the_specs_they_were_built_from(spec_dir: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="monitoring.spec_metrics"):
        specs = loadable_specs(spec_dir)
    assert [spec.name for spec in specs] == ["churn-loose", "churn-strict"]
    assert "churn-broken.yaml: monitoring.alert_severity" in caplog.text  # named, and the others exported
    registry = CollectorRegistry()
    export_spec_metrics(registry, specs)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    for spec in specs:
        success, model = spec.canary.success, spec.name
        assert value("mlops_canary_max_error_rate", model=model) == success.max_error_rate
        assert value("mlops_canary_max_p95_latency_ratio", model=model) == success.max_p95_latency_ratio
        assert (
            value("mlops_canary_min_p95_latency_increase_seconds", model=model)
            == success.min_p95_latency_increase_ms / 1000
        )
        assert value("mlops_drift_window_max_age_seconds", model=model) == spec.monitoring.window.max_age_s
        severities = {
            sample.labels["severity"]: sample.value
            for family in registry.collect()
            if family.name == "mlops_model_alert_severity"
            for sample in family.samples
            if sample.labels["model"] == model
        }
        assert severities == {spec.monitoring.alert_severity: 1.0}
    # The fixture values themselves, so a units slip (ms exported as ms) cannot hide behind the loop.
    assert value("mlops_canary_min_p95_latency_increase_seconds", model="churn-strict") == 0.0125
    assert value("mlops_canary_min_p95_latency_increase_seconds", model="churn-loose") == 0.0
    assert value("mlops_drift_window_max_age_seconds", model="churn-strict") == 5400
    assert value("mlops_model_alert_severity", model="churn-loose", severity="info") == 1
    assert value("mlops_canary_max_error_rate", model="churn-broken") is None


def test_every_demo_spec_is_exported(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="monitoring.spec_metrics"):
        specs = loadable_specs(DEFAULT_SPEC_DIR)
    assert not caplog.text
    assert [spec.name for spec in specs] == [spec.name for spec in load_specs(DEFAULT_SPEC_DIR)]


def test_a_folder_without_specs_exports_nothing_and_says_so(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="monitoring.spec_metrics"):
        assert loadable_specs(tmp_path / "missing") == []
    assert f"no loadable model spec in {tmp_path / 'missing'}" in caplog.text


# --------------------------------------------------------------------------------- the rules join them
@pytest.fixture(scope="module")
def alert_exprs() -> dict[str, str]:
    (document,) = [d for d in yaml.safe_load_all(RULE_MANIFEST.read_text()) if d]
    rules = [rule for group in document["spec"]["groups"] for rule in group["rules"]]
    return {rule["alert"]: rule["expr"] for rule in rules if rule.get("alert") in SPEC_DRIVEN}


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _numbers(item)


def spec_numbers(spec: ModelSpec) -> set[float]:
    """Every number of the spec's canary and monitoring sections, also in the units a rule would use."""
    sections = spec.model_dump(include={"canary", "monitoring"})
    found = set(_numbers(sections))
    found.add(spec.canary.success.min_p95_latency_increase_ms / 1000)
    found.add(2.0 * spec.monitoring.window.max_age_s)  # the staleness rule's two windows
    return found


def literals(expr: str) -> set[float]:
    """The numeric literals of a PromQL expression, leaving out label values and durations."""
    bare = re.sub(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"|offset\s+\w+', " ", expr)
    number = r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])"
    return {float(token) for token in re.findall(number, bare)}


def test_the_spec_driven_alerts_join_the_exported_series(alert_exprs: dict[str, str]) -> None:
    registry = CollectorRegistry()
    export_spec_metrics(registry, load_specs(FIXTURE_SPEC_DIR))
    exported = {family.name for family in registry.collect()}
    assert set(alert_exprs) == set(SPEC_DRIVEN)
    for alert, series in SPEC_DRIVEN.items():
        assert series <= exported, alert
        for name in series:
            assert re.search(
                rf"on \(namespace, model\) group_left[^\n]*\n?\s*[^\n]*{name}", alert_exprs[alert]
            ), f"{alert} does not join {name} on (namespace, model)"


def test_no_spec_value_is_copied_into_the_rules(alert_exprs: dict[str, str]) -> None:
    # The committed rules against the demo specs they are deployed with.
    values = set().union(*(spec_numbers(spec) for spec in load_specs(DEFAULT_SPEC_DIR, names=DEMO_MODELS)))
    copied = {alert: sorted(literals(expr) & values) for alert, expr in alert_exprs.items()}
    assert not {alert: found for alert, found in copied.items() if found}, (
        f"spec values written into PromQL (join the exported series instead): {copied}"
    )


def test_the_copy_check_catches_the_hand_copied_rules() -> None:
    spec = fixture_spec("conversion-xgboost")
    old_latency = 'canary_p95{role="canary"} / on (model) group_left stable_p95 > 1.5 and increase > 0.005'
    old_stale = "time() - max by (model, version) (last_run[15m] offset 5m) > 2 * 3600"
    assert literals(old_latency) & spec_numbers(spec) == {1.5, 0.005}
    assert literals(old_stale) & spec_numbers(spec) == {3600.0}
    assert literals('rate(x{code=~"5.."}[5m]) > 0.03') == {0.03}
