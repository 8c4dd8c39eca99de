"""The local canary rollout end to end: registered versions of a tiny ONNX model in a tmp MLflow store,
served by the local serving runtime (real Triton behind the REST and gRPC routers), demo traffic with
tritonclient over both protocols, judged from what Triton counted, read through the runtime's real
Prometheus with the cluster's recording rules and queries, and promoted (good challenger) or rolled back
(`--bad-canary error|slow`), with the versions no longer served unloaded from Triton; in Knative mode and,
following the overlay's KSERVE_DEPLOYMENT_MODE, in Standard mode."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from core.registry import (
    CHALLENGER,
    CHAMPION,
    configure_tracking,
    get_alias_version,
    set_alias,
)
from core.settings import variable
from inference.canary.release import EVIDENCE_ARTIFACT
from inference.deploy.annotations import NAMESPACE
from inference.deploy.apply import FileApplier
from inference.local_rollout import run_local_rollout
from inference.runtime_file import attach
from tests.helpers.environment import served_test
from tests.helpers.rollout import MODEL, fit_version, register_version, write_rollout_spec
from tests.helpers.router_stack import N_FEATURES, export_local_model, fit_model, isvc, write_isvc
from tests.helpers.triton_clients import grpc_infer
from tests.helpers.waiting import wait_for

REQUESTS = 400


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    """v1 (champion), v2 (a close retrain: a good challenger), v3 (another one, for the bad canary)."""
    home = tmp_path_factory.mktemp("mlops_home")
    (home / "specs").mkdir()
    write_rollout_spec(home / "specs")
    (home / "specs-request-fields").mkdir()  # no transformer: a Standard-mode canary is possible
    write_rollout_spec(home / "specs-request-fields", request_fields=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        configure_tracking()
        client = mlflow.MlflowClient()
        client.create_registered_model(MODEL)
        experiment = client.create_experiment(MODEL, artifact_location=str(home / "artifacts"))
        for number, model in enumerate(
            (fit_version(0, 1.0), fit_version(0, 0.7), fit_version(0, 0.8)), start=1
        ):
            register_version(client, experiment, model, home / f"export-{number}")
        yield home
        mlflow.set_tracking_uri(None)


def _rows(*_: object) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(rng.normal(size=(300, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])


def _encoder(model: str, version: str):
    return lambda frame: {"input__0": frame.to_numpy(dtype=np.float32)}


def _rollout(home: Path, bad_canary: str | None = None, specs: str = "specs"):
    lines: list[str] = []
    [outcome] = run_local_rollout(
        [MODEL], REQUESTS, bad_canary, home / specs, _rows, _encoder, seed=1, say=lines.append
    )
    return outcome, lines


def _aliases() -> tuple[str | None, str | None]:
    found = [get_alias_version(MODEL, alias) for alias in (CHAMPION, CHALLENGER)]
    return tuple(str(v.version) if v else None for v in found)


def _served(home: Path) -> dict:
    return FileApplier(home / "serving" / "isvc").get("InferenceService", MODEL, NAMESPACE)


def _staged(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "serving" / "repository").iterdir())


def _ok(outcome, role: str) -> int:
    """Answers that succeeded for `role`, over HTTP (200) and gRPC ("OK")."""
    return outcome.traffic.codes[(role, 200)] + outcome.traffic.codes[(role, "OK")]


def _evidence(version: str) -> dict:
    run_id = mlflow.MlflowClient().get_model_version(MODEL, version).run_id
    return json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/{EVIDENCE_ARTIFACT}"))


@served_test
def test_a_good_challenger_is_promoted_without_a_failed_request(home: Path) -> None:
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 2)
    outcome, lines = _rollout(home)
    assert outcome.decision is not None and outcome.decision.promote, lines
    assert outcome.traffic.failed == 0 and outcome.traffic.sent == REQUESTS
    assert outcome.traffic.grpc_sent == REQUESTS // 4 and outcome.traffic.codes[("canary", "OK")] > 0
    assert 0.4 < _ok(outcome, "canary") / REQUESTS < 0.6  # the ISVC's 50%
    assert _aliases() == ("2", None)
    assert _staged(home) == ["demo__v2"]  # v1 unloaded and removed once the router served v2 alone
    assert attach() is None, "the rollout stops the runtime it started"
    predictor = _served(home)["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    tags = mlflow.MlflowClient().get_model_version(MODEL, "2").tags
    assert (tags["canary_decision"], tags["rollout_state"]) == ("promote", "promoted")
    evidence = _evidence("2")
    # Triton counted every answer; the window ends on recorded samples, so nothing is extrapolated.
    assert evidence["canary"]["requests"] == pytest.approx(_ok(outcome, "canary"), rel=0.01)
    assert evidence["stable"]["requests"] == pytest.approx(_ok(outcome, "stable"), rel=0.01)
    assert evidence["source"] == "prometheus" and evidence["prediction_shift"] < 0.3
    assert evidence["traffic"]["sent"] == REQUESTS and evidence["traffic"]["grpc"] == REQUESTS // 4
    assert tags["canary_summary"].startswith("canary ")
    # The tiny test versions carry no drift detector: the rollout says so, then reports.
    assert "demo v2: no drift detector to stage (MlflowException)" in lines
    assert lines[-1] == outcome.line() and lines[-1].startswith("demo: promote v2 (champion v1)")


@served_test
def test_a_failing_canary_is_rolled_back_and_the_champion_stays(home: Path) -> None:
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 3)
    outcome, lines = _rollout(home, bad_canary="error")
    assert outcome.decision is not None and not outcome.decision.promote, lines
    assert any(r.startswith("canary error rate") for r in outcome.decision.reasons)
    assert _ok(outcome, "stable") > 0 and outcome.traffic.codes[("canary", 502)] > 0
    assert {role for (role, code) in outcome.traffic.codes if code not in (200, "OK")} == {"canary"}
    assert _aliases() == ("1", None)
    assert _staged(home) == ["demo__v1"]  # the bad canary is unloaded and removed
    served = _served(home)
    assert served["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert served["metadata"]["annotations"]["serving.mlops-loop.io/stable-version"] == "1"
    tags = mlflow.MlflowClient().get_model_version(MODEL, "3").tags
    assert (tags["canary_decision"], tags["rollout_state"]) == ("rollback", "rolled_back")
    assert tags["rollback_reason"].startswith("canary error rate")
    assert 0.3 < _evidence("3")["canary"]["error_rate"] < 0.7  # the injected 50%


@served_test
def test_a_slow_canary_is_rolled_back_on_latency_in_standard_mode(home: Path, monkeypatch) -> None:
    # Local mode follows an overlay's KSERVE_DEPLOYMENT_MODE: the canary is a `spec.canary` entry.
    monkeypatch.setenv(variable("kserve_deployment_mode"), "Standard")
    set_alias(MODEL, CHAMPION, 1)
    set_alias(MODEL, CHALLENGER, 3)
    with pytest.raises(ValueError, match="no Standard-mode canary behind a transformer"):
        _rollout(home)  # refused as KServe would route it: the transformer calls the stable Service
    set_alias(MODEL, CHALLENGER, 3)
    outcome, lines = _rollout(home, bad_canary="slow", specs="specs-request-fields")
    assert outcome.decision is not None and not outcome.decision.promote, lines
    assert outcome.traffic.failed == 0  # slow, not broken
    # the router split by the entry's trafficPercent (no canaryTrafficPercent is rendered in this mode)
    assert 0.4 < _ok(outcome, "canary") / REQUESTS < 0.6
    assert [r.split(" latency")[0] for r in outcome.decision.reasons] == ["canary p95"]
    assert outcome.decision.evidence["p95_latency_ratio"] > 3.0
    assert outcome.decision.evidence["p95_latency_increase_ms"] > 10
    assert _aliases() == ("1", None)
    served = _served(home)
    assert served["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert served["spec"]["predictor"]["name"] == "v1" and "canary" not in served["spec"]


@served_test
def test_the_runtime_serves_files_written_after_its_start_and_announces_itself(home: Path, tmp_path) -> None:
    from inference.local_runtime import LocalServingRuntime, retire_version, stage_version, staged_versions

    with LocalServingRuntime() as runtime:
        info = runtime.info
        assert info is not None and attach() == info
        source = export_local_model(fit_model(0), tmp_path / "export" / "local" / "demo")
        assert stage_version(info, source, "other", "7") == "other__v7"  # loaded through Triton's API
        (Path(info.isvc_dir) / "elsewhere").mkdir(exist_ok=True)
        write_isvc(Path(info.isvc_dir) / "elsewhere" / "other.yaml", isvc("7", name="other"))
        wait_for(lambda: runtime.table.get("other") is not None, "the router routes `other`")
        rows = np.zeros((2, N_FEATURES), dtype=np.float32)
        body = {
            "inputs": [
                {
                    "name": "input__0",
                    "shape": [2, N_FEATURES],
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
        answer = httpx.post(f"{info.router_http_url}/v2/models/other/infer", json=body, timeout=30)
        assert answer.status_code == 200 and answer.json()["model_version"] == "7", answer.text
        assert info.router_grpc_address is not None
        over_grpc = grpc_infer(info.router_grpc_address, "other", rows, tmp_path)
        np.testing.assert_allclose(over_grpc.ravel(), answer.json()["outputs"][0]["data"], atol=1e-6)
        retire_version(info, "other", "7")
        assert "7" not in staged_versions(info, "other")
        ready = httpx.get(f"{info.triton_http_url}/v2/models/other__v7/ready", timeout=5)
        assert ready.status_code != 200  # unloaded, not just deleted from disk
    assert attach() is None and not (home / "serving" / "runtime.json").exists()
    (Path(info.isvc_dir) / "elsewhere" / "other.yaml").unlink()
