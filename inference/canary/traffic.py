"""Demo traffic through the router with `tritonclient`, over HTTP and gRPC, split like the
InferenceService splits it.

Every version takes the same tensors (a tabular model's raw features: each version preprocesses inside its
model), so one encoder builds every request. Each request draws its target with the router's own seeded
split (`RouteTable.choose` over the same route, so the share is still the InferenceService's) and is sent
pinned to that version (`model_version`), so each answer is known to come from its version. The router
counts a pinned request under the version's role, so its metrics match a drawn request's.

HTTP requests go from this process (`tritonclient.http`, JSON tensors: the router takes no binary
tensors). gRPC requests go from a fresh interpreter (`python -m inference.canary.grpc_traffic`):
`tritonclient.grpc` and `kserve` register the same protobuf symbols and cannot share a process. Without
the router's gRPC address they go to Triton's gRPC port directly (as `<model>__v<version>`), and then
only the client sees them: the router's metrics count the HTTP share alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.paths import REPO_ROOT
from inference.router.isvc import Route, Target
from inference.router.routing import RouteTable

Encoder = Callable[[pd.DataFrame], Mapping[str, np.ndarray]]
"""Raw rows -> the model's input tensors (a bundle predictor's `.encode`: the same for every version)."""
OUTPUT = "output__0"
OK_CODES = (200, "OK")
GRPC_TIMEOUT_S = 300.0


@dataclass
class Traffic:
    """What the load generator saw: answers by (role, status) and prediction scores by role. A status is
    the HTTP code (int) or the gRPC status name (str, "OK" on success)."""

    codes: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    scores: dict[str, list[float]] = field(default_factory=lambda: {"stable": [], "canary": []})
    first_error: str | None = None
    grpc_sent: int = 0

    @property
    def failed(self) -> int:
        return sum(n for (_, code), n in self.codes.items() if code not in OK_CODES)

    @property
    def sent(self) -> int:
        return sum(self.codes.values())

    def record(self, target: Target, code: int | str, score: float | None, error: str | None) -> None:
        self.codes[(target.role, code)] += 1
        if score is not None:
            self.scores[target.role].append(score)
        if error and self.first_error is None:
            self.first_error = f"{code} from v{target.version}: {error[:200]}"


@dataclass(frozen=True)
class Endpoints:
    """Where traffic goes: the router's REST URL, and a gRPC address (router or Triton)."""

    router_http_url: str
    grpc_address: str | None = None
    grpc_through_router: bool = True


def send_traffic(
    endpoints: Endpoints | str,
    route: Route,
    encoder: Encoder,
    rows: pd.DataFrame,
    requests: int,
    seed: int = 0,
    grpc_share: float = 0.0,
    timeout_s: float = 30.0,
) -> Traffic:
    """Send `requests` one-row requests for `route.model`, the last `grpc_share` of them over gRPC (when
    a gRPC address is known), each built by `encoder`. Rows are drawn with replacement from `rows`."""
    if rows.empty:
        raise ValueError(f"traffic: {route.model}: no input rows to send")
    if isinstance(endpoints, str):
        endpoints = Endpoints(endpoints)
    table = RouteTable([route], seed=seed)
    tensors = {name: np.ascontiguousarray(values) for name, values in encoder(rows).items()}
    pick = np.random.default_rng(seed)
    plan = [(_choose(table, route.model), int(pick.integers(len(rows)))) for _ in range(requests)]
    over_grpc = round(requests * grpc_share) if endpoints.grpc_address else 0
    traffic = Traffic()
    _send_http(endpoints.router_http_url, plan[: requests - over_grpc], tensors, traffic, timeout_s)
    if over_grpc:
        _send_grpc(endpoints, plan[requests - over_grpc :], tensors, traffic)
    return traffic


def prediction_score(probabilities: np.ndarray) -> float:
    """The score the shift check compares: P(positive class) for two classes, else the top probability."""
    first = np.asarray(probabilities, dtype=float).reshape(-1)
    return float(first[-1] if first.size == 2 else first.max())


# ------------------------------------------------------------------------------------------------ HTTP
def _send_http(
    router_url: str,
    plan: list[tuple[Target, int]],
    tensors: Mapping[str, np.ndarray],
    traffic: Traffic,
    timeout_s: float,
) -> None:
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    address = router_url.removeprefix("http://").rstrip("/")
    client = http.InferenceServerClient(address, connection_timeout=timeout_s, network_timeout=timeout_s)
    outputs = [http.InferRequestedOutput(OUTPUT, binary_data=False)]
    try:
        for target, row in plan:
            inputs = [_http_input(http, name, values[row : row + 1]) for name, values in tensors.items()]
            try:
                result = client.infer(target.model, inputs, model_version=target.version, outputs=outputs)
            except InferenceServerException as error:
                traffic.record(target, _http_status(error), None, error.message())
                continue
            traffic.record(target, 200, prediction_score(result.as_numpy(OUTPUT)[0]), None)
    finally:
        client.close()


def _http_input(http: object, name: str, values: np.ndarray) -> object:
    from tritonclient.utils import np_to_triton_dtype

    tensor = http.InferInput(name, list(values.shape), np_to_triton_dtype(values.dtype))  # type: ignore[attr-defined]
    tensor.set_data_from_numpy(values, binary_data=False)
    return tensor


def _http_status(error: object) -> int:
    status = str(error.status() or "")  # type: ignore[attr-defined]
    return int(status) if status.isdigit() else 599  # no HTTP answer at all (connection failed)


# ------------------------------------------------------------------------------------------------ gRPC
def _send_grpc(
    endpoints: Endpoints,
    plan: list[tuple[Target, int]],
    tensors: Mapping[str, np.ndarray],
    traffic: Traffic,
) -> None:
    """One subprocess sends every planned gRPC request (see grpc_traffic.py for the file contract)."""
    with tempfile.TemporaryDirectory(prefix="grpc-traffic-") as scratch:
        folder = Path(scratch)
        # BYTES tensors as fixed-width text: np.load refuses object arrays without pickle
        saved = {
            name: values.astype(str) if values.dtype == object else values for name, values in tensors.items()
        }
        np.savez(folder / "tensors.npz", **saved)
        requests = [
            {
                "model": target.model,
                "version": target.version,
                "triton_name": None if endpoints.grpc_through_router else target.triton_name,
                "row": row,
                "inputs": list(tensors),
            }
            for target, row in plan
        ]
        (folder / "requests.json").write_text(json.dumps(requests))
        command = [
            sys.executable,
            "-m",
            "inference.canary.grpc_traffic",
            str(endpoints.grpc_address),
            scratch,
        ]
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=GRPC_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"traffic: the gRPC client exited {done.returncode}: {tail}")
        answers = json.loads((folder / "answers.json").read_text())
    for (target, _), answer in zip(plan, answers, strict=True):
        traffic.record(target, answer["code"], answer.get("score"), answer.get("error"))
    traffic.grpc_sent += len(plan)


# ------------------------------------------------------------------------------------------- internals
def _choose(table: RouteTable, model: str) -> Target:
    target = table.choose(model)
    assert target is not None  # the table holds exactly this route
    return target
