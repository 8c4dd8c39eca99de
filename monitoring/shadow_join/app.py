"""The shadow comparator behind HTTP:

POST /         a KServe logger CloudEvent of the live or the shadow InferenceService (binary or structured
               mode); 202 {"result": waiting | compared | duplicate}, 400 {"error": one line} for an event
               it cannot join (the rejected counter names why), 413 over the body limit, 408 too slow
GET  /healthz  the process is alive
GET  /metrics  `mlops_shadow_*` in Prometheus text format (what `inference.canary.shadow_verdict` reads)

One process, one event loop: the join's state is not shared with a thread (the comparison itself is a
few numpy calls per request).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from core.http_body import DEFAULT_READ_TIMEOUT_S, BodyRefused, read_capped
from core.json_errors import install_json_errors
from monitoring.payloads.cloudevents import parse_http_event
from monitoring.payloads.errors import EventError
from monitoring.shadow_join.join import ShadowJoin

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 << 20


def create_app(
    join: ShadowJoin,
    registry: CollectorRegistry,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> FastAPI:
    app = FastAPI(title="shadow comparator", docs_url=None, redoc_url=None, openapi_url=None)
    install_json_errors(app)

    @app.exception_handler(EventError)
    async def event_error(_: Request, exc: EventError) -> JSONResponse:
        log.warning("rejected event: %s", exc)
        return JSONResponse({"error": str(exc)}, status_code=exc.status_code)

    @app.post("/", status_code=202)
    async def receive(request: Request) -> JSONResponse:
        try:
            body = await read_capped(request, max_body_bytes, read_timeout_s)
        except BodyRefused as exc:
            reason = "too_large" if exc.status_code == 413 else "timeout"
            join.metrics.rejected.labels(reason).inc()
            raise EventError(reason, str(exc), exc.status_code) from None
        try:
            event = parse_http_event(request.headers, body)
        except EventError as exc:
            join.metrics.rejected.labels(exc.reason).inc()
            raise
        return JSONResponse({"result": join.add(event)}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        join.expire()  # settled at a scrape too, so a pause in traffic does not hold them back
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
