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

    router = GrpcRouter(settings, triton.grpc_address)
    port = router.start()          # own event loop in a daemon thread
    ...
    router.stop()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from inference.router.app import (
    RouterSettings,
    resolve_target,
    start_background_workers,
    stop_background_workers,
)
from inference.router.oip_proto import request_json, response_json
from inference.router.routing import Target
from inference.router.upstream import RouterFailure

SERVICE = "inference.GRPCInferenceService"
STARTUP_TIMEOUT_S = 30.0
_UNLIMITED = -1
# Triton codes that mean "this routed version is not there": the router's fault, not the client's
_NOT_SERVED = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)


_METHODS = {  # repository load/unload are left out: clients get UNIMPLEMENTED
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}


class GrpcRouterError(RuntimeError):
    """The gRPC router could not start (the message names the address and the reason)."""


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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
        servicer = _Servicer(self.settings, pb_grpc.GRPCInferenceServiceStub(channel))
        self._server.add_generic_rpc_handlers((_service_handler(servicer),))
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


class _Malformed:
    """A request whose bytes are not its message: answered INVALID_ARGUMENT (gRPC's own would be INTERNAL)."""

    def __init__(self, error: str) -> None:
        self.error = error


def _lenient(message: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except DecodeError as exc:
            return _Malformed(f"request is not a valid {message.DESCRIPTOR.name}: {exc}")

    return parse


def _service_handler(servicer: _Servicer) -> grpc.GenericRpcHandler:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=_lenient(request),
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in _METHODS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class _Servicer:
    def __init__(self, settings: RouterSettings, triton: pb_grpc.GRPCInferenceServiceStub) -> None:
        self.settings = settings
        self.triton = triton
        self.timeout_s = settings.upstream_timeout_s

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        targets = [t for route in self.settings.table.routes.values() for t in route.targets]
        try:
            ready = (await self._call("ServerReady", pb.ServerReadyRequest())).ready
            ready = ready and all([await self._target_ready(t) for t in targets])
        except _Abort:
            ready = False
        return pb.ServerReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._guarded(context, self._call("ServerMetadata", pb.ServerMetadataRequest()))

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def ready() -> Any:
            _require_parsed(request)
            targets = self._targets(request.name, request.version)
            return pb.ModelReadyResponse(ready=all([await self._target_ready(t) for t in targets]))

        return await self._guarded(context, ready())

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def metadata() -> Any:
            _require_parsed(request)
            target = self._resolve(request.name, request.version, draw=False)
            answer = await self._call("ModelMetadata", pb.ModelMetadataRequest(name=target.triton_name))
            answer.name = request.name
            del answer.versions[:]
            answer.versions.extend(t.version for t in self._targets(request.name, request.version))
            return answer

        return await self._guarded(context, metadata())

    def _observe(self, target: Target, code: grpc.StatusCode, started: float) -> None:
        self.settings.metrics.observe(
            target.model, target.version, target.role, code.name, time.perf_counter() - started
        )

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        target = await self._guarded(context, self._resolve_async(request))
        started = time.perf_counter()
        # Observed before the client hears the outcome: `context.abort` sends the status at once, so
        # metrics recorded after it could be read without this request.
        try:
            request.model_name, request.model_version = target.triton_name, ""
            answer = await self._call("ModelInfer", request, passthrough=True)
            answer.model_name, answer.model_version = target.model, target.version
        except _Abort as exc:
            self._observe(target, exc.code, started)
            await context.abort(exc.code, str(exc))
        except asyncio.CancelledError:  # the client went away or its deadline passed
            self._observe(target, grpc.StatusCode.CANCELLED, started)
            raise
        except BaseException:
            self._observe(target, grpc.StatusCode.INTERNAL, started)
            raise
        self._observe(target, grpc.StatusCode.OK, started)
        if self.settings.event_logger is not None:
            # deferred: the protobuf -> JSON conversion happens in the logger's thread
            self.settings.event_logger.log_pair(
                target, lambda: request_json(request), lambda: response_json(answer)
            )
        return answer

    # ---------------------------------------------------------------------------------------- internals
    async def _resolve_async(self, request: Any) -> Target:
        _require_parsed(request)
        return self._resolve(request.model_name, request.model_version, draw=True)

    def _resolve(self, name: str, version: str, draw: bool) -> Target:
        try:
            return resolve_target(self.settings, name, version or None, draw)
        except RouterFailure as exc:
            raise _Abort(grpc.StatusCode.NOT_FOUND, str(exc)) from exc

    def _targets(self, name: str, version: str) -> list[Target]:
        route = self.settings.table.get(name)
        if route is None or version:
            return [self._resolve(name, version, draw=False)]
        return route.targets

    async def _target_ready(self, target: Target) -> bool:
        try:
            return (await self._call("ModelReady", pb.ModelReadyRequest(name=target.triton_name))).ready
        except _Abort:
            return False

    async def _call(self, method: str, request: Any, passthrough: bool = False) -> Any:
        """One call to Triton; its failures become the router's status (client errors pass through)."""
        try:
            return await getattr(self.triton, method)(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _upstream_abort(method, request, exc, passthrough) from exc

    @staticmethod
    async def _guarded(context: grpc.aio.ServicerContext, call: Any) -> Any:
        try:
            return await call
        except _Abort as exc:
            await context.abort(exc.code, str(exc))


def _require_parsed(request: Any) -> None:
    if isinstance(request, _Malformed):
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)


def _upstream_abort(method: str, request: Any, exc: grpc.aio.AioRpcError, passthrough: bool) -> _Abort:
    code, details = exc.code(), exc.details() or ""
    name = getattr(request, "model_name", "") or getattr(request, "name", "")
    if code == grpc.StatusCode.UNAVAILABLE:
        return _Abort(code, f"triton unreachable at {method}: {details}")
    if code in _NOT_SERVED and "unknown model" in details.lower():
        return _Abort(grpc.StatusCode.UNAVAILABLE, f"triton does not serve {name}: {details}")
    if passthrough or code != grpc.StatusCode.INTERNAL:
        return _Abort(code, details)
    return _Abort(grpc.StatusCode.UNAVAILABLE, f"triton failed {method}: {details}")
