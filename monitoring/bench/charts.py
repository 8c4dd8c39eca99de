"""`monitoring.png`: events per second per core of each model's detector alone, of the drift service end to
end over HTTP and of it reading batched payload logs from S3, against the service target, from the same
reports as `monitoring.md` (matplotlib, drawn off screen)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from monitoring.bench.stats import SERVICE_TARGET, DetectorReport


def write_chart(reports: Sequence[DetectorReport], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display here or in CI
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.2), constrained_layout=True)
    names = [f"{r.model}\n({r.kind})" for r in reports]
    positions = range(len(reports))
    width = 0.27
    alone = [r.alone.per_core_s if r.alone else 0.0 for r in reports]
    service = [r.service.per_core_s if r.service else 0.0 for r in reports]
    store = [r.store.per_core_s if r.store else 0.0 for r in reports]
    axis.bar([p - width for p in positions], alone, width, label="detector alone")
    axis.bar(list(positions), service, width, label="drift service over HTTP")
    axis.bar([p + width for p in positions], store, width, label="drift service from the payload store (S3)")
    axis.axhline(SERVICE_TARGET, color="grey", linewidth=0.8, linestyle=":", label="service target")
    axis.set_yscale("log")
    axis.set_xticks(list(positions), names, fontsize=8)
    axis.set_ylabel("events/s per core (log)")
    axis.set_title("drift detection throughput")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
