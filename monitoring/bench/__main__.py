"""`python -m monitoring.bench [--clean-requests 10000] [--seeds 5] [--out build/bench]` (serving env)

The monitoring benchmark (issue #5) for the tabular detectors of the demo models: throughput (events/s per
core) of the detector alone and of the drift service over HTTP CloudEvents, false alarms over unshifted
requests at the spec's configured setting, and detection delay of the demo covariate shift (0.5 sigma in
sessions_7d and duration_s) over several seeds. Writes `monitoring.md` and `monitoring.json` under `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.paths import REPO_ROOT
from monitoring.bench import stats

if TYPE_CHECKING:
    from monitoring.bench.streams import Streams

MODELS = ("conversion-xgboost", "conversion-sklearn", "conversion-mlp")  # tabular, ks, cvm_online
ONE_THREAD = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def setting_of(spec) -> str:
    m = spec.monitoring
    if m.is_online:
        return f"expected run time {m.expected_run_time} requests, window {m.window.size}"
    return f"p_value {m.p_value} ({m.correction}), window {m.window.size}"


def with_window(spec, size: int | None):
    """The spec with another monitoring window (to try a setting before changing the spec file)."""
    if size is None:
        return spec
    window = spec.monitoring.window.model_copy(update={"size": size})
    return spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"window": window})})


def bench_detector(spec, streams: Streams, work: Path, args: argparse.Namespace) -> stats.DetectorReport:
    from monitoring.bench.runs import run_stream, shift_delay
    from monitoring.detectors.fit import fit_detector
    from monitoring.detectors.kinds import load_detector

    started = time.perf_counter()
    folder = fit_detector(spec, streams.training, "1", work / spec.name / "detector")
    fitted = time.perf_counter()
    detector = load_detector(folder)
    window = spec.monitoring.window.size
    report = stats.DetectorReport(spec.name, spec.monitoring.detector, setting_of(spec))
    report.fit_s, report.load_s = fitted - started, time.perf_counter() - fitted
    cpu = wall = 0.0
    for seed in range(args.seeds):
        clean = run_stream(detector, streams.clean_stream(args.clean_requests, seed), window)
        report.clean_requests += clean.throughput.events
        report.false_alarms += len(clean.alarms)
        cpu, wall = cpu + clean.throughput.cpu_s, wall + clean.throughput.wall_s
        delay, early = shift_delay(detector, streams, window, seed, args.drifted_requests)
        report.delays.append(delay)
        report.clean_requests += window  # the clean part before the shift, at least one window
        report.false_alarms += early
        print(f"{spec.name} seed {seed}: {len(clean.alarms)} false alarms, delay {delay}", flush=True)
    report.alone = stats.Throughput(report.clean_requests - args.seeds * window, wall, cpu)
    if not args.skip_service:
        from monitoring.bench.service import measure_service

        row = streams.clean.iloc[0][detector.features]
        report.service, extra, totals = measure_service(
            folder, row, spec.name, "1", window, work / spec.name, args
        )
        report.acknowledged, report.unscored = int(totals["received"]), int(totals["unscored"])
        report.dropped = int(totals["dropped"])
        report.notes.append(f"service run: {json.dumps(extra, default=str)}")
    if not args.skip_store:
        from monitoring.bench.store import measure_store

        row = streams.clean.iloc[0][detector.features]
        report.store, extra, totals = measure_store(
            folder, row, spec.name, "1", window, work / spec.name, args
        )
        report.store_expected = extra["request_rows"]
        report.store_unscored = int(extra["request_rows"] - totals["scored"] - totals["dropped"])
        report.notes.append(f"payload-store run: {json.dumps(extra, default=str)}")
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m monitoring.bench", description=__doc__.splitlines()[2])
    parser.add_argument("--clean-requests", type=int, default=10_000, help="unshifted requests per seed")
    parser.add_argument("--drifted-requests", type=int, default=2000, help="shifted requests per seed (cap)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated demo model specs")
    parser.add_argument("--duration-s", type=float, default=10.0, help="drift service load, seconds")
    parser.add_argument("--service-concurrency", type=int, default=8, help="connections posting events")
    parser.add_argument("--skip-service", action="store_true", help="detector alone only")
    parser.add_argument("--skip-store", action="store_true", help="skip the payload-store (S3) run")
    parser.add_argument(
        "--store-events", type=int, default=100_000, help="log records (requests + responses) uploaded"
    )
    parser.add_argument("--batch-events", type=int, default=1000, help="log records per object (batchSize)")
    parser.add_argument(
        "--no-journal", action="store_true", help="service without checkpoints and journal (not as deployed)"
    )
    parser.add_argument("--window", type=int, help="override the specs' monitoring window size (rows)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.seeds < 1 or args.clean_requests < 1 or args.drifted_requests < 1:
        parser.error("--seeds, --clean-requests and --drifted-requests must be >= 1")
    if args.batch_events < 2 or args.store_events < args.batch_events:
        parser.error("need --batch-events >= 2 and --store-events >= --batch-events")
    return args


def write_report(out: Path, reports: list[stats.DetectorReport], args: argparse.Namespace) -> Path:
    from monitoring.bench.charts import write_chart
    from monitoring.bench.streams import SHIFT_SIGMA, SHIFTED_FEATURES

    out.mkdir(parents=True, exist_ok=True)
    notes = [
        f"demo shift: {SHIFT_SIGMA} sigma in {' and '.join(SHIFTED_FEATURES)}; delay = requests from the "
        f"first shifted one to the alarm, over {args.seeds} seeds (the shift starts at a random point "
        "inside a window)",
        f"false alarms: {args.clean_requests:,} unshifted requests per seed (random held-out demo sessions), "
        "batch detectors per full window, online detectors per request and reset after each alarm",
        "per core: events / CPU seconds of the process doing the work, with numeric libraries at one thread "
        f"(machine: {os.cpu_count()} CPUs shared with the load generator and other work)",
        "service: request CloudEvents only (responses are counted, not scored), one row each, posted by wrk"
        + ("" if args.no_journal else ", with checkpoints and the write-ahead journal on (as deployed)"),
        f"payload store: {args.store_events:,} log records in objects of {args.batch_events:,} (KServe's "
        "JSON marshaller, requests and responses) on moto's S3 server, read by the service with "
        "--payload-store; "
        "per core: request rows / the service's CPU seconds from the first upload to the last row scored",
    ]
    text = [
        "# Monitoring benchmark",
        "",
        stats.markdown(reports),
        "",
        "Targets (issues #5 and #15):",
        *stats.verdict_lines(reports),
        "",
        *[f"- {n}" for n in notes],
        "",
        "![events per second per core, detector alone and service](monitoring.png)",
        "",
    ]
    (out / "monitoring.md").write_text("\n".join(text))
    write_chart(reports, out / "monitoring.png")
    body = {"cpu_count": os.cpu_count(), "reports": [r.to_json() for r in reports], "notes": notes}
    (out / "monitoring.json").write_text(json.dumps(body, indent=2, default=str) + "\n")
    return out / "monitoring.md"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ONE_THREAD:  # per-core numbers: numeric libraries must not fan out to the other core
        os.environ[name] = "1"  # before numpy/numba/torch load (they read it once)
    import torch

    torch.set_num_threads(1)
    from core.spec.model import DEFAULT_SPEC_DIR, load_spec
    from monitoring.bench.streams import demo_streams

    try:
        specs = [
            with_window(load_spec(DEFAULT_SPEC_DIR / f"{name}.yaml"), args.window) for name in args.models
        ]
    except (OSError, ValueError) as exc:
        print(f"error: --models: {exc}", file=sys.stderr)
        return 2
    streams = demo_streams()
    with tempfile.TemporaryDirectory(prefix="mlops-monitoring-bench-") as tmp:
        reports = [bench_detector(spec, streams, Path(tmp), args) for spec in specs]
    report = write_report(args.out, reports, args)
    print(report.read_text())
    print(f"written: {report} and {report.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
