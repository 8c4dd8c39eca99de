"""Behavioural model tests: a spec's `evaluation.behaviour` checks run against a model on its test rows.

    results = run_checks(spec, load_predictor(bundle_dir), test_rows)
    [(r.name, r.passed, r.reason) for r in results]

Invariance and direction checks perturb a sample of the test rows and compare each row's probabilities
before and after; minimum checks predict literal examples. Every result records what was measured, the
bound it was held to and a one-line reason. A check naming a column the model does not take is a
`SpecError` naming the check's field (a feature service's columns are only known here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.bundle import Predictor
from core.errors import SpecError
from core.spec.behaviour import SEEN, DirectionCheck, InvarianceCheck, MinimumCheck
from core.spec.model import ModelSpec

SAMPLE_SEED = 0
MAX_SEEN_VALUES = 50
SHOWN_FAILURES = 3


@dataclass(frozen=True)
class CheckResult:
    """One behavioural check on one model."""

    name: str
    kind: str
    passed: bool
    value: float | None
    """What was measured (None when the check could not be measured); must be `op` `bound` to pass."""
    op: str
    bound: float
    rows: int
    """Test rows (or examples) the check used."""
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(spec: ModelSpec, predictor: Predictor, test_frame: pd.DataFrame) -> list[CheckResult]:
    """Every check of `spec.evaluation.behaviour`, in order, on `test_frame` (rows with the model's
    input columns)."""
    missing = [c for c in predictor.info.inputs if c not in test_frame.columns]
    if spec.evaluation.behaviour and missing:
        raise ValueError(f"{spec.name}: the test rows lack input columns {missing} for the behaviour checks")
    results = []
    for index, check in enumerate(spec.evaluation.behaviour):
        at = f"evaluation.behaviour.{index}"
        if isinstance(check, InvarianceCheck):
            results.append(invariance(check, predictor, test_frame, spec.name, at))
        elif isinstance(check, DirectionCheck):
            results.append(direction(check, predictor, test_frame, spec.name, at))
        else:
            results.append(minimum(check, predictor, spec.name, at))
    return results


# ------------------------------------------------------------------------------------------ invariance
def invariance(
    check: InvarianceCheck, predictor: Predictor, frame: pd.DataFrame, model: str, at: str
) -> CheckResult:
    """Each sampled row's largest class-probability change over the perturbations, held to `max_change`."""
    info = predictor.info
    _require_input(check.feature, info.inputs, model, f"{at}.feature")
    numeric = _is_numeric(frame[check.feature])
    if check.shift is not None:
        _require_numeric(check.feature, numeric, "shift", model, f"{at}.feature")
        rows = _sample(frame[frame[check.feature].notna()], check.max_rows)
        variants = [rows.assign(**{check.feature: rows[check.feature] + check.shift})]
    else:
        values = _replacements(check, frame, numeric, model, at)
        rows = _sample(frame, check.max_rows)
        if len(values) < 2 and check.replace == SEEN:
            reason = f"{check.name}: cannot perturb {check.feature}: the test rows hold one value {values}"
            return _unmeasured(check, check.max_change, "<=", len(rows), reason)
        variants = [rows.assign(**{check.feature: value}) for value in values]
    if rows.empty:
        return _unmeasured(check, check.max_change, "<=", 0, f"{check.name}: no test rows to perturb")
    before = _proba(predictor, rows)
    after = _proba(predictor, pd.concat(variants, ignore_index=True)).reshape(len(variants), *before.shape)
    change = np.abs(after - before).max(axis=(0, 2))
    return _per_row_bound(check, change, check.max_change, f"{check.perturbation} changes a class P")


def _replacements(check: InvarianceCheck, frame: pd.DataFrame, numeric: bool, model: str, at: str) -> list:
    if check.replace == SEEN:
        seen = sorted(frame[check.feature].dropna().unique().tolist(), key=str)
        if len(seen) > MAX_SEEN_VALUES:  # each value is one more copy of the sample to score
            problem = f"{check.feature!r} holds {len(seen)} values (over {MAX_SEEN_VALUES}): list a few"
            raise SpecError(model, problem, f"{at}.replace")
        return seen
    values = list(check.replace or ())
    wrong = [v for v in values if isinstance(v, bool) or isinstance(v, int | float) != numeric]
    if wrong:
        kind = "numbers" if numeric else "strings"
        raise SpecError(
            model, f"{check.feature!r} holds {kind}; cannot replace it with {wrong[0]!r}", f"{at}.replace"
        )
    return values


# ------------------------------------------------------------------------------------------- direction
def direction(
    check: DirectionCheck, predictor: Predictor, frame: pd.DataFrame, model: str, at: str
) -> CheckResult:
    """Each sampled row's move of the target class's probability against `expect`, held to `tolerance`."""
    info = predictor.info
    for column in check.features:
        _require_input(column, info.inputs, model, f"{at}.features")
        _require_numeric(column, _is_numeric(frame[column]), "add and multiply", model, f"{at}.features")
    target = check.target if check.target is not None else info.classes[-1]
    if target not in info.classes:
        raise SpecError(model, f"unknown class {target!r}: the model predicts {', '.join(info.classes)}", at)
    column = info.classes.index(target)
    rows = _sample(frame.dropna(subset=list(check.features)), check.max_rows)
    if rows.empty:
        reason = f"{check.name}: no test rows with {', '.join(check.features)} set"
        return _unmeasured(check, check.tolerance, "<=", 0, reason)
    moved = rows.assign(
        **{
            c: rows[c] + check.add if check.add is not None else rows[c] * check.multiply
            for c in check.features
        }
    )
    delta = _proba(predictor, moved)[:, column] - _proba(predictor, rows)[:, column]
    against = -delta if check.expect == "non_decreasing" else delta
    lower = "lowers" if check.expect == "non_decreasing" else "raises"
    return _per_row_bound(check, against, check.tolerance, f"{check.perturbation} {lower} P({target})")


# --------------------------------------------------------------------------------------------- minimum
def minimum(check: MinimumCheck, predictor: Predictor, model: str, at: str) -> CheckResult:
    """The share of examples predicted as their class (as the top class, or with `min_probability`)."""
    info = predictor.info
    frame = pd.DataFrame([dict(example.input) for example in check.examples])
    missing = [c for c in info.inputs if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in info.inputs]
    if missing or unknown:
        problem = f"examples lack inputs {missing}" if missing else f"{unknown} are not inputs of the model"
        raise SpecError(model, problem, f"{at}.examples")
    proba = _proba(predictor, frame)
    wrong = []
    for example, row in zip(check.examples, proba, strict=True):
        if example.expect not in info.classes:
            raise SpecError(model, f"unknown class {example.expect!r}", f"{at}.examples")
        expected = row[info.classes.index(example.expect)]
        top = info.classes[int(row.argmax())]
        ok = expected >= check.min_probability if check.min_probability is not None else top == example.expect
        if not ok:
            text = ", ".join(f"{v}" for v in example.input.values())
            wrong.append(f"{text[:60]!r} -> {top} (P({example.expect}) {expected:.2f})")
    right = 1.0 - len(wrong) / len(check.examples)
    wanted = "as the top class" if check.min_probability is None else f"with P >= {check.min_probability:g}"
    reason = (
        f"{check.name}: {len(check.examples) - len(wrong)}/{len(check.examples)} examples predicted {wanted}"
    )
    if wrong:
        reason += f"; wrong: {'; '.join(wrong[:SHOWN_FAILURES])}"
        reason += f" (+{len(wrong) - SHOWN_FAILURES} more)" if len(wrong) > SHOWN_FAILURES else ""
    return CheckResult(check.name, check.kind, not wrong, right, ">=", 1.0, len(check.examples), reason)


# ---------------------------------------------------------------------------------------------- shared
def _per_row_bound(
    check: InvarianceCheck | DirectionCheck, adverse: np.ndarray, bound: float, what: str
) -> CheckResult:
    """Pass when at most `max_violation_share` of the rows move by more than `bound`.

    The value is the move all rows but the allowed share stay within (with no share allowed, the
    worst row's), so value <= bound exactly when the check passes.
    """
    rows = len(adverse)
    allowed = int(np.floor(check.max_violation_share * rows))
    value = float(np.sort(adverse)[rows - allowed - 1])
    violations = int((adverse > bound).sum())
    passed = value <= bound
    allowance = "none allowed" if allowed == 0 else f"at most {allowed} allowed"
    reason = f"{check.name}: {what} by more than {bound:g} on {violations}/{rows} rows ({allowance})"
    return CheckResult(check.name, check.kind, passed, value, "<=", bound, rows, reason)


def _unmeasured(check: Any, bound: float, op: str, rows: int, reason: str) -> CheckResult:
    return CheckResult(check.name, check.kind, False, None, op, bound, rows, reason)


def _proba(predictor: Predictor, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(predictor.predict_proba(frame), dtype=np.float64)


def _sample(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """At most `max_rows` rows: a fixed random sample in their original order, so reruns agree."""
    if len(frame) > max_rows:
        keep = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(frame), size=max_rows, replace=False))
        frame = frame.iloc[keep]
    return frame.reset_index(drop=True)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _require_input(column: str, inputs: list[str], model: str, field: str) -> None:
    if column not in inputs:
        raise SpecError(model, f"{column!r} is not an input of the model ({', '.join(inputs)})", field)


def _require_numeric(column: str, numeric: bool, what: str, model: str, field: str) -> None:
    if not numeric:
        raise SpecError(model, f"{column!r} is not numeric: {what} need a numeric column", field)
