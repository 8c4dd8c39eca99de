"""Wall time per pipeline step, so a local run can report where its time went.

When `MLOPS_TIMINGS_FILE` is set (the local runner sets it per run), each step appends one JSON line
{"step", "model", "seconds", "peak_rss_mb"}; elsewhere the timing is only printed to the step's log.
`peak_rss_mb` is the step process's peak resident memory (it or any child it waited for), so
`make bench-scale` can tell which step would run out of memory as the data grows. Rows are not recorded
here: each step's outputs (training set lineage, splits) already say how many it handled.
"""

from __future__ import annotations

import json
import resource
import sys
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
        peak = peak_rss_mb()
        print(f"[{step}] {model}: {seconds:.1f} s, peak {peak:.0f} MiB", flush=True)
        if target:
            line = {"step": step, "model": model, "seconds": seconds, "peak_rss_mb": peak}
            with Path(target).open("a") as handle:
                handle.write(json.dumps(line) + "\n")


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its waited-for children (the larger), in MiB.

    Each kfp.local step is its own process, so this is the step's peak, imports included; a step that
    fits in a subprocess (fit_detector in the serving interpreter) is covered by RUSAGE_CHILDREN.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # Linux reports KiB, macOS bytes.
    unit = 1 if sys.platform == "darwin" else 1024
    return round(max(own, children) * unit / 2**20, 1)


def read_timings(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
