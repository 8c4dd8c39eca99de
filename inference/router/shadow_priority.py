"""Local mode only: the shadow's Triton model instances get the lowest CPU priority, the stand-in for the
shadow InferenceService's own pods on a cluster.

Why: on one machine the shadow's inference runs on the cores the live path needs. Measured with `make bench`'s
shadow rows on 2 cores (docs/measured.md, "Shadow rollout"): a shadow at normal priority raised the live HTTP
p99 from 3.98 to 7.26 ms at 1 client and from 9.52 to 18.74 ms at 8; at the lowest priority it costs less,
but not nothing (the two share the cores' caches), while the shadow still compares thousands of copies.

How: Triton's Python backend runs each model instance in a `triton_python_backend_stub` process whose command
line names the model file (`.../<model>__v<version>/<n>/model.py`); every thread (task) of such a process
owned by this user is set to nice 19 and to the SCHED_IDLE policy (sched(7): run only when nothing else wants
the core, and a waking normal task preempts it at once; nice 19 alone still gets a CFS share and runs out its
slice). The mirror's own process sets the same for itself (`lowest_priority`).

Placement (`--shadow-cpus`, optional): the mirror's process, and with it the shadow's own Triton it starts,
run only on the CPUs named (sched_setaffinity, inherited by every thread and child started after it); the
bench then keeps the live path off them (`python -m inference.bench --shadow-cpus`), the closest one machine
comes to the shadow's pods running on other nodes.

Best effort and silent: a Triton on another machine, another user's processes or a native backend (the
cluster's) leave nothing to lower, and the shadow then simply competes. Re-checked every RECHECK_S, so a
Triton restarted by the supervisor is lowered again.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

LOWEST = 19
RECHECK_S = 30.0
STUB = b"triton_python_backend_stub"
PROC = Path("/proc")


class ShadowPriority:
    """`lower(triton_name)` is cheap when called again within RECHECK_S (the mirror calls it per copy)."""

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self._checked: dict[str, float] = {}

    def lower(self, triton_name: str) -> int:
        """Set the shadow model's stub threads to the lowest priority; how many threads were set."""
        now = time.monotonic()
        if now - self._checked.get(triton_name, -RECHECK_S) < RECHECK_S:
            return 0
        self._checked[triton_name] = now
        return sum(_lower_tasks(self.proc / str(pid)) for pid in stub_pids(triton_name, self.proc))


def stub_pids(triton_name: str, proc: Path = PROC) -> list[int]:
    """This user's Python backend stubs serving `triton_name`."""
    marker, uid, found = f"/{triton_name}/".encode(), os.getuid(), []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # processes end while the folder is read
            if entry.stat().st_uid != uid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(STUB) and any(marker in arg for arg in argv[1:]):
                found.append(int(entry.name))
    return found


def lowest_priority(task: int = 0) -> None:
    """nice 19 and SCHED_IDLE for one thread (0: the calling one; threads it starts inherit both)."""
    os.setpriority(os.PRIO_PROCESS, task, LOWEST)
    with contextlib.suppress(OSError, AttributeError):  # SCHED_IDLE is Linux's: nice 19 must do elsewhere
        os.sched_setscheduler(task, os.SCHED_IDLE, os.sched_param(0))


def parse_cpus(text: str) -> frozenset[int]:
    """CPU numbers like "1" or "2,3" (raises ValueError with one line): each an online CPU of this
    machine, not all of them (the live path needs one)."""
    try:
        cpus = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"CPUs {text!r}: expected numbers like 1 or 2,3") from None
    online = set(range(os.cpu_count() or 1))
    if not cpus or not cpus <= online or cpus == online:
        raise ValueError(f"CPUs {text!r}: expected some, not all, of this machine's {sorted(online)}")
    return cpus


def format_cpus(cpus: frozenset[int]) -> str:
    """The command-line form `parse_cpus` reads back: "1" or "2,3"."""
    return ",".join(map(str, sorted(cpus)))


def pin_to(cpus: frozenset[int]) -> None:
    """Run the calling thread (and the threads and processes it starts from now on) on `cpus` only."""
    os.sched_setaffinity(0, cpus)


def pin_tree(pid: int, cpus: frozenset[int], proc: Path = PROC) -> int:
    """Move every thread of a running process and of its descendants to `cpus` (affinity is per thread on
    Linux, and only what starts afterwards inherits it); how many threads were moved."""
    moved, pending = 0, [pid]
    while pending:
        for task in (proc / str(pending.pop()) / "task").glob("*"):
            with contextlib.suppress(OSError, ValueError):  # threads and children come and go
                os.sched_setaffinity(int(task.name), cpus)
                moved += 1
                pending += [int(child) for child in (task / "children").read_text().split()]
    return moved


def _lower_tasks(process: Path) -> int:
    # setpriority and sched_setscheduler set one thread on Linux: each of the process's threads is set
    lowered = 0
    for task in (process / "task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            lowest_priority(int(task.name))
            lowered += 1
    return lowered
