"""Triton Python-backend model that runs an exported artifact: copied as `<model>/1/model.py` into local
repositories (the local Triton build has only the Python backend).

It serves the very files the cluster's native backends serve: `model.onnx` with ONNX Runtime (CPU), or an
XGBoost version's two ensemble steps in order, its preprocessing `preprocess.onnx` and then `xgboost.json`
with `xgboost.Booster`, so local answers equal cluster answers up to float32 rounding. The files come from
the config's `artifact` parameter (space-separated, else the first known file in the version folder); the
optional `threads` parameter sets the runtime's thread count (default 1: instances scale out).

This file must also import outside Triton (export's parity check runs `load_artifact` in the platform env),
so `triton_python_backend_utils`, which exists only inside Triton, is imported inside the methods.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

KNOWN_ARTIFACTS = ("model.onnx", "xgboost.json")
OUTPUT_NAME = "output__0"
Runner = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def load_chain(
    paths: Sequence[str | Path], n_outputs: int, threads: int = 1, output_name: str = OUTPUT_NAME
) -> Runner:
    """Artifacts run one after another: the first takes the named inputs, each later one the previous
    one's output as its only input (an XGBoost version: its preprocessing graph, then its trees)."""
    if not paths:
        raise ValueError("no artifact to run")
    first = load_artifact(paths[0], n_outputs, threads, output_name)
    rest = [load_artifact(path, n_outputs, threads, output_name) for path in paths[1:]]

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        result = first(inputs)
        for step in rest:
            result = step({"matrix": result})
        return result

    return run


def load_artifact(
    path: str | Path, n_outputs: int, threads: int = 1, output_name: str = OUTPUT_NAME
) -> Runner:
    """A function from named input arrays (batch first) to FP32 outputs of shape (rows, n_outputs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: exported artifact not found")
    if path.suffix == ".onnx":
        return _onnx_runner(path, threads, output_name)
    if path.suffix == ".json":
        return _xgboost_runner(path, n_outputs, threads)
    raise ValueError(f"{path}: cannot run a {path.suffix or 'suffix-less'} artifact; expected .onnx or .json")


def _onnx_runner(path: Path, threads: int, output_name: str) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    output = _pick_output(path, [o.name for o in session.get_outputs()], output_name)
    input_names = [i.name for i in session.get_inputs()]

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if len(input_names) == 1 and len(inputs) == 1:  # a chained step: the previous output, any name
            feed = {input_names[0]: next(iter(inputs.values()))}
        else:
            missing = [name for name in input_names if name not in inputs]
            if missing:
                raise ValueError(f"missing input tensors: {', '.join(missing)}")
            feed = {name: _text(inputs[name]) for name in input_names}
        return np.asarray(session.run([output], feed)[0], dtype=np.float32)

    return run


def _text(values: np.ndarray) -> np.ndarray:
    """A BYTES tensor as ONNX Runtime's strings: Triton's Python backend hands over `bytes` objects."""
    if values.dtype.kind not in "OSU":  # object (Triton's), fixed-width bytes or text
        return values
    flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.reshape(-1)]
    return np.array(flat, dtype=object).reshape(values.shape)


def _pick_output(path: Path, names: list[str], wanted: str) -> str:
    """The contract's output tensor; a lone output under another name is accepted as the probabilities."""
    if wanted in names:
        return wanted
    if len(names) == 1:
        return names[0]
    raise ValueError(f"{path}: no output {wanted!r} among {', '.join(names)}")


def _xgboost_runner(path: Path, n_outputs: int, threads: int) -> Runner:
    import xgboost

    booster = xgboost.Booster(model_file=str(path))
    booster.set_param({"nthread": threads})

    def run(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if len(inputs) != 1:
            raise ValueError(f"an XGBoost model takes one input tensor, got {len(inputs)}")
        (features,) = inputs.values()
        proba = np.asarray(booster.inplace_predict(np.asarray(features, dtype=np.float32)), dtype=np.float32)
        return as_class_columns(proba, n_outputs)

    return run


def as_class_columns(proba: np.ndarray, n_outputs: int) -> np.ndarray:
    """Binary boosters give P(class 1) per row; the Triton contract returns one column per class."""
    if proba.ndim == 1:
        proba = np.stack([1.0 - proba, proba], axis=1) if n_outputs == 2 else proba.reshape(-1, 1)
    return proba.astype(np.float32, copy=False)


def find_artifacts(version_dir: Path, parameters: Mapping[str, Any]) -> list[Path]:
    """The `artifact` parameter's files (space-separated: run in that order), else the first known file."""
    named = (parameters.get("artifact") or {}).get("string_value")
    if named:
        return [version_dir / name for name in named.split()]
    for name in KNOWN_ARTIFACTS:
        if (version_dir / name).is_file():
            return [version_dir / name]
    raise FileNotFoundError(f"{version_dir}: no exported artifact ({' or '.join(KNOWN_ARTIFACTS)})")


def split_rows(result: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    return np.split(result, np.cumsum(sizes)[:-1])


class TritonPythonModel:
    """Triton's entry point: `initialize` once per instance, `execute` per batch of requests."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        parameters = config.get("parameters") or {}
        threads = int((parameters.get("threads") or {}).get("string_value") or 1)
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_name = config["output"][0]["name"]
        n_outputs = int(config["output"][0]["dims"][-1])
        self.run = load_chain(find_artifacts(version_dir, parameters), n_outputs, threads, self.output_name)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        responses: list[Any] = [None] * len(requests)
        batches: list[dict[str, np.ndarray]] = []
        for index, request in enumerate(requests):
            try:
                batches.append(self._inputs(request, pb_utils))
            except Exception as exc:  # a bad request fails alone, not the whole batch
                responses[index] = self._error(pb_utils, exc)
                batches.append({})
        good = [i for i, batch in enumerate(batches) if responses[i] is None]
        for index, output in zip(good, self._predict([batches[i] for i in good]), strict=True):
            if isinstance(output, Exception):
                responses[index] = self._error(pb_utils, output)
            else:
                responses[index] = self._response(pb_utils, output)
        return responses

    def _inputs(self, request: Any, pb_utils: Any) -> dict[str, np.ndarray]:
        inputs = {}
        for name in self.input_names:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input tensor {name!r}")
            inputs[name] = tensor.as_numpy()
        return inputs

    def _predict(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray | Exception]:
        """Run the requests as one batch when their shapes allow it, else one by one."""
        if not batches:
            return []
        if _stackable(batches):
            try:
                joined = {name: np.concatenate([b[name] for b in batches]) for name in self.input_names}
                sizes = [len(b[self.input_names[0]]) for b in batches]
                return split_rows(self.run(joined), sizes)
            except Exception:  # find out which request is at fault by running each on its own
                pass
        return [self._predict_one(batch) for batch in batches]

    def _predict_one(self, batch: dict[str, np.ndarray]) -> np.ndarray | Exception:
        try:
            return self.run(batch)
        except Exception as exc:
            return exc

    def _response(self, pb_utils: Any, output: np.ndarray) -> Any:
        tensor = pb_utils.Tensor(self.output_name, np.ascontiguousarray(output, dtype=np.float32))
        return pb_utils.InferenceResponse(output_tensors=[tensor])

    def _error(self, pb_utils: Any, exc: Exception) -> Any:
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))


def _stackable(batches: list[dict[str, np.ndarray]]) -> bool:
    first = batches[0]
    return all(
        batch.keys() == first.keys() and all(batch[k].shape[1:] == first[k].shape[1:] for k in first)
        for batch in batches
    )
