"""A user's model through the whole loop (#17's acceptance), in a copy of the repository with only its two new
files (tests/fixtures/own_model: a spec and a feature view module) and its own tables (one entity key,
numeric features only, a separate label table, timestamps newer than the demo's; no demo data at all):
features, the pipeline, `make serve` with a prediction by entity id through KServe's transformer, then the
closed loop on its traffic: drift detected, alert, the retrain trigger's run, a canary of the retrained
version. Every step is the command a user runs, in its own process.

About ten minutes on 2 cores: the `acceptance` tier (`make test-acceptance`), not the default suite.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from core.ports import free_port
from tests.helpers.own_model import FEATURES, OWN_MODEL, add_own_model, write_own_tables
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.acceptance
REPO = Path(__file__).resolve().parents[1]
VENVS = (".venv", ".venv-serving")
STEP_TIMEOUT_S = 1200


def _checkout(target: Path) -> Path:
    """The repository's files as a clone has them (tracked and not ignored), the environments linked."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for venv in VENVS:
        (target / venv).symlink_to(REPO / venv)
    return target


def _run(checkout: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-m", *args],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_a_users_model_goes_through_the_whole_loop(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout")
    add_own_model(checkout / "pipelines" / "models", checkout / "feature_repo")
    changed = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
    )
    home = tmp_path / "home"
    patients = write_own_tables(home / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "FEATURE_DATA"))}
    env["MLOPS_HOME"] = str(home)

    _run(checkout, env, "feature_repo.store", "bootstrap")  # make features
    trained = _run(checkout, env, "pipelines.local_run", "--models", OWN_MODEL)  # make pipeline MODELS=...
    assert OWN_MODEL in trained
    # The guide's step 5: the detector and the registry entry, by the commands it shows.
    detectors = home / "detectors"
    _run(checkout, env, "monitoring.detectors.pull", "--model", OWN_MODEL, "--alias", "champion",
         "--out", str(detectors))  # fmt: skip
    assert list((detectors / OWN_MODEL).glob("*/detector.json"))
    _registry_ui_shows_the_champion(checkout, env, home)

    port = free_port()  # make serve MODELS=patient-risk PORT=...
    serve = subprocess.Popen(
        [str(checkout / ".venv" / "bin" / "python"), "-m", "inference.serve", "--models", OWN_MODEL,
         "--port", str(port)],
        cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    runtime = home / "serving" / "runtime.json"
    try:

        def transformer() -> dict | None:
            assert serve.poll() is None, serve.stdout.read() if serve.stdout else ""
            with_file = runtime.is_file() and json.loads(runtime.read_text()).get("transformers", {})
            return (with_file or {}).get(OWN_MODEL)

        endpoint = wait_for(transformer, "the transformer of the user's model ready", 300, interval_s=1.0)
        newest = patients.tail(3)
        ids = newest["patient_id"].astype(int).tolist()
        body = {"inputs": [{"name": "patient_id", "shape": [len(ids)], "datatype": "INT64", "data": ids}]}
        answer = httpx.post(f"{endpoint['http']}/v2/models/{OWN_MODEL}/infer", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        outputs = {output["name"]: output for output in answer.json()["outputs"]}
        probabilities = np.asarray(outputs["probabilities"]["data"], dtype=np.float64).reshape(len(ids), 2)
        expected = _champion_probability(checkout, env, newest[FEATURES].to_json(orient="split"))
        np.testing.assert_allclose(probabilities[:, 1], expected, atol=1e-5)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)

    loop = _run(  # python -m pipelines.loop_demo --model patient-risk --keep-data ...
        checkout, env, "pipelines.loop_demo", "--model", OWN_MODEL, "--keep-data",
        "--drift-features", "m00,m01", "--drift-magnitude", "2", "--time-scale", "30",
    )  # fmt: skip
    for stage in ("first detection", "alert firing", "retraining run started", "canary deployed"):
        assert stage in loop, loop[-3000:]
    assert "retraining run finished" in loop, loop[-3000:]
    assert (
        subprocess.run(  # the two new files went into the copy, nothing of the repository changed
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        == changed.stdout
    )


def _registry_ui_shows_the_champion(checkout: Path, env: dict[str, str], home: Path) -> None:
    port = free_port()
    ui = subprocess.Popen(
        [str(checkout / ".venv" / "bin" / "python"), "-m", "mlflow", "ui", "--backend-store-uri",
         f"sqlite:///{home}/mlflow/mlflow.db", "--port", str(port)],
        cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/get?name={OWN_MODEL}"
    try:

        def answer() -> dict | None:
            assert ui.poll() is None, "mlflow ui exited"
            try:
                response = httpx.get(url, timeout=5)
            except httpx.HTTPError:
                return None
            return response.json() if response.status_code == 200 else None

        model = wait_for(answer, "mlflow ui answering", 120, interval_s=1.0)["registered_model"]
        assert [alias["alias"] for alias in model.get("aliases", [])] == ["champion"]
    finally:
        ui.terminate()
        ui.wait(30)


def _champion_probability(checkout: Path, env: dict[str, str], rows_json: str) -> np.ndarray:
    """P(class 1) of the registered champion on `rows` (the features as the table holds them; each
    patient has one row, so they are the online features), in the checkout's environment."""
    code = (
        "import io, json, sys, mlflow, pandas as pd\n"
        "from core.registry import configure_tracking\n"
        "configure_tracking()\n"
        "rows = pd.read_json(io.StringIO(sys.stdin.read()), orient='split')\n"
        f"model = mlflow.pyfunc.load_model('models:/{OWN_MODEL}@champion')\n"
        "print(json.dumps(pd.DataFrame(model.predict(rows)).to_numpy().tolist()))\n"
    )
    done = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-c", code], input=rows_json,
        cwd=checkout, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float64)
    return predicted[:, -1] if predicted.ndim == 2 else predicted
