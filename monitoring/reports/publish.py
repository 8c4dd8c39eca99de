"""MLflow side of the reports: which version, its training set, and where the reports go (the version's
run, under `monitoring/reports/<UTC timestamp>/`, plus summary tags on the model version)."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd

from monitoring.reports.build import Reports
from monitoring.reports.sources import ReportError

TRAINING_SET_ARTIFACT = "data"  # components/register/step.py logs the training set there
REPORTS_ARTIFACT = "monitoring/reports"
TAG_PREFIX = "monitoring_"


def resolve_version(client, model: str, version: str | None, alias: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            return str(client.get_model_version(model, version).version)
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        wanted = f"version {version}" if version is not None else f"alias {alias!r}"
        raise ReportError(f"{model}: {wanted} not found in the registry ({exc.error_code})") from None


def training_set(client, model: str, version: str) -> pd.DataFrame:
    """The version's training set: the one Parquet file under its run's `data/` artifact."""
    import mlflow

    run_id = client.get_model_version(model, version).run_id
    with tempfile.TemporaryDirectory() as scratch:
        try:
            folder = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=TRAINING_SET_ARTIFACT,
                dst_path=scratch,
                tracking_uri=client.tracking_uri,
            )
        except Exception as exc:  # MLflow raises several types for a missing artifact
            raise ReportError(
                f"{model} version {version}: no {TRAINING_SET_ARTIFACT}/ artifact on run {run_id}"
            ) from exc
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        if not files:
            raise ReportError(
                f"{model} version {version}: run {run_id} has an empty {TRAINING_SET_ARTIFACT}/"
            )
        return pd.read_parquet(files[0])


def publish(client, model: str, version: str, reports: Reports, at: datetime) -> str:
    """Log HTML + JSON of each report and `summary.json` to the version's run; returns the artifact path."""
    stamp = at.strftime("%Y%m%dT%H%M%SZ")
    artifact_path = f"{REPORTS_ARTIFACT}/{stamp}"
    run_id = client.get_model_version(model, version).run_id
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, snapshot in (("drift", reports.drift), ("quality", reports.quality)):
            if snapshot is not None:
                snapshot.save_html(str(folder / f"{name}.html"))
                snapshot.save_json(str(folder / f"{name}.json"))
        (folder / "summary.json").write_text(json.dumps(reports.summary, indent=2), encoding="utf-8")
        client.log_artifacts(run_id, str(folder), artifact_path)
    tags = {f"{TAG_PREFIX}{name}": _tag_value(value) for name, value in reports.summary.items()}
    tags |= {f"{TAG_PREFIX}report_at": at.isoformat(), f"{TAG_PREFIX}report_path": artifact_path}
    for key, value in tags.items():
        client.set_model_version_tag(model, version, key, value)
    return artifact_path


def _tag_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"
