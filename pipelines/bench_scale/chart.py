"""scale.png: time per step vs rows (log-log, one line per step and model), and the whole pipeline and the
data stages vs customers. matplotlib is imported here, not at package import, and with the Agg backend:
the harness runs on machines without a display."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.bench_scale.report import pipeline_finished, step_series

LINE_STYLES = ("-", "--", ":", "-.")


def write_chart(results: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_rows, by_customers) = plt.subplots(1, 2, figsize=(14, 6))
    series = sorted(step_series(results).items())
    # Colour = step, line style = model: 20-odd lines stay tellable apart (one colour cycle is only 10).
    steps = sorted({step for (step, _), _ in series})
    models = sorted({model for (_, model), _ in series if model != "-"})
    palette = plt.get_cmap("tab10")
    for (step, model), points in series:
        measured = [p for p in points if p["rows"] and p["seconds"] > 0]
        if len(measured) < 2 or model == "-":
            continue
        by_rows.plot(
            [p["rows"] for p in measured],
            [p["seconds"] for p in measured],
            marker="o",
            color=palette(steps.index(step) % 10),
            linestyle=LINE_STYLES[models.index(model) % len(LINE_STYLES)],
            label=f"{step} ({model})",
        )
    _proportional_guide(by_rows)
    by_rows.set(xscale="log", yscale="log", xlabel="input rows", ylabel="wall time (s)")
    by_rows.set_title("pipeline steps: time vs rows")
    if by_rows.get_lines():
        by_rows.legend(fontsize=6, ncol=2)

    ordered = sorted(results, key=lambda r: r["scale"])
    done = [r for r in ordered if pipeline_finished(r)]
    if done:
        by_customers.plot(
            [r["customers"] for r in done],
            [r["pipeline"]["seconds"] for r in done],
            marker="o",
            label="pipeline",
        )
    failed = [r for r in ordered if r.get("pipeline") and not pipeline_finished(r)]
    if failed:
        by_customers.plot(
            [r["customers"] for r in failed],
            [r["pipeline"]["seconds"] for r in failed],
            "rx",
            markersize=10,
            label="pipeline, a step failed",
        )
    for stage in ("demo_data", "feast_bootstrap"):
        points = [(r["customers"], s["seconds"]) for r in ordered for s in r["steps"] if s["step"] == stage]
        if points:
            by_customers.plot(*zip(*points, strict=True), marker="s", linestyle="--", label=stage)
    by_customers.set(xscale="log", yscale="log", xlabel="customers", ylabel="wall time (s)")
    by_customers.set_title("whole pipeline and data stages vs customers")
    if by_customers.get_lines():
        by_customers.legend(fontsize=8)
    for axes in (by_rows, by_customers):
        axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _proportional_guide(axes) -> None:
    """A dotted slope-1 line through the plot's lower left: steps parallel to it grow linearly."""
    lines = axes.get_lines()
    if not lines:
        return
    xs = [x for line in lines for x in line.get_xdata()]
    ys = [y for line in lines for y in line.get_ydata()]
    low, high = min(xs), max(xs)
    axes.plot([low, high], [min(ys), min(ys) * high / low], "k:", linewidth=1, label="slope 1")
