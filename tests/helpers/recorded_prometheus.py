"""A Prometheus HTTP API on loopback that answers the canary analysis' queries with answers recorded from
a real Prometheus (`tests/fixtures/prometheus_canary_query.json`), for the tests of the analysis and its
step."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from inference.canary.evidence import prometheus_queries, score_query

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "prometheus_canary_query.json"
# The recorded answers predate the score histogram: its query gets an empty vector (no scores in the window).
EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


@contextmanager
def recorded_prometheus(model: str, window_s: int) -> Iterator[tuple[str, list[str]]]:
    """(base URL, the queries received so far); a query the analysis would not send fails the request."""
    recorded = json.loads(RECORDED.read_text())
    queries = {**prometheus_queries(model, window_s), "scores": score_query(model, window_s)}
    answers = {query: recorded.get(key, EMPTY_VECTOR) for key, query in queries.items()}
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)["query"][0]
            received.append(query)
            body = json.dumps(answers[query]).encode()  # KeyError -> 500: not one of the analysis' queries
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
