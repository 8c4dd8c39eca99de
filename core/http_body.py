"""Reading a client's request body under a size limit and a deadline, for every HTTP service of the platform
(router, drift service, retrain trigger, the transformer's guard): the limit is checked against the declared
Content-Length and again while the body streams in, so a huge or endless (chunked) upload is refused without
ever being held in memory whole; a body that has not arrived whole within `timeout_s` (a client that stalls
or drips a byte at a time) is refused too, so a slow client cannot hold a request open for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the type: core does not import web frameworks at run time
    from starlette.requests import Request

DEFAULT_READ_TIMEOUT_S = 30.0  # a whole body; 8 MiB at 2 Mbit/s fits


class BodyRefused(ValueError):
    """The body cannot be read; `str()` is one line, `status_code` the answer (413 or 408)."""

    status_code = 400


class BodyTooLarge(BodyRefused):
    """The body is over the limit."""

    status_code = 413


class BodyTimeout(BodyRefused):
    """The body did not arrive whole in time."""

    status_code = 408


async def read_body(
    chunks: AsyncIterable[bytes], limit: int, declared: str | None, timeout_s: float
) -> bytes:
    """The whole body from `chunks`, or BodyTooLarge as soon as it is known to pass `limit` bytes
    (`declared`: the Content-Length header, if any), or BodyTimeout after `timeout_s` seconds."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body: {declared} bytes is over the {limit}-byte limit")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in chunks:
                body += chunk
                if len(body) > limit:
                    raise BodyTooLarge(f"body: over the {limit}-byte limit")
    except TimeoutError:
        raise BodyTimeout(f"body: not received whole within {timeout_s:g} s") from None
    return bytes(body)


async def asgi_chunks(receive: Callable[[], Awaitable[MutableMapping[str, Any]]]) -> AsyncIterator[bytes]:
    """A bare ASGI request's body chunks (for `read_body`); BodyRefused when the client disconnects first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyRefused("body: the client disconnected before sending it whole")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def read_capped(request: Request, limit: int, timeout_s: float = DEFAULT_READ_TIMEOUT_S) -> bytes:
    """A Starlette request's whole body under `limit` bytes and `timeout_s` seconds."""
    return await read_body(request.stream(), limit, request.headers.get("content-length"), timeout_s)
