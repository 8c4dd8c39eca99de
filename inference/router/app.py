"""The local serving router: Open Inference Protocol v2 over REST in front of a real Triton.

    GET  /v2                                        Triton's server metadata
    GET  /v2/health/live | /v2/health/ready        both follow Triton (live: its liveness)
    GET  /v2/models/{name}[/versions/{v}]          metadata of the stable (or the named) version
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}/infer                    stable or canary, drawn per request
    POST /v2/models/{name}/versions/{v}/infer       exactly that registry version
    GET  /metrics                                   Prometheus exposition

Each request goes to Triton's `<name>__v<version>` model; the answer carries the public `model_name` and
the registry `model_version`. Errors are OIP error bodies `{"error": "..."}`: 400 bad JSON (Triton's own
400 for a wrong shape or datatype passes through), 404 unknown model or version, 413 oversized body, and
5xx only when Triton fails or cannot be reached. Only JSON bodies are accepted (no binary tensor
extension; tritonclient.http callers set `binary_data=False` on inputs and requested outputs). OIP gRPC is
served by grpc_app.py from the same settings.

Hot path, profiled at concurrency 32 (about 160 req/s through the router before, 1,100-1,350 after, on a
shared 2-core machine): aiohttp to Triton with its answer's names rewritten in place (upstream.py), and
infer served by a bare ASGI lane in front of FastAPI (infer_lane.py); the payload events are posted
pipelined from a thread (logger.py, event_post.py). A route's shadow version gets a copy of each answered
request off the request path (shadow.py); its answer never reaches the client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from core.http_body import DEFAULT_READ_TIMEOUT_S
from core.json_errors import install_json_errors
from core.untrusted_json import UntrustedJsonError, loads_untrusted
from inference.router.infer_lane import InferLane
from inference.router.isvc import Target
from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, RouteTable
from inference.router.shadow import ShadowMirror
from inference.router.upstream import RouterFailure, call, is_ok, public_names, upstream_session
from inference.router.validation import InputSpec, check_request, input_specs

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_UPSTREAM_TIMEOUT_S = 30.0
_JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class RouterSettings:
    table: RouteTable
    triton_url: str  # http://host:port
    metrics: RouterMetrics
    event_logger: EventLogger | None = None
    watcher: IsvcWatcher | None = None
    shadow: ShadowMirror | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S  # a client's whole body, or 408
    # Triton model name -> its inputs, read once from Triton's metadata (a staged version never changes)
    inputs: dict[str, dict[str, InputSpec]] = field(default_factory=dict)


def triton_readiness(triton_url: str, timeout_s: float = 2.0) -> Callable[[Target], bool]:
    """A blocking check (for the route watcher's thread) that Triton has a target's model ready."""

    def is_ready(target: Target) -> bool:
        try:
            url = f"{triton_url}/v2/models/{target.triton_name}/ready"
            return httpx.get(url, timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    return is_ready


class _Worker(Protocol):
    @property
    def running(self) -> bool: ...
    def start(self) -> Any: ...
    def stop(self) -> None: ...


def start_background_workers(settings: RouterSettings) -> list[_Worker]:
    """Start the event logger, shadow mirror and route watcher unless already running (the REST and gRPC
    routers share them); returns those started here, which the caller alone stops."""
    candidates = (settings.event_logger, settings.shadow, settings.watcher)
    workers: list[_Worker] = [w for w in candidates if w is not None]
    started = [w for w in workers if not w.running]
    for worker in started:
        worker.start()
    return started


def stop_background_workers(started: list[_Worker]) -> None:
    for worker in reversed(started):  # the watcher first: no route changes while the logger drains
        worker.stop()


def create_app(settings: RouterSettings) -> InferLane:
    """The router's ASGI app: infer requests through the bare lane (infer_lane.py), the rest FastAPI."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with upstream_session(settings.triton_url, settings.upstream_timeout_s) as client:
            app.state.upstream = client
            started = start_background_workers(settings)
            try:
                yield
            finally:
                stop_background_workers(started)

    app = FastAPI(title="mlops-loop local router", lifespan=lifespan)
    app.state.settings = settings
    _add_error_handlers(app)
    _add_health_routes(app, settings)
    _add_inference_routes(app, settings)
    return InferLane(app, settings, resolve_target, infer_body)


# ------------------------------------------------------------------------------------------- routes
def _add_error_handlers(app: FastAPI) -> None:
    install_json_errors(app)

    @app.exception_handler(RouterFailure)
    async def router_failure(_: Request, exc: RouterFailure) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _add_health_routes(app: FastAPI, settings: RouterSettings) -> None:
    @app.get("/v2/health/live")
    async def live(request: Request) -> JSONResponse:
        # Live only while Triton behind it is: a router in front of a dead server serves nothing but 502s
        # (on a cluster the kubelet restarts the container; locally the runtime's supervisor restarts it).
        ok = await is_ok(_upstream(request), "/v2/health/live")
        return JSONResponse({"live": ok}, status_code=200 if ok else 503)

    @app.get("/v2")
    async def server_metadata(request: Request) -> JSONResponse:
        # Triton's own server metadata (name, version, extensions), as KServe's model server answers it.
        answer = await call(_upstream(request), "GET", "/v2")
        return JSONResponse(answer.json(), status_code=answer.status)

    @app.get("/v2/health/ready")
    async def ready(request: Request) -> JSONResponse:
        targets = [t for route in settings.table.routes.values() for t in route.targets]
        ok = await is_ok(_upstream(request), "/v2/health/ready") and all(
            [await _target_ready(request, t) for t in targets]
        )
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(settings.metrics.exposition(), media_type="text/plain; version=0.0.4")


def _add_inference_routes(app: FastAPI, settings: RouterSettings) -> None:
    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def metadata(request: Request, name: str, version: str | None = None) -> JSONResponse:
        target = resolve_target(settings, name, version, draw=False)
        answer = await call(_upstream(request), "GET", f"/v2/models/{target.triton_name}")
        body = answer.json()
        route = settings.table.get(name)
        versions = [t.version for t in route.targets] if route else [target.version]
        body.update(name=name, versions=versions if version is None else [target.version])
        return JSONResponse(body, status_code=answer.status)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: Request, name: str, version: str | None = None) -> JSONResponse:
        route = settings.table.get(name)
        if route is None:
            raise RouterFailure(404, f"unknown model {name!r}")
        targets = [resolve_target(settings, name, version, draw=False)] if version else route.targets
        ok = all([await _target_ready(request, t) for t in targets])
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)


# ---------------------------------------------------------------------------------------- internals
def resolve_target(settings: RouterSettings, name: str, version: str | None, draw: bool) -> Target:
    route = settings.table.get(name)
    if route is None:
        settings.metrics.unroutable.labels("unknown_model").inc()
        raise RouterFailure(404, f"unknown model {name!r}")
    if version is not None:
        target = route.target_for_version(version)
        if target is None:
            settings.metrics.unroutable.labels("unknown_version").inc()
            served = ", ".join(t.version for t in route.targets)
            raise RouterFailure(404, f"model {name!r} has no served version {version!r} (serving {served})")
        return target
    if draw:
        target = settings.table.choose(name)
        if target is not None:  # None only if the table was swapped without the model in between
            return target
    return route.targets[0]


async def infer_body(
    body: bytes, upstream: aiohttp.ClientSession, settings: RouterSettings, target: Target
) -> tuple[int, bytes]:
    """One inference: check the body against the target's inputs, call Triton, rename its answer, log
    the pair; (status, answer body)."""
    try:
        parsed = loads_untrusted(body, "request body")
    except UntrustedJsonError as exc:
        raise RouterFailure(400, str(exc)) from None
    specs = await _input_specs(upstream, settings, target)
    if specs is not None:
        check_request(parsed, specs)
    elif not isinstance(parsed, dict):
        raise RouterFailure(400, "request body must be a JSON object with an 'inputs' list")
    path = f"/v2/models/{target.triton_name}/infer"
    started = time.perf_counter()
    answer = await call(upstream, "POST", path, data=body, headers=_JSON_HEADERS)
    latency_s = time.perf_counter() - started
    if answer.status != 200:
        error = answer.json().get("error") or answer.text
        return answer.status, json.dumps({"error": str(error)}).encode()
    content = public_names(answer.body, target)
    if settings.event_logger is not None:
        settings.event_logger.log_pair(target, body, content)
    offer_shadow_copy(settings, target, body, content, latency_s)
    return 200, content


def offer_shadow_copy(
    settings: RouterSettings, target: Target, request: Any, answer: Any, latency_s: float
) -> None:
    """After the live answer: the route's shadow (if any) gets a copy, queued once this request's task has
    handed its answer on (call_soon runs at the loop's next turn), so not even the queueing delays it."""
    mirror, route = settings.shadow, settings.table.get(target.model)
    shadow = None if route is None else route.shadow
    if mirror is not None and shadow is not None and mirror.draw(route.shadow_percent):
        asyncio.get_running_loop().call_soon(mirror.offer, shadow, request, answer, latency_s)


async def _input_specs(
    upstream: aiohttp.ClientSession, settings: RouterSettings, target: Target
) -> dict[str, InputSpec] | None:
    """The target's inputs from Triton's metadata (cached); None while Triton cannot say (the infer call
    then fails with Triton's own status)."""
    specs = settings.inputs.get(target.triton_name)
    if specs is None:
        answer = await call(upstream, "GET", f"/v2/models/{target.triton_name}")
        if answer.status != 200:
            return None
        specs = settings.inputs[target.triton_name] = input_specs(answer.json())
    return specs


async def _target_ready(request: Request, target: Target) -> bool:
    return await is_ok(_upstream(request), f"/v2/models/{target.triton_name}/ready")


def _upstream(request: Request) -> aiohttp.ClientSession:
    return request.app.state.upstream
