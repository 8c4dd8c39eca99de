"""An ASGI guard in front of KServe's REST app: request size and model versions, answered the OIP way.

KServe 0.21's REST server reads any body size (and waits for a slow one for ever), answers every
`/versions/{v}/` path with 501 ("not supported yet") and a body that is not JSON with FastAPI's
`{"detail": ...}` (or a 500 when nested too deeply). Here a body over the limit gets 413, one not received
whole in time 408, a version other than the one served gets 404, an infer body that is not usable JSON gets
400, and the served version's paths are answered like the unversioned ones; each error body is the Open
Inference Protocol's `{"error": "..."}`. Plain ASGI (no BaseHTTPMiddleware), so streaming and KServe's own
exception handlers are untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from core.http_body import DEFAULT_READ_TIMEOUT_S, BodyRefused, read_body
from core.untrusted_json import UntrustedJsonError, loads_untrusted

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_VERSIONED = re.compile(r"^(?P<model>/v2/models/[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        served_version: str | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.served_version = served_version
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        match = _VERSIONED.match(scope["path"])
        if match:
            if match["version"] != self.served_version:
                served = self.served_version or "none: use the unversioned path"
                await _error(
                    send, 404, f"model version {match['version']!r} is not served here (served: {served})"
                )
                return
            path = match["model"] + (match["rest"] or "")
            scope = {**scope, "path": path, "raw_path": path.encode()}
        declared = _header(scope, b"content-length")
        try:
            body = await read_body(_chunks(receive), self.max_body_bytes, declared, self.read_timeout_s)
        except BodyRefused as refused:
            await _error(send, refused.status_code, str(refused))
            return
        problem = _json_problem(scope, body)
        if problem:
            await _error(send, 400, problem)
            return
        await self.app(scope, _replay(body, receive), send)


def _json_problem(scope: Scope, body: bytes) -> str | None:
    """Why an infer body is not a usable JSON document (KServe answers those `{"detail": ...}` or 500),
    None otherwise; bodies with the binary extension's JSON-length header are KServe's to split."""
    if scope.get("method") != "POST" or not scope["path"].endswith("/infer"):
        return None
    if any(name == b"inference-header-content-length" for name, _ in scope.get("headers", [])):
        return None
    try:
        loads_untrusted(body, "request body")
    except UntrustedJsonError as error:
        return str(error)
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks as the server receives them; ends early if the client disconnects."""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        more = message.get("more_body", False)


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The body once, then the connection's own messages (a real disconnect, when it comes)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await upstream()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
