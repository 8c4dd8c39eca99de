"""scale.md: the per-step table, the per-scale summary and the verdicts, as markdown (printed as well)."""

from __future__ import annotations

from typing import Any

from pipelines.bench_scale.report import (
    largest_growth,
    memory_verdict,
    rows_per_second,
    step_series,
    ten_x_verdict,
)
from pipelines.run_summary import STEP_ORDER

STAGE_ORDER = ("demo_data", "feast_bootstrap", *STEP_ORDER)


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _order(key: tuple[str, str]) -> tuple[int, str]:
    step, model = key
    return (STAGE_ORDER.index(step) if step in STAGE_ORDER else len(STAGE_ORDER), model)


def step_table(results: list[dict[str, Any]]) -> str:
    scales = sorted(r["scale"] for r in results)
    header = ["step", "model"]
    for scale in scales:
        header += [f"{scale}x s", f"{scale}x rows", f"{scale}x rows/s", f"{scale}x peak MiB"]
        if scale != scales[0]:
            header.append(f"slope to {scale}x")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    series = step_series(results)
    for key in sorted(series, key=_order):
        by_scale = {point["scale"]: point for point in series[key]}
        cells = list(key)
        for scale in scales:
            point = by_scale.get(scale)
            if point is None:
                cells += ["not run"] + ["-"] * (3 + (scale != scales[0]))
                continue
            cells += [
                _number(point["seconds"]),
                _number(point["rows"], 0) if point["rows"] else "-",
                _number(rows_per_second(point), 0),
                _number(point.get("peak_rss_mb"), 0),
            ]
            if scale != scales[0]:
                mark = "" if point.get("slope_by") != "customers" else " (c)"
                cells.append(
                    _number(point.get("slope"), 2) + (mark if point.get("slope") is not None else "")
                )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| scale | customers | data + Feast s | pipeline s | pipeline peak MiB (all processes) | outcome |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for result in sorted(results, key=lambda r: r["scale"]):
        before = sum(s["seconds"] for s in result["steps"] if s["model"] == "-")
        pipeline = result.get("pipeline") or {}
        failures = result["failures"]
        outcome = "; ".join(f"{f['where']}: {f['error']}" for f in failures) or "finished"
        lines.append(
            f"| {result['scale']}x | {result['customers']:,} | {before:.1f} | "
            f"{_number(pipeline.get('seconds'))} | {_number(pipeline.get('peak_tree_mb'), 0)} | {outcome} |"
        )
    return "\n".join(lines)


def verdicts(results: list[dict[str, Any]], total_mb: float) -> list[str]:
    lines = [ten_x_verdict(results), memory_verdict(results, total_mb)]
    growth = largest_growth(results)
    if growth:
        lines.append(growth)
    return lines


def markdown(results: list[dict[str, Any]], total_mb: float, command: str) -> str:
    return "\n\n".join(
        [
            "# Pipeline cost curve (make bench-scale)",
            f"`{command}`",
            summary_table(results),
            "Per step and model (seconds inside the step; rows = the step's input rows; peak = the step "
            "process's peak RSS, data and Feast: their process tree's; slope = log(time ratio) / log(rows "
            "ratio) from the previous scale, (c): on the customers ratio, the step has no row count):",
            step_table(results),
            "\n".join(f"- {line}" for line in verdicts(results, total_mb)),
        ]
    )
