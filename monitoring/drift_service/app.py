"""The drift service behind HTTP (a thin adapter over `DriftService`):

POST /            a KServe logger CloudEvent (binary or structured mode); 200 with what was queued,
                  400 {"error": one line} for unusable events
GET  /healthz     the process is alive
GET  /readyz      detectors are loaded and the flusher runs
GET  /metrics     Prometheus text format
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from monitoring.drift_service.errors import DriftServiceError, EventError, status_for
from monitoring.drift_service.metrics import CONTENT_TYPE_LATEST
from monitoring.drift_service.service import DriftService, Flusher

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 << 20


def create_app(
    service: DriftService, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, tick_s: float | None = None
) -> FastAPI:
    flusher = Flusher(service, tick_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        flusher.start()
        yield
        await run_in_threadpool(flusher.stop)

    app = FastAPI(title="drift service", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(DriftServiceError)
    async def service_error(_: Request, exc: DriftServiceError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc))

    @app.post("/")
    async def receive_event(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > max_body_bytes:
            service.metrics.count_rejected("bad_payload")
            raise EventError(
                "bad_payload", f"body: {len(body)} bytes is over the {max_body_bytes}-byte limit"
            )
        try:
            accepted = service.handle_http(request.headers, body)
        except EventError as exc:
            log.warning("rejected event: %s", exc)
            raise
        return JSONResponse(asdict(accepted))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if not (service.ready and flusher.running):
            return JSONResponse({"error": "flusher not running"}, status_code=503)
        return JSONResponse({"status": "ready", "detectors": len(service.detectors)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app
