"""The KServe transformer: entity ids in, Feast online features as the model's raw inputs, its answer out.

    preprocess   OIP request (entity ids [+ request fields]) -> online features of the spec's feature service
                 -> one named tensor per feature (core/raw_features.py)
    predict      KServe's predictor call (REST v2 or gRPC v2, from --predictor-host and --protocol)
    postprocess  Triton's probabilities -> `probabilities` and `predicted_class` under the public model name

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
    ) -> None:
        super().__init__(name)
        self.classes = list(classes)
        self.features = features
        self.max_rows = max_rows
        self.model_version = model_version

    def load(self) -> bool:
        self.ready = True
        return self.ready

    async def preprocess(
        self, payload: InferRequest | dict, headers: dict[str, str] | None = None
    ) -> InferRequest:
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this transformer speaks the Open Inference Protocol (v2) only")
        rows = entity_rows(
            payload, self.features.entity_keys, self.features.layout.request_fields, self.max_rows
        )
        try:
            # Feast's online read blocks (sqlite locally, Redis in the cluster): keep the event loop free.
            frame = await asyncio.to_thread(self.features.read, rows)
        except MissingEntities as error:
            raise InvalidInput(str(error)) from None
        return triton_request(self.name, raw_arrays(frame, self.features.layout.inputs), payload.id)

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
            return await super().predict(payload, headers, response_headers)
        body, _ = payload.to_rest()
        return await self._http_client.infer(
            self.predictor_config.predictor_base_url,
            model_name=self.name,
            data=json.dumps(body, separators=(",", ":")).encode(),
            headers=append_forwardable_headers(headers, {"Content-Type": "application/json"}),
            response_headers=response_headers,
        )

    async def postprocess(
        self,
        result: InferResponse | dict,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        if not isinstance(result, InferResponse):
            raise RuntimeError(f"predictor answered with {type(result).__name__}, not an OIP response")
        return prediction_response(result, OUTPUT, self.classes, self.name, self.model_version)
