"""`python -m feature_repo.demo_data`: generate the demo tables into the feature data folder.

A second run with the same parameters finds the manifest's hashes matching and does nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from core.paths import feature_data_dir
from feature_repo.demo_data.config import (
    DEFAULT_END,
    DEFAULT_START,
    DRIFTABLE_FEATURES,
    OFFER_CATEGORIES,
    TABLES,
    DriftSpec,
    GeneratorConfig,
    as_utc,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m feature_repo.demo_data",
        description="Generate deterministic demo data (customers, chat sessions, conversions) as Parquet.",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: $MLOPS_HOME/data)")
    parser.add_argument(
        "--customers", type=int, default=GeneratorConfig.customers, help="number of customers"
    )
    parser.add_argument("--seed", type=int, default=GeneratorConfig.seed, help="random seed")
    parser.add_argument("--start", default=DEFAULT_START.date().isoformat(), help="first day (UTC)")
    parser.add_argument("--end", default=DEFAULT_END.date().isoformat(), help="end, exclusive (UTC)")
    parser.add_argument(
        "--covariate-drift",
        metavar="FEAT[,FEAT]",
        help=f"shift these features after --drift-start; one of: {', '.join(DRIFTABLE_FEATURES)}",
    )
    parser.add_argument("--label-drift", type=float, metavar="MAG", help="move the conversion logit by MAG")
    parser.add_argument(
        "--concept-drift",
        type=float,
        metavar="MAG",
        help="scale the pricing effect by 1 - 2*MAG (1 flips it)",
    )
    parser.add_argument(
        "--popularity-drift",
        metavar="CAT[,CAT]",
        help="offers of these categories become --drift-magnitude more appealing; one of: "
        + ", ".join(OFFER_CATEGORIES),
    )
    parser.add_argument(
        "--new-offers",
        metavar="CAT[,CAT]",
        help="launch --new-offers-count new, well-liked offers per category at --drift-start",
    )
    parser.add_argument("--new-offers-count", type=int, default=2, help="new offers per category (default 2)")
    parser.add_argument("--drift-start", help="when drift begins (default: midway between start and end)")
    parser.add_argument(
        "--drift-magnitude",
        type=float,
        default=1.0,
        help="covariate shift in standard deviations, or popularity shift in relevance logits (default 1)",
    )
    parser.add_argument("--force", action="store_true", help="regenerate even when the data is up to date")
    return parser


def _drift_specs(args: argparse.Namespace, start: datetime, end: datetime) -> tuple[DriftSpec, ...]:
    when = as_utc(args.drift_start) if args.drift_start else start + (end - start) / 2
    specs = []
    if args.covariate_drift:
        specs.append(DriftSpec("covariate", when, _names(args.covariate_drift), args.drift_magnitude))
    if args.label_drift is not None:
        specs.append(DriftSpec("label", when, (), args.label_drift))
    if args.concept_drift is not None:
        specs.append(DriftSpec("concept", when, (), args.concept_drift))
    if args.popularity_drift:
        specs.append(DriftSpec("popularity", when, _names(args.popularity_drift), args.drift_magnitude))
    if args.new_offers:
        specs.append(DriftSpec("new_offers", when, _names(args.new_offers), args.new_offers_count))
    return tuple(specs)


def _names(flag: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in flag.split(",") if name.strip())


def config_from_args(args: argparse.Namespace) -> GeneratorConfig:
    """The config the flags describe; raises ValueError with a one-line message when they are bad."""
    start, end = as_utc(args.start), as_utc(args.end)
    drift = _drift_specs(args, start, end)
    return GeneratorConfig(seed=args.seed, customers=args.customers, start=start, end=end, drift=drift)


def summary_lines(manifest: dict) -> list[str]:
    """One line per table, in `TABLES` order: rows and event-time range."""
    lines = []
    for name in TABLES:
        entry = manifest["tables"][name]
        span = entry["event_timestamp"]
        lines.append(f"{name:<24} {entry['rows']:>9,} rows  {span['min']} .. {span['max']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    out_dir = (args.out or feature_data_dir()).resolve()
    # Imported here so that `--help` and argument errors stay instant.
    from feature_repo.demo_data.generate import generate
    from feature_repo.demo_data.writer import MANIFEST, is_up_to_date, read_manifest, write_tables

    if not args.force and is_up_to_date(config, out_dir):
        print(f"demo data in {out_dir} is up to date ({out_dir / MANIFEST}); use --force to regenerate")
        return 0
    path = write_tables(config, generate(config), out_dir)
    for line in summary_lines(read_manifest(out_dir)):
        print(line)
    print(f"manifest: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
