"""The real `tritonclient.grpc`, run in a subprocess: it and kserve register the same protobuf symbols and
cannot share a process, and the suite imports kserve elsewhere."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.paths import REPO_ROOT
from core.raw_features import datatype_of

_CLIENT_SCRIPT = r"""
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

client = grpcclient.InferenceServerClient(sys.argv[1])

DTYPES = {"FP32": "float32", "FP64": "float64", "INT64": "int64", "INT32": "int32", "BYTES": "object"}

def tensor(item):
    array = np.asarray(item["data"], dtype=item.get("dtype") or DTYPES[item["datatype"]])
    tensor = grpcclient.InferInput(item["name"], list(array.shape), item["datatype"])
    tensor.set_data_from_numpy(array)
    return tensor

def infer(c):
    default = {"name": "input__0", "data": c.get("rows"), "datatype": c.get("datatype", "FP32")}
    tensors = [tensor(item) for item in c.get("inputs") or [{**default, "dtype": c.get("dtype")}]]
    answers = []
    for _ in range(c.get("repeat", 1)):
        version, request_id = c.get("version", ""), c.get("id", "")
        result = client.infer(c["model"], tensors, model_version=version, request_id=request_id)
        response = result.get_response()
        answers.append([response.model_name, response.model_version, result.as_numpy("output__0").tolist()])
    return {"code": "OK", "answers": answers}

def handle(c):
    if c["kind"] == "infer":
        return infer(c)
    if c["kind"] == "ready":
        return {"code": "OK", "live": client.is_server_live(), "ready": client.is_server_ready(),
                "model_ready": client.is_model_ready(c["model"], c.get("version", ""))}
    meta = client.get_model_metadata(c["model"], c.get("version", ""), as_json=True)
    return {"code": "OK", "metadata": meta}

for line in sys.stdin:
    command = json.loads(line)
    try:
        answer = handle(command)
    except InferenceServerException as exc:
        answer = {"code": str(exc.status()).rsplit(".", 1)[-1], "message": exc.message()}
    print(json.dumps(answer), flush=True)
"""


class GrpcClient:
    """tritonclient.grpc in a subprocess; `call` sends one command and returns its JSON answer."""

    def __init__(self, address: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CLIENT_SCRIPT, address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )

    def call(self, timeout_s: float = 120.0, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answered, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        assert answered, f"gRPC client gave no answer within {timeout_s:g} s to {command.get('kind')}"
        line = self.process.stdout.readline()
        assert line, f"gRPC client exited with {self.process.wait(timeout=5)}"
        return json.loads(line)

    def infer(self, rows: np.ndarray, model: str = "demo", **kw: Any) -> dict[str, Any]:
        return self.call(kind="infer", model=model, rows=rows.tolist(), **kw)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_INFER_SCRIPT = """
import sys
import numpy as np
import tritonclient.grpc as grpcclient

address, model, folder = sys.argv[1:]
tensors = []
for name, values in np.load(f"{folder}/in.npz").items():
    text = values.dtype.kind == "U"  # a BYTES tensor, saved as text
    tensor = grpcclient.InferInput(name, list(values.shape), "BYTES" if text else "FP32")
    tensor.set_data_from_numpy(values.astype(object) if text else values)
    tensors.append(tensor)
client = grpcclient.InferenceServerClient(address)
np.save(f"{folder}/out.npy", client.infer(model, tensors).as_numpy("output__0"))
client.close()
"""


def grpc_infer(
    address: str, model: str, tensors: Mapping[str, np.ndarray] | np.ndarray, folder: Path
) -> np.ndarray:
    """One inference of named `tensors` (an array alone: FP32 `input__0`) with tritonclient.grpc in a
    fresh interpreter; `folder` carries the arrays."""
    named = {"input__0": tensors} if isinstance(tensors, np.ndarray) else tensors
    np.savez(folder / "in.npz", **{k: v.astype(str) if v.dtype == object else v for k, v in named.items()})
    subprocess.run(
        [sys.executable, "-c", _INFER_SCRIPT, address, model, str(folder)], check=True, timeout=120
    )
    return np.load(folder / "out.npy")


def http_inputs(http: Any, tensors: Mapping[str, np.ndarray]) -> list[Any]:
    """`tritonclient.http` InferInputs for named arrays (object arrays are BYTES, the rest FP32)."""
    inputs = []
    for name, values in tensors.items():
        tensor = http.InferInput(name, list(values.shape), datatype_of(values))
        tensor.set_data_from_numpy(values, binary_data=False)
        inputs.append(tensor)
    return inputs
