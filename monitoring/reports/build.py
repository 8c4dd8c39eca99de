"""Evidently 0.7 reports (not `evidently.legacy`): input drift of the recent rows against the training set
(DataDriftPreset), and, once outcomes are joined, classification quality of the labeled recent rows
(ClassificationPreset, current only: the training set carries labels but no served predictions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitoring.reports.sources import PREDICTION, TARGET, ReportError

MAX_REFERENCE_ROWS = 5000
SAMPLE_SEED = 0


@dataclass
class Reports:
    drift: Any  # evidently Snapshot
    quality: Any | None  # None: no recent row has its outcome yet
    summary: dict[str, float]


def build_reports(reference: pd.DataFrame, current: pd.DataFrame, classes: list[str] | None) -> Reports:
    columns = [c for c in current.columns if c not in (PREDICTION, TARGET) and c in reference.columns]
    if not columns:
        raise ReportError("no logged input column is in the training set; nothing to compare")
    if len(reference) > MAX_REFERENCE_ROWS:
        reference = reference.sample(n=MAX_REFERENCE_ROWS, random_state=SAMPLE_SEED)
    drift = _drift_report(reference[columns], current[columns])
    summary = {"current_rows": float(len(current)), **_drift_summary(drift)}
    labeled = current[current[TARGET].notna() & current[PREDICTION].notna()]
    summary["labeled_rows"] = float(len(labeled))
    quality = _quality_report(labeled, classes) if len(labeled) else None
    if quality is not None:
        summary.update(_quality_summary(quality))
    return Reports(drift, quality, summary)


def _definition(frame: pd.DataFrame, columns: list[str], **extra: Any):
    from evidently import DataDefinition

    numeric = [
        c
        for c in columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    return DataDefinition(
        numerical_columns=numeric + extra.pop("numeric", []),
        categorical_columns=[c for c in columns if c not in numeric] + extra.pop("categorical", []),
        **extra,
    )


def _drift_report(reference: pd.DataFrame, current: pd.DataFrame):
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    # Logged JSON may hold numbers as strings or nulls: compare numeric columns as numbers.
    current = current.assign(
        **{c: pd.to_numeric(current[c], errors="coerce") for c in current.columns if _numeric(reference[c])}
    )
    definition = _definition(reference, list(reference.columns))
    return Report([DataDriftPreset(columns=list(reference.columns))]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )


def _quality_report(labeled: pd.DataFrame, classes: list[str] | None):
    from evidently import BinaryClassification, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    table = pd.DataFrame({TARGET: labeled[TARGET].to_numpy(), PREDICTION: labeled[PREDICTION].to_numpy()})
    if classes is None:
        table = table.astype({TARGET: "int64", PREDICTION: "float64"})
        task = BinaryClassification(target=TARGET, prediction_probas=PREDICTION, pos_label=1)
        definition = _definition(table, [], numeric=[PREDICTION], categorical=[TARGET], classification=[task])
    else:
        task = MulticlassClassification(target=TARGET, prediction_labels=PREDICTION)
        definition = _definition(table, [], categorical=[TARGET, PREDICTION], classification=[task])
    return Report([ClassificationPreset()]).run(
        current_data=Dataset.from_pandas(table, data_definition=definition), reference_data=None
    )


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _metric_values(snapshot) -> dict[str, Any]:
    """Metric type (e.g. `DriftedColumnsCount`) -> value, first of each type."""
    values: dict[str, Any] = {}
    for metric in snapshot.dict()["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        values.setdefault(kind, metric["value"])
    return values


def _drift_summary(snapshot) -> dict[str, float]:
    drifted = _metric_values(snapshot).get("DriftedColumnsCount") or {}
    return {
        "drift_share": float(drifted.get("share", 0.0)),
        "drifted_columns": float(drifted.get("count", 0)),
    }


def _quality_summary(snapshot) -> dict[str, float]:
    values = _metric_values(snapshot)
    return {
        name: float(values[kind])
        for name, kind in (("accuracy", "Accuracy"), ("roc_auc", "RocAuc"))
        if isinstance(values.get(kind), int | float)
    }
