"""A small closed-loop gRPC load generator for Open Inference Protocol servers (Triton, MLServer, the router).

Runs in the serving env (tritonclient's protobufs, grpc.aio), in its own process, and prints one JSON line:

    python -m inference.bench.grpc_load --target 127.0.0.1:8001 --model NAME --body request.json \
        --concurrency 8 --duration-s 10
    python -m inference.bench.grpc_load --ceiling --body request.json --concurrency 32 --duration-s 5

`--body` is the OIP JSON request the HTTP runs post; its tensors are sent as typed `contents` (not raw bytes)
because every OIP gRPC server accepts those. `--ceiling` measures this generator against an in-process-free
echo server (a second process that answers every ModelInfer at once): the most it can report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.ports import free_port
from inference.bench.results import summarize

HOST = "127.0.0.1"
_CONTENTS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "BYTES": "bytes_contents",
}


def infer_request(model: str, body: dict[str, Any]) -> Any:
    """The ModelInferRequest for an OIP JSON request body (typed contents)."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    for tensor in body["inputs"]:
        datatype = tensor["datatype"]
        if datatype not in _CONTENTS:
            expected = ", ".join(_CONTENTS)
            raise ValueError(f"--body: input {tensor['name']!r} is {datatype}; expected one of {expected}")
        entry = request.inputs.add(name=tensor["name"], datatype=datatype, shape=tensor["shape"])
        values = _flat(tensor["data"])
        if datatype == "BYTES":
            values = [str(value).encode("utf-8") for value in values]
        getattr(entry.contents, _CONTENTS[datatype]).extend(values)
    return request


def _flat(data: Any) -> list:
    if isinstance(data, list):
        return [x for item in data for x in _flat(item)]
    return [data]


METHOD = "/inference.GRPCInferenceService/ModelInfer"


async def _worker(
    call: Any, payload: bytes, stop_at: float, latencies: list[float], errors: list[int]
) -> None:
    import grpc

    while (began := time.perf_counter()) < stop_at:
        try:
            await call(payload)
        except grpc.aio.AioRpcError:
            errors[0] += 1
            continue
        latencies.append(time.perf_counter() - began)


async def _phase(call: Any, payload: bytes, concurrency: int, duration_s: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    began = time.perf_counter()
    stop_at = began + duration_s
    await asyncio.gather(*(_worker(call, payload, stop_at, latencies, errors) for _ in range(concurrency)))
    return summarize(latencies, time.perf_counter() - began, errors[0])


async def run_load(
    target: str, request: Any, concurrency: int, duration_s: float, warmup_s: float
) -> dict[str, float]:
    """Warm up (connection, server caches), then measure; one channel, as a real client would use.

    The request is serialized once and answers are not parsed (a call without (de)serializers passes bytes):
    the generator's Python cost per request is what limits it, and this halves it.
    """
    import grpc

    payload = request.SerializeToString()
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)
        if warmup_s > 0:
            await _phase(call, payload, concurrency, warmup_s)
        return await _phase(call, payload, concurrency, duration_s)


# ---------------------------------------------------------------------------------------------- ceiling
async def serve_echo(port: int) -> None:
    """Answer every ModelInfer with an empty response: the cheapest server the generator can meet."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    class Echo(service_pb2_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request: Any, context: Any) -> Any:
            return service_pb2.ModelInferResponse(model_name=request.model_name)

    server = grpc.aio.server()
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(f"{HOST}:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


@contextlib.contextmanager
def echo_server() -> Any:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "inference.bench.grpc_load", "--serve-echo", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"gRPC echo server on port {port} did not start")
        yield f"{HOST}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# --------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m inference.bench.grpc_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--target", help="host:port of the gRPC endpoint")
    parser.add_argument("--model", default="model", help="model name in the request")
    parser.add_argument("--body", type=Path, help="OIP JSON request body file")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--ceiling", action="store_true", help="measure against a local echo server")
    parser.add_argument("--serve-echo", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo is None and (args.body is None or (args.target is None and not args.ceiling)):
        parser.error("need --body and one of --target or --ceiling")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_echo is not None:
        asyncio.run(serve_echo(args.serve_echo))
        return 0
    request = infer_request(args.model, json.loads(args.body.read_text()))
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(echo_server()) if args.ceiling else args.target
        summary = asyncio.run(run_load(target, request, args.concurrency, args.duration_s, args.warmup_s))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
