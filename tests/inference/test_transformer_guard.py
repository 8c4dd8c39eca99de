"""The transformer's request guard (`inference/transformer/guard.py`) on its own, over a real socket, around
a plain ASGI app standing where KServe's REST app sits: a body that stalls is answered 408 with an OIP error
once the read deadline passes (KServe's server would wait for it for ever), and the app behind the guard
gets whole bodies only. The guard in front of the real KServe app is tested in test_transformer.py."""

from __future__ import annotations

import json

import httpx

from inference.transformer.guard import RequestGuard
from tests.helpers.raw_http import stalled_upload_answer
from tests.helpers.servers import serving_in_thread

JSON = {"content-type": "application/json"}


class Echo:
    """Answers each request with the size of the body it was given, and keeps the sizes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # lifespan: nothing to set up
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.sizes.append(len(body))
        answer = json.dumps({"size": len(body)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def test_a_stalled_body_is_answered_408_and_never_reaches_the_app() -> None:
    inner = Echo()
    guard = RequestGuard(inner, max_body_bytes=4096, read_timeout_s=0.5)
    with serving_in_thread(guard) as url:
        answer = stalled_upload_answer(url, JSON, path="/v2/models/m/infer")
        whole = httpx.post(f"{url}/v2/models/m/infer", content=b'{"inputs": []}', headers=JSON, timeout=5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert answer.endswith(b'{"error": "body: not received whole within 0.5 s"}')
    assert whole.json() == {"size": 14}
    assert inner.sizes == [14]
