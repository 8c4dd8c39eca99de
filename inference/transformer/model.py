"""The KServe transformer: entity ids in, Feast online features, the model's encoding, Triton's answer out.

    preprocess   OIP request (entity ids [+ request fields]) -> online features of the spec's feature service
                 -> the version's FeatureEncoder -> the Triton model's FP32 input
    predict      KServe's own predictor call (REST v2 or gRPC v2, from --predictor-host and --protocol)
    postprocess  Triton's probabilities -> `probabilities` and `predicted_class` under the public model name

The encoder comes from the served version's bundle files (`bundle.json`, `encoder.json`): the very
object training fitted and export checked parity with, so serving builds the tensors training built.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from kserve import InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from core.bundle import BundleInfo
from core.encoding import ENCODER_FILE, FeatureEncoder
from inference.transformer.features import MissingEntities, OnlineFeatures
from inference.transformer.tensors import entity_rows, prediction_response, triton_request


@dataclass(frozen=True)
class ServingBundle:
    """What the transformer needs of a model version: the bundle description and its encoder."""

    info: BundleInfo
    encoder: FeatureEncoder

    @classmethod
    def load(cls, folder: str | Path) -> ServingBundle:
        folder = Path(folder)
        info = BundleInfo.load(folder)
        if not (folder / ENCODER_FILE).is_file():
            raise FileNotFoundError(
                f"transformer: {folder} has no {ENCODER_FILE}: only tabular bundles "
                f"(sklearn, xgboost, pytorch) are served through Feast, not {info.framework!r}"
            )
        return cls(info=info, encoder=FeatureEncoder.load(folder))

    @property
    def input_name(self) -> str:
        return str(self.info.triton_inputs[0]["name"])

    @property
    def output_name(self) -> str:
        return str(self.info.triton_outputs[0]["name"])


class FeastTransformer(Model):
    """`name` is the public model name and the Triton model's name (the spec name names both)."""

    def __init__(
        self,
        name: str,
        bundle: ServingBundle,
        features: OnlineFeatures,
        max_rows: int,
        model_version: str | None = None,
    ) -> None:
        super().__init__(name)
        missing = sorted(set(bundle.encoder.input_columns) - set(features.layout.feature_names))
        if missing:
            raise ValueError(
                f"transformer: {name}: the bundle's encoder takes {', '.join(missing)}, which feature "
                f"service {features.service.name!r} does not serve (trained on another feature service?)"
            )
        self.bundle = bundle
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
        matrix = self.bundle.encoder.transform(frame)
        return triton_request(self.name, self.bundle.input_name, matrix, payload.id)

    async def postprocess(
        self,
        result: InferResponse | dict,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        if not isinstance(result, InferResponse):
            raise RuntimeError(f"predictor answered with {type(result).__name__}, not an OIP response")
        return prediction_response(
            result, self.bundle.output_name, self.bundle.info.classes, self.name, self.model_version
        )
