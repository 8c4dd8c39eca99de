"""Demo traffic through the router, split like the InferenceService splits it, encoded per version.

Each version's bundle carries its own feature encoder (fitted medians, scales, categories), so a request
must be encoded for the version that answers it. In the cluster the KServe transformer does that server
side; locally the client does it: each request draws its target with the router's own seeded split
(`RouteTable.choose` over the same route, so the share is still `canaryTrafficPercent`), is encoded with
that version's encoder and is sent pinned to `/v2/models/{model}/versions/{version}/infer`. The router
counts a pinned request under the version's role, so its metrics match a drawn request's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from inference.router.routing import Route, RouteTable

Encoder = Callable[[pd.DataFrame], Mapping[str, np.ndarray]]
"""Raw rows -> the Triton input tensors (a bundle predictor's `.encode`)."""
_DATATYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "bool": "BOOL"}


@dataclass
class Traffic:
    """What the load generator saw: answers by (role, HTTP status) and prediction scores by role."""

    codes: Counter[tuple[str, int]] = field(default_factory=Counter)
    scores: dict[str, list[float]] = field(default_factory=lambda: {"stable": [], "canary": []})
    first_error: str | None = None

    @property
    def failed(self) -> int:
        return sum(n for (_, code), n in self.codes.items() if code != 200)

    @property
    def sent(self) -> int:
        return sum(self.codes.values())


def send_traffic(
    router_url: str,
    route: Route,
    encoders: Mapping[str, Encoder],
    rows: pd.DataFrame,
    requests: int,
    seed: int = 0,
    timeout_s: float = 30.0,
) -> Traffic:
    """Send `requests` one-row requests for `route.model`; `encoders` maps each served version to its
    encoder. Rows are drawn with replacement from `rows`."""
    if rows.empty:
        raise ValueError(f"traffic: {route.model}: no input rows to send")
    table = RouteTable([route], seed=seed)
    encoded = {t.version: _encode(encoders, t.version, route.model, rows) for t in route.targets}
    pick = np.random.default_rng(seed)
    traffic = Traffic()
    with httpx.Client(base_url=router_url, timeout=timeout_s) as client:
        for number in range(requests):
            target = table.choose(route.model)
            assert target is not None  # the table holds exactly this route
            row = int(pick.integers(len(rows)))
            body = {"id": str(number), "inputs": _tensors(encoded[target.version], row)}
            answer = client.post(f"/v2/models/{route.model}/versions/{target.version}/infer", json=body)
            traffic.codes[(target.role, answer.status_code)] += 1
            if answer.status_code == 200:
                traffic.scores[target.role].append(prediction_score(answer.json()))
            elif traffic.first_error is None:
                traffic.first_error = f"{answer.status_code} from v{target.version}: {answer.text[:200]}"
    return traffic


def prediction_score(answer: Mapping) -> float:
    """The score the shift check compares: P(positive class) for two classes, else the top probability."""
    output = answer["outputs"][0]
    probabilities = np.asarray(output["data"], dtype=float).reshape(output["shape"])[0]
    return float(probabilities[-1] if probabilities.size == 2 else probabilities.max())


def _encode(encoders: Mapping[str, Encoder], version: str, model: str, rows: pd.DataFrame) -> dict:
    if version not in encoders:
        raise KeyError(f"traffic: {model}: no encoder for served version {version}")
    return {name: np.asarray(values) for name, values in encoders[version](rows).items()}


def _tensors(encoded: Mapping[str, np.ndarray], row: int) -> list[dict]:
    tensors = []
    for name, values in encoded.items():
        one = values[row : row + 1]
        datatype = _DATATYPES.get(one.dtype.name, "BYTES")
        data = one.ravel().tolist() if datatype != "BYTES" else [str(v) for v in one.ravel()]
        tensors.append({"name": name, "shape": list(one.shape), "datatype": datatype, "data": data})
    return tensors
