"""KServe's transformer, run locally the way KServe runs it: one `python -m inference.transformer` process per
InferenceService that has a `spec.transformer`, so a local client sends entity ids (`customer_id`), not the
encoded tensor, exactly as on a cluster.

What each process gets is read from the InferenceService file deploy wrote (`FileApplier`'s folder), not
decided here: the container's arguments. The transformer holds no model version's files (each version
preprocesses inside its model), so nothing is downloaded and a canary or a promotion, which change only the
predictor, leave it running. What KServe appends on a cluster (`--model_name`, `--predictor_host`,
`--http_port`; inference/transformer/__main__.py) comes from the local runtime: the InferenceService's name,
the router (the predictor's Knative split locally) and ports kept per model across revisions. The cluster's
Feast config (`--feature-store-yaml` pointing at Redis) is replaced by the local one, the only local
deviation.

A changed transformer spec replaces the process, as Knative rolls out a new revision; a process that dies
is started again. Unlike Knative, the old process stops before the new one starts on the same ports, so
requests sent during such a swap (seconds) fail (docs/limits.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from core.paths import REPO_ROOT, logs_dir
from core.ports import HOST, free_ports

log = logging.getLogger(__name__)

# Cluster-only arguments the local process gets its own value for (the local Feast config).
CLUSTER_ONLY_FLAGS = ("--feature-repo=", "--feature-store-yaml=")
RESTART_BACKOFF_S = 5.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Revision:
    """What KServe would run as an InferenceService's transformer."""

    model: str
    args: tuple[str, ...]
    """The container's arguments, less the cluster-only ones (CLUSTER_ONLY_FLAGS)."""


@dataclass(frozen=True)
class Endpoint:
    http: str  # http://host:port (OIP REST)
    grpc: str  # host:port (OIP gRPC)


def transformer_revision(document: dict[str, Any]) -> Revision | None:
    """The transformer revision an InferenceService asks for; None when it has no transformer."""
    transformer = (document.get("spec") or {}).get("transformer")
    if not transformer:
        return None
    name = document["metadata"]["name"]
    (container,) = transformer["containers"]
    args = container.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError(f"InferenceService {name}: its transformer's args must be a list of strings")
    return Revision(name, tuple(a for a in args if not a.startswith(CLUSTER_ONLY_FLAGS)))


@dataclass
class _Process:
    revision: Revision
    ports: tuple[int, int]
    process: subprocess.Popen
    started: float


class LocalTransformers:
    """Keeps one transformer process per InferenceService file (under `isvc_dir`) that has a transformer.

    `on_change` gets the endpoints whenever the set of ready transformers changes (the runtime publishes
    them in runtime.json)."""

    def __init__(
        self,
        isvc_dir: Path,
        predictor_host: str,
        on_change: Callable[[dict[str, Endpoint]], None] = lambda _: None,
        interval_s: float = 0.5,
    ) -> None:
        self.isvc_dir, self.predictor_host = Path(isvc_dir), predictor_host
        self.on_change, self.interval_s = on_change, interval_s
        self.restarts: dict[str, int] = {}
        self._running: dict[str, _Process] = {}
        self._ports: dict[str, tuple[int, int]] = {}
        self._ready: dict[str, Endpoint] = {}
        self._failed: dict[str, float] = {}  # model -> when its last start failed (e.g. the download)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-transformers", daemon=True)

    # ------------------------------------------------------------------------------------------ public
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_TIMEOUT_S + 5)
        for model in list(self._running):
            self._terminate(model)

    def endpoints(self) -> dict[str, Endpoint]:
        """The ready transformers by model."""
        with self._lock:
            return dict(self._ready)

    def wait_ready(self, models: list[str], timeout_s: float) -> dict[str, Endpoint]:
        """Until every model in `models` that has a transformer is ready, or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            wanted = {model for model in models if model in self._running}
            ready = self.endpoints()
            if wanted <= set(ready):
                return ready
            time.sleep(0.2)
        return self.endpoints()

    # ---------------------------------------------------------------------------------------- the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:  # one bad file or failed download must not end the watch
                log.exception("local transformers: check failed")
            self._stop.wait(self.interval_s)

    def check_once(self) -> None:
        wanted = self._wanted()
        for model in set(self._running) - set(wanted):
            self._terminate(model)
        for model, revision in wanted.items():
            current = self._running.get(model)
            if current is not None and current.revision == revision and current.process.poll() is None:
                continue
            if current is not None and current.process.poll() is not None and current.revision == revision:
                if time.monotonic() - current.started < RESTART_BACKOFF_S:
                    continue
                self.restarts[model] = self.restarts.get(model, 0) + 1
                log.warning(
                    "transformer of %s exited (%s): starting it again", model, current.process.returncode
                )
            failed_at = self._failed.get(model)
            if failed_at is not None and time.monotonic() - failed_at < RESTART_BACKOFF_S:
                continue
            try:
                self._replace(model, revision)
            except Exception:  # the process cannot start: try again later
                self._failed[model] = time.monotonic()
                log.exception("transformer of %s: cannot start", model)
        self._refresh_ready()

    def _wanted(self) -> dict[str, Revision]:
        wanted: dict[str, Revision] = {}
        for path in sorted(self.isvc_dir.rglob("*.yaml")):
            if path.name.startswith("."):  # FileApplier's partial writes
                continue
            try:
                revision = transformer_revision(yaml.safe_load(path.read_text()) or {})
            except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError, ValueError) as error:
                log.error("local transformers: %s: %s", path, error)
                continue
            if revision is not None:
                wanted[revision.model] = revision
        return wanted

    def _replace(self, model: str, revision: Revision) -> None:
        self._terminate(model)
        if model not in self._ports:  # kept across revisions: the published URL stays the same
            http, grpc = free_ports(2)
            self._ports[model] = (http, grpc)
        ports = self._ports[model]
        command = [
            sys.executable, "-m", "inference.transformer", "--model-name", model,
            "--predictor-host", self.predictor_host, "--protocol", "v2",
            *revision.args, "--feature-repo", str(REPO_ROOT / "feature_repo"),
            "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
        ]  # fmt: skip
        log_path = logs_dir() / f"transformer-{model}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as sink:
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._running[model] = _Process(revision, ports, process, time.monotonic())
        log.info("transformer of %s starting on %s:%d (log %s)", model, HOST, ports[0], log_path)

    def _terminate(self, model: str) -> None:
        running = self._running.pop(model, None)
        with self._lock:
            self._ready.pop(model, None)
        if running is None or running.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signal.SIGTERM)
        try:
            running.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait()

    def _refresh_ready(self) -> None:
        ready = {}
        for model, running in self._running.items():
            if running.process.poll() is None and _answers(
                f"http://{HOST}:{running.ports[0]}/v2/models/{model}/ready"
            ):
                ready[model] = Endpoint(f"http://{HOST}:{running.ports[0]}", f"{HOST}:{running.ports[1]}")
        with self._lock:
            changed, self._ready = ready != self._ready, ready
        if changed:
            self.on_change(ready)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
