"""The REST router's side of Triton: one keep-alive aiohttp session, calls whose failures become the
router's OIP errors, and the answer's names rewritten without re-encoding its tensors.

aiohttp rather than httpx: at concurrency 32, httpx's connection pool scanned every connection on every
request (quadratic), and it asked Triton for gzip; together they cut the router to ~1/6 of its throughput.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from inference.router.isvc import Target

# keep-alive connections to Triton: enough for concurrency 32 with headroom for health checks
UPSTREAM_CONNECTIONS = 64
# Triton writes the names first, after the request's id if it had one: `{"id":"r","model_name":"demo__v1",
# "model_version":"1",...`
_LEADING_NAMES = re.compile(
    rb'\A(\{(?:"id":"(?:[^"\\]|\\.)*",)?)"model_name":"[^"\\]*","model_version":"[^"\\]*"'
)


class RouterFailure(Exception):
    """A request the router answers with an OIP error body and `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upstream:
    """Triton's answer, read in full."""

    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; {} when it is not one."""
        try:
            body = json.loads(self.body)
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}


def upstream_session(triton_url: str, timeout_s: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=triton_url,
        connector=aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS, keepalive_timeout=60),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        # compressing a few hundred bytes on loopback costs both sides CPU and saves nothing
        headers={"accept-encoding": "identity"},
        auto_decompress=False,
    )


async def call(session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> Upstream:
    """A request to Triton; its 5xx and connection failures become the router's 502/503/504."""
    try:
        async with session.request(method, path, **kwargs) as response:
            answer = Upstream(response.status, await response.read())
    except TimeoutError as exc:
        raise RouterFailure(504, f"triton did not answer {path} in time") from exc
    except aiohttp.ClientError as exc:
        raise RouterFailure(502, f"triton unreachable for {path}: {exc}") from exc
    if answer.status >= 500:
        raise RouterFailure(502, f"triton answered {answer.status} for {path}: {answer.text[:200]}")
    if answer.status in (400, 404) and "unknown model" in answer.text:
        # the route table names a version Triton does not serve: the router's fault, not the client's
        raise RouterFailure(503, f"triton does not serve {path.split('/')[3]}: {answer.text[:200]}")
    return answer


async def is_ok(session: aiohttp.ClientSession, path: str) -> bool:
    try:
        async with session.get(path) as response:
            await response.read()
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


def public_names(answer: bytes, target: Target) -> bytes:
    """Triton's infer answer with the public model name and registry version; only the two leading fields
    are replaced (the tensors are passed on as they are), else the whole answer is re-encoded."""
    public = {"model_name": target.model, "model_version": target.version}
    names = json.dumps(public, separators=(",", ":"))[1:-1].encode()
    rewritten, count = _LEADING_NAMES.subn(lambda match: match[1] + names, answer, count=1)
    if count:
        return rewritten
    try:
        result = json.loads(answer)
    except ValueError:
        raise RouterFailure(502, f"triton answered {target.triton_name} with invalid JSON") from None
    result.update(model_name=target.model, model_version=target.version)
    return json.dumps(result).encode()
