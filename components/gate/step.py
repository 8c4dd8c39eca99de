"""The promotion gate: may this candidate be registered (and become the challenger)?

    champion = compare_with_champion(spec, load_predictor(champion_dir), test_rows)  # same rows
    decision = decide(spec, candidate_metrics, champion)                          # or None
    decision.passed, decision.reasons, to_markdown(decision)

Checks, all from `spec.evaluation`: enough test rows (`min_test_rows`); every metric with a floor clears
it (a minimum for higher-is-better metrics, a maximum, shown as "ceiling", for lower-is-better ones); every
metric with a champion tolerance trails the champion by at most that much; a ranker beats the popularity
baseline by each `baseline_margin` on the same test queries; every behavioural check the
spec declares passed on the candidate (a model that breaks a declared behaviour is not registered). Every
check is recorded, pass or fail, with a human-readable reason. Metrics dicts are `classification_metrics`
output (or a whole metrics.json, whose "metrics" entry is used and whose "behaviour" entry holds the
evaluate step's behavioural results).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.evaluate.ranking import BASELINE_PREFIX
from components.evaluate.step import METRICS_FILE
from core.bundle import Predictor
from core.frameworks.base import ranker_metrics
from core.metrics import classification_metrics
from core.registry import champion_predictor, configure_tracking
from core.spec.base import higher_is_better
from core.spec.model import ModelSpec, load_specs
from core.timing import timed_step

NO_CHAMPION = "no champion yet: first version"


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]
    """One line per check, in check order (min rows, floors, champion, baseline, behaviour), pass or fail."""
    checks: list[dict[str, Any]]
    """Per check: metric (a behavioural check's name), kind (min_rows|floor|champion|baseline|behaviour),
    value, op (">=" or "<=": what value must be to the bound), bound, passed, skipped, reason. value is
    None when missing/NaN/not measured; bound when skipped."""

    @property
    def failures(self) -> list[str]:
        return [c["reason"] for c in self.checks if not c["passed"]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    spec: ModelSpec, candidate_metrics: dict[str, Any], champion_metrics: dict[str, Any] | None
) -> GateDecision:
    """Apply the spec's gate to the candidate's test metrics (and the champion's, on the same rows) and to
    the candidate's behavioural results (`candidate_metrics["behaviour"]`, from a whole metrics.json)."""
    candidate = _overall(candidate_metrics)
    champion = None if champion_metrics is None else _overall(champion_metrics)
    evaluation = spec.evaluation
    checks = [_rows_check(candidate, evaluation.min_test_rows)]
    checks += [_floor_check(spec, metric, candidate) for metric in evaluation.floors]
    checks += [_champion_check(spec, metric, candidate, champion) for metric in evaluation.champion_tolerance]
    checks += [_baseline_check(spec, metric, candidate) for metric in evaluation.baseline_margin]
    checks += _behaviour_checks(spec, candidate_metrics.get("behaviour"))
    return GateDecision(
        passed=all(c["passed"] for c in checks), reasons=[c["reason"] for c in checks], checks=checks
    )


def _overall(metrics: dict[str, Any]) -> dict[str, Any]:
    nested = metrics.get("metrics")
    return nested if isinstance(nested, dict) else metrics


def _check(
    metric: str,
    kind: str,
    value: Any,
    bound: Any,
    passed: bool,
    reason: str,
    skipped: bool = False,
    op: str | None = None,
) -> dict[str, Any]:
    if op is None and bound is not None:
        op = ">=" if kind == "min_rows" or higher_is_better(metric) else "<="
    return {
        "metric": metric,
        "kind": kind,
        "value": value,
        "op": op,
        "bound": bound,
        "passed": passed,
        "skipped": skipped,
        "reason": reason,
    }


def _value(metrics: dict[str, Any], metric: str) -> tuple[float | None, str | None]:
    """(value, None), or (None, why it cannot be used)."""
    if metric not in metrics or metrics[metric] is None:
        return None, f"{metric} missing from the metrics"
    try:
        value = float(metrics[metric])
    except (TypeError, ValueError):
        return None, f"{metric} is not a number ({metrics[metric]!r})"
    if not math.isfinite(value):
        return None, f"{metric} is {value} (not computable on the test rows)"
    return value, None


def _rows_check(candidate: dict[str, Any], min_rows: int) -> dict[str, Any]:
    rows, problem = _value(candidate, "rows")
    if rows is None:
        return _check("rows", "min_rows", None, min_rows, False, f"test rows unknown: {problem}")
    if rows >= min_rows:
        return _check(
            "rows", "min_rows", int(rows), min_rows, True, f"test rows {rows:.0f} >= min {min_rows}"
        )
    reason = (
        f"test rows {rows:.0f} < min {min_rows} (the spec's evaluation.min_test_rows): "
        "too few for reliable metrics"
    )
    return _check("rows", "min_rows", int(rows), min_rows, False, reason)


def _floor_check(spec: ModelSpec, metric: str, candidate: dict[str, Any]) -> dict[str, Any]:
    bound = spec.evaluation.floors[metric]
    name = "floor" if higher_is_better(metric) else "ceiling"
    value, problem = _value(candidate, metric)
    if value is None:
        return _check(metric, "floor", None, bound, False, f"{problem}: cannot check {name} {_bound(bound)}")
    passed = spec.evaluation.meets_floor(metric, value)
    relation = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}[
        (higher_is_better(metric), passed)
    ]
    reason = f"{metric} {_num(value)} {relation} {name} {_bound(bound)}"
    return _check(metric, "floor", value, bound, passed, reason)


def _champion_check(
    spec: ModelSpec, metric: str, candidate: dict[str, Any], champion: dict[str, Any] | None
) -> dict[str, Any]:
    tolerance = spec.evaluation.champion_tolerance[metric]
    if champion is None:
        return _check(metric, "champion", None, None, True, f"{metric}: {NO_CHAMPION}", skipped=True)
    reference, champion_problem = _value(champion, metric)
    if reference is None:
        reason = f"{metric}: champion's {champion_problem}: comparison skipped"
        return _check(metric, "champion", None, None, True, reason, skipped=True)
    higher = higher_is_better(metric)
    bound = reference - tolerance if higher else reference + tolerance
    value, problem = _value(candidate, metric)
    if value is None:
        reason = f"{problem}: cannot compare with champion {_num(reference)}"
        return _check(metric, "champion", None, bound, False, reason)
    passed = spec.evaluation.within_tolerance(metric, value, reference)
    gap = reference - value if higher else value - reference
    if gap <= 0:
        reason = f"{metric} {_num(value)} {'>=' if higher else '<='} champion {_num(reference)}"
    else:
        within = "<=" if passed else ">"
        reason = (
            f"{metric} {_num(value)} trails champion {_num(reference)} by {_num(gap)} "
            f"{within} tolerance {_bound(tolerance)}"
        )
    return _check(metric, "champion", value, bound, passed, reason)


def _baseline_check(spec: ModelSpec, metric: str, candidate: dict[str, Any]) -> dict[str, Any]:
    """A ranker beats the popularity baseline on the same test queries by at least the spec's margin."""
    margin = spec.evaluation.baseline_margin[metric]
    baseline, baseline_problem = _value(candidate, BASELINE_PREFIX + metric)
    if baseline is None:
        reason = f"baseline {baseline_problem}: cannot check the margin {_bound(margin)}"
        return _check(metric, "baseline", None, None, False, reason)
    bound = baseline + margin
    value, problem = _value(candidate, metric)
    if value is None:
        return _check(metric, "baseline", None, bound, False, f"{problem}: cannot compare with the baseline")
    passed = value >= bound
    reason = (
        f"{metric} {_num(value)} {'beats' if value > baseline else 'does not beat'} popularity "
        f"{_num(baseline)} by {_num(value - baseline)} {'>=' if passed else '<'} margin {_bound(margin)}"
    )
    return _check(metric, "baseline", value, bound, passed, reason)


def _behaviour_checks(spec: ModelSpec, results: Any) -> list[dict[str, Any]]:
    """One gate check per behavioural check the spec declares; one the evaluation did not run fails."""
    by_name = {r.get("name"): r for r in results or () if isinstance(r, dict)}
    checks = []
    for declared in spec.evaluation.behaviour:
        result = by_name.get(declared.name)
        if result is None:
            reason = f"{declared.name}: {declared.kind} check declared in the spec but not run by evaluate"
            checks.append(_check(declared.name, "behaviour", None, None, False, reason))
            continue
        value, bound = result.get("value"), result.get("bound")
        passed = result.get("passed") is True
        reason = str(result.get("reason") or f"{declared.name}: {'passed' if passed else 'failed'}")
        checks.append(_check(declared.name, "behaviour", value, bound, passed, reason, op=result.get("op")))
    return checks


def _num(value: float) -> str:
    return f"{value:.3f}"


def _bound(value: float) -> str:
    """Spec numbers as written: 0.7 -> "0.70", 0.01 -> "0.01", 0.125 -> "0.125"."""
    short = f"{value:.2f}"
    return short if float(short) == value else f"{value:.6g}"


def compare_with_champion(
    spec: ModelSpec, champion_predictor: Predictor, test_frame: pd.DataFrame
) -> dict[str, Any]:
    """The champion's metrics on the candidate's test rows, so both are measured on the same data."""
    info = champion_predictor.info
    if info.label != spec.label.column:
        raise ValueError(
            f"{spec.name}: the champion predicts {info.label!r}, the spec's label is {spec.label.column!r}"
        )
    missing = [c for c in [*info.inputs, info.label] if c not in test_frame.columns]
    if missing:
        raise ValueError(
            f"{spec.name}: the champion needs columns {missing} that the test rows lack "
            "(feature set changed?): it cannot be scored on the same rows"
        )
    proba = champion_predictor.predict_proba(test_frame)
    if spec.label.task == "ranking":
        return ranker_metrics(spec, test_frame, proba)
    return classification_metrics(test_frame[info.label].to_numpy(), proba, info.classes)


def to_markdown(decision: GateDecision) -> str:
    """A summary line and a table of every check, for the KFP UI (Markdown visualization)."""
    failed = len(decision.failures)
    verdict = "PASSED" if decision.passed else "FAILED"
    lines = [
        f"**Gate {verdict}**: {len(decision.checks)} checks, {failed} failed",
        "",
        "| result | check | metric | value | bound | detail |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for check in decision.checks:
        result = "skipped" if check["skipped"] else ("pass" if check["passed"] else "**FAIL**")
        cells = [
            result,
            check["kind"],
            check["metric"],
            _cell(check["value"]),
            f"{check['op']} {_cell(check['bound'])}" if check["op"] else "-",
            check["reason"].replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _num(value)
    return str(value)


# --------------------------------------------------------------------------------------- the step
def run(model: str, mlflow_run_id: str, evaluation_dir: str, test_path: str, decision_path: str) -> bool:
    with timed_step("gate", model):
        (spec,) = load_specs(names=[model])
        candidate = json.loads((Path(evaluation_dir) / METRICS_FILE).read_text())
        configure_tracking()
        champion = champion_predictor(spec.name)
        champion_metrics = None
        if champion is not None:
            champion_metrics = compare_with_champion(spec, champion, pd.read_parquet(test_path))
        decision = decide(spec, candidate, champion_metrics)
        Path(decision_path).write_text(f"# Gate: {spec.name}\n\n{to_markdown(decision)}\n")
        _record(mlflow_run_id, decision)
        print(f"gate {'PASSED' if decision.passed else 'FAILED'} for {spec.name}", flush=True)
        for reason in decision.reasons:
            print(f"  {reason}", flush=True)
        return decision.passed


def _record(run_id: str, decision) -> None:
    import mlflow

    summary = decision.failures if not decision.passed else [f"all {len(decision.checks)} checks passed"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(decision.to_json(), "gate_decision.json")
        mlflow.set_tags(
            {"gate": "passed" if decision.passed else "failed", "gate_summary": "\n".join(summary)}
        )
