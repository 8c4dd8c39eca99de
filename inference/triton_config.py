"""Render Triton `config.pbtxt` for one model, for the cluster's native backend or the local Python backend.

Two targets share the tensors, batching and name, and differ only in who runs the artifact:

- `cluster`: the backend the spec asks for (`onnxruntime`, `fil`, `pytorch_libtorch` or `python`), on GPU
  instances when `spec.serving.gpu`, else on CPU, `spec.serving.instances` of them.
- `local`: Triton's Python backend on one CPU instance, running `model.py` over the same artifact (the
  local Triton build carries only the Python backend).

Dims exclude the batch axis: every model is exported with a dynamic batch axis and `max_batch_size > 0`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from core.spec.release import Serving

Target = Literal["cluster", "local"]
TARGETS: tuple[Target, ...] = ("cluster", "local")

# The file each native backend looks for in the version folder when no `default_model_filename` is set.
DEFAULT_ARTIFACTS = {
    "onnxruntime": "model.onnx",
    "fil": "xgboost.json",
    "pytorch_libtorch": "model.pt",
    "python": "model.py",
}
_DATATYPES = {
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "INT64": "TYPE_INT64",
    "INT32": "TYPE_INT32",
    "BYTES": "TYPE_STRING",  # OIP's BYTES is Triton's TYPE_STRING (docs/protocol/extension_binary_data.md)
}
# FIL decision threshold for binary classifiers; it only matters for class outputs, which we do not use
# (predict_proba is on), but FIL reads it, so it is written down rather than left implicit.
FIL_THRESHOLD = 0.5


def render_config(
    model_name: str,
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    serving: Serving,
    target: Target,
    artifact: str | None = None,
    backend: str | None = None,
) -> str:
    """The `config.pbtxt` text for `model_name` (the Triton model name is its folder name).

    `inputs`/`outputs` are `BundleInfo.triton_inputs`/`triton_outputs` (name, datatype, dims without the
    batch axis). `artifact` is the exported file in the version folder; the local model reads it from the
    `artifact` parameter, the cluster backend from `default_model_filename` when it is not the default.
    `backend` overrides the spec's cluster backend (an ensemble's preprocessing step runs on onnxruntime).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown Triton target {target!r}: expected one of {', '.join(TARGETS)}")
    backend = "python" if target == "local" else backend or serving.triton_backend
    lines = [f'name: "{model_name}"', *_backend_lines(backend)]
    if backend != "python" and artifact and artifact != DEFAULT_ARTIFACTS[backend]:
        lines.append(f'default_model_filename: "{artifact}"')
    lines.append(f"max_batch_size: {serving.max_batch_size}")
    lines += _tensor_block("input", inputs)
    lines += _tensor_block("output", outputs)
    lines += _instance_group(serving, target, cpu_only=backend != serving.triton_backend)
    lines += _dynamic_batching(serving)
    lines += _parameters(_backend_parameters(backend, artifact))
    lines += _model_warmup(inputs)
    return "\n".join(lines) + "\n"


def _backend_lines(backend: str) -> list[str]:
    if backend == "onnxruntime":
        return ['backend: "onnxruntime"', 'platform: "onnxruntime_onnx"']
    if backend == "pytorch_libtorch":
        return ['backend: "pytorch"', 'platform: "pytorch_libtorch"']
    return [f'backend: "{backend}"']


def _tensor_block(kind: str, tensors: Sequence[Mapping[str, Any]]) -> list[str]:
    if not tensors:
        raise ValueError(f"config.pbtxt: the model declares no {kind} tensors")
    entries = []
    for tensor in tensors:
        dims = ", ".join(str(int(d)) for d in tensor["dims"])
        body = f'name: "{tensor["name"]}"\n    data_type: {_triton_type(kind, tensor)}\n    dims: [ {dims} ]'
        entries.append(f"  {{\n    {body}\n  }}")
    return [f"{kind} [", ",\n".join(entries), "]"]


def _triton_type(kind: str, tensor: Mapping[str, Any]) -> str:
    """`FP32` or `TYPE_FP32` -> `TYPE_FP32`; an unsupported datatype names the tensor."""
    datatype = str(tensor["datatype"]).upper().removeprefix("TYPE_")
    if datatype not in _DATATYPES:
        raise ValueError(
            f"config.pbtxt: {kind} {tensor['name']!r} has datatype {tensor['datatype']!r}; "
            f"expected one of {', '.join(_DATATYPES)}"
        )
    return _DATATYPES[datatype]


def render_ensemble_config(
    model_name: str,
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    serving: Serving,
    steps: Sequence[tuple[str, Mapping[str, str], Mapping[str, str]]],
) -> str:
    """An ensemble's `config.pbtxt`: `steps` are (model, input_map, output_map), each map from the step
    model's tensor name to the ensemble's tensor name (Triton's `ensemble_scheduling`; the same text for
    both targets, since the ensemble itself runs in Triton's core). No warm-up: each step warms itself."""
    lines = [f'name: "{model_name}"', 'platform: "ensemble"', f"max_batch_size: {serving.max_batch_size}"]
    lines += _tensor_block("input", inputs)
    lines += _tensor_block("output", outputs)
    lines.append("ensemble_scheduling {\n  step [")
    blocks = []
    for model, input_map, output_map in steps:
        body = [f'      model_name: "{model}"', "      model_version: -1"]
        body += [f'      input_map {{ key: "{k}" value: "{v}" }}' for k, v in input_map.items()]
        body += [f'      output_map {{ key: "{k}" value: "{v}" }}' for k, v in output_map.items()]
        blocks.append("    {\n" + "\n".join(body) + "\n    }")
    lines += [",\n".join(blocks), "  ]", "}"]
    return "\n".join(lines) + "\n"


def _instance_group(serving: Serving, target: Target, cpu_only: bool = False) -> list[str]:
    if target == "local":
        # One instance: each Python-backend instance is its own stub process, and a laptop has few cores.
        return ["instance_group [ { kind: KIND_CPU, count: 1 } ]"]
    # A step other than the spec's backend (an ensemble's string preprocessing) runs on the CPU.
    kind = "KIND_GPU" if serving.gpu and not cpu_only else "KIND_CPU"
    return [f"instance_group [ {{ kind: {kind}, count: {serving.instances} }} ]"]


def _dynamic_batching(serving: Serving) -> list[str]:
    batching = serving.dynamic_batching
    if batching is None:
        return []
    body = []
    if batching.preferred_batch_sizes:
        body.append(f"  preferred_batch_size: [ {', '.join(map(str, batching.preferred_batch_sizes))} ]")
    body.append(f"  max_queue_delay_microseconds: {batching.max_queue_delay_us}")
    return ["dynamic_batching {", *body, "}"]


def _backend_parameters(backend: str, artifact: str | None) -> dict[str, str]:
    if backend == "fil":
        return {
            "model_type": "xgboost_json",
            "output_class": "true",
            "predict_proba": "true",
            "threshold": str(FIL_THRESHOLD),
        }
    if backend == "python" and artifact:
        return {"artifact": artifact}
    return {}


def _model_warmup(inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One zero-filled, one-row request Triton runs at load, before the model reports ready.

    A new revision's first requests otherwise pay lazy initialisation (CUDA kernels and allocator pools on
    GPU, imports and session set-up on CPU) while a canary is being judged on its latency. A variable
    axis (-1) gets length 1.
    """
    entries = []
    for tensor in inputs:
        dims = ", ".join(str(max(int(d), 1)) for d in tensor["dims"])
        value = f"data_type: {_triton_type('input', tensor)} dims: [ {dims} ] zero_data: true"
        entries.append(f'    inputs {{ key: "{tensor["name"]}" value: {{ {value} }} }}')
    return ["model_warmup [", '  {\n    name: "zero_row"\n    batch_size: 1', *entries, "  }", "]"]


def _parameters(parameters: Mapping[str, str]) -> list[str]:
    if not parameters:
        return []
    entries = [
        f'  {{ key: "{key}" value: {{ string_value: "{value}" }} }}' for key, value in parameters.items()
    ]
    return ["parameters [", ",\n".join(entries), "]"]
