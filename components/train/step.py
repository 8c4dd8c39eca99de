"""Training: split by time, fit (through the Optuna search when the spec has one), write the bundle.

    result = train(spec, training_set, out_dir)  # out_dir/bundle/ and out_dir/test.parquet

The framework plug-in named by the spec (core/frameworks/registry.py) fits the model; this module splits,
searches and records what happened.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.train.search import SearchOutcome, run_search
from components.train.splits import Splits, time_split
from core.frameworks.base import class_names, input_columns, label_codes, score_metric
from core.frameworks.registry import get_framework
from core.spec.model import ModelSpec, load_specs
from core.timing import timed_step
from core.training_set import load_training_set_file

BUNDLE_DIR = "bundle"
TEST_FILE = "test.parquet"
SEARCH_DIR = ".search"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    bundle_dir: Path
    test_path: Path
    metric: str
    validation_score: float
    best_params: dict[str, Any]
    trials: list[dict[str, Any]]
    splits: dict[str, dict[str, Any]]
    """Per split (train, valid, test): rows, start and end (ISO 8601 event times, inclusive)."""
    test: pd.DataFrame


# ------------------------------------------------------------------------------------------ orchestration
def train(
    spec: ModelSpec,
    training_set: pd.DataFrame,
    out_dir: Path,
    progress: Progress = print,
    *,
    bundle_dir: Path | None = None,
    test_path: Path | None = None,
) -> TrainResult:
    """Fit `spec` on `training_set`; write the bundle and the test rows.

    They go to `out_dir/bundle/` and `out_dir/test.parquet` unless `bundle_dir` / `test_path` say
    otherwise (a KFP component passes its output artifact paths). `out_dir` also holds the search's
    scratch folder while it runs.
    """
    out_dir = Path(out_dir)
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else out_dir / BUNDLE_DIR
    test_path = Path(test_path) if test_path is not None else out_dir / TEST_FILE
    input_columns(spec, training_set)  # fail before any work on a malformed training set
    _require_two_classes(spec, training_set)
    splits = time_split(training_set, spec.training.split)
    _require_classes_per_split(spec, splits)
    summary = splits.summary()
    progress(f"{spec.name}: " + ", ".join(f"{name} {s['rows']} rows" for name, s in summary.items()))
    _remove(bundle_dir)
    outcome = _fit_or_search(spec, splits, bundle_dir, out_dir / SEARCH_DIR, progress)
    record = _training_record(spec, summary, outcome)
    info = outcome.predictor.info
    replace(info, training={**info.training, **record}).save(bundle_dir)
    test_path.parent.mkdir(parents=True, exist_ok=True)
    splits.test.to_parquet(test_path, index=False)
    return TrainResult(
        bundle_dir=bundle_dir,
        test_path=test_path,
        metric=score_metric(spec),
        validation_score=outcome.best_score,
        best_params=outcome.best_params,
        trials=outcome.trials,
        splits=summary,
        test=splits.test,
    )


def _fit_or_search(
    spec: ModelSpec, splits: Splits, bundle_dir: Path, work_dir: Path, progress: Progress
) -> SearchOutcome:
    """One fit with the spec's hyperparameters, or the search; either way the model ends in `bundle_dir`."""
    fit = get_framework(spec.framework).fit
    if spec.training.search is None:
        params = dict(spec.training.hyperparameters)
        predictor, score = fit(spec, splits.train, splits.valid, params, bundle_dir)
        progress(
            f"{spec.name}: fitted the spec's hyperparameters, validation {score_metric(spec)}={score:.4f}"
        )
        trials = [{"number": 0, "params": {}, "score": float(score)}]
        return SearchOutcome(params, float(score), 0, bundle_dir, predictor, trials)
    _remove(work_dir)  # left over from an interrupted run
    outcome = run_search(spec, splits.train, splits.valid, fit, work_dir, progress)
    shutil.move(outcome.best_dir, bundle_dir)  # move, not rename: the two may be on different volumes
    _remove(work_dir)
    return replace(outcome, best_dir=bundle_dir)


def _training_record(
    spec: ModelSpec, summary: dict[str, dict[str, Any]], outcome: SearchOutcome
) -> dict[str, Any]:
    search = None
    if spec.training.search is not None:
        search = {
            "n_trials": len(outcome.trials),
            "best_trial": outcome.best_number,
            "scores": [t["score"] for t in outcome.trials],
        }
    return {
        "splits": summary,
        "seed": spec.training.seed,
        "feature_service": spec.inputs.feature_service,
        "validation_metric": score_metric(spec),
        "validation_score": outcome.best_score,
        "best_params": outcome.best_params,
        "search": search,
    }


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _require_two_classes(spec: ModelSpec, frame: pd.DataFrame) -> None:
    present = np.unique(label_codes(spec, frame))
    if spec.label.task == "ranking":
        if len(present) < 2:
            only = present[0] if len(present) else "-"
            raise ValueError(
                f"label column {spec.label.column!r}: every row has relevance {only}: nothing to rank"
            )
        return
    if len(present) < 2:
        only = class_names(spec)[present[0]] if len(present) else "none"
        raise ValueError(f"label column {spec.label.column!r} has a single class ({only}): nothing to learn")


def _require_classes_per_split(spec: ModelSpec, splits: Splits) -> None:
    """Train must see every class (else the model cannot output it); validation needs two to score. A
    ranker needs relevant rows in both."""
    if spec.label.task == "ranking":
        for name in ("train", "valid"):
            part = getattr(splits, name)
            if not (label_codes(spec, part) > 0).any():
                raise ValueError(
                    f"label column {spec.label.column!r}: no relevant row (relevance > 0) in the {name} "
                    f"split ({len(part)} rows): nothing to learn or score"
                )
        return
    classes = class_names(spec)
    present = set(np.unique(label_codes(spec, splits.train)).tolist())
    absent = [name for index, name in enumerate(classes) if index not in present]
    if absent:
        raise ValueError(
            f"label column {spec.label.column!r}: class(es) {', '.join(absent)} have no rows in the "
            f"train split ({len(splits.train)} oldest rows)"
        )
    if len(np.unique(label_codes(spec, splits.valid))) < 2:
        raise ValueError(
            f"label column {spec.label.column!r} has a single class in the validation split "
            f"({len(splits.valid)} rows): the validation metric needs two"
        )


# --------------------------------------------------------------------------------------- the step
def run(model: str, training_set_path: str, bundle_dir: str, test_path: str) -> dict:
    with timed_step("train", model):
        (spec,) = load_specs(names=[model])
        frame, _ = load_training_set_file(training_set_path)
        with tempfile.TemporaryDirectory(prefix=f"train-{spec.name}-") as scratch:
            result = train(
                spec,
                frame,
                Path(scratch),
                progress=_progress(spec.name),
                bundle_dir=Path(bundle_dir),
                test_path=Path(test_path),
            )
        print(f"trained {spec.name}: validation {result.metric} = {result.validation_score:.4f}", flush=True)
        return {
            "framework": spec.framework,
            "validation_metric": result.metric,
            "validation_score": result.validation_score,
            "best_params": {key: str(value) for key, value in result.best_params.items()},
            "trials": len(result.trials),
        }


def _progress(model: str):
    def report(message: str) -> None:
        print(f"[train {model}] {message}", flush=True)

    return report
