"""`serving.png`: throughput and p99 latency against concurrency, one line per path and protocol, from the
same measurements as `serving.md` (matplotlib, drawn off screen)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inference.bench.results import Measurement

P99_TARGET_MS = 10.0  # issue #4's and #15's latency target, drawn on the p99 panel


def write_chart(rows: Sequence[Measurement], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt

    figure, (rate, p99) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    paths = sorted({m.path for m in rows})
    colours = {name: f"C{index}" for index, name in enumerate(paths)}  # one colour a path, a style a protocol
    for path_name, protocol in sorted({(m.path, m.protocol) for m in rows}):
        series = sorted((m for m in rows if (m.path, m.protocol) == (path_name, protocol)), key=_concurrency)
        levels = [m.concurrency for m in series]
        style = {"color": colours[path_name], "linestyle": "--" if protocol == "grpc" else "-", "marker": "o"}
        label = f"{path_name} {protocol}"
        rate.plot(levels, [m.throughput for m in series], label=label, **style)
        p99.plot(levels, [m.p99_ms for m in series], label=label, **style)
    p99.axhline(P99_TARGET_MS, color="grey", linewidth=0.8, linestyle=":", label="p99 target")
    ticks = sorted({m.concurrency for m in rows})
    for axis, title in ((rate, "throughput (req/s)"), (p99, "p99 latency (ms, log)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks, [str(tick) for tick in ticks])
        axis.set_xlabel("concurrency (closed-loop clients)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    p99.set_yscale("log")
    rate.legend(fontsize=8)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _concurrency(m: Measurement) -> int:
    return m.concurrency
