"""The shadow mirror's own process (started by shadow.ShadowMirror with one end of a SOCK_SEQPACKET socket
pair): it reads the router's copies, one message each, sends each to the shadow's Triton model over OIP
REST, hands both answers to the comparator (shadow_compare.py) and serves the comparator's metrics on its
own port, which it first writes back on the socket.

    python -m inference.router.shadow_worker --fd N --max-message-bytes B --triton-url URL
        [--repository DIR] [--workers 1] [--timeout-s 10] [--metrics-host 127.0.0.1] [--metrics-port 0]
        [--cpus 1]

It runs at the lowest CPU priority (nice 19, SCHED_IDLE), and so does the shadow's Triton (its own, started
here, or the shadow's model instances in the router's: shadow_triton.py): on one machine they are the stand-in
for the shadow InferenceService's own pods, and the live path gets the cores whenever both want them (the
copies then wait in the socket's buffer, and the router drops what does not fit, as designed). It ends at the
socket's end of file: when the router closes its end (after the copies still buffered are served) or when the
router's process is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import pickle
import socket
import sys
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from inference.router.oip_proto import request_json, response_json
from inference.router.shadow import ShadowCopy
from inference.router.shadow_compare import Answer, ShadowComparator
from inference.router.shadow_priority import lowest_priority, parse_cpus, pin_to
from inference.router.shadow_triton import ShadowTriton

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.router.shadow_worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="this process's end of the socket pair")
    parser.add_argument("--triton-url", required=True, help="the router's Triton")
    parser.add_argument("--repository", type=Path, help="start the shadow's own Triton on this repository")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--metrics-host", default="127.0.0.1")
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--max-message-bytes", type=int, required=True, help="the router's send buffer")
    parser.add_argument(
        "--cpus", type=parse_cpus, help="run (with the shadow's own Triton) on these CPUs only"
    )
    args = parser.parse_args(argv)
    if args.cpus:
        pin_to(args.cpus)  # before any thread or child starts: they inherit it
    with contextlib.suppress(OSError):
        lowest_priority()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    copies = socket.socket(fileno=args.fd)
    registry = CollectorRegistry()
    server, _ = start_http_server(args.metrics_port, addr=args.metrics_host, registry=registry)
    copies.sendall(str(server.server_port).encode())
    log.info("shadow comparator: /metrics on http://%s:%d", args.metrics_host, server.server_port)
    triton = ShadowTriton(args.triton_url, args.repository)
    mirror = Mirror(copies, ShadowComparator(registry), triton, args.timeout_s)
    mirror.max_message_bytes = args.max_message_bytes
    threads = [threading.Thread(target=mirror.work, name=f"shadow-{i}") for i in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    triton.stop()
    server.shutdown()
    return 0


class Mirror:
    def __init__(
        self, copies: socket.socket, comparator: ShadowComparator, triton: ShadowTriton, timeout_s: float
    ) -> None:
        self.copies, self.comparator, self.triton, self.timeout_s = copies, comparator, triton, timeout_s
        self.max_message_bytes = 1 << 20

    def work(self) -> None:
        # one per worker, one more byte than the router can send: a message is always read whole
        buffer = bytearray(self.max_message_bytes + 1)
        connection: http.client.HTTPConnection | None = None
        connected_to: tuple[str, int] | None = None
        while True:
            try:
                size = self.copies.recv_into(buffer)
            except OSError:
                break
            if size == 0:  # end of file: the router closed its end or is gone
                break
            copy = self._copy(memoryview(buffer)[:size])
            if copy is None:
                continue
            try:
                address = self.triton.address(copy.shadow.triton_name)
                if connection is None or connected_to != address:
                    if connection is not None:
                        connection.close()
                    connection = http.client.HTTPConnection(*address, timeout=self.timeout_s)
                    connected_to = address
                self._mirror(connection, copy)
            except Exception as exc:  # any failure is the shadow's: count it, keep serving the copies
                self.comparator.failed(copy.shadow.model, copy.shadow.version, _one_line(exc))
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    @staticmethod
    def _copy(message: memoryview) -> ShadowCopy | None:
        try:
            return pickle.loads(message)
        except Exception as exc:  # cannot happen between the same code's two ends; never end the worker
            log.error("shadow mirror: a message of %d bytes is not a copy (%s)", len(message), _one_line(exc))
            return None

    def _mirror(self, connection: http.client.HTTPConnection, copy: ShadowCopy) -> None:
        shadow = copy.shadow
        request = _json(copy.request, "ModelInferRequest") if copy.grpc else copy.request
        path = f"/v2/models/{shadow.triton_name}/infer"
        started = time.perf_counter()
        connection.request("POST", path, body=request, headers={"content-type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        latency_s = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"triton answered {response.status} for {path}: {body[:200]!r}")
        live = _json(copy.live_answer, "ModelInferResponse") if copy.grpc else copy.live_answer
        self.comparator.compare(
            shadow.model, shadow.version, Answer(live, copy.live_latency_s), Answer(body, latency_s)
        )


def _json(wire: bytes, message: str) -> bytes:
    """A gRPC infer request or response (wire bytes) as the OIP JSON the payload logger would log."""
    # imported at the first gRPC copy: kserve's package takes a second or two to load
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    parsed = getattr(pb, message).FromString(wire)
    return request_json(parsed) if message == "ModelInferRequest" else response_json(parsed)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


if __name__ == "__main__":
    sys.exit(main())
