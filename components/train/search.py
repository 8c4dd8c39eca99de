"""Hyper-parameter search with Optuna over the framework's `fit`.

The spec's `hyperparameters` are the baseline: it is enqueued as the first trial, so the search can only
keep or beat it. Trials count toward `search.n_trials` (baseline included) and the study stops at
whichever of n_trials / timeout_s comes first. The sampler is seeded with `training.seed`; a search that
finishes all its trials is reproducible, one cut short by the timeout is not (the number of trials
depends on the machine's speed).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.bundle import Predictor
from core.spec.base import higher_is_better
from core.spec.model import ModelSpec
from core.spec.training import SearchParam

FitFunction = Callable[[ModelSpec, pd.DataFrame, pd.DataFrame, dict[str, Any], Path], tuple[Predictor, float]]


@dataclass
class SearchOutcome:
    best_params: dict[str, Any]
    best_score: float
    best_number: int
    best_dir: Path
    predictor: Predictor
    trials: list[dict[str, Any]] = field(default_factory=list)
    """Per trial: number, params (the searched ones), score, duration_s."""


def run_search(
    spec: ModelSpec,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    fit: FitFunction,
    work_dir: Path,
    progress: Callable[[str], None] = print,
) -> SearchOutcome:
    """Run the spec's Optuna search; the best trial's bundle folder is kept, the others deleted."""
    import optuna  # imported here: only searching specs pay for it

    search = spec.training.search
    if search is None:
        raise ValueError(f"{spec.name}: training.search is not set, nothing to search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=spec.name,
        direction=search.direction,
        sampler=optuna.samplers.TPESampler(seed=spec.training.seed),
    )
    baseline = {k: v for k, v in spec.training.hyperparameters.items() if k in search.space}
    if baseline:
        study.enqueue_trial(baseline)
    best: SearchOutcome | None = None
    trials: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        nonlocal best
        sampled = {name: _suggest(trial, name, param) for name, param in search.space.items()}
        params = {**spec.training.hyperparameters, **sampled}
        trial_dir = work_dir / f"trial_{trial.number:03d}"
        started = time.perf_counter()
        predictor, score = fit(spec, train, valid, params, trial_dir)
        score = float(score)
        trials.append(
            {"number": trial.number, "params": sampled, "score": score, "duration_s": _since(started)}
        )
        best = _better_of(
            best, SearchOutcome(params, score, trial.number, trial_dir, predictor), search.metric
        )
        best_text = "none" if best is None else f"{best.best_score:.4f}"
        progress(
            f"{spec.name}: trial {trial.number + 1}/{search.n_trials} {search.metric}={score:.4f} "
            f"(best {best_text}, {trials[-1]['duration_s']:.1f}s) {sampled}"
        )
        return score

    study.optimize(objective, n_trials=search.n_trials, timeout=search.timeout_s)
    if best is None:
        raise ValueError(f"{spec.name}: no search trial gave a finite validation {search.metric}")
    best.trials = trials
    return best


def _suggest(trial: Any, name: str, param: SearchParam) -> Any:
    if param.type == "int":
        return trial.suggest_int(name, int(param.low), int(param.high), log=param.log)
    if param.type == "float":
        return trial.suggest_float(name, float(param.low), float(param.high), log=param.log)
    return trial.suggest_categorical(name, list(param.choices or ()))


def _better_of(best: SearchOutcome | None, candidate: SearchOutcome, metric: str) -> SearchOutcome | None:
    """The strictly better trial (a tie keeps the earlier one: the baseline); the other's files go."""
    score = candidate.best_score
    if best is None and math.isfinite(score):
        return candidate
    better = best is not None and (
        score > best.best_score if higher_is_better(metric) else score < best.best_score
    )
    shutil.rmtree((best if better else candidate).best_dir, ignore_errors=True)
    return candidate if better else best


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
