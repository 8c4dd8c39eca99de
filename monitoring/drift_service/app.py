"""The drift service behind HTTP (a thin adapter over `DriftService`):

POST /            a KServe logger CloudEvent (binary or structured mode); 200 with what was queued (and
                  journaled, with --journal-dir), 400 {"error": one line} for unusable events, 413 over
                  the body limit (checked while reading), 408 when it arrives too slowly, 503 when the
                  journal cannot store it (served by `event_lane.py`, in front of this FastAPI app)
POST /v1/outcomes delayed ground truth {"outcomes": [{"request_id", "label", "observed_at"?}]}; 202 with
                  joined/unmatched counts, 400 {"error": one line} for a malformed body, 413 over the
                  limit (monitoring/quality)
GET  /v1/recent   recent logged rows of a model (?model=&version=&since=&limit=) with predictions and
                  joined outcomes, for the scheduled monitoring reports; 404 without --state-dir
GET  /healthz     the process is alive
GET  /readyz      detectors are loaded and the flusher runs
GET  /metrics     Prometheus text format
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from core.http_body import DEFAULT_READ_TIMEOUT_S, BodyRefused, read_capped
from core.json_errors import install_json_errors
from monitoring.drift_service.errors import DriftServiceError, NotEnabledError, status_for
from monitoring.drift_service.event_lane import EventLane
from monitoring.drift_service.flusher import Flusher
from monitoring.drift_service.service import DriftService
from monitoring.drift_service.store_lane import StoreLane
from monitoring.payloads.errors import EventError
from monitoring.quality.outcomes import OutcomeError

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 << 20
DEFAULT_RECENT_S = 86_400.0
MAX_RECENT_ROWS = 100_000


def create_app(
    service: DriftService,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    tick_s: float | None = None,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    store_lane: StoreLane | None = None,
) -> EventLane:
    """`store_lane`: reads KServe's batched payload logs from object storage beside the HTTP events."""
    flusher = Flusher(service, tick_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        flusher.start()
        if store_lane is not None:
            store_lane.start()
        yield
        if store_lane is not None:  # finishes the object it reads: its rows are then journaled
            await run_in_threadpool(store_lane.stop)
        # Shutdown (SIGTERM): uvicorn has answered the last request; score what they left pending.
        await run_in_threadpool(flusher.stop)
        reports = await run_in_threadpool(service.drain)
        log.info("drained %d rows in %d windows", sum(report.rows for report in reports), len(reports))

    app = FastAPI(title="drift service", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    install_json_errors(app)

    @app.exception_handler(DriftServiceError)
    @app.exception_handler(EventError)
    async def service_error(_: Request, exc: DriftServiceError | EventError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status_for(exc))

    @app.post("/v1/outcomes", status_code=202)
    async def receive_outcomes(request: Request) -> JSONResponse:
        quality = _quality_or_404(service)
        try:
            try:
                body = await read_capped(request, max_body_bytes, read_timeout_s)
            except BodyRefused as exc:
                reason = "too_large" if exc.status_code == 413 else "timeout"
                raise OutcomeError(reason, str(exc), exc.status_code) from None
            report = await run_in_threadpool(quality.ingest_outcomes, body)
        except OutcomeError as exc:
            quality.metrics.rejected.labels(reason=exc.reason).inc()
            log.warning("rejected outcomes: %s", exc)
            raise
        return JSONResponse(asdict(report), status_code=202)

    @app.get("/v1/recent")
    async def recent(
        model: str,
        version: str | None = None,
        since: float | None = Query(None, description="Unix seconds; default: the last day"),
        limit: int = Query(10_000, ge=1, le=MAX_RECENT_ROWS),
    ) -> Response:
        quality = _quality_or_404(service)
        start = since if since is not None else time.time() - DEFAULT_RECENT_S
        rows = await run_in_threadpool(quality.store.recent, model, version, start, limit)
        # json.dumps, not JSONResponse: a logged input may be NaN and must still come back.
        body = json.dumps({"model": model, "version": version, "rows": rows})
        return Response(body, media_type="application/json")

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

    return EventLane(app, service, max_body_bytes, read_timeout_s)  # POST /: the logger's events


def _quality_or_404(service: DriftService):  # -> QualityTracker
    if service.quality is None:
        raise NotEnabledError("quality tracking is off: start the drift service with --state-dir DIR")
    return service.quality
