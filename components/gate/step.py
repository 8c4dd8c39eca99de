"""The gate step as the pipeline runs it: the decision goes to the UI (Markdown) and the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from components.evaluate.core import METRICS_FILE
from components.gate.core import compare_with_champion, decide, to_markdown
from core.registry import champion_predictor, configure_tracking
from core.spec.model import load_specs
from core.timing import timed_step


def run(model: str, mlflow_run_id: str, evaluation_dir: str, test_path: str, decision_path: str) -> bool:
    with timed_step("gate", model):
        (spec,) = load_specs(names=[model])
        candidate = json.loads((Path(evaluation_dir) / METRICS_FILE).read_text())
        configure_tracking()
        champion = champion_predictor(spec.name)
        champion_metrics = None
        if champion is not None:
            champion_metrics = compare_with_champion(spec, champion, pd.read_parquet(test_path))
        decision = decide(spec, candidate, champion_metrics)
        Path(decision_path).write_text(f"# Gate: {spec.name}\n\n{to_markdown(decision)}\n")
        _record(mlflow_run_id, decision)
        print(f"gate {'PASSED' if decision.passed else 'FAILED'} for {spec.name}", flush=True)
        for reason in decision.reasons:
            print(f"  {reason}", flush=True)
        return decision.passed


def _record(run_id: str, decision) -> None:
    import mlflow

    summary = decision.failures if not decision.passed else [f"all {len(decision.checks)} checks passed"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(decision.to_json(), "gate_decision.json")
        mlflow.set_tags(
            {"gate": "passed" if decision.passed else "failed", "gate_summary": "\n".join(summary)}
        )
