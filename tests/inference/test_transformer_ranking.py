"""A ranker behind the KServe transformer, on real parts: a Feast store over the demo's offers, an XGBoost
ranker trained on its point-in-time training set and exported to a Triton repository, a real Triton, and two
transformer servers (`python -m inference.transformer`), one calling Triton over REST v2, one over gRPC v2.

A request names one session and customer and lists candidate offers; the answer is the candidates ranked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest

from components.load_features.step import load_training_set
from core.bundle import load_predictor
from core.ports import free_ports
from core.settings import variable
from core.spec.model import ModelSpec
from feature_repo import store
from feature_repo.demo_data.config import GeneratorConfig
from feature_repo.demo_data.generate import generate
from feature_repo.demo_data.writer import write_tables
from inference.triton_local import Ports, TritonLocal
from tests.helpers.demo_features import DEMO_FEATURE_VIEWS
from tests.helpers.ranking import RANKER_SPEC_PATH, ranker_spec
from tests.helpers.transformer_servers import (
    Transformer,
    start_rest_and_grpc,
    stop_transformers,
    train_xgboost_repository,
    wait_ready,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.serving,
    pytest.mark.filterwarnings("ignore:fetch_arrow_table:DeprecationWarning"),  # Feast's DuckDB store
]
MODEL = "offer-ranker-xgboost"
MAX_CANDIDATES = 16
FLAGS = ("--model-version", "3", "--max-rows", str(MAX_CANDIDATES))


@dataclass
class Stack:
    fs: object
    spec: ModelSpec
    bundle: Path
    query: dict[str, int]  # a session and its customer, with online features
    rest: Transformer  # predictor over REST v2
    via_grpc: Transformer  # predictor over gRPC v2


def _train_and_export(fs, spec: ModelSpec, home: Path, root: Path) -> Path:
    window = (datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    frame, _ = load_training_set(spec, *window, store=fs, data_dir=home / "data")
    params = {"n_estimators": 20, "max_depth": 3, "learning_rate": 0.3, "tree_method": "hist"}
    return train_xgboost_repository(spec, frame, root, params)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("ranking-transformer")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv(variable("spec_dir"), str(RANKER_SPEC_PATH.parent))  # loaded by name
        patch.delenv("FEATURE_DATA_URI", raising=False)
        config = GeneratorConfig(customers=60)
        write_tables(config, generate(config), home / "data")
        store.bootstrap(views=DEMO_FEATURE_VIEWS)
        fs = store.open_store()
        spec = ranker_spec()
        bundle = _train_and_export(fs, spec, home, root)
        last = pd.read_parquet(home / "data" / "session_stats.parquet").iloc[-1]
        query = {"session_id": int(last["session_id"]), "customer_id": int(last["customer_id"])}
        free = free_ports(7)
        ports = Ports(http=free[0], grpc=free[1], metrics=free[2])
        servers = start_rest_and_grpc(MODEL, ports.http, ports.grpc, free[3:7], home, root, *FLAGS)
        try:
            with TritonLocal(log_path=root / "triton.log").start(root / "repo" / "local", ports):
                for server in servers:
                    wait_ready(server)
                yield Stack(fs, spec, bundle, query, *servers)
        finally:
            stop_transformers(servers)


# ------------------------------------------------------------------------------------------ helpers
def _inputs(query: dict[str, int], candidates: list[int]) -> list[dict]:
    tensors = [
        {"name": key, "shape": [1], "datatype": "INT64", "data": [value]} for key, value in query.items()
    ]
    return [
        *tensors,
        {"name": "offer_id", "shape": [len(candidates)], "datatype": "INT64", "data": candidates},
    ]


def _post(server: Transformer, inputs: list[dict]) -> httpx.Response:
    return httpx.post(
        f"{server.http}/v2/models/{MODEL}/infer", json={"id": "r-1", "inputs": inputs}, timeout=30
    )


@pytest.fixture(scope="module")
def mlflow_model(stack: Stack, tmp_path_factory: pytest.TempPathFactory):
    """The bundle saved as the register step logs it (pyfunc `BundleModel`, the bundle as its artifact),
    loaded back with `mlflow.pyfunc.load_model`."""
    import mlflow

    from core.bundle_pyfunc import BundleModel
    from core.registry import BUNDLE_ARTIFACT

    path = tmp_path_factory.mktemp("mlflow") / "model"
    mlflow.pyfunc.save_model(path, python_model=BundleModel(), artifacts={BUNDLE_ARTIFACT: str(stack.bundle)})
    return mlflow.pyfunc.load_model(str(path))


def _expected(stack: Stack, candidates: list[int], model=None) -> tuple[list[int], np.ndarray]:
    """The candidates ranked by the MLflow model (else the bundle it wraps) on the same online features."""
    rows = [{**stack.query, "offer_id": offer} for offer in candidates]
    service = stack.fs.get_feature_service(stack.spec.inputs.feature_service)
    online = stack.fs.get_online_features(features=service, entity_rows=rows).to_df()
    if model is not None:
        scores = model.predict(online)["score"].to_numpy()
    else:
        scores = load_predictor(stack.bundle).predict_proba(online)[:, 0]
    order = np.argsort(-scores, kind="stable")
    return [candidates[i] for i in order], scores[order]


CANDIDATES = [31, 4, 17, 9, 44, 2, 26, 13, 38, 21]


@pytest.mark.parametrize("which", ["rest", "via_grpc"])
def test_the_ranked_list_is_the_mlflow_models_ranking_of_the_same_candidates(
    stack: Stack, mlflow_model, which: str
) -> None:
    response = _post(getattr(stack, which), _inputs(stack.query, CANDIDATES))
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert set(outputs) == {"offer_id", "score"}
    ranked, scores = _expected(stack, CANDIDATES, mlflow_model)
    assert outputs["offer_id"]["data"] == ranked and sorted(ranked) == sorted(CANDIDATES)
    np.testing.assert_allclose(outputs["score"]["data"], scores, atol=1e-5, rtol=0)
    assert list(outputs["score"]["data"]) == sorted(outputs["score"]["data"], reverse=True)


def test_a_grpc_client_gets_the_same_ranking(stack: Stack) -> None:
    from kserve import InferResponse
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(model_name=MODEL, id="g-1")
    for key, value in stack.query.items():
        request.inputs.add(name=key, datatype="INT64", shape=[1]).contents.int64_contents.append(value)
    offers = request.inputs.add(name="offer_id", datatype="INT64", shape=[len(CANDIDATES)])
    offers.contents.int64_contents.extend(CANDIDATES)
    with grpc.insecure_channel(stack.via_grpc.grpc) as channel:
        answer = InferResponse.from_grpc(
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
        )
    outputs = {output.name: output for output in answer.outputs}
    assert outputs["offer_id"].as_numpy().tolist() == _expected(stack, CANDIDATES)[0]


@pytest.mark.parametrize(
    ("candidates", "fragment"),
    [
        ([], "input offer_id: the candidate list is empty"),
        ([4, 9, 4, 2, 9], "input offer_id: duplicate candidates 4, 9"),
        ([4, 999_999], "no online features for offer_id [999999]"),
        (list(range(1, MAX_CANDIDATES + 2)), f"at most {MAX_CANDIDATES} candidates per request (got 17)"),
    ],
)
def test_a_bad_candidate_list_is_a_one_line_400(stack: Stack, candidates: list[int], fragment: str) -> None:
    response = _post(stack.rest, _inputs(stack.query, candidates))
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error"} and fragment in body["error"] and "\n" not in body["error"], body
    assert _post(stack.rest, _inputs(stack.query, CANDIDATES)).status_code == 200  # serving goes on


def test_a_query_is_one_session_and_one_customer(stack: Stack) -> None:
    two = _inputs(stack.query, CANDIDATES)
    two[0] = {**two[0], "shape": [2], "data": [two[0]["data"][0]] * 2}
    response = _post(stack.rest, two)
    assert response.status_code == 400 and "one id per request (the query), got 2" in response.json()["error"]
    missing = [tensor for tensor in _inputs(stack.query, CANDIDATES) if tensor["name"] != "customer_id"]
    response = _post(stack.rest, missing)
    assert response.status_code == 400 and "missing customer_id" in response.json()["error"]
