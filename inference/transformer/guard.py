"""An ASGI guard in front of KServe's REST app: request size and model versions, answered the OIP way.

KServe 0.21's REST server reads any body size, answers every `/versions/{v}/` path with 501 ("not
supported yet") and a body that is not JSON with FastAPI's `{"detail": ...}` (or a 500 when nested too
deeply). Here a body over the limit gets 413, a version other than the one served gets 404, an infer body
that is not usable JSON gets 400, and the served version's paths are answered like the unversioned ones;
each error body is the Open Inference Protocol's `{"error": "..."}`. Plain ASGI (no BaseHTTPMiddleware),
so streaming and KServe's own exception handlers are untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from core.untrusted_json import UntrustedJsonError, loads_untrusted

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_VERSIONED = re.compile(r"^(?P<model>/v2/models/[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, served_version: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.served_version = served_version

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
        if _declared_length(scope) > self.max_body_bytes:
            await _error(send, 413, f"request body over {self.max_body_bytes} bytes")
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            await _error(send, 413, f"request body over {self.max_body_bytes} bytes")
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


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body (chunked uploads declare no length), or None as soon as it passes `limit`."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


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
