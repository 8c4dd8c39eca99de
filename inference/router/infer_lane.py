"""`POST /v2/models/{name}[/versions/{v}]/infer` as a bare ASGI handler in front of the router's FastAPI app.

Every inference goes through here, so this path sets how many requests a router core serves. Profiled at
concurrency 32 (docs/measured.md), FastAPI's middleware stack, routing, request and response objects took
about a seventh of the router's time per request, more than checking the request; this handler skips them
and hands every other path (health, metadata, metrics) and the lifespan to the app. It answers what the
app documents for infer: Triton's answer with public names, `{"error": one line}` with 400/404/408/413,
Triton's own status when it refuses, 502/504 when it fails or cannot be reached.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from core.http_body import BodyRefused, asgi_chunks, read_body
from inference.router.upstream import RouterFailure

if TYPE_CHECKING:
    import aiohttp
    from fastapi import FastAPI

    from inference.router.app import RouterSettings
    from inference.router.isvc import Target

    Resolve = Callable[[RouterSettings, str, str | None, bool], Target]
    Infer = Callable[[bytes, aiohttp.ClientSession, RouterSettings, Target], Awaitable[tuple[int, bytes]]]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
# the two infer paths; a name or version is one path segment (Starlette's `{param}` matched the same)
INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_JSON = (b"content-type", b"application/json")


class InferLane:
    """`resolve` and `infer` are app.py's `resolve_target` and `infer_body` (the app builds this lane)."""

    def __init__(self, app: FastAPI, settings: RouterSettings, resolve: Resolve, infer: Infer) -> None:
        self.app, self.settings = app, settings
        self.resolve, self.infer = resolve, infer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = INFER_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _answer(send, 405, _error("Method Not Allowed"), (b"allow", b"POST"))
            return
        name, version = match.groups()
        try:
            target = self.resolve(self.settings, name, version, True)
            body = await self._body(scope, receive)
            status, content = await self.infer(body, self.app.state.upstream, self.settings, target)
        except RouterFailure as exc:
            status, content = exc.status, _error(str(exc))
        except Exception:  # a bug, not the client's fault: a one-line 500, and the trace in the log
            log.exception("inference request not handled")
            status, content = 500, _error("internal error in the router; see its log")
        await _answer(send, status, content)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        declared = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-length"), None)
        limit, timeout_s = self.settings.max_body_bytes, self.settings.read_timeout_s
        try:
            return await read_body(asgi_chunks(receive), limit, declared, timeout_s)
        except BodyRefused as exc:  # too large (413) or too slow (408)
            raise RouterFailure(exc.status_code, str(exc)) from None


async def _answer(send: Send, status: int, content: bytes, *extra: tuple[bytes, bytes]) -> None:
    headers = [_JSON, (b"content-length", str(len(content)).encode("ascii")), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _error(message: str) -> bytes:
    return json.dumps({"error": message}, separators=(",", ":")).encode("utf-8")
