"""Clients no HTTP library lets you be, over a raw socket: an upload that never ends (chunked, no length)
and one that stalls after its first bytes. Each returns what the server answered first, or b"" if it
answered nothing before the socket's own timeout (a server that waits for the whole body)."""

from __future__ import annotations

import socket


def _send_head(conn: socket.socket, host: str, path: str, headers: dict[str, str], extra: list[str]) -> None:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", *extra]
    head += [f"{name}: {value}" for name, value in headers.items()]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())


def _answer(conn: socket.socket) -> bytes:
    try:
        return conn.recv(4096)
    except TimeoutError:
        return b""


def chunked_upload_answer(url: str, headers: dict[str, str], chunks: int, path: str = "/") -> bytes:
    """Send `chunks` chunks of 64 KiB of a chunked body that never ends, then read the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        _send_head(conn, host, path, headers, ["Transfer-Encoding: chunked"])
        chunk = b" " * (64 * 1024)
        for _ in range(chunks):
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        return _answer(conn)


def stalled_upload_answer(url: str, headers: dict[str, str], path: str = "/", wait_s: float = 10) -> bytes:
    """Declare a 1,000-byte body, send 10 bytes of it, and wait up to `wait_s` for the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as conn:
        _send_head(conn, host, path, headers, ["Content-Length: 1000"])
        conn.sendall(b'{"inputs":')
        return _answer(conn)
