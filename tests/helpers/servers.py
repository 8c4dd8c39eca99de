"""An ASGI app served by uvicorn on a loopback socket in a thread of the test process."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.helpers.waiting import wait_for


@contextmanager
def serving_in_thread(app: Any, startup_timeout_s: float = 30.0) -> Iterator[str]:
    """`app` on a free loopback port until the block ends; yields its base URL (http://127.0.0.1:PORT)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        # A server that fails to start ends its thread: fail then, not at the deadline.
        wait_for(lambda: server.started or not thread.is_alive(), "uvicorn started", startup_timeout_s)
        assert server.started, "uvicorn exited during start-up (see the log above)"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
