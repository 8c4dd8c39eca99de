"""Where the local runtimes listen, for other processes: the serving runtime's `runtime.json` (`RuntimeInfo`;
`$MLOPS_HOME/serving/runtime.json`, or the file `$MLOPS_SERVING_RUNTIME` names) and `make monitor`'s
(`core.paths.monitoring_runtime_file()`). A file is trusted only while the process that wrote it lives;
one left by a process that died without removing it (`kill -9`, a crash) is removed by the first reader
that finds it stale, so no later command is pointed at ports nobody serves."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.paths import state_root
from core.settings import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeInfo:
    """Where a live runtime listens (the content of runtime.json)."""

    router_http_url: str
    router_grpc_address: str | None
    triton_http_url: str
    triton_grpc_address: str
    triton_metrics_url: str
    prometheus_url: str
    repository: str
    isvc_dir: str
    pid: int
    logger_url: str | None = None
    # the shadow comparator's /metrics (the mirror's own process, inference/router/shadow.py)
    shadow_metrics_url: str | None = None
    # model -> {"http", "grpc", "version"} of its KServe transformer (entity ids in), once it is ready
    transformers: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> RuntimeInfo:
        return cls(**json.loads(Path(path).read_text()))


def serving_dir() -> Path:
    return state_root() / "serving"


def runtime_file() -> Path:
    return settings().serving_runtime or serving_dir() / "runtime.json"


def attach(path: Path | None = None) -> RuntimeInfo | None:
    """The live runtime that `path` (default: `runtime_file()`) describes; None when there is none or
    the process that wrote it is gone (the file is then removed)."""
    path = Path(path or runtime_file())
    try:
        text = path.read_text()
        info = RuntimeInfo(**json.loads(text))
    except (OSError, ValueError, TypeError):
        return None
    if pid_alive(info.pid):
        return info
    remove_if_unchanged(path, text)
    return None


def monitoring_logger_url(path: Path | None = None) -> str | None:
    """The drift service's URL from a live `make monitor`'s runtime file (default:
    `core.paths.monitoring_runtime_file()`), for the router's payload logger; None when none is live
    (a stale file is removed)."""
    from core.paths import monitoring_runtime_file

    path = Path(path or monitoring_runtime_file())
    try:
        text = path.read_text()
        info = json.loads(text)
        if pid_alive(int(info["pid"])):
            return f"{info['drift_url'].rstrip('/')}/"
    except (OSError, ValueError, TypeError, KeyError):
        return None
    remove_if_unchanged(path, text)
    return None


def require_runtime() -> RuntimeInfo:
    info = attach()
    if info is None:
        raise LookupError(
            f"serving: no live local runtime at {runtime_file()}; start one (python -m inference.serve) "
            "or run through python -m pipelines.local_run"
        )
    return info


def remove_if_unchanged(path: Path, stale_text: str) -> None:
    """Remove `path` if it still holds `stale_text`: a runtime starting meanwhile has written its own."""
    try:
        if path.read_text() == stale_text:
            path.unlink()
            log.info("removed %s: the process that wrote it is gone", path)
    except OSError:  # gone already, or not ours to remove: either way nothing points at the dead one
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
