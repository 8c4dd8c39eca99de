"""The local serving router: Open Inference Protocol v2 over REST in front of a real Triton.

    GET  /v2/health/live | /v2/health/ready
    GET  /v2/models/{name}[/versions/{v}]          metadata of the stable (or the named) version
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}/infer                    stable or canary, drawn per request
    POST /v2/models/{name}/versions/{v}/infer       exactly that registry version
    GET  /metrics                                   Prometheus exposition

Each request goes to Triton's `<name>__v<version>` model; the answer carries the public `model_name` and
the registry `model_version`. Errors are OIP error bodies `{"error": "..."}`: 400 bad JSON (Triton's own
400 for a wrong shape or datatype passes through), 404 unknown model or version, 413 oversized body, and
5xx only when Triton fails or cannot be reached. Only JSON bodies are accepted (no binary tensor
extension). gRPC is not routed: locally, gRPC clients talk to Triton's gRPC endpoint directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.router.logger import EventLogger
from inference.router.metrics import RouterMetrics
from inference.router.routing import IsvcWatcher, RouteTable, Target

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_UPSTREAM_TIMEOUT_S = 30.0


class RouterFailure(Exception):
    """A request the router answers with an OIP error body and `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RouterSettings:
    table: RouteTable
    triton_url: str  # http://host:port
    metrics: RouterMetrics
    event_logger: EventLogger | None = None
    watcher: IsvcWatcher | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S


def triton_readiness(triton_url: str, timeout_s: float = 2.0) -> Callable[[Target], bool]:
    """A blocking check (for the route watcher's thread) that Triton has a target's model ready."""

    def is_ready(target: Target) -> bool:
        try:
            url = f"{triton_url}/v2/models/{target.triton_name}/ready"
            return httpx.get(url, timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    return is_ready


def create_app(settings: RouterSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        timeout = httpx.Timeout(settings.upstream_timeout_s)
        async with httpx.AsyncClient(base_url=settings.triton_url, timeout=timeout, limits=limits) as client:
            app.state.upstream = client
            if settings.event_logger is not None:
                settings.event_logger.start()
            if settings.watcher is not None:
                settings.watcher.start()
            try:
                yield
            finally:
                if settings.watcher is not None:
                    settings.watcher.stop()
                if settings.event_logger is not None:
                    settings.event_logger.stop()

    app = FastAPI(title="mlops-loop local router", lifespan=lifespan)
    app.state.settings = settings
    _add_error_handlers(app)
    _add_health_routes(app, settings)
    _add_inference_routes(app, settings)
    return app


# ------------------------------------------------------------------------------------------- routes
def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RouterFailure)
    async def router_failure(_: Request, exc: RouterFailure) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


def _add_health_routes(app: FastAPI, settings: RouterSettings) -> None:
    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready(request: Request) -> JSONResponse:
        targets = [t for route in settings.table.routes.values() for t in route.targets]
        ok = await _upstream_ok(request, "/v2/health/ready") and all(
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
        target = _resolve(settings, name, version, draw=False)
        answer = await _call(request, "GET", f"/v2/models/{target.triton_name}")
        body = _json_body(answer)
        route = settings.table.get(name)
        versions = [t.version for t in route.targets] if route else [target.version]
        body.update(name=name, versions=versions if version is None else [target.version])
        return JSONResponse(body, status_code=answer.status_code)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: Request, name: str, version: str | None = None) -> JSONResponse:
        route = settings.table.get(name)
        if route is None:
            raise RouterFailure(404, f"unknown model {name!r}")
        targets = [_resolve(settings, name, version, draw=False)] if version else route.targets
        ok = all([await _target_ready(request, t) for t in targets])
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        target = _resolve(settings, name, version, draw=True)
        started = time.perf_counter()
        status = 500
        try:
            status, content = await _infer(request, settings, target)
        except RouterFailure as exc:
            status = exc.status
            raise
        finally:
            settings.metrics.observe(
                target.model, target.version, target.role, status, time.perf_counter() - started
            )
        return Response(content, status_code=status, media_type="application/json")


# ---------------------------------------------------------------------------------------- internals
def _resolve(settings: RouterSettings, name: str, version: str | None, draw: bool) -> Target:
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


async def _infer(request: Request, settings: RouterSettings, target: Target) -> tuple[int, bytes]:
    body = await _read_capped(request, settings.max_body_bytes)
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RouterFailure(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise RouterFailure(400, "request body must be a JSON object with an 'inputs' list")
    answer = await _call(
        request,
        "POST",
        f"/v2/models/{target.triton_name}/infer",
        content=body,
        headers={"content-type": "application/json"},
    )
    if answer.status_code != 200:
        error = _json_body(answer).get("error") or answer.text
        return answer.status_code, json.dumps({"error": str(error)}).encode()
    result = _json_body(answer)
    result.update(model_name=target.model, model_version=target.version)
    content = json.dumps(result).encode()
    if settings.event_logger is not None:
        settings.event_logger.log_pair(target, body, content)
    return 200, content


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RouterFailure(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RouterFailure(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _call(request: Request, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request to Triton; its 5xx and connection failures become the router's 502/504."""
    try:
        answer = await _upstream(request).request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        raise RouterFailure(504, f"triton did not answer {path} in time: {exc}") from exc
    except httpx.HTTPError as exc:
        raise RouterFailure(502, f"triton unreachable for {path}: {exc}") from exc
    if answer.status_code >= 500:
        raise RouterFailure(502, f"triton answered {answer.status_code} for {path}: {answer.text[:200]}")
    if answer.status_code in (400, 404) and "unknown model" in answer.text:
        # the route table names a version Triton does not serve: the router's fault, not the client's
        raise RouterFailure(503, f"triton does not serve {path.split('/')[3]}: {answer.text[:200]}")
    return answer


async def _target_ready(request: Request, target: Target) -> bool:
    return await _upstream_ok(request, f"/v2/models/{target.triton_name}/ready")


async def _upstream_ok(request: Request, path: str) -> bool:
    try:
        answer = await _upstream(request).get(path)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def _json_body(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _upstream(request: Request) -> httpx.AsyncClient:
    return request.app.state.upstream
