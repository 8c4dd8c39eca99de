"""The OIP gRPC methods behind `GrpcRouter` (grpc_app.py): `service_handler` registers a `Servicer` for
`inference.GRPCInferenceService`, whose methods resolve the route (canary draw, pinned `model_version`),
call Triton's gRPC endpoint as `<name>__v<version>`, record RouterMetrics, hand CloudEvents to the event
logger and map failures to gRPC status codes (see grpc_app.py's docstring); undecodable request bytes
become INVALID_ARGUMENT instead of gRPC's INTERNAL. A route's shadow version gets the request's OIP JSON
after the answer (app.offer_shadow_copy, shadow.py); the answer returned is always the live one.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from inference.router.app import RouterSettings, offer_shadow_copy, resolve_target
from inference.router.isvc import Target
from inference.router.oip_proto import request_json, response_json
from inference.router.upstream import RouterFailure
from inference.router.validation import InputSpec, check_grpc_request

SERVICE = "inference.GRPCInferenceService"
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


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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


def service_handler(servicer: Servicer) -> grpc.GenericRpcHandler:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=_lenient(request),
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in _METHODS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class Servicer:
    def __init__(self, settings: RouterSettings, triton: pb_grpc.GRPCInferenceServiceStub) -> None:
        self.settings = settings
        self.triton = triton
        self.timeout_s = settings.upstream_timeout_s

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:  # live only while Triton is, as over REST
            live = (await self._call("ServerLive", pb.ServerLiveRequest())).live
        except _Abort:
            live = False
        return pb.ServerLiveResponse(live=live)

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

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        target = await self._guarded(context, self._resolve_async(request))
        try:
            await self._check(request, target)
            request.model_name, request.model_version = target.triton_name, ""
            started = time.perf_counter()
            answer = await self._call("ModelInfer", request, passthrough=True)
            latency_s = time.perf_counter() - started
            answer.model_name, answer.model_version = target.model, target.version
        except _Abort as exc:
            await context.abort(exc.code, str(exc))
        # deferred: the protobuf -> JSON conversions happen in the logger's thread
        request_body = functools.cache(lambda: request_json(request))
        answer_body = functools.cache(lambda: response_json(answer))
        if self.settings.event_logger is not None:
            self.settings.event_logger.log_pair(target, request_body, answer_body)
        # the messages themselves: the mirror's process converts them (shadow.py)
        offer_shadow_copy(self.settings, target, request, answer, latency_s)
        return answer

    # ---------------------------------------------------------------------------------------- internals
    async def _resolve_async(self, request: Any) -> Target:
        _require_parsed(request)
        return self._resolve(request.model_name, request.model_version, draw=True)

    async def _check(self, request: Any, target: Target) -> None:
        """A client's mistake is INVALID_ARGUMENT before Triton sees it (validation.py), never a failure
        counted against the version; the inputs come from Triton's metadata, once per version."""
        specs = self.settings.inputs.get(target.triton_name)
        if specs is None:
            try:
                answer = await self._call("ModelMetadata", pb.ModelMetadataRequest(name=target.triton_name))
            except _Abort:
                return  # Triton cannot say: the infer call fails with its own status
            inputs = [InputSpec(t.name, t.datatype, tuple(t.shape)) for t in answer.inputs]
            specs = self.settings.inputs[target.triton_name] = {spec.name: spec for spec in inputs}
        try:
            check_grpc_request(request, specs)
        except RouterFailure as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc

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
