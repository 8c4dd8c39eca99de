"""The KServe transformer: entity ids in, Feast online features as the model's raw inputs, its answer out.

    preprocess   OIP request (entity ids [+ request fields]) -> online features of the spec's feature service
                 -> one named tensor per feature (core/raw_features.py)
    predict      KServe's predictor call (REST v2 or gRPC v2, from --predictor-host and --protocol)
    postprocess  Triton's probabilities -> `probabilities` and `predicted_class` under the public model name

A ranker's transformer (`item_key` set) takes one query and a candidate list instead and answers the
candidates ranked by score (inference/transformer/ranking.py).

It holds no version's state: every model version takes the raw features and applies its own fitted
preprocessing inside (core/encoding_onnx.py), so during a canary this one transformer feeds both predictor
revisions correctly. What it needs comes from the model spec (feature service, entity keys, classes) and
the feature views' schema (which features are numeric).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from kserve import InferRequest, InferResponse, Model
from kserve.errors import InvalidInput
from kserve.model import append_forwardable_headers
from kserve.predictor_config import PredictorProtocol

from core.frameworks.base import OUTPUT
from core.raw_features import raw_arrays
from inference.transformer.features import MissingEntities, OnlineFeatures
from inference.transformer.ranking import candidate_rows, ranking_response
from inference.transformer.tensors import entity_rows, prediction_response, triton_request


class FeastTransformer(Model):
    """`name` is the public model name and the Triton model's name (the spec name names both)."""

    def __init__(
        self,
        name: str,
        classes: Sequence[str],
        features: OnlineFeatures,
        max_rows: int,
        model_version: str | None = None,
        item_key: str | None = None,
    ) -> None:
        super().__init__(name)
        self.classes = list(classes)
        self.features = features
        self.max_rows = max_rows
        self.model_version = model_version
        self.item_key = item_key
        """A ranker's item key (`label.item_column`): requests carry one query and a candidate list."""

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def preprocess(
        self, payload: InferRequest | dict, headers: dict[str, str] | None = None
    ) -> InferRequest:
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this transformer speaks the Open Inference Protocol (v2) only")
        candidates = None
        if self.item_key is not None:
            rows, candidates = candidate_rows(
                payload, self.features.entity_keys, self.item_key, self.max_rows
            )
        else:
            rows = entity_rows(
                payload, self.features.entity_keys, self.features.layout.request_fields, self.max_rows
            )
        try:
            # Feast's online read blocks (sqlite locally, Redis in the cluster): keep the event loop free.
            frame = await asyncio.to_thread(self.features.read, rows)
        except MissingEntities as error:
            raise InvalidInput(str(error)) from None
        request = triton_request(self.name, raw_arrays(frame, self.features.layout.inputs), payload.id)
        # The candidates travel with this in-process request object to `predict`, never to Triton.
        request.candidates = candidates
        return request

    async def predict(
        self,
        payload: InferRequest | dict,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        """KServe's own predictor call, except that a REST body is written with `json`, not orjson: a
        missing numeric feature is NaN, which orjson writes as null (Triton refuses null as FP32: seen,
        "attempt to access JSON non-number as double") and `json` as `NaN`, which Triton's HTTP front end
        reads (seen on the local Triton). gRPC carries NaN as it is."""
        if self.predictor_config.protocol != PredictorProtocol.REST_V2.value or not isinstance(
            payload, InferRequest
        ):
            response = await super().predict(payload, headers, response_headers)
        else:
            body, _ = payload.to_rest()
            response = await self._http_client.infer(
                self.predictor_config.predictor_base_url,
                model_name=self.name,
                data=json.dumps(body, separators=(",", ":")).encode(),
                headers=append_forwardable_headers(headers, {"Content-Type": "application/json"}),
                response_headers=response_headers,
            )
        if isinstance(response, InferResponse):
            response.candidates = getattr(payload, "candidates", None)  # for `postprocess` to rank
        return response

    async def postprocess(
        self,
        result: InferResponse | dict,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        if not isinstance(result, InferResponse):
            raise RuntimeError(f"predictor answered with {type(result).__name__}, not an OIP response")
        if self.item_key is not None:
            candidates = getattr(result, "candidates", None)
            if candidates is None:
                raise RuntimeError("a ranker's predictor response lost its candidate list")
            return ranking_response(result, OUTPUT, self.item_key, candidates, self.name, self.model_version)
        return prediction_response(result, OUTPUT, self.classes, self.name, self.model_version)
