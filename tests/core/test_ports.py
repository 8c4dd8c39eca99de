"""Free loopback ports and the HTTP readiness probe every local process start relies on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.ports import HOST, free_port, free_ports, http_ok


class _Status(BaseHTTPRequestHandler):
    """Answers GET /<code> with that status code."""

    def do_GET(self) -> None:
        self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def status_server() -> Iterator[str]:
    server = ThreadingHTTPServer((HOST, 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_free_ports_differ_and_can_be_bound() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in [*ports, free_port()]:
        with socket.socket() as sock:
            sock.bind((HOST, port))


def test_http_ok_only_on_2xx() -> None:
    with status_server() as url:
        assert http_ok(f"{url}/200") and http_ok(f"{url}/204")
        assert not http_ok(f"{url}/400")
        assert not http_ok(f"{url}/503")


def test_http_ok_is_false_when_nothing_listens() -> None:
    assert not http_ok(f"http://{HOST}:{free_port()}/ready", timeout_s=0.5)
