"""Validate a training set before training on it: data rules (fail the run) and skew (warn).

Why pandera: its schemas are typed Python that lives beside this code and is versioned with it, it needs
no server or stored state (a step in a pipeline just runs it), and a lazy validation returns every
failure as data naming the column and the check, which is exactly what the run's error must say. Great
Expectations brings a project layout and its own store; Evidently already renders the reports of the
evaluate step and the drift monitoring, but its test suites are reports rather than schemas to enforce.

`validate(spec, frame, reference)` runs the schema (`schema.py`) and the skew tests (`skew.py`) and
returns a `ValidationReport`; `raise_for_failures(report)` stops the pipeline with a one-line
`ValidationError`; `report_markdown(report)` is what the KFP UI shows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from components.validate_data.schema import Limits, build_schema, column_roles, dtype_kind
from components.validate_data.skew import SkewResult, detect_skew
from core.spec.model import ModelSpec

_SAMPLE = 5  # failure cases kept per failure


@dataclass(frozen=True)
class Failure:
    column: str | None
    """None for a rule about the whole frame (row count, label balance)."""
    check: str
    message: str
    failure_cases: list[Any] = field(default_factory=list)

    def one_line(self) -> str:
        where = f"column {self.column!r}: " if self.column is not None else ""
        return f"{where}check {self.check!r} failed ({self.message})"


@dataclass
class ValidationReport:
    model: str
    rows: int
    reference_rows: int | None
    failures: list[Failure]
    stats: dict[str, dict[str, Any]]
    skew: list[SkewResult]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def skewed(self) -> list[SkewResult]:
        return [result for result in self.skew if result.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "passed": self.passed,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "failures": [asdict(f) for f in self.failures],
            "stats": self.stats,
            "skew": [s.to_dict() for s in self.skew],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)


class ValidationError(ValueError):
    """The training set broke a rule: `validate_data: column 'x': check 'y' failed (...) (+N more)`."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def raise_for_failures(report: ValidationReport) -> None:
    """Raise a `ValidationError` naming the first failure (missing columns first) and counting the rest."""
    if not report.failures:
        return
    first, others = report.failures[0], len(report.failures) - 1
    more = f" (+{others} more)" if others else ""
    raise ValidationError(f"validate_data: {report.model}: {first.one_line()}{more}", report)


def validate(
    spec: ModelSpec,
    frame: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    limits: Limits | None = None,
    fail_on_skew: bool = False,
) -> ValidationReport:
    """Check `frame` (the new training set) against the rules and, given the previous training set as
    `reference`, for skew; skew is a warning unless `fail_on_skew`."""
    limits = limits or Limits()
    schema = build_schema(spec, frame, reference, limits)
    failures = _schema_failures(schema, frame)
    skew = []
    if reference is not None:
        skew = detect_skew(frame, reference, column_roles(spec, list(frame.columns)), limits)
    if fail_on_skew:
        failures += [_skew_failure(result) for result in skew if result.flagged]
    return ValidationReport(
        model=spec.name,
        rows=len(frame),
        reference_rows=None if reference is None else len(reference),
        failures=failures,
        stats={str(c): column_stats(frame[c]) for c in frame.columns},
        skew=skew,
    )


# ------------------------------------------------------------------------------------ schema failures
def _schema_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> list[Failure]:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return []
    failures = []
    # A whole-frame rule reports the schema's name as its column: blank it.
    cases = cases.assign(column=cases["column"].where(cases["schema_context"] != "DataFrameSchema"))
    for (column, check_name), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        column = None if pd.isna(column) else str(column)
        if check_name == "column_in_dataframe":
            for missing in group["failure_case"]:
                failures.append(Failure(str(missing), "column_in_dataframe", "required column is missing"))
            continue
        check = _find_check(schema, column, group["check_number"].iloc[0])
        sample = _failure_sample(str(check_name), check, frame, column, group)
        message = _describe(str(check_name), check, frame, column, group)
        failures.append(Failure(column, str(check_name), message, sample))
    # Most basic first: a missing column, then column rules, then rules about the whole frame.
    return sorted(
        failures, key=lambda f: 0 if f.check == "column_in_dataframe" else 2 if f.column is None else 1
    )


def _find_check(schema: pa.DataFrameSchema, column: str | None, number: Any) -> pa.Check | None:
    owner = schema if column is None else schema.columns.get(column)
    checks = owner.checks if owner is not None else []
    if pd.isna(number) or not 0 <= int(number) < len(checks):
        return None
    return checks[int(number)]


def _failure_sample(
    name: str, check: pa.Check | None, frame: pd.DataFrame, column: str | None, group: pd.DataFrame
) -> list[Any]:
    """Up to `_SAMPLE` offending values; whole-column rules report none, so pick them from the frame."""
    sample = [_plain(v) for v in group["failure_case"].head(_SAMPLE) if not _is_scalar_false(v)]
    if not sample and name == "in_range" and check is not None and column in frame.columns:
        values = frame[column].dropna()
        outside = values[~values.between(check.statistics["low"], check.statistics["high"])]
        sample = [_plain(v) for v in outside.head(_SAMPLE)]
    return sample


def _describe(
    name: str, check: pa.Check | None, frame: pd.DataFrame, column: str | None, group: pd.DataFrame
) -> str:
    """A short, specific reason: what was seen against what the rule allows."""
    stats = check.statistics if check is not None else {}
    values = frame[column] if column is not None and column in frame.columns else None
    if name.startswith("dtype(") and values is not None:
        return f"expected {name[7:-2]} values like the {stats.get('seen', 'reference')}, got {values.dtype}"
    if name == "not_nullable" and values is not None:
        return f"{int(values.isna().sum())} null value(s), none allowed"
    if name == "max_null_fraction" and values is not None and "limit" in stats:
        return f"{values.isna().mean():.1%} null, limit {stats['limit']:.0%}"
    if name == "in_range" and values is not None and "low" in stats:
        outside = ~values.dropna().between(stats["low"], stats["high"])
        return (
            f"{outside.mean():.1%} of values outside [{stats['low']:.6g}, {stats['high']:.6g}], "
            f"limit {stats['tolerance']:.0%}"
        )
    if name == "non_negative":
        return f"{len(group)} negative value(s) in a column that never had one"
    if name == "label_values" and "allowed" in stats:
        return f"{len(group)} value(s) not among {', '.join(map(str, stats['allowed']))}"
    if name == "min_rows" and "min_rows" in stats:
        return (
            f"{len(frame)} rows, at least {stats['min_rows']} needed for the test split's minimum: lower the "
            "spec's evaluation.min_test_rows, raise training.split.test_fraction or widen training.window"
        )
    if name == "label_balance" and "classes" in stats:
        return _balance_message(frame, stats)
    return f"{len(group)} failing value(s)"


def _balance_message(frame: pd.DataFrame, stats: dict[str, Any]) -> str:
    labels = frame[stats["label"]] if stats["label"] in frame.columns else pd.Series(dtype="object")
    if stats["classes"] == [False, True]:  # a ranker's relevance: relevant (> 0) or not
        labels = (labels > 0).rename(None)
    counts, rows = labels.value_counts().to_dict(), max(len(frame), 1)
    shares = [f"{value}: {counts.get(value, 0) / rows:.1%}" for value in stats["classes"]]
    return f"{'; '.join(shares)}; each class needs at least {stats['min_fraction']:.0%}"


def _skew_failure(result: SkewResult) -> Failure:
    message = f"{result.test} statistic {result.statistic:.3f} above {result.threshold:g}"
    return Failure(result.column, f"skew_{result.test}", message)


def _is_scalar_false(value: Any) -> bool:
    return value is False or (isinstance(value, float) and pd.isna(value))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------------------------------ statistics
def column_stats(series: pd.Series) -> dict[str, Any]:
    """Count, null fraction, and either numeric summaries or the number of distinct values and the top."""
    stats: dict[str, Any] = {
        "dtype": str(series.dtype),
        "count": int(series.notna().sum()),
        "null_fraction": float(series.isna().mean()) if len(series) else 0.0,
    }
    kind = dtype_kind(series.dtype)
    values = series.dropna()
    if kind == "numeric" and not values.empty:
        described = values.astype("float64").describe()
        for key in ("mean", "std", "min", "50%", "max"):
            stats["median" if key == "50%" else key] = float(described[key])
    elif kind in ("string", "bool") and not values.empty:
        top = values.astype(str).value_counts()
        stats.update(
            distinct=len(top), top=str(top.index[0])[:40], top_fraction=float(top.iloc[0] / len(values))
        )
    elif kind.startswith("datetime") and not values.empty:
        stats.update(min=values.min().isoformat(), max=values.max().isoformat())
    return stats


# ---------------------------------------------------------------------------------------------- report
def report_markdown(report: ValidationReport) -> str:
    """The report as Markdown for the KFP UI: verdict, failures, skew, then per-column statistics."""
    verdict = "PASSED" if report.passed else f"FAILED ({len(report.failures)} failure(s))"
    reference = "no reference" if report.reference_rows is None else f"reference {report.reference_rows} rows"
    lines = [f"# Data validation: {report.model} — {verdict}", "", f"{report.rows} rows, {reference}.", ""]
    if report.failures:
        lines += ["## Failures", "", "| column | check | problem |", "| --- | --- | --- |"]
        lines += [f"| {f.column or '(table)'} | `{f.check}` | {f.message} |" for f in report.failures]
        lines.append("")
    if report.skew:
        lines += [
            "## Skew against the previous training set",
            "",
            "| column | test | statistic | threshold | |",
        ]
        lines.append("| --- | --- | --- | --- | --- |")
        for s in report.skew:
            shown = "n/a" if s.statistic is None else f"{s.statistic:.3f}"
            flag = "**skewed**" if s.flagged else s.note
            lines.append(f"| {s.column} | {s.test} | {shown} | {s.threshold:g} | {flag} |")
        lines.append("")
    lines += ["## Columns", "", "| column | dtype | null % | summary |", "| --- | --- | --- | --- |"]
    for column, stats in report.stats.items():
        lines.append(f"| {column} | {stats['dtype']} | {stats['null_fraction']:.1%} | {_summary(stats)} |")
    return "\n".join(lines) + "\n"


def _summary(stats: dict[str, Any]) -> str:
    if "mean" in stats:
        return f"mean {stats['mean']:.4g}, min {stats['min']:.4g}, max {stats['max']:.4g}"
    if "distinct" in stats:
        return f"{stats['distinct']} distinct, top `{stats['top']}` ({stats['top_fraction']:.0%})"
    if "min" in stats:
        return f"{stats['min']} .. {stats['max']}"
    return ""
