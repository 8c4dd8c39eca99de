"""In-process prediction: the runner Triton's `model.py` uses, called directly from `concurrency` threads.

This is the floor every server adds its cost to: no serialization, no network, no batching.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from inference.bench.results import summarize
from inference.python_backend_model import load_chain


def run_inprocess(
    artifacts: list[Path], inputs: dict[str, np.ndarray], concurrency: int, duration_s: float
) -> dict[str, float]:
    """Closed-loop calls from `concurrency` threads for `duration_s` (after a short warm-up)."""
    run = load_chain(artifacts, n_outputs=2, threads=1)
    for _ in range(50):  # first calls allocate XGBoost's predictor caches
        run(inputs)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop_at = time.perf_counter() + duration_s

    def loop(index: int) -> None:
        mine = latencies[index]
        while (began := time.perf_counter()) < stop_at:
            try:
                run(inputs)
            except Exception:  # counted, like a failed request on a server path
                errors[index] += 1
                continue
            mine.append(time.perf_counter() - began)

    began = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return summarize([x for part in latencies for x in part], elapsed, sum(errors))
