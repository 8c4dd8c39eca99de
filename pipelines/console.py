"""Keep a local pipeline run readable: everything kfp.local and the steps print goes to a log file, and
only the steps' own progress lines (and failures) reach the terminal."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_PROGRESS = re.compile(
    r"^\s*(\[(load_features|validate_data|train|fit_detector|evaluate|gate|export_triton|register"
    r"|deploy_canary|analyze_canary|promote_or_rollback)\] "
    r"|\[train [a-z0-9-]+\] |training set for |validation passed |trained |gate (PASSED|FAILED) |exported "
    r"|registered |validate_data: |[A-Za-z]*Error: |.*Task '[a-z0-9-]+' finished with status FAILURE)"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_progress(line: str) -> bool:
    return bool(_PROGRESS.match(_ANSI.sub("", line)))


@contextmanager
def progress_only(log_path: Path) -> Iterator[None]:
    """Redirect this process's stdout and stderr (file descriptors, so subprocesses follow) into
    `log_path`, echoing progress lines to the original terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    read_end, write_end = os.pipe()
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    reader = threading.Thread(target=_pump, args=(read_end, log_path, terminal), daemon=True)
    reader.start()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        reader.join(timeout=30)
        for fd in saved:
            os.close(fd)
        terminal.close()


def _pump(read_end: int, log_path: Path, terminal) -> None:
    with os.fdopen(read_end, "r", errors="replace") as source, log_path.open("a") as log:
        for line in source:
            log.write(line)
            if is_progress(line):
                terminal.write("  " + _ANSI.sub("", line).strip() + "\n")
