"""The local router over OIP gRPC (`inference.GRPCInferenceService`, wire-compatible with Triton's).

Same semantics as the REST router (app.py): the same RouteTable (canary drawn per request, a request's
`model_version` pins that registry version), forwarded to Triton's gRPC endpoint as `<name>__v<version>`
and answered with the public `model_name` and the registry `model_version`; the same RouterMetrics (the
`code` label is the gRPC status name: "OK", "INVALID_ARGUMENT", ...) and the same CloudEvents, whose
bodies are the OIP JSON of the request and response (converted in the logger's thread).

Status codes: unknown model or version -> NOT_FOUND; Triton's own INVALID_ARGUMENT (wrong shape,
datatype) passes through; a message over `max_body_bytes` -> RESOURCE_EXHAUSTED (gRPC refuses it before
any handler runs, so it is not in the per-model metrics); Triton unreachable, or not serving a routed
version -> UNAVAILABLE. Repository load/unload is not offered (UNIMPLEMENTED).

This module is the server's lifecycle; the OIP methods themselves are in `grpc_servicer.py`.

    router = GrpcRouter(settings, triton.grpc_address)
    port = router.start()          # own event loop in a daemon thread
    ...
    router.stop()
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from inference.router.app import RouterSettings, start_background_workers, stop_background_workers
from inference.router.grpc_servicer import Servicer, service_handler

STARTUP_TIMEOUT_S = 30.0
_UNLIMITED = -1


class GrpcRouterError(RuntimeError):
    """The gRPC router could not start (the message names the address and the reason)."""


class GrpcRouter:
    """An OIP gRPC server on `host:port` (0 = any free port) in front of Triton's gRPC endpoint."""

    def __init__(
        self, settings: RouterSettings, triton_grpc_address: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.settings = settings
        self.triton_grpc_address = triton_grpc_address.removeprefix("grpc://")
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: grpc.aio.Server | None = None
        self._stopped: asyncio.Event | None = None
        self._workers: list[Any] = []

    @property
    def address(self) -> str:
        """host:port, as tritonclient's gRPC InferenceServerClient takes it."""
        return f"{self.host}:{self.port}"

    def start(self) -> int:
        """Bind, start serving in a daemon thread and return the bound port."""
        if self._thread is not None:
            raise RuntimeError(f"gRPC router already serving on {self.address}")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # surfaced to start()'s caller below
                failure.append(exc)
                ready.set()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="grpc-router", daemon=True)
        self._thread.start()
        if not ready.wait(STARTUP_TIMEOUT_S) or failure:
            self._thread = None
            reason = str(failure[0]) if failure else f"not serving after {STARTUP_TIMEOUT_S:.0f} s"
            raise GrpcRouterError(f"gRPC router could not serve on {self.address}: {reason}")
        self._workers = start_background_workers(self.settings)
        return self.port

    def stop(self, grace_s: float = 2.0) -> None:
        """Finish in-flight calls (up to `grace_s`), close the server and what it started."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._shutdown(grace_s), self._loop)
        thread.join(timeout=grace_s + 5)
        stop_background_workers(self._workers)
        self._workers = []

    async def _serve(self, ready: threading.Event) -> None:
        max_body = self.settings.max_body_bytes
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_body),
                ("grpc.max_send_message_length", _UNLIMITED),
                # gRPC's default SO_REUSEPORT would let a second router share a taken port silently
                ("grpc.so_reuseport", 0),
            ]
        )
        channel = grpc.aio.insecure_channel(
            self.triton_grpc_address,
            options=[
                ("grpc.max_receive_message_length", _UNLIMITED),
                ("grpc.max_send_message_length", _UNLIMITED),
            ],
        )
        servicer = Servicer(self.settings, pb_grpc.GRPCInferenceServiceStub(channel))
        self._server.add_generic_rpc_handlers((service_handler(servicer),))
        bound = self._server.add_insecure_port(f"{self.host}:{self.port}")
        if bound == 0:  # older grpc releases report a failed bind this way instead of raising
            raise GrpcRouterError("the port is not free")
        self.port = bound
        self._stopped = asyncio.Event()
        await self._server.start()
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            await channel.close()

    async def _shutdown(self, grace_s: float) -> None:
        assert self._server is not None and self._stopped is not None
        await self._server.stop(grace_s)
        self._stopped.set()
