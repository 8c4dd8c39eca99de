"""The local serving runtime: one Triton and the canary router, shared by every local serving step.

    with LocalServingRuntime() as runtime:          # or runtime.start() ... runtime.stop()
        info = runtime.info                         # RuntimeInfo: the addresses below
    info = attach()                                 # from another process: the live runtime, or None

What runs (all on loopback, free ports):
- Triton (`inference.triton_local`) with `--model-control-mode=explicit` over
  `$MLOPS_HOME/serving/repository/`: it loads what is staged there at start; later versions are staged
  with `stage_version` (copy + Triton's repository API `load`) and dropped with `retire_version`.
- the REST router (`inference.router`) over every `$MLOPS_HOME/serving/isvc/**/*.yaml` (FileApplier's
  layout); its watcher also picks up files created after the start;
- Prometheus (`inference.local_prometheus`) scraping that Triton as the cluster's Prometheus scrapes
  predictor pods, with the committed rules: the canary analysis reads its series;
- the router's OIP gRPC server when `inference.router.grpc_app.GrpcRouter` exists (else None: gRPC
  clients use Triton's gRPC port with Triton's `<model>__v<version>` names);
- with `logger_url`, KServe-logger CloudEvents to that URL (the drift service);
- with `transformers=True` (`make serve`), KServe's transformer for each InferenceService that has one
  (`inference.local_transformers`): entity ids in, Feast features, the router as its predictor.

`$MLOPS_HOME/serving/runtime.json` (`RuntimeInfo`, or the file `$MLOPS_SERVING_RUNTIME` names) says where
it all listens while it runs (`inference/runtime_file.py`); `stop()` removes it. `attach()` trusts it only
while its pid is alive.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from core.paths import logs_dir, write_text_atomically
from core.ports import HOST
from inference.local_prometheus import LocalPrometheus, triton_scrape_job
from inference.local_transformers import Endpoint, LocalTransformers
from inference.router.app import RouterSettings, create_app, triton_readiness
from inference.router.isvc import VERSION_SEPARATOR, triton_model_name
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, RouteTable, stage_model_version
from inference.router.shadow import ShadowMirror
from inference.runtime_file import RuntimeInfo, attach, runtime_file, serving_dir
from inference.triton_local import Ports, TritonError, TritonLocal, repository_call
from inference.triton_supervisor import TritonSupervisor

ROUTER_START_TIMEOUT_S = 30.0
WATCH_INTERVAL_S = 0.2


class ServingRuntimeError(RuntimeError):
    """The runtime could not start, or Triton refused a load/unload (the message names what and where)."""


class LocalServingRuntime:
    """Triton (explicit model control) + router (+ gRPC router) over `$MLOPS_HOME/serving/`."""

    def __init__(
        self,
        logger_url: str | None = None,
        router_port: int | None = None,
        seed: int | None = 0,
        transformers: bool = False,
    ) -> None:
        self.logger_url = logger_url
        self.with_transformers = transformers
        self.transformers: LocalTransformers | None = None
        self._publish_lock = threading.Lock()
        self.router_port = router_port
        self.seed = seed
        self.root = serving_dir()
        self.repository = self.root / "repository"
        self.isvc_dir = self.root / "isvc"
        self.triton = TritonLocal(log_path=logs_dir() / "triton-runtime.log", model_control_mode="explicit")
        self.prometheus = LocalPrometheus(self.root / "prometheus", logs_dir() / "prometheus-runtime.log")
        self.table = RouteTable(seed=seed)
        self.settings: RouterSettings | None = None
        self.info: RuntimeInfo | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._grpc: Any = None
        self.supervisor = TritonSupervisor(self.triton, self.repository)

    def start(self) -> RuntimeInfo:
        """Start everything and write runtime.json; on any failure what started is stopped again."""
        for folder in (self.repository, self.isvc_dir):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            self.triton.start(self.repository)
            self.supervisor.start()
            prometheus_url = self.prometheus.start([triton_scrape_job(self.triton.metrics_address)])
            self.settings = self._router_settings()
            router_url = self._start_router(self.settings)
            grpc_address = self._start_grpc_router(self.settings)
            self.info = RuntimeInfo(
                router_http_url=router_url,
                router_grpc_address=grpc_address,
                triton_http_url=self.triton.http_url,
                triton_grpc_address=self.triton.grpc_address,
                triton_metrics_url=self.triton.metrics_url,
                prometheus_url=prometheus_url,
                repository=str(self.repository),
                isvc_dir=str(self.isvc_dir),
                pid=os.getpid(),
                logger_url=self.logger_url,
                shadow_metrics_url=self.settings.shadow.metrics_url if self.settings.shadow else None,
            )
            write_text_atomically(runtime_file(), json.dumps(asdict(self.info), indent=2))
            if self.with_transformers:
                host = router_url.removeprefix("http://")
                self.transformers = LocalTransformers(
                    self.isvc_dir, host, on_change=self._publish_transformers
                )
                self.transformers.start()
        except BaseException:
            self.stop()
            raise
        return self.info

    def stop(self) -> None:
        """Routers first (no new request reaches a stopping Triton), then Triton; runtime.json goes."""
        if self.info is not None and attach() == self.info:
            runtime_file().unlink(missing_ok=True)
        self.info = None
        if self.transformers is not None:  # before the router: their predictor
            self.transformers.stop()
            self.transformers = None
        if self._grpc is not None:
            with contextlib.suppress(Exception):
                self._grpc.stop()
            self._grpc = None
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
        self.prometheus.stop()
        self.supervisor.stop()  # before Triton: its own stop is not a crash to restart
        self.triton.stop()

    def __enter__(self) -> LocalServingRuntime:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------- internals
    def _publish_transformers(self, endpoints: dict[str, Endpoint]) -> None:
        with self._publish_lock:
            if self.info is None:
                return
            self.info = replace(self.info, transformers={m: asdict(e) for m, e in endpoints.items()})
            write_text_atomically(runtime_file(), json.dumps(asdict(self.info), indent=2))

    def _router_settings(self) -> RouterSettings:
        metrics = RouterMetrics()
        watcher = FolderIsvcWatcher(
            self.isvc_dir, self.table, triton_readiness(self.triton.http_url), WATCH_INTERVAL_S
        )
        watcher.check_once()
        return RouterSettings(
            table=self.table,
            triton_url=self.triton.http_url,
            metrics=metrics,
            event_logger=EventLogger(self.logger_url, metrics) if self.logger_url else None,
            watcher=watcher,
            # idle until an InferenceService names a shadow version (inference/router/shadow.py)
            # a shadow runs on a Triton of its own, the stand-in for its own pods (router/shadow_triton.py)
            shadow=ShadowMirror(self.triton.http_url, metrics, repository=self.repository),
        )

    def _start_router(self, settings: RouterSettings) -> str:
        port = self.router_port or Ports.free().http
        config = uvicorn.Config(create_app(settings), host=HOST, port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="runtime-router", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + ROUTER_START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServingRuntimeError(f"serving runtime: the router did not start on {HOST}:{port}")
            time.sleep(0.05)
        return f"http://{HOST}:{port}"

    def _start_grpc_router(self, settings: RouterSettings) -> str | None:
        try:
            grpc_app = importlib.import_module("inference.router.grpc_app")
        except ImportError:  # the gRPC router is optional: clients then use Triton's gRPC port
            return None
        self._grpc = grpc_app.GrpcRouter(settings, self.triton.grpc_address, host=HOST, port=0)
        self._grpc.start()
        return str(self._grpc.address)


class FolderIsvcWatcher(IsvcWatcher):
    """The router's watcher over every InferenceService file under a folder, new files included.

    Each file is checked on its own, so one file naming a version Triton does not serve (yet) does not
    hold back the other models' routes. Files of other kinds only (a shadow rollout's HTTPRoute and Triggers
    written by `python -m inference.deploy shadow --out`) are left alone.
    """

    skip_other_kinds = True

    def __init__(self, folder: Path, table: RouteTable, is_servable: Any, interval_s: float) -> None:
        super().__init__([], table, is_servable, interval_s)
        self.folder = Path(folder)

    def check_once(self) -> bool:
        swapped = False
        for path in sorted(self.folder.rglob("*.yaml")):
            if path.name.startswith("."):  # FileApplier's partial writes
                continue
            self.paths = [path]
            swapped = super().check_once() or swapped
        return swapped


# ------------------------------------------------------------------ Triton's repository (any process)
def stage_version(
    info: RuntimeInfo,
    model_dir: Path,
    model: str,
    version: str,
    before_load: Callable[[Path], object] | None = None,
) -> str:
    """Copy an exported `local/<model>/` folder into the runtime's repository as `<model>__v<version>`
    (`before_load` may change the copy, e.g. make a demo canary bad) and have Triton load it; returns
    Triton's model name. Loading a loaded model reloads it."""
    staged = stage_model_version(model_dir, Path(info.repository), model, version)
    if before_load is not None:
        before_load(staged)
    _repository_call(info, "load", staged.name)
    return staged.name


def retire_version(info: RuntimeInfo, model: str, version: str) -> None:
    """Unload `<model>__v<version>` from Triton and remove it from the repository (gone already: fine)."""
    name = triton_model_name(model, version)
    _repository_call(info, "unload", name)
    shutil.rmtree(Path(info.repository) / name, ignore_errors=True)


def staged_versions(info: RuntimeInfo, model: str) -> list[str]:
    """The versions of `model` staged in the runtime's repository."""
    prefix = f"{model}{VERSION_SEPARATOR}"
    return sorted(p.name.removeprefix(prefix) for p in Path(info.repository).glob(f"{prefix}*"))


def _repository_call(info: RuntimeInfo, action: str, name: str) -> None:
    try:
        repository_call(info.triton_http_url, action, name)
    except TritonError as error:
        raise ServingRuntimeError(f"serving: {error}") from None
