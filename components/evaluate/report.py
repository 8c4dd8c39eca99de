"""The Evidently report (HTML) of a model version: training vs test data drift, and test model quality.

Uses Evidently's 0.7 API (`Report`, `Dataset`, `DataDefinition`; not `evidently.legacy`). Reference =
a sample of the training rows with the model's predictions on them, current = the test rows: the data
drift section compares their inputs, the classification section shows quality on both. Raw text columns
are replaced by their length in characters: drift tests on free text are slow and say little here.
Evidently is imported inside the function so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from core.metrics import encode_labels

MAX_REPORT_ROWS = 5_000
PREDICTION_COLUMN = "prediction"
TEXT_LENGTH_SUFFIX = "_length"


def cap_rows(frame: pd.DataFrame, max_rows: int = MAX_REPORT_ROWS, seed: int = 0) -> pd.DataFrame:
    """At most `max_rows` rows, sampled without replacement and kept in their original order."""
    if len(frame) <= max_rows:
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[keep]


def write_report(
    current: pd.DataFrame,
    current_proba: np.ndarray,
    reference: pd.DataFrame | None,
    reference_proba: np.ndarray | None,
    *,
    label: str,
    classes: Sequence[str],
    inputs: Sequence[str],
    text_columns: Sequence[str] = (),
    path: str | Path,
    max_rows: int = MAX_REPORT_ROWS,
) -> Path:
    """Write the HTML report to `path` and return it; without `reference` only model quality is shown.

    `current`/`reference` hold the input columns and `label`; `*_proba` are the model's probabilities
    for those rows, in order. Each side is capped at `max_rows` rows.
    """
    from evidently import Dataset, Report
    from evidently.presets import ClassificationPreset, DataDriftPreset

    names = _column_names(inputs, text_columns, label, classes)
    current_table = _report_table(current, current_proba, names, label, classes, text_columns, max_rows)
    definition = _definition(current_table, names, label, classes)
    presets = [ClassificationPreset()]
    reference_data = None
    if reference is not None and reference_proba is not None:
        reference_table = _report_table(
            reference, reference_proba, names, label, classes, text_columns, max_rows
        )
        reference_data = Dataset.from_pandas(reference_table, data_definition=definition)
        presets.insert(0, DataDriftPreset(columns=list(names.values())))
    snapshot = Report(presets).run(
        current_data=Dataset.from_pandas(current_table, data_definition=definition),
        reference_data=reference_data,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def _column_names(
    inputs: Sequence[str], text_columns: Sequence[str], label: str, classes: Sequence[str]
) -> dict[str, str]:
    """Input column -> its name in the report. The report's own columns (label, prediction and one
    probability column per class, which Evidently requires to be named like the class) win a clash."""
    reserved = {label, PREDICTION_COLUMN, *classes}
    names = {}
    for column in inputs:
        name = f"{column}{TEXT_LENGTH_SUFFIX}" if column in text_columns else column
        while name in reserved:
            name = f"input:{name}"
        names[column] = name
    return names


def _report_table(
    frame: pd.DataFrame,
    proba: np.ndarray,
    names: dict[str, str],
    label: str,
    classes: Sequence[str],
    text_columns: Sequence[str],
    max_rows: int,
) -> pd.DataFrame:
    proba = np.asarray(proba, dtype=np.float64)
    if len(proba) != len(frame):
        raise ValueError(f"{len(frame)} rows but {len(proba)} probability rows for the report")
    frame = frame.reset_index(drop=True)
    keep = cap_rows(frame, max_rows).index.to_numpy()
    frame, proba = frame.iloc[keep], proba[keep]
    table = pd.DataFrame(index=range(len(frame)))
    for column, name in names.items():
        values = frame[column].reset_index(drop=True)
        table[name] = values.astype("string").str.len() if column in text_columns else values
    truth = encode_labels(frame[label], classes)
    if len(classes) == 2:
        # Binary: Evidently wants the target as 0/1 (pos_label 1) and P(positive) in one column.
        table[label] = truth
        table[PREDICTION_COLUMN] = proba[:, 1]
    else:
        table[label] = np.asarray(classes, dtype=object)[truth]
        table[PREDICTION_COLUMN] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        for k, name in enumerate(classes):
            table[name] = proba[:, k]
    return table


def _definition(table: pd.DataFrame, names: dict[str, str], label: str, classes: Sequence[str]):
    from evidently import BinaryClassification, DataDefinition, MulticlassClassification

    numeric = [
        n
        for n in names.values()
        if pd.api.types.is_numeric_dtype(table[n]) and not pd.api.types.is_bool_dtype(table[n])
    ]
    categorical = [n for n in names.values() if n not in numeric]
    if len(classes) == 2:
        task = BinaryClassification(target=label, prediction_probas=PREDICTION_COLUMN, pos_label=1)
        return DataDefinition(
            numerical_columns=[*numeric, PREDICTION_COLUMN],
            categorical_columns=[*categorical, label],
            classification=[task],
        )
    task = MulticlassClassification(
        target=label, prediction_labels=PREDICTION_COLUMN, prediction_probas=list(classes)
    )
    return DataDefinition(
        numerical_columns=[*numeric, *classes],
        categorical_columns=[*categorical, label, PREDICTION_COLUMN],
        classification=[task],
    )
