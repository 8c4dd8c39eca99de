"""The gRPC half of the demo traffic, in its own interpreter (traffic.py says why).

    python -m inference.canary.grpc_traffic ADDRESS FOLDER

FOLDER holds `tensors.npz` (arrays by key) and `requests.json` (a list of {model, version, triton_name,
row, inputs}: `triton_name` set means "Triton directly, by that name", else the router with the public
name and `model_version`). Writes `answers.json`: per request {code: gRPC status name, score, error}.
This module must not import kserve (nor anything that does).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OUTPUT = "output__0"


def send_all(address: str, folder: Path) -> list[dict]:
    import tritonclient.grpc as grpc
    from tritonclient.utils import InferenceServerException, np_to_triton_dtype

    tensors = np.load(folder / "tensors.npz")
    requests = json.loads((folder / "requests.json").read_text())
    answers = []
    client = grpc.InferenceServerClient(address)
    try:
        for request in requests:
            inputs = []
            for key in request["inputs"]:
                values = tensors[key][request["row"] : request["row"] + 1]
                if values.dtype.kind == "U":  # a BYTES tensor (saved as text by traffic.py)
                    values = values.astype(object)
                tensor = grpc.InferInput(key, list(values.shape), np_to_triton_dtype(values.dtype))
                tensor.set_data_from_numpy(values)
                inputs.append(tensor)
            name, version = (
                request["triton_name"] or request["model"],
                "" if request["triton_name"] else request["version"],
            )
            try:
                result = client.infer(
                    name, inputs, model_version=version, outputs=[grpc.InferRequestedOutput(OUTPUT)]
                )
            except InferenceServerException as error:
                code = str(error.status() or "UNKNOWN").removeprefix("StatusCode.")
                answers.append({"code": code, "score": None, "error": error.message()})
                continue
            answers.append({"code": "OK", "score": _score(result.as_numpy(OUTPUT)[0]), "error": None})
    finally:
        client.close()
    return answers


def _score(probabilities: np.ndarray) -> float:
    # The same score as traffic.prediction_score (not imported: this process stays small and kserve-free).
    first = np.asarray(probabilities, dtype=float).reshape(-1)
    return float(first[-1] if first.size == 2 else first.max())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m inference.canary.grpc_traffic ADDRESS FOLDER", file=sys.stderr)
        return 2
    address, folder = args[0].removeprefix("grpc://"), Path(args[1])
    answers = send_all(address, folder)
    (folder / "answers.json").write_text(json.dumps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
