"""Register on a real MLflow sqlite store: versions, aliases, tags, artifacts, and the pyfunc model loaded
in a fresh interpreter.

The bundles are made here for a tiny framework ("tiny": FeatureEncoder + LogisticRegression,
tests/helpers/tiny_plugin.py, registered with `core.frameworks.registry.register_framework`), so the test
does not depend on the trainers. The spec is the conversion-sklearn fixture spec.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from components.register import registration
from components.register.pyfunc_model import pip_requirements
from components.register.registration import RegistrationResult, flatten_metrics, register
from core.bundle import BundleInfo, load_predictor
from core.encoding import FeatureEncoder
from core.frameworks.registry import register_framework, unregister_framework
from core.paths import REPO_ROOT
from core.registry import (
    CHALLENGER,
    CHAMPION,
    champion_predictor,
    configure_tracking,
    delete_alias,
    ensure_experiment,
    get_alias_version,
    local_tracking_uri,
    set_alias,
)
from tests.helpers.specs import fixture_spec
from tests.helpers.tiny_plugin import FRAMEWORK, TINY

INPUTS = ["sessions_7d", "duration_s", "plan_tier"]
SPEC = fixture_spec("conversion-sklearn")
MODEL = SPEC.name


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sessions_7d": rng.integers(0, 12, n),
            "duration_s": rng.gamma(2.0, 100.0, n),
            "plan_tier": rng.choice(["free", "pro", "enterprise"], n),
        }
    )
    logit = 0.4 * frame.sessions_7d - 2.0 + (frame.plan_tier == "pro") * 1.0
    frame["converted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def _make_bundle(out_dir: Path, train: pd.DataFrame, c: float) -> Path:
    encoder = FeatureEncoder.fit(train, INPUTS, standardize=True)
    model = LogisticRegression(C=c, max_iter=200).fit(encoder.transform(train), train["converted"])
    out_dir.mkdir(parents=True)
    joblib.dump(model, out_dir / "model.joblib")
    n_features = len(encoder.output_names)
    BundleInfo(
        model_name=MODEL,
        framework=FRAMEWORK,
        task="binary",
        label="converted",
        classes=["0", "1"],
        inputs=INPUTS,
        native_files=["model.joblib"],
        triton_inputs=[{"name": "input__0", "datatype": "FP32", "dims": [n_features]}],
        triton_outputs=[{"name": "output__0", "datatype": "FP32", "dims": [2]}],
        hyperparameters={"C": c, "max_iter": 200, "class_weight": None},
        training={"encoder": encoder.to_dict()},
    ).save(out_dir)
    return out_dir


# -------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A fresh MLOPS_HOME whose sqlite MLflow store is shared by this module (creating one takes ~10 s)."""
    home = tmp_path_factory.mktemp("mlops_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        register_framework(TINY)
        configure_tracking()
        yield home
        mlflow.set_tracking_uri(None)  # also clears the MLFLOW_TRACKING_URI it exported
        unregister_framework(FRAMEWORK)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return _rows(300, seed=7)


def _artifacts(home: Path) -> dict:
    folder = home / "run_files"
    folder.mkdir(exist_ok=True)
    (folder / "triton" / "cluster" / MODEL / "1").mkdir(parents=True, exist_ok=True)
    (folder / "triton" / "cluster" / MODEL / "config.pbtxt").write_text(f'name: "{MODEL}"\n')
    (folder / "triton" / "cluster" / MODEL / "1" / "model.onnx").write_bytes(b"onnx")
    (folder / "roc.png").write_bytes(b"\x89PNG fake")
    (folder / "report.html").write_text("<html>evidently</html>")
    return {
        "triton_repository": folder / "triton",
        "plots": [folder / "roc.png"],
        "report_html": folder / "report.html",
    }


LINEAGE = {
    "feature_service": "conversion_sklearn_v1",
    "label_dataset": "conversions",
    "start": "2026-08-03T00:00:00+00:00",
    "end": "2026-11-01T00:00:00+00:00",
    "rows": 300,
    "content_sha256": "ab" * 32,
}
METRICS = {
    "overall": {"roc_auc": 0.81, "log_loss": 0.52, "rows": 90, "brier_score": float("nan")},
    "slices": {"plan_tier": {"pro": {"roc_auc": 0.77, "rows": 30}, "free": {"skipped": "too few rows"}}},
    "confusion": [[40, 5], [10, 35]],
}
PASSED = {"passed": True, "reasons": ["roc_auc 0.810 >= floor 0.65"], "checks": []}


def _register(
    store: Path, bundle: Path, data: pd.DataFrame, pipeline_run: str, **overrides
) -> RegistrationResult:
    arguments = dict(
        spec=SPEC,
        bundle_dir=bundle,
        metrics=METRICS,
        decision=PASSED,
        lineage=LINEAGE,
        run_context={"pipeline_run_id": pipeline_run, "pipeline_run_reason": "drift alert ConversionDrift"},
        input_example=data,
        **_artifacts(store),
    )
    return register(**(arguments | overrides))


@pytest.fixture(scope="module")
def first(store: Path, data: pd.DataFrame) -> tuple[RegistrationResult, Path]:
    bundle = _make_bundle(store / "bundle-1", data.iloc[:200], c=1.0)
    return _register(store, bundle, data, "run-1"), bundle


@pytest.fixture(scope="module")
def second(first, store: Path, data: pd.DataFrame) -> tuple[RegistrationResult, Path]:
    bundle = _make_bundle(store / "bundle-2", data.iloc[100:], c=0.01)
    return _register(store, bundle, data, "run-2"), bundle


# ----------------------------------------------------------------------------------------------- tests
def test_first_version_is_champion_with_tags_metrics_and_artifacts(first, store: Path) -> None:
    result, _ = first
    assert (result.version, result.alias, result.model_uri) == ("1", CHAMPION, f"models:/{MODEL}/1")
    client = mlflow.MlflowClient()
    assert mlflow.get_tracking_uri() == local_tracking_uri()
    assert (store / "mlflow" / "mlflow.db").is_file()
    version = client.get_model_version(MODEL, "1")
    assert version.run_id == result.run_id
    expected_tags = {
        "pipeline_run_id": "run-1",
        "pipeline_run_reason": "drift alert ConversionDrift",
        "feature_service": "conversion_sklearn_v1",
        "data_start": LINEAGE["start"],
        "data_end": LINEAGE["end"],
        "training_set_sha256": LINEAGE["content_sha256"],
        "framework": FRAMEWORK,
        "gate": "passed",
        "triton_uri": result.triton_artifact_uri,
    }
    assert expected_tags.items() <= version.tags.items()
    assert version.tags["code_version"]
    signature = mlflow.models.get_model_info(result.model_uri).signature
    assert signature.inputs.input_names() == INPUTS
    assert [c.type.name for c in signature.inputs.inputs] == ["long", "double", "string"]
    assert signature.outputs.input_names() == ["0", "1"]
    run = client.get_run(result.run_id)
    assert run.info.run_name == "run-1"
    assert run.data.metrics == {
        "roc_auc": 0.81,
        "log_loss": 0.52,
        "rows": 90,
        "slice.plan_tier.pro.roc_auc": 0.77,
        "slice.plan_tier.pro.rows": 30,
    }
    assert run.data.params == {"C": "1.0", "max_iter": "200", "class_weight": "None"}
    files = _list_files(client, result.run_id)
    assert {"decision.json", "lineage.json", "metrics.json", "plots/roc.png", "reports/report.html"} <= files
    assert f"triton/cluster/{MODEL}/1/model.onnx" in files
    assert result.triton_artifact_uri == f"{run.info.artifact_uri}/triton"
    local = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="decision.json"))
    assert json.loads(local.read_text()) == PASSED


def test_the_logged_model_carries_its_metrics_and_its_code(first) -> None:
    """MLflow 3's model page shows the metrics linked to the LoggedModel; the model's code/ folder holds
    the `core` package (no bytecode caches), so loading needs no checkout of this repository."""
    result, _ = first
    logged = mlflow.get_logged_model(result.model_id)
    assert {m.key: m.value for m in logged.metrics} == {
        "roc_auc": 0.81,
        "log_loss": 0.52,
        "rows": 90,
        "slice.plan_tier.pro.roc_auc": 0.77,
        "slice.plan_tier.pro.rows": 30,
    }
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=result.model_uri))
    code = model_dir / "code" / "core"
    assert (code / "bundle_pyfunc.py").is_file() and (code / "frameworks" / "sklearn_model.py").is_file()
    assert not list(code.rglob("__pycache__"))
    assert "core.bundle_pyfunc" in (model_dir / "python_model.pkl").read_bytes().decode("latin-1")


def _list_files(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    files: set[str] = set()
    for entry in client.list_artifacts(run_id, path):
        files |= _list_files(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return files


def test_second_passing_version_is_challenger_and_champion_stays(second) -> None:
    result, _ = second
    assert (result.version, result.alias) == ("2", CHALLENGER)
    assert str(get_alias_version(MODEL, CHAMPION).version) == "1"
    assert str(get_alias_version(MODEL, CHALLENGER).version) == "2"


def test_failed_decision_is_refused_and_registers_nothing(second, store: Path, data: pd.DataFrame) -> None:
    client = mlflow.MlflowClient()
    before = (
        len(client.search_model_versions(f"name='{MODEL}'")),
        len(mlflow.search_runs(search_all_experiments=True)),
    )
    failed = {"passed": False, "reasons": ["roc_auc 0.600 < floor 0.65"]}
    with pytest.raises(ValueError, match=r"did not pass \(roc_auc 0.600 < floor 0.65\)") as caught:
        _register(store, second[1], data, "run-3", decision=failed)
    assert "\n" not in str(caught.value)
    after = (
        len(client.search_model_versions(f"name='{MODEL}'")),
        len(mlflow.search_runs(search_all_experiments=True)),
    )
    assert after == before


def test_bad_lineage_or_example_is_refused_before_any_run(first, store: Path, data: pd.DataFrame) -> None:
    runs = len(mlflow.search_runs(search_all_experiments=True))
    lineage = {k: v for k, v in LINEAGE.items() if k != "content_sha256"}
    with pytest.raises(ValueError, match=r"^register: conversion-sklearn: lineage lacks content_sha256$"):
        _register(store, first[1], data, "run-4", lineage=lineage)
    with pytest.raises(ValueError, match=r"^register: input example lacks .* columns plan_tier$"):
        _register(store, first[1], data.drop(columns="plan_tier"), "run-5")
    with pytest.raises(FileNotFoundError, match=r"^register: artifact file .*missing.png not found$"):
        _register(store, first[1], data, "run-6", plots=[store / "missing.png"])
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs


def test_pyfunc_in_a_fresh_process_predicts_like_the_predictor(
    first, store: Path, data: pd.DataFrame
) -> None:
    result, bundle = first
    frame = data[INPUTS].tail(40).reset_index(drop=True)
    frame.loc[[0, 5], "duration_s"] = np.nan  # a TTL-expired feature
    frame.loc[3, "plan_tier"] = "unseen-tier"
    frame.to_parquet(store / "frame.parquet")
    script = (
        "import sys, mlflow, pandas as pd\n"
        "from core.frameworks.registry import register_framework\n"
        "from tests.helpers.tiny_plugin import TINY\n"
        "register_framework(TINY)\n"
        f"model = mlflow.pyfunc.load_model({result.model_uri!r})\n"
        f"model.predict(pd.read_parquet({str(store / 'frame.parquet')!r})).to_parquet(sys.argv[1])\n"
    )
    out = store / "pyfunc.parquet"
    env = {**os.environ, "MLFLOW_TRACKING_URI": local_tracking_uri()}
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    served = pd.read_parquet(out)
    assert list(served.columns) == ["0", "1"]
    np.testing.assert_allclose(
        served.to_numpy(), load_predictor(bundle).predict_proba(frame), rtol=0, atol=1e-9
    )


def test_champion_predictor_is_version_one(first, second, data: pd.DataFrame, tmp_path: Path) -> None:
    frame = data[INPUTS]
    champion = champion_predictor(MODEL, dest=tmp_path)
    assert (tmp_path / "MLmodel").is_file()  # downloaded where asked
    version_1, version_2 = load_predictor(first[1]), load_predictor(second[1])
    np.testing.assert_allclose(
        champion.predict_proba(frame), version_1.predict_proba(frame), rtol=0, atol=1e-12
    )
    assert not np.allclose(champion.predict_proba(frame), version_2.predict_proba(frame), atol=1e-3)


def test_alias_helpers_tolerate_a_model_that_does_not_exist(store: Path) -> None:
    assert get_alias_version("never-registered", CHAMPION) is None
    assert champion_predictor("never-registered") is None
    assert delete_alias("never-registered", CHALLENGER) is False
    with pytest.raises(LookupError, match="'never-registered' has no version 1"):
        set_alias("never-registered", CHAMPION, 1)


def test_aliases_move_and_drop(second) -> None:
    set_alias(MODEL, "shadow", 2)
    assert str(get_alias_version(MODEL, "shadow").version) == "2"
    set_alias(MODEL, "shadow", 1)
    assert str(get_alias_version(MODEL, "shadow").version) == "1"
    assert delete_alias(MODEL, "shadow") is True
    assert delete_alias(MODEL, "shadow") is False
    assert get_alias_version(MODEL, "shadow") is None


def test_flatten_metrics_skips_what_is_not_a_finite_number() -> None:
    flat = flatten_metrics(
        {
            "overall": {"roc_auc": 0.8, "f1": None, "ece": float("nan"), "ok": True, "rows": np.int64(9)},
            "slices": {"region": {"north/america": {"roc_auc": np.float64(0.7)}, "a.b": {"pr_auc": 0.5}}},
            "roc": {"fpr": [0.0, 1.0]},
            "accuracy": 0.9,
        }
    )
    assert flat == {
        "roc_auc": 0.8,
        "rows": 9.0,
        "slice.region.north_america.roc_auc": 0.7,
        "slice.region.a_b.pr_auc": 0.5,
        "accuracy": 0.9,
    }


def test_configure_tracking_prefers_the_environment(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.mlflow.svc:5000")
    try:
        assert configure_tracking() == "http://tracking.mlflow.svc:5000"
        assert configure_tracking("sqlite:////tmp/explicit.db") == "sqlite:////tmp/explicit.db"
    finally:
        configure_tracking(local_tracking_uri())
    assert mlflow.get_tracking_uri() == local_tracking_uri()


def test_code_version_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registration, "REPO_ROOT", tmp_path)  # not a git checkout
    monkeypatch.setenv("CODE_VERSION", "img-1234")
    assert registration.code_version() == "img-1234"
    monkeypatch.delenv("CODE_VERSION")
    assert registration.code_version() == "unknown"


def test_pip_requirements_pin_what_each_framework_loads_with() -> None:
    from importlib.metadata import version

    base = [f"mlflow=={version('mlflow')}", f"pandas=={version('pandas')}", f"numpy=={version('numpy')}"]
    assert set(base) <= set(pip_requirements("sklearn"))
    assert f"scikit-learn=={version('scikit-learn')}" in pip_requirements("sklearn")
    assert any(r.startswith(("xgboost==", "xgboost-cpu==")) for r in pip_requirements("xgboost"))
    assert {"torch", "transformers", "tokenizers"} <= {
        r.split("==")[0] for r in pip_requirements("transformers")
    }
    assert not any(r.startswith("torch") for r in pip_requirements("sklearn"))


def test_register_into_the_evaluate_steps_run_keeps_what_it_recorded(second, store: Path, data) -> None:
    experiment = mlflow.get_experiment_by_name(MODEL)
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="attempt") as attempt:
        mlflow.log_params({"C": "0.5", "max_iter": "200"})  # as evaluate logged them; MLflow forbids changes
        mlflow.log_metric("roc_auc", 0.79)
    bundle = _make_bundle(store / "bundle-3", data.iloc[50:250], c=0.5)
    result = _register(store, bundle, data, "run-7", run_id=attempt.info.run_id)
    assert (result.run_id, result.version, result.alias) == (attempt.info.run_id, "3", CHALLENGER)
    run = mlflow.MlflowClient().get_run(attempt.info.run_id)
    assert run.info.run_name == "attempt" and run.data.tags["pipeline_run_id"] == "run-7"
    assert run.data.params["C"] == "0.5" and run.data.params["class_weight"] == "None"
    assert run.data.metrics["roc_auc"] == 0.79 and run.data.metrics["log_loss"] == 0.52
    assert str(get_alias_version(MODEL, CHAMPION).version) == "1"
    with mlflow.start_run(experiment_id=mlflow.create_experiment("elsewhere")) as other:
        pass
    with pytest.raises(
        ValueError, match=f"run {other.info.run_id} is not in experiment 'conversion-sklearn'"
    ):
        _register(store, bundle, data, "run-8", run_id=other.info.run_id)
    with pytest.raises(LookupError, match="run 0123456789abcdef not found"):
        _register(store, bundle, data, "run-9", run_id="0123456789abcdef")


def test_an_evaluated_run_stores_its_evaluation_once(store: Path, data: pd.DataFrame) -> None:
    """The evaluate step logged its folder (metrics.json, plots, report) into the run: registering into
    that run adds the model, not a second copy of them."""
    configure_tracking()
    with mlflow.start_run(experiment_id=ensure_experiment(MODEL)) as attempt:
        mlflow.log_text("{}", "evaluation/metrics.json")
    bundle = _make_bundle(store / "bundle-once", data.iloc[10:210], c=0.7)
    result = _register(store, bundle, data, "run-once", run_id=attempt.info.run_id, evaluation_logged=True)
    files = _list_files(mlflow.MlflowClient(), result.run_id)
    assert "evaluation/metrics.json" in files
    assert not {"metrics.json", "plots/roc.png", "reports/report.html"} & files
    assert {"decision.json", "lineage.json"} <= files
