"""Loopback ports and readiness for the processes local mode starts (Triton, routers, Prometheus,
Alertmanager, the drift service, benchmarks, tests): free ports handed out by the kernel, and `http_ok`,
a probe that is True only on a 2xx answer. Standard library only: both environments import it.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.request

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free, held open together so they differ (another process could
    still take one before its server binds it: callers retry or fail with the port in the message)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    return free_ports(1)[0]


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when `url` answers 2xx within `timeout_s`; False on any error status or connection failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except OSError:  # URLError and HTTPError (4xx/5xx) are OSErrors
        return False
