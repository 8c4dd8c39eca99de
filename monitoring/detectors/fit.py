"""Fit the drift detector a model spec asks for on the training set, and write its bundle.

    python -m monitoring.detectors.fit --model conversion-xgboost --training-set train.parquet \
        --version 3 --out detector/ [--spec-dir pipelines/models] [--reference-rows 300]

The reference is a seeded random sample of the training set (the distribution the model learned from).
Defaults: 1,000 rows for batch detectors (KS/chi-square are cheap), 300 for online ones, whose thresholds
are re-simulated on every load (cost grows with reference rows x simulated streams).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from core.spec.model import ModelSpec, load_specs, spec_directory
from core.training_set import TIME_COLUMN
from monitoring.detectors.base import DetectorError, read_table
from monitoring.detectors.kinds import detector_class

BATCH_REFERENCE_ROWS = 1000
ONLINE_REFERENCE_ROWS = 300
SAMPLE_SEED = 0


def input_columns(spec: ModelSpec, frame: pd.DataFrame) -> list[str]:
    """The raw columns the served model reads: the spec's monitoring.features, else every training-set
    column except entity keys, the timestamp, the label and a ranker's query and logged position."""
    if spec.monitoring.features:
        missing = [c for c in spec.monitoring.features if c not in frame.columns]
        if missing:
            raise DetectorError(
                f"{spec.name}: monitoring.features {', '.join(missing)} not in the training set"
            )
        return list(spec.monitoring.features)
    if spec.inputs.request_fields is not None:
        return [f.name for f in spec.inputs.request_fields]
    skip = {*(spec.inputs.entity_keys or ()), TIME_COLUMN, spec.label.column, *spec.label.passenger_columns}
    return [c for c in frame.columns if c not in skip]


def reference_sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=SAMPLE_SEED).sort_index().reset_index(drop=True)


def fit_detector(
    spec: ModelSpec,
    training_frame: pd.DataFrame,
    version: str,
    out_dir: Path,
    reference_rows: int | None = None,
) -> Path:
    """Fit `spec.monitoring.detector` on a sample of `training_frame` and write the bundle to `out_dir`."""
    monitoring = spec.monitoring
    rows = reference_rows or (ONLINE_REFERENCE_ROWS if monitoring.is_online else BATCH_REFERENCE_ROWS)
    columns = input_columns(spec, training_frame)
    missing = [c for c in columns if c not in training_frame.columns]
    if missing:
        raise DetectorError(f"{spec.name}: training set lacks input columns {', '.join(missing)}")
    reference = reference_sample(training_frame[columns], rows)
    where = f"{spec.name}: monitoring.detector"
    detector = detector_class(monitoring.detector, where).fit_spec(spec, version, reference, columns)
    return detector.save(Path(out_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.detectors.fit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", required=True, help="model spec name")
    parser.add_argument("--training-set", required=True, type=Path, help="training set (Parquet, or .jsonl)")
    parser.add_argument("--version", required=True, help="model version the detector belongs to")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    parser.add_argument(
        "--spec-dir", type=Path, default=None, help="spec folder (default: $MLOPS_SPEC_DIR or repo)"
    )
    parser.add_argument("--reference-rows", type=int, default=None, help="reference sample size")
    args = parser.parse_args(argv)
    try:
        spec = load_specs(args.spec_dir or spec_directory(), names=[args.model])[0]
        frame = read_table(args.training_set)
        out = fit_detector(spec, frame, args.version, args.out, args.reference_rows)
    except (DetectorError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
