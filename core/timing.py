"""Wall time per pipeline step, so a local run can report where its time went.

When `MLOPS_TIMINGS_FILE` is set (the local runner sets it per run), each step appends one JSON line
{"step", "model", "seconds"}; elsewhere the timing is only printed to the step's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.settings import settings


@contextmanager
def timed_step(step: str, model: str) -> Iterator[None]:
    """Time a pipeline step. Its settings are read first, so a bad environment variable fails the step in
    its first second with one line naming the variable, not halfway through."""
    target = settings().timings_file
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = round(time.perf_counter() - started, 2)
        print(f"[{step}] {model}: {seconds:.1f} s", flush=True)
        if target:
            with Path(target).open("a") as handle:
                handle.write(json.dumps({"step": step, "model": model, "seconds": seconds}) + "\n")


def read_timings(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
