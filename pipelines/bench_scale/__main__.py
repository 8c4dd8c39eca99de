"""`python -m pipelines.bench_scale --scales 1,10,100 --out build/bench-scale [--models a,b]
[--base-customers 1000] [--timeout-s S]`: see the package docstring.

A scale whose stage fails or hits the time limit is reported (where, its error line, the steps that
finished) and the next scale still runs; the exit status is non-zero only for the harness's own errors
(bad arguments, an unwritable out folder)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_BASE_CUSTOMERS = 1000  # the Makefile's DEMO_CUSTOMERS: what 1x means


class UsageError(ValueError):
    """A bad argument; the message names the value."""


def parse_scales(text: str) -> list[int]:
    scales = []
    for part in text.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise UsageError(f"--scales: {part.strip()!r} is not a positive integer") from None
        if value <= 0:
            raise UsageError(f"--scales: {value} is not a positive integer")
        scales.append(value)
    if len(set(scales)) != len(scales):
        raise UsageError(f"--scales: {text!r} repeats a scale")
    return sorted(scales)


def parse_models(text: str) -> list[str]:
    from pipelines.local_run import discovered_models

    known = discovered_models()
    models = [name.strip() for name in text.split(",") if name.strip()] or known
    unknown = [name for name in models if name not in known]
    if unknown:
        raise UsageError(f"--models: no spec named {', '.join(unknown)} (known: {', '.join(known)})")
    return models


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.bench_scale", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--scales", default="1,10,100", help="multiples of --base-customers (default 1,10,100)"
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench-scale"), help="output folder")
    parser.add_argument("--models", default="", help="comma-separated model specs (default: every spec)")
    parser.add_argument(
        "--base-customers", type=int, default=DEFAULT_BASE_CUSTOMERS, help="customers at 1x (default 1000)"
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run the pipeline even when the data or Feast stage failed (on what that stage left)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite scale.md and scale.png from the out folder's scale.json (no runs)",
    )
    parser.add_argument(
        "--timeout-s", type=float, default=None, help="stop a stage (data, Feast, pipeline) after this long"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        scales = parse_scales(args.scales)
        models = parse_models(args.models)
        if args.base_customers <= 0:
            raise UsageError(f"--base-customers: {args.base_customers} is not a positive integer")
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import psutil

    if args.render:
        return render(args.out.resolve())

    from pipelines.bench_scale.scale_run import run_scale
    from pipelines.bench_scale.tables import markdown

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    total_mb = psutil.virtual_memory().total / 2**20
    command = "python -m pipelines.bench_scale " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []
    for scale in scales:
        customers = scale * args.base_customers
        print(f"scale {scale}x: {customers:,} customers, models {', '.join(models)} -> {out}", flush=True)
        result = run_scale(scale, customers, models, out, args.timeout_s, args.keep_going)
        results.append(result)
        done = result.get("pipeline", {}).get("seconds")
        failed = ", ".join(f["where"] for f in result["failures"])
        status = f"FAILED at {failed}" if failed else "finished"
        print(f"scale {scale}x: {status}" + (f", pipeline {done:.0f} s" if done else ""), flush=True)
        # Written after every scale: a long run interrupted later keeps what it measured.
        write_outputs(results, out, total_mb, command, models)
    print(markdown(results, total_mb, command))
    print(f"\nwritten: {out / 'scale.md'}, {out / 'scale.json'}, {out / 'scale.png'}")
    return 0


def render(out: Path) -> int:
    """Rewrite the table and chart from a finished run's raw figures (after a change to how they read)."""
    raw_path = out / "scale.json"
    if not raw_path.is_file():
        print(f"error: --render: no {raw_path}", file=sys.stderr)
        return 2
    raw = json.loads(raw_path.read_text())
    write_outputs(raw["scales"], out, raw["memory_total_mb"], raw["command"], raw["models"])
    print((out / "scale.md").read_text())
    return 0


def write_outputs(results: list[dict], out: Path, total_mb: float, command: str, models: list[str]) -> None:
    from pipelines.bench_scale.chart import write_chart
    from pipelines.bench_scale.report import step_series
    from pipelines.bench_scale.tables import markdown, verdicts

    raw = {
        "command": command,
        "models": models,
        "memory_total_mb": round(total_mb),
        "scales": results,
        "series": [
            {"step": step, "model": model, "points": points}
            for (step, model), points in step_series(results).items()
        ],
        "verdicts": verdicts(results, total_mb),
    }
    (out / "scale.json").write_text(json.dumps(raw, indent=2) + "\n")
    (out / "scale.md").write_text(markdown(results, total_mb, command) + "\n")
    write_chart(results, out / "scale.png")


if __name__ == "__main__":
    sys.exit(main())
