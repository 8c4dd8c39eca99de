"""The evaluate step as the pipeline runs it: files in, KFP metrics and an MLflow run out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from components.evaluate.core import evaluate
from components.evaluate.tracking import open_attempt
from core.bundle import load_predictor
from core.spec.model import load_specs
from core.timing import timed_step


def run(
    model: str,
    lineage_json: str,
    pipeline_run: str,
    bundle_dir: str,
    test_path: str,
    training_path: str,
    evaluation_dir: str,
    report_path: str,
    kfp_metrics,
    kfp_classification,
) -> str:
    """Evaluate on the test rows, log to KFP, open the MLflow run of this attempt; returns its run id."""
    with timed_step("evaluate", model):
        (spec,) = load_specs(names=[model])
        predictor = load_predictor(bundle_dir)
        test = pd.read_parquet(test_path)
        training = pd.read_parquet(training_path)
        # Reference for the report: the rows before the test split (train and validation).
        reference = training[training["event_timestamp"] < test["event_timestamp"].min()]
        result = evaluate(predictor, test, reference, spec, Path(evaluation_dir))
        if result.report_path is not None:
            shutil.copyfile(result.report_path, report_path)
        _log_to_kfp(result, kfp_metrics, kfp_classification)
        return open_attempt(
            spec, pipeline_run, json.loads(lineage_json), predictor.info, result, evaluation_dir
        )


def _log_to_kfp(result, kfp_metrics, kfp_classification) -> None:
    for name, value in result.scalar_metrics().items():
        kfp_metrics.log_metric(name, value)
    matrix = result.confusion_matrix
    kfp_classification.log_confusion_matrix(matrix["categories"], matrix["matrix"])
    roc = result.roc
    if roc["fpr"]:
        kfp_classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
