"""`make serve` runs KServe's transformer for a feature-service model, as a cluster does: a client sends
entity ids (the README's client, run here as written, over REST and gRPC) and gets what the registered
MLflow model predicts on the same rows' Feast online features; a transformer that dies is started again.
The transformer's version and files come from the InferenceService deploy wrote (its --model-version and
STORAGE_URI), as on a cluster."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest

from core.ports import free_port
from inference.runtime_file import attach
from inference.serve import serve
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.serving]
MODEL = "conversion-xgboost"
KEYS = ["session_id", "customer_id"]
README = Path(__file__).resolve().parents[2] / "README.md"


@contextlib.contextmanager
def serving(model: str):
    lines: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            serve(models=[model], port=free_port(), say=lines.append, stop=stop)
        except BaseException as error:  # shown by the wait below
            failures.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: failures or any(line.startswith("serving;") for line in lines), "serve up", 300)
        assert not failures, failures
        yield lines
    finally:
        stop.set()
        thread.join(120)


def _expected(rows: pd.DataFrame) -> np.ndarray:
    """The registered champion on the rows' online features, computed here (not through any server)."""
    import mlflow

    from core.spec.model import load_spec, spec_directory
    from feature_repo import store

    fs = store.open_store()
    spec = load_spec(spec_directory() / f"{MODEL}.yaml")
    online = fs.get_online_features(
        features=fs.get_feature_service(spec.inputs.feature_service),
        entity_rows=rows[KEYS].astype(int).to_dict("records"),
    ).to_df()
    predicted = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(online)
    return np.asarray(predicted, dtype=np.float64)


def _readme_client(url: str, address: str, ids: dict[str, list[int]]) -> str:
    """The README's client, with this runtime's endpoints and ids, run as a user runs it (its own
    process); returns what it prints."""
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    code = re.sub(r"^url, address = .*$", f"url, address = {url!r}, {address!r}", code, flags=re.M)
    code = re.sub(r"^ids = .*$", f"ids = {ids!r}", code, flags=re.M)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _transformer_process(model: str) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "inference.transformer" in command and model in command:
            return process
    raise AssertionError(f"no transformer process for {model}")


def test_serve_answers_entity_ids_through_the_transformer(first_run, local_platform):
    known = pd.read_parquet(local_platform / "data" / "session_stats.parquet").tail(4)[KEYS]
    known = known.reset_index(drop=True)
    with serving(MODEL) as lines:
        endpoint = attach().transformers[MODEL]
        assert any(f"{MODEL} transformer (entity ids in): {endpoint['http']}" in line for line in lines)
        inputs = [
            {"name": key, "shape": [len(known)], "datatype": "INT64", "data": known[key].astype(int).tolist()}
            for key in KEYS
        ]
        answer = httpx.post(
            f"{endpoint['http']}/v2/models/{MODEL}/infer", json={"inputs": inputs}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        outputs = {output["name"]: output for output in answer.json()["outputs"]}
        probabilities = np.asarray(outputs["probabilities"]["data"], dtype=np.float64).reshape(len(known), 2)
        expected = _expected(known)
        np.testing.assert_allclose(probabilities[:, 1], expected.reshape(len(known), -1)[:, -1], atol=1e-5)

        one = {key: [int(known.loc[0, key])] for key in KEYS}
        printed = _readme_client(endpoint["http"], endpoint["grpc"], one)
        grpc_line = printed.strip().splitlines()[-1]
        got = np.asarray([float(v) for v in re.findall(r"[-+0-9.e]+", grpc_line)])
        np.testing.assert_allclose(got, probabilities[0], atol=1e-5)

        process = _transformer_process(MODEL)  # a transformer that dies is started again
        os.kill(process.pid, signal.SIGKILL)
        wait_for(lambda: not process.is_running() or process.status() == psutil.STATUS_ZOMBIE, "killed", 10)

        def answers_again() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                url = f"{endpoint['http']}/v2/models/{MODEL}/infer"
                return httpx.post(url, json={"inputs": inputs}, timeout=10).status_code == 200
            return False

        wait_for(answers_again, "the transformer serving again after kill -9", 180, interval_s=1.0)
