"""The transport floors: servers that do no work, to bound what any Python server can reach.

Two trivial servers, each its own process, built from the same stacks as ours:
- `grpc`: grpcio's sync server with the same thread pool and options as
  `serving/grpc/server.py`, answering `PredictionService/Predict` with fixed
  response bytes (no parsing, no model);
- `rest`: uvicorn with uvloop and httptools, as `serving/rest/server.py` runs it, and a
  bare ASGI app answering every POST with fixed JSON (no routing, no model).

Driven by the same load generator as the real servers (`bench_predict`), their
CPU per request is the part of ours no change to our code can remove; with
KServe's figures from the same run it bounds the ratios issue 8 asks for.

Run: `python -m benchmarks.floors {grpc,rest} PORT` (serves until SIGTERM).
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures
from typing import Any

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
REST_REPLY = b'{"predictions": [2.5]}'


def serve_grpc(port: int) -> None:
    import grpc

    reply = b""  # an empty PredictResponse: the cheapest valid answer

    def predict(request: bytes, context: Any) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService",
        {"Predict": grpc.unary_unary_rpc_method_handler(predict)},  # raw bytes both ways
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1)


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the body, as any real handler must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": REST_REPLY})


def serve_rest(port: int) -> None:
    import uvicorn

    config = uvicorn.Config(_asgi_app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", loop="uvloop", http="httptools")
    uvicorn.Server(config).run()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("grpc", "rest"):
        print(__doc__, file=sys.stderr)
        return 2
    (serve_grpc if argv[0] == "grpc" else serve_rest)(int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
