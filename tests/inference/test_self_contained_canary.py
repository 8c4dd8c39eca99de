"""A canary shaped as on a cluster, where nothing in front of the predictors knows which version answers:
two real XGBoost versions whose fitted preprocessing differs (the challenger was trained on recent data in
which a new category appears and the durations' median moved), each exported by the export step (an
ensemble on the cluster, its two steps in one Python-backend model locally), staged in a real Triton behind
the router that plays Knative's split. Every request is the same raw-feature request, built without any
version's encoder; both versions answer, each equal to its own MLflow model's predictions on those rows,
and no request fails."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from components.register.pyfunc_model import log_bundle_model
from core.encoding import FeatureEncoder
from core.frameworks import xgboost_model
from core.raw_features import oip_inputs, raw_arrays
from core.registry import configure_tracking
from core.spec.model import ModelSpec
from inference.router.__main__ import build_settings, parse_args
from inference.router.app import create_app
from inference.router.routing import stage_model_version
from inference.triton_local import TritonLocal
from inference.triton_repository import export_repository
from tests.helpers.router_stack import isvc, write_isvc
from tests.helpers.servers import serving_in_thread
from tests.helpers.specs import fixture_spec

pytestmark = [pytest.mark.slow, pytest.mark.serving]
MODEL = "conversion-xgboost"
REQUESTS = 120
COLUMNS = ["sessions_7d", "duration_s", "plan_tier"]


def _rows(n: int, seed: int, recent: bool) -> pd.DataFrame:
    """Older rows know three plan tiers; recent ones also `enterprise`, with longer, more often missing
    durations: a refit changes the category set and the imputation median."""
    rng = np.random.default_rng(seed)
    tiers = ["free", "starter", "pro", *(["enterprise"] if recent else [])]
    frame = pd.DataFrame(
        {
            "row_id": np.arange(n) + (10_000 if recent else 0),
            "event_timestamp": pd.date_range(
                "2026-01-01" if not recent else "2026-06-01", periods=n, freq="h"
            ),
            "sessions_7d": rng.poisson(3, n).astype("float64"),
            "duration_s": rng.gamma(2.0, 150.0 if recent else 60.0, n),
            "plan_tier": rng.choice(tiers, n),
        }
    )
    frame.loc[frame.index % (4 if recent else 9) == 0, "duration_s"] = np.nan
    frame.loc[frame.index % 13 == 0, "plan_tier"] = None
    logit = 0.3 * frame["sessions_7d"] - 1.0 + 1.5 * frame["plan_tier"].isin(["pro", "enterprise"])
    frame["converted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def _spec() -> ModelSpec:
    return fixture_spec(
        MODEL,
        inputs={"feature_service": "toy_v1", "entity_keys": ["row_id"]},
        label={"dataset": "toy", "column": "converted", "task": "binary"},
        training={"search": None},
        evaluation={"slices": [], "behaviour": []},
    )


def _version(spec: ModelSpec, frame: pd.DataFrame, root: Path, experiment: str) -> tuple[Path, str]:
    """Train, export (with the export's parity check) and log the version as an MLflow pyfunc model."""
    cut = int(len(frame) * 0.8)
    params = {"n_estimators": 30, "max_depth": 3}
    xgboost_model.fit(spec, frame.iloc[:cut], frame.iloc[cut:], params, root / "bundle")
    export_repository(root / "bundle", spec, root / "triton", frame.tail(40))
    with mlflow.start_run(experiment_id=experiment):
        model_uri = log_bundle_model(root / "bundle", frame).model_uri
    return root / "triton" / "local" / MODEL, model_uri


def _body(rows: pd.DataFrame) -> bytes:
    """One OIP request of the raw features, typed as every version takes them; NaN as JSON NaN."""
    inputs = raw_arrays(rows, FeatureEncoder.fit(rows, COLUMNS).raw_inputs)  # no version's fit
    return json.dumps({"inputs": oip_inputs(inputs)}).encode()


def test_a_challenger_with_another_fit_answers_next_to_the_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_tracking()
    spec = _spec()
    older, recent = _rows(600, 1, recent=False), _rows(600, 2, recent=True)
    # An experiment of its own: the default one keeps its artifacts under ./mlruns, in the checkout.
    experiment = mlflow.create_experiment("canary", artifact_location=str(tmp_path / "artifacts"))
    local = {
        v: _version(spec, data, tmp_path / f"v{v}", experiment) for v, data in (("1", older), ("2", recent))
    }
    fits = {v: FeatureEncoder.load(tmp_path / f"v{v}" / "bundle") for v in local}
    assert fits["1"].categorical["plan_tier"] != fits["2"].categorical["plan_tier"]  # a new category
    assert fits["1"].medians["duration_s"] != fits["2"].medians["duration_s"]  # another imputation
    for version, (model_dir, _) in local.items():
        stage_model_version(model_dir, tmp_path / "repository", MODEL, version)
    write_isvc(tmp_path / "isvc.yaml", isvc("1", "2", 50, name=MODEL))
    rows = recent.tail(REQUESTS).reset_index(drop=True)[COLUMNS]
    expected = {v: mlflow.pyfunc.load_model(uri).predict(rows).to_numpy() for v, (_, uri) in local.items()}
    assert np.abs(expected["1"] - expected["2"]).max() > 0.05  # the answers tell the versions apart

    answered: dict[str, int] = {"1": 0, "2": 0}
    with TritonLocal(log_path=tmp_path / "triton.log").start(tmp_path / "repository") as triton:
        flags = ["--isvc", str(tmp_path / "isvc.yaml"), "--triton-url", triton.http_url, "--seed", "0"]
        with serving_in_thread(create_app(build_settings(parse_args(flags)))) as url:
            for row in range(REQUESTS):
                response = httpx.post(
                    f"{url}/v2/models/{MODEL}/infer", content=_body(rows.iloc[[row]]), timeout=30
                )
                assert response.status_code == 200, response.text  # no request fails
                body = response.json()
                version = body["model_version"]
                [output] = body["outputs"]
                np.testing.assert_allclose(
                    np.asarray(output["data"]).reshape(1, 2), expected[version][[row]], atol=1e-5, rtol=0
                )
                answered[version] += 1
    assert min(answered.values()) > REQUESTS // 4, answered  # both versions served their share
