"""Where a local Triton listens: the loopback `HOST`, the `Ports` triple (HTTP, gRPC, metrics), free
ports handed out by the kernel and `http_ok`, the readiness probe that answers True only on a 200. Split
out of `inference.triton_local` (which re-exports every name); standard library only, so it imports in the
serving environment too.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        http, grpc, metrics = free_ports(3)
        return cls(http=http, grpc=grpc, metrics=metrics)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free; held open together so the three differ."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
