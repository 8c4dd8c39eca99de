"""Run one command as a subprocess and measure it: wall time, exit status, and the peak resident memory
of its whole process tree (the sum over the process and every descendant, sampled). The sum is what the
machine must hold at once, which is what "runs out of memory" is about; a per-step peak comes from the
steps themselves (core/timing.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_S = 0.25
# SIGINT first, so local_run's context managers stop the serving runtime it started; then SIGKILL.
INTERRUPT_GRACE_S = 20


@dataclass(frozen=True)
class Measured:
    returncode: int
    seconds: float
    peak_tree_mb: float
    timed_out: bool


def tree_rss_mb(root: psutil.Process) -> tuple[float, list[psutil.Process]]:
    """RSS of `root` and its descendants in MiB, and the descendants (gone processes count zero)."""
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, []
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20, processes[1:]


def run_measured(
    command: list[str], env: dict[str, str], log_path: Path, timeout_s: float | None = None
) -> Measured:
    """Run `command` with `env`, its output to `log_path`; stop it (and its tree) after `timeout_s`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        # Its own session: a timeout can signal the whole group without touching this process.
        child = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = _Sampler(child.pid)
        sampler.start()
        try:
            returncode = child.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            _stop_tree(child, sampler.descendants)
            returncode, timed_out = child.wait(), True
        finally:
            sampler.stop()
    return Measured(returncode, time.perf_counter() - started, round(sampler.peak_mb, 1), timed_out)


class _Sampler(threading.Thread):
    """Polls the tree's RSS until stopped; remembers the peak and the last descendants seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_mb = 0.0
        self.descendants: list[psutil.Process] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            rss, descendants = tree_rss_mb(self.root)
            self.peak_mb = max(self.peak_mb, rss)
            if descendants:
                self.descendants = descendants
            self._done.wait(SAMPLE_S)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _stop_tree(child: subprocess.Popen, seen: list[psutil.Process]) -> None:
    """Interrupt the command's process group, then kill what is left of the tree (servers a step started
    in a session of their own included: they were seen as descendants)."""
    try:
        descendants = [*seen, *psutil.Process(child.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        descendants = list(seen)
    try:
        os.killpg(child.pid, signal.SIGINT)
        child.wait(timeout=INTERRUPT_GRACE_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    for process in [psutil.Process(child.pid) if child.poll() is None else None, *descendants]:
        if process is None:
            continue
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
