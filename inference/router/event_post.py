"""One persistent HTTP/1.1 connection to the logger URL that posts the router's CloudEvents pipelined: every
event is still its own POST with its own `ce-*` headers and body (what KServe's logger sends and the drift
service reads), but the requests queued since the last round go out in one `sendall` and their answers are
read back together.

Why: posting each event with `http.client` cost about 90 us of the router's CPU (its GIL) per event, two
events per inference, about a third of the router's time per request under load (measured:
docs/measured.md); building the request bytes by hand and reading answers from one buffer costs a
fraction of that. The receiver must accept pipelined requests (HTTP/1.1 allows it; uvicorn, the drift
service's server, answers them in order).

A receiver that closes the connection (an idle timeout, `Connection: close`, a restart) leaves the events
it did not answer: they are sent again on a new connection, once; an event a fresh connection does not
answer at all counts as failed (status 0).
"""

from __future__ import annotations

import socket
import urllib.parse

MAX_HEAD_BYTES = 64 * 1024
_RECV_BYTES = 256 * 1024


class _Closed(Exception):
    """The receiver closed the connection: what is unanswered was not handled."""


class PipelinedConnection:
    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http":  # the in-cluster logger URL is plain HTTP (KServe's agent also)
            raise ValueError(f"logger URL {url!r}: only http:// is supported by the local router")
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._request_line = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode("latin-1")
        self._timeout_s = timeout_s
        self._socket: socket.socket | None = None
        self._buffer = b""

    def post_all(self, events: list[tuple[dict[str, str], bytes]]) -> list[int]:
        """POST each (headers, body) in order; the HTTP status of each, 0 where none came back."""
        statuses: list[int] = []
        pending = events
        while pending:
            fresh = self._socket is None
            answered: list[int] = []
            try:
                if self._socket is None:
                    self._socket = socket.create_connection(self._address, timeout=self._timeout_s)
                    self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._socket.sendall(b"".join(self._request(headers, body) for headers, body in pending))
                self._read_answers(len(pending), answered)
            except (OSError, _Closed, ValueError):
                self.close()
            statuses += answered
            pending = pending[len(answered) :]
            if pending and fresh and not answered:  # a new connection that answers nothing: give up
                statuses += [0] * len(pending)
                break
        return statuses

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer = b""

    def _request(self, headers: dict[str, str], body: bytes) -> bytes:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"{lines}content-length: {len(body)}\r\n\r\n".encode("latin-1")
        return self._request_line + head + body

    def _read_answers(self, count: int, answered: list[int]) -> None:
        """Append the status of each answer as it is read; _Closed when the receiver ends the connection
        (after an answer that says `Connection: close`, or without one)."""
        while len(answered) < count:
            status, keep_alive = self._read_answer()
            answered.append(status)
            if not keep_alive:
                raise _Closed

    def _read_answer(self) -> tuple[int, bool]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ValueError("answer head too long")
            self._fill()
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        version, status = status_line.split(" ", 2)[:2]
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        keep_alive = headers.get("connection") != "close" and version != "HTTP/1.0"
        if headers.get("transfer-encoding", "").endswith("chunked"):
            self._skip_chunked()
        elif "content-length" in headers:
            self._skip(int(headers["content-length"]))
        elif int(status) not in (204, 304):  # a body that ends with the connection
            keep_alive = False
        return int(status), keep_alive

    def _fill(self) -> None:
        assert self._socket is not None
        data = self._socket.recv(_RECV_BYTES)
        if not data:
            raise _Closed
        self._buffer += data

    def _skip(self, size: int) -> None:
        while len(self._buffer) < size:
            self._fill()
        self._buffer = self._buffer[size:]

    def _skip_chunked(self) -> None:
        while True:
            while (end := self._buffer.find(b"\r\n")) < 0:
                self._fill()
            size = int(self._buffer[:end].split(b";", 1)[0], 16)
            self._buffer = self._buffer[end + 2 :]
            self._skip(size + 2)  # the chunk and its CRLF; the last chunk (0) has only the CRLF
            if size == 0:
                return
