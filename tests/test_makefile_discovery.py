"""`make pipeline` / `make run` / `make serve` take every spec unless MODELS= names some, and PORT= moves
the router (what `make -n` would run; nothing is started)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _recipe(*args: str) -> str:
    result = subprocess.run(
        ["make", "-n", "-W", ".venv/.synced", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_pipeline_and_serve_take_every_spec_unless_models_names_some():
    (line,) = [line for line in _recipe("pipeline").splitlines() if "pipelines.local_run" in line]
    assert line.rstrip().endswith("-m pipelines.local_run")  # no --models: every spec
    assert "-m pipelines.local_run --models patient-risk,conversion-xgboost" in _recipe(
        "pipeline", "MODELS=patient-risk,conversion-xgboost"
    )
    serve = _recipe("serve", "MODELS=patient-risk", "PORT=8181")
    assert "-m inference.serve --models patient-risk --port 8181" in serve
