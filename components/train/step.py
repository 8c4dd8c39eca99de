"""The train step as the pipeline runs it; progress goes to the step's log (the KFP UI streams it)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from components.train.core import train
from core.spec.model import load_specs
from core.timing import timed_step
from core.training_set import load_training_set_file


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
