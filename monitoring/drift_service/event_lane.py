"""`POST /`, the KServe logger's CloudEvents, as a bare ASGI handler in front of the FastAPI app.

Every request and every response of a watched model is one POST here, so this path sets how many cores it
takes to watch a model. FastAPI's routing, request object and response classes cost about 75 us per
request on this machine, more than decoding and buffering an event (measured with wrk on loopback: an
empty FastAPI endpoint answered about 10,000 requests per core and second, a bare ASGI app 42,000, both
under uvicorn with httptools and uvloop); this handler skips them and hands every other path, and the
lifespan, to the app.

What the handler answers is what `app.py` documents for `POST /`: 200 with what was queued, 400/413/408
with {"error": one line}, 503 when the journal cannot store the event. A small event is decoded on the
event loop (a thread hop costs more than its decoding); one over `INLINE_BYTES` goes to a worker thread,
so a large event does not stall /healthz.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from core.http_body import BodyRefused, asgi_chunks, read_body
from monitoring.drift_service.errors import DriftServiceError, status_for
from monitoring.drift_service.service import DriftService
from monitoring.payloads.errors import EventError

log = logging.getLogger(__name__)

INLINE_BYTES = 64 << 10  # an 11-feature event is about 1 KiB; one of 64 KiB decodes in about 1 ms

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]


class EventLane:
    def __init__(
        self, app: ASGIApp, service: DriftService, max_body_bytes: int, read_timeout_s: float
    ) -> None:
        self.app, self.service = app, service
        self.max_body_bytes, self.read_timeout_s = max_body_bytes, read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _answer(send, 405, {"error": "Method Not Allowed"}, ((b"allow", b"POST"),))
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            body = await read_body(
                asgi_chunks(receive), self.max_body_bytes, headers.get("content-length"), self.read_timeout_s
            )
        except BodyRefused as exc:  # too large (413) or too slow (408)
            self.service.metrics.count_rejected("bad_payload")
            await _answer(send, exc.status_code, {"error": str(exc)})
            return
        try:
            if len(body) <= INLINE_BYTES:
                accepted = self.service.handle_http(headers, body)
            else:
                accepted = await run_in_threadpool(self.service.handle_http, headers, body)
        except (EventError, DriftServiceError) as exc:
            log.warning("rejected event: %s", exc)
            await _answer(send, status_for(exc), {"error": str(exc)})
            return
        except Exception:  # a bug, not the sender's fault: a one-line 500, and the trace in the log
            log.exception("event not handled")
            await _answer(send, 500, {"error": "internal error handling the event; see the service log"})
            return
        await _answer(send, 200, accepted.document())


async def _answer(
    send: Send, status: int, document: dict[str, Any], extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode("ascii")), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
