"""Child processes of the local monitoring stack (monitoring/local_stack.py): free loopback ports,
readiness checks, and spawning/stopping each process as the leader of its own session."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core import paths


@dataclass
class Process:
    name: str
    argv: list[str]
    log_path: Path
    ready_url: str
    popen: subprocess.Popen[bytes] | None = None


def spawn(process: Process, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with process.log_path.open("ab") as log_file:
        # Own session: stop() signals the whole group, so nothing a process forks outlives it.
        return subprocess.Popen(
            process.argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=paths.REPO_ROOT,
            env=env,
            start_new_session=True,
        )


def signal_group(popen: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group id is the pid: each leads its own session
        os.killpg(popen.pid, signum)
