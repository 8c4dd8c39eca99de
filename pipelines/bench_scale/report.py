"""The figures the harness reports: per step and model across scales (time, rows, rows/s, peak memory),
the slope between consecutive scales, the whole pipeline's time, and the issue's two targets as verdicts.

Slope = log(time ratio) / log(rows ratio): 1 means time grows in proportion to the rows, 0 means it does
not grow (fixed costs: process start, imports, capped samples), above 1 means worse than linear. A step
whose input has no row count (register, the release steps) is compared on the customers ratio instead."""

from __future__ import annotations

import math
from typing import Any

TEN_X_BUDGET = 3.0  # the issue: at 10x the whole pipeline takes under 3x the 1x time
# A step that a kill signal or a MemoryError ended ran out of memory; other failures are just failures.
OOM_MARKERS = ("MemoryError", "out of memory", "signal 9", "SIGKILL", "Killed")


def slope(time_a: float, time_b: float, size_a: float, size_b: float) -> float | None:
    """log(time_b / time_a) / log(size_b / size_a); None where a ratio is undefined."""
    if min(time_a, time_b, size_a, size_b) <= 0 or size_a == size_b:
        return None
    return math.log(time_b / time_a) / math.log(size_b / size_a)


def step_series(results: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(step, model) -> one entry per scale that ran it, in scale order (repeats of a step summed)."""
    series: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for result in sorted(results, key=lambda r: r["scale"]):
        for entry in result["steps"]:
            per_scale = series.setdefault((entry["step"], entry["model"]), {})
            point = per_scale.setdefault(
                result["scale"],
                {"scale": result["scale"], "customers": result["customers"], "seconds": 0.0, "rows": None},
            )
            point["seconds"] = round(point["seconds"] + entry["seconds"], 2)
            point["rows"] = entry.get("rows") if entry.get("rows") is not None else point["rows"]
            peak = entry.get("peak_rss_mb")
            point["peak_rss_mb"] = max(point.get("peak_rss_mb") or 0.0, peak) if peak is not None else None
    for points in series.values():
        for a, b in zip(list(points.values()), list(points.values())[1:], strict=False):
            by_rows = a["rows"] and b["rows"] and a["rows"] != b["rows"]
            sizes = (a["rows"], b["rows"]) if by_rows else (a["customers"], b["customers"])
            b["slope"] = slope(a["seconds"], b["seconds"], *sizes)
            b["slope_by"] = "rows" if by_rows else "customers"
    return {key: list(points.values()) for key, points in series.items()}


def rows_per_second(point: dict[str, Any]) -> float | None:
    if not point.get("rows") or point["seconds"] <= 0:
        return None
    return point["rows"] / point["seconds"]


def pipeline_seconds(results: list[dict[str, Any]]) -> dict[int, float]:
    """Wall time of each scale's pipeline run that finished (a stopped or failed one is no figure)."""
    return {r["scale"]: r["pipeline"]["seconds"] for r in results if pipeline_finished(r)}


def pipeline_finished(result: dict[str, Any]) -> bool:
    pipeline = result.get("pipeline")
    return bool(pipeline) and pipeline["returncode"] == 0 and not pipeline["timed_out"]


def ten_x_verdict(results: list[dict[str, Any]]) -> str:
    times = pipeline_seconds(results)
    if 1 not in times or 10 not in times:
        ran = {r["scale"] for r in results}
        missing = [
            f"{s}x " + ("did not finish" if s in ran else "not in --scales")
            for s in (1, 10)
            if s not in times
        ]
        label = f"10x pipeline < {TEN_X_BUDGET:g}x the 1x time"
        return f"{label}: not measured ({', '.join(missing)})"
    ratio = times[10] / times[1]
    verdict = "met" if ratio < TEN_X_BUDGET else "NOT MET"
    return (
        f"10x pipeline < {TEN_X_BUDGET:g}x the 1x time: {verdict} "
        f"({times[10]:.0f} s at 10x = {ratio:.2f}x the {times[1]:.0f} s at 1x)"
    )


def memory_verdict(results: list[dict[str, Any]], total_mb: float, scale: int = 100) -> str:
    """Met when the scale finished with no failure; a failure whose error reads like the kernel's OOM kill
    or a MemoryError is "not met"; any other failure or a time limit leaves it open, with what ran."""
    label = f"{scale}x: no step ran out of memory"
    result = next((r for r in results if r["scale"] == scale), None)
    if result is None:
        return f"{label}: not measured ({scale}x not in --scales)"
    peak = max([s.get("peak_rss_mb") or 0.0 for s in result["steps"]] + [_tree_peak(result)])
    memory = f"peak {peak / 1024:.1f} GiB of {total_mb / 1024:.0f} GiB"
    failures = result["failures"]
    if not failures:
        return f"{label}: met ({memory})"
    described = "; ".join(f"{f['where']}: {f['error']}" for f in failures)
    if any(marker in f["error"] for f in failures for marker in OOM_MARKERS):
        return f"{label}: NOT MET ({described}; {memory})"
    return f"{label}: not decided, no out-of-memory in what ran ({described}; {memory})"


def _tree_peak(result: dict[str, Any]) -> float:
    return (result.get("pipeline") or {}).get("peak_tree_mb") or 0.0


def largest_growth(results: list[dict[str, Any]], a: int = 1, b: int = 10) -> str | None:
    """The step whose time grew the most (seconds) from scale a to b: the measured reason behind a miss."""
    best = None
    for (step, model), points in step_series(results).items():
        by_scale = {p["scale"]: p for p in points}
        if a in by_scale and b in by_scale:
            grown = by_scale[b]["seconds"] - by_scale[a]["seconds"]
            if best is None or grown > best[0]:
                best = (grown, step, model, by_scale[a]["seconds"], by_scale[b]["seconds"])
    if best is None:
        return None
    grown, step, model, before, after = best
    return f"largest growth {a}x -> {b}x: {step} ({model}) {before:.1f} s -> {after:.1f} s (+{grown:.0f} s)"
