"""Every metric the loop reads on a cluster is one a cluster component really exports, or one the
PrometheusRule records from those: the alert and recording rules (their annotations' queries included), the
canary analysis' PromQL and the Grafana dashboard. The local router's own metrics appear nowhere.

The exporters are read from their real sources: the drift service's (drift, quality and spec metrics)
and the retrain trigger's registries (our components' classes), and Triton's /metrics from the Triton the
serving environment ships, serving two versions (the served test below); docs/signals.md records Triton's
source.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.prometheus_rules import find_prometheus_rules
from inference.canary import evidence
from inference.router.metrics import RouterMetrics
from inference.triton_local import TritonLocal
from monitoring.drift_service.metrics import DriftMetrics
from monitoring.quality.metrics import QualityMetrics
from monitoring.retrain_trigger.metrics import TriggerMetrics
from monitoring.spec_metrics import export_spec_metrics
from tests.helpers.environment import served_test
from tests.helpers.router_stack import stage_two_versions
from tests.helpers.specs import fixture_spec

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "dashboards" / "mlops-loop.json"
# Triton 25.10 (the ServingRuntime's image), triton-inference-server/server docs/user_guide/metrics.md;
# the summary with --metrics-config=summary_latencies=true, as the ServingRuntime and the local Triton run.
TRITON = {"nv_inference_request_success", "nv_inference_request_failure", "nv_inference_request_summary_us"}
PROMETHEUS = {"up"}  # Prometheus' own per-target series
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"group_left", "group_right"}
_IN_TEMPLATE = re.compile(r"`([^`]*)`")  # the PromQL inside an annotation's {{ query }}


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression reads (label names, functions and keywords left out)."""
    text = _LABEL_LISTS.sub(" ", _MATCHERS.sub(" ", _STRINGS.sub(" ", promql)))
    names = {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}
    return {name for name in names if not re.fullmatch(r"\d.*|e\d+", name)}


def rules() -> list[dict]:
    return [rule for spec in find_prometheus_rules().values() for g in spec["groups"] for rule in g["rules"]]


def rule_reads() -> set[str]:
    read = set()
    for rule in rules():
        read |= metric_names(rule["expr"])
        for text in (rule.get("annotations") or {}).values():
            for query in _IN_TEMPLATE.findall(text):
                read |= metric_names(query)
    return read


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def analysis_reads() -> set[str]:
    queries = [
        *evidence.prometheus_queries("m", 300).values(),
        evidence.score_query("m", 300),
        evidence.outcome_query("m", 300),
    ]
    reads = {name for query in queries for name in metric_names(query)}
    return reads | {evidence.SCRAPED_METRIC, evidence.FAILED_METRIC, evidence.REQUESTS_METRIC}  # waiting


def dashboard_reads() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    exprs += [v["query"]["query"] for v in board["templating"]["list"] if isinstance(v.get("query"), dict)]
    reads = set()
    for expr in exprs:
        reads |= metric_names(re.sub(r"label_values\(([^,]+),[^)]*\)", r"\1", expr))
    return reads


def exported(registry: CollectorRegistry) -> set[str]:
    """What a prometheus_client registry exposes, sample names included (_total, _bucket, ...)."""
    names = set()
    for family in registry.collect():
        suffixes = ("", "_total", "_created", "_bucket", "_sum", "_count")
        names |= {family.name + suffix for suffix in suffixes}
    return names


def our_exporters() -> set[str]:
    drift, trigger, specs = DriftMetrics(), TriggerMetrics(["m"]), CollectorRegistry()
    QualityMetrics(drift.registry)  # the drift service registers them beside its own (its __main__)
    export_spec_metrics(specs, [fixture_spec("conversion-xgboost")])
    return exported(drift.registry) | exported(trigger.registry) | exported(specs)


def with_sample_suffixes(names: set[str]) -> set[str]:
    return names | {f"{name}{s}" for name in names for s in ("_bucket", "_sum", "_count")}


@pytest.mark.parametrize("reader", [rule_reads, analysis_reads, dashboard_reads])
def test_every_metric_read_is_recorded_or_exported_by_a_cluster_component(reader) -> None:
    reads = reader()
    assert reads, reader.__name__
    known = recorded() | our_exporters() | with_sample_suffixes(TRITON) | PROMETHEUS
    assert reads - known == set(), f"{reader.__name__}: read but exported by nothing on a cluster"


def test_the_routers_own_metrics_are_read_nowhere() -> None:
    router = exported(RouterMetrics().registry)
    for reads in (rule_reads(), analysis_reads(), dashboard_reads()):
        assert reads & router == set()
    text = DASHBOARD.read_text() + "".join(str(spec) for spec in find_prometheus_rules().values())
    assert "mlops_inference_requests_total" not in text and "mlops_router_" not in text
    assert "role" not in json.loads(DASHBOARD.read_text())["panels"][0]["targets"][0]["legendFormat"]


def test_the_name_reader_sees_metrics_not_labels_or_functions() -> None:
    promql = (
        'sum by (namespace, model) (rate(mlops:x_total{model="a",code=~"5.."}[5m] offset 1h))'
        " / on (model) group_left max(up) > bool 0.5e3 and nv_y"
    )
    assert metric_names(promql) == {"mlops:x_total", "up", "nv_y"}


@served_test
def test_triton_exports_the_families_the_rules_read(tmp_path) -> None:
    stage_two_versions(tmp_path)
    triton = TritonLocal(log_path=tmp_path / "triton.log")
    with triton.start(tmp_path / "repo"):
        families = {
            family.name: family
            for family in text_string_to_metric_families(httpx.get(triton.metrics_url, timeout=10).text)
        }
    read = {name for name in rule_reads() | analysis_reads() if name.startswith("nv_")}
    assert read and read <= TRITON
    for name in TRITON:  # each with the labels the recording rules group by
        samples = families[name].samples
        assert {s.labels["model"] for s in samples} >= {"demo__v1", "demo__v2"}, name
        assert all("version" in s.labels for s in samples)
    assert {s.labels["reason"] for s in families["nv_inference_request_failure"].samples} >= {"BACKEND"}
    assert {s.labels.get("quantile") for s in families["nv_inference_request_summary_us"].samples} >= {"0.95"}
