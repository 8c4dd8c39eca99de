"""Reading a client's request body under a size limit, for every HTTP service of the platform (router, drift
service, retrain trigger): the limit is checked against the declared Content-Length and again while the body
streams in, so a huge or endless (chunked) upload is refused without ever being held in memory whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only the type: core does not import web frameworks at run time
    from starlette.requests import Request


class BodyTooLarge(ValueError):
    """The body is over the limit; `str()` is one line naming the limit (each service answers 413)."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body: {declared} bytes is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"body: over the {limit}-byte limit")
    return bytes(body)
