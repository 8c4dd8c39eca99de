"""What one benchmark run measured, and how the runs become `serving.md` / `serving.json` with verdicts.

Pure Python on purpose (no numpy): the gRPC load generator imports `summarize` inside the serving env.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

TABLE_HEADER = ("path", "protocol", "concurrency", "req/s", "p50 ms", "p99 ms", "errors")


@dataclass(frozen=True)
class Measurement:
    """One target at one concurrency: closed-loop clients, each sending the next request on an answer."""

    path: str  # in-process | triton | router | mlserver
    protocol: str  # python | http | grpc
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "throughput_rps": round(self.throughput, 1)}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(latencies_s: Sequence[float], duration_s: float, errors: int) -> dict[str, float]:
    """The counts and percentiles every load generator reports (latencies of successful requests)."""
    return {
        "requests": len(latencies_s),
        "errors": errors,
        "duration_s": duration_s,
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
    }


def measurement(path: str, protocol: str, concurrency: int, summary: dict) -> Measurement:
    return Measurement(
        path=path,
        protocol=protocol,
        concurrency=concurrency,
        requests=int(summary["requests"]),
        errors=int(summary["errors"]),
        duration_s=float(summary["duration_s"]),
        p50_ms=float(summary["p50_ms"]),
        p99_ms=float(summary["p99_ms"]),
    )


def markdown_table(rows: Iterable[Measurement]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for m in rows:
        cells = (
            m.path,
            m.protocol,
            str(m.concurrency),
            f"{m.throughput:,.0f}",
            f"{m.p50_ms:.2f}",
            f"{m.p99_ms:.2f}",
            str(m.errors),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def find(rows: Iterable[Measurement], path: str, protocol: str, concurrency: int) -> Measurement | None:
    for m in rows:
        if (m.path, m.protocol, m.concurrency) == (path, protocol, concurrency):
            return m
    return None


@dataclass(frozen=True)
class Verdict:
    target: str
    met: bool | None  # None: not measured
    evidence: str

    def line(self) -> str:
        status = {True: "met", False: "NOT met", None: "not measured"}[self.met]
        return f"- {self.target}: **{status}** ({self.evidence})"


def verdicts(rows: Sequence[Measurement], at: int = 32) -> list[Verdict]:
    """Issue #4's targets at concurrency `at`, each with the numbers it was judged on."""
    out = [
        _ratio_verdict(
            rows, ("triton", "http"), ("mlserver", "http"), at, 8.0, "direct Triton >= 8x MLServer"
        )
    ]
    out.append(_ratio_verdict(rows, ("router", "http"), ("triton", "http"), at, 0.5, "router >= 1/2 Triton"))
    out.append(_ratio_verdict(rows, ("router", "grpc"), ("triton", "grpc"), at, 0.5, "router >= 1/2 Triton"))
    for protocol in ("http", "grpc"):
        for path in ("triton", "router"):
            m = find(rows, path, protocol, at)
            target = f"p99 < 10 ms, {path} {protocol}, c={at}"
            if m is None:
                out.append(Verdict(target, None, "no measurement"))
            else:
                out.append(Verdict(target, m.p99_ms < 10.0 and m.errors == 0, f"p99 {m.p99_ms:.2f} ms"))
    return out


def _ratio_verdict(
    rows: Sequence[Measurement],
    top: tuple[str, str],
    bottom: tuple[str, str],
    at: int,
    factor: float,
    name: str,
) -> Verdict:
    target = f"{name} ({top[1]}, c={at})"
    a, b = find(rows, *top, at), find(rows, *bottom, at)
    if a is None or b is None or b.throughput == 0:
        return Verdict(target, None, "no measurement")
    ratio = a.throughput / b.throughput
    evidence = f"{a.throughput:,.0f} vs {b.throughput:,.0f} req/s = {ratio:.2f}x, need {factor:g}x"
    return Verdict(target, ratio >= factor, evidence)


def write_report(out_dir: Path, rows: Sequence[Measurement], notes: Sequence[str], extra: dict) -> Path:
    """`serving.md` (table, verdicts, notes), `serving.json` (the same numbers) and `serving.png` (the
    chart) under `out_dir`."""
    from inference.bench.charts import write_chart  # matplotlib: only when a report is written

    out_dir.mkdir(parents=True, exist_ok=True)
    judged = verdicts(rows)
    text = [
        "# Serving benchmark",
        "",
        markdown_table(rows),
        "",
        "Targets (issue #4):",
        *[v.line() for v in judged],
        "",
        *[f"- {note}" for note in notes],
        "",
        "![throughput and p99 against concurrency](serving.png)",
        "",
    ]
    (out_dir / "serving.md").write_text("\n".join(text))
    write_chart(rows, out_dir / "serving.png")
    body = {
        "cpu_count": os.cpu_count(),
        "measurements": [m.to_json() for m in rows],
        "verdicts": [asdict(v) for v in judged],
        "notes": list(notes),
        **extra,
    }
    (out_dir / "serving.json").write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    return out_dir / "serving.md"
