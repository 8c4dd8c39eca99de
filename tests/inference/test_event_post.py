"""The router's pipelined CloudEvent poster (inference/router/event_post.py) against real HTTP servers: every
event is one POST with its own headers and body, answers of every framing are read in order, and events a
receiver leaves unanswered when it closes the connection are sent again once, never lost or doubled."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from inference.router.event_post import PipelinedConnection


class _Receiver(ThreadingHTTPServer):
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.seen: list[tuple[str, bytes]] = []
        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/events"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    framing = "length"  # how the answer's end is marked
    close_every = 0  # close the connection after this many requests on it (0: never)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.seen.append((self.headers["ce-id"], body))  # type: ignore[attr-defined]
        self.handled = getattr(self, "handled", 0) + 1
        closing = bool(self.close_every) and self.handled % self.close_every == 0
        code = 400 if body == b"bad" else 200
        self.send_response(code)
        if self.framing == "chunked":
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"2\r\nok\r\n0\r\n\r\n")
        elif self.framing == "until_close":
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(b"ok")
            self.close_connection = True
        else:
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        if closing:
            self.close_connection = True  # unannounced: what is still in the socket is never answered

    def log_message(self, *_: Any) -> None:
        pass


def events(count: int) -> list[tuple[dict[str, str], bytes]]:
    return [
        ({"ce-id": f"e{i}", "ce-type": "t", "content-type": "application/json"}, f"b{i}".encode())
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("framing", "close_every"), [("length", 0), ("chunked", 0), ("until_close", 0), ("length", 3)]
)
def test_each_event_is_posted_once_whatever_the_receiver_does(framing, close_every):
    handler = type("H", (_Handler,), {"framing": framing, "close_every": close_every})
    receiver = _Receiver(handler)
    connection = PipelinedConnection(receiver.url, timeout_s=5)
    try:
        sent = events(20)
        statuses = connection.post_all(sent) + connection.post_all(events(25)[20:])
    finally:
        connection.close()
        receiver.shutdown()
    assert statuses == [200] * 25
    assert sorted(receiver.seen) == sorted((headers["ce-id"], body) for headers, body in events(25))


def test_a_refused_event_is_its_own_status_and_the_rest_go_on():
    receiver = _Receiver(_Handler)
    connection = PipelinedConnection(receiver.url, timeout_s=5)
    batch = events(3)
    batch[1] = (batch[1][0], b"bad")
    try:
        assert connection.post_all(batch) == [200, 400, 200]
    finally:
        connection.close()
        receiver.shutdown()


def test_no_receiver_gives_status_0_for_each_event():
    connection = PipelinedConnection("http://127.0.0.1:9/none", timeout_s=2)
    assert connection.post_all(events(3)) == [0, 0, 0]


def test_only_plain_http_logger_urls_are_taken():
    with pytest.raises(ValueError, match="only http://"):
        PipelinedConnection("https://drift.example/", timeout_s=1)
