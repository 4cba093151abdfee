"""A closed-loop load generator that runs in its own process, apart from the server.

Owns how benchmarks drive a server: N clients each keep exactly one request in
flight for a fixed duration, then the run reports throughput and latency
percentiles as one JSON line. Two transports:

- REST: `wrk` (Debian package `wrk`) with a Lua script that POSTs a fixed body
  and prints wrk's own latency percentiles; without wrk, an asyncio HTTP/1.1
  keep-alive client of ours (same closed loop, fewer requests/s of headroom).
- gRPC: up to 4 calls in flight, blocking calls from N threads (the lightest
  client per call, so low-concurrency latency is the server's); above that, a
  grpc.aio client with N coroutines on one channel per 16 calls. The request is
  sent as pre-serialized bytes through a raw unary-unary method, so the client
  never builds or parses protos and any service can be driven the same way.

Run it as `python -m benchmarks.loadgen rest|grpc ...` (see `--help`); the
benchmarks call `run_loadgen`, which starts that process and parses its line.
Pure helpers (`summarize_latencies`, `wrk_lua`, `parse_wrk_json`) are tested
without servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import percentile

# Channels are cheap; one per 16 in-flight calls keeps HTTP/2 stream handling
# from serializing everything through one connection's flow control.
CALLS_PER_CHANNEL = 16
# Up to this many calls in flight, blocking calls from threads (lighter per call);
# above it, grpc.aio (threads would fight over the client's GIL).
THREADED_GRPC_MAX = 4


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured; latencies in milliseconds."""

    transport: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    tool: str


def summarize_latencies(
    transport: str, concurrency: int, seconds: float, ok_latencies_s: Sequence[float],
    errors: int, tool: str,
) -> LoadResult:
    """A LoadResult from per-request latencies (seconds) of successful requests."""
    ms = [v * 1000.0 for v in ok_latencies_s]
    return LoadResult(
        transport=transport,
        concurrency=concurrency,
        seconds=seconds,
        requests=len(ms),
        errors=errors,
        rps=len(ms) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(ms, 50) if ms else float("nan"),
        p99_ms=percentile(ms, 99) if ms else float("nan"),
        tool=tool,
    )


# ------------------------------------------------------------------ REST: wrk


def wrk_lua(body_path: str, out_path: str) -> str:
    """A wrk script: POST the file's bytes as JSON; on done, write a JSON summary."""
    return f"""
local f = assert(io.open({json.dumps(body_path)}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  local out = assert(io.open({json.dumps(out_path)}, "w"))
  out:write(string.format(
    '{{"requests": %d, "errors": %d, "micros": %d, "p50_us": %d, "p99_us": %d}}',
    summary.requests, errors, summary.duration,
    latency:percentile(50), latency:percentile(99)))
  out:close()
end
"""


def parse_wrk_json(text: str, concurrency: int) -> LoadResult:
    """wrk's summary (requests include errors) as a LoadResult."""
    raw = json.loads(text)
    seconds = raw["micros"] / 1e6
    ok = max(0, int(raw["requests"]) - int(raw["errors"]))
    return LoadResult(
        transport="rest", concurrency=concurrency, seconds=seconds, requests=ok,
        errors=int(raw["errors"]), rps=ok / seconds if seconds > 0 else 0.0,
        p50_ms=raw["p50_us"] / 1000.0, p99_ms=raw["p99_us"] / 1000.0, tool="wrk",
    )


def run_wrk(url: str, body: bytes, concurrency: int, seconds: float) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        body_path, out_path, script = (str(Path(tmp, n)) for n in ("body", "out.json", "s.lua"))
        Path(body_path).write_bytes(body)
        Path(script).write_text(wrk_lua(body_path, out_path))
        threads = max(1, min(2, concurrency))
        command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
                   "--timeout", "10s", "-s", script, url]
        subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)
        return parse_wrk_json(Path(out_path).read_text(), concurrency)


# ------------------------------------------- REST: asyncio fallback (no wrk)


def http_request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def content_length(head: bytes) -> int:
    """Content-Length from a response head (0 when absent)."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _http_client(host: str, port: int, request: bytes, end: float,
                       latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < end:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(content_length(head))
            if head.startswith(b"HTTP/1.1 200"):
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(1)
    finally:
        writer.close()


async def _run_http(url: str, body: bytes, concurrency: int, seconds: float) -> LoadResult:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = http_request(host, port, parts.path, body)
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    end = start + seconds
    await asyncio.gather(*(_http_client(host, port, request, end, latencies, errors)
                           for _ in range(concurrency)))
    return summarize_latencies("rest", concurrency, time.perf_counter() - start, latencies,
                               len(errors), "asyncio")


# --------------------------------------------------------------------- gRPC


async def _run_grpc(target: str, method: str, request: bytes, concurrency: int,
                    seconds: float) -> LoadResult:
    import grpc

    channels = [grpc.aio.insecure_channel(target)
                for _ in range(max(1, -(-concurrency // CALLS_PER_CHANNEL)))]
    # No serializers: bytes in, bytes out.
    calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
        ch.unary_unary(method, None, None) for ch in channels]
    latencies: list[float] = []
    errors: list[int] = []

    async def client(i: int) -> None:
        call = calls[i % len(calls)]
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                await call(request, timeout=10)
            except grpc.aio.AioRpcError:
                errors.append(1)
                continue
            latencies.append(time.perf_counter() - t0)

    # One warm call per channel so connection setup is not in the numbers.
    for call in calls:
        try:
            await call(request, timeout=30)
        except grpc.aio.AioRpcError:
            pass  # connected all the same (see _run_grpc_threads)
    start = time.perf_counter()
    end = start + seconds
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    for ch in channels:
        await ch.close(None)
    return summarize_latencies("grpc", concurrency, elapsed, latencies, len(errors), "grpc.aio")


def _run_grpc_threads(target: str, method: str, request: bytes, concurrency: int,
                      seconds: float) -> LoadResult:
    """Blocking calls from N threads: less client overhead per call than grpc.aio
    when few calls are in flight, so low-concurrency latency is the server's."""
    import threading

    import grpc

    channel = grpc.insecure_channel(target)
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method, None, None)
    try:
        call(request, timeout=30)  # connect outside the window
    except grpc.RpcError:
        pass  # connected all the same; an error status (a swap's gap) is not setup's concern
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency

    def client(i: int) -> None:
        mine = latencies[i]
        while True:
            t0 = time.perf_counter()
            if t0 >= end:
                return
            try:
                call(request, timeout=10)
            except grpc.RpcError:
                errors[i] += 1
                continue
            mine.append(time.perf_counter() - t0)

    start = time.perf_counter()
    end = start + seconds
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    elapsed = time.perf_counter() - start
    channel.close()
    flat = [v for mine in latencies for v in mine]
    return summarize_latencies("grpc", concurrency, elapsed, flat, sum(errors), "grpc threads")


# ------------------------------------------------------- the process boundary


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


class LoadProcess:
    """A load generator process started in the background; `result()` waits for it.

    REST: `target` is the full URL, `body` the JSON bytes. gRPC: `target` is
    host:port, `method` the full method path, `body` the serialized request.
    """

    def __init__(self, transport: str, target: str, body: bytes, concurrency: int,
                 seconds: float, method: str = "", use_wrk: bool | None = None,
                 start_at: float | None = None) -> None:
        self.seconds = seconds
        with tempfile.NamedTemporaryFile(prefix="loadgen-body-", delete=False) as f:
            f.write(body)
            self._body_file = f.name
        command = [sys.executable, "-m", "benchmarks.loadgen", transport, target,
                   "--body-file", self._body_file, "--concurrency", str(concurrency),
                   "--seconds", str(seconds)]
        if method:
            command += ["--method", method]
        if use_wrk is False:
            command.append("--no-wrk")
        if start_at is not None:
            command += ["--start-at", repr(start_at)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env,
                                      cwd=Path(__file__).resolve().parent.parent)

    def result(self) -> LoadResult:
        try:
            out, err = self._proc.communicate(timeout=self.seconds + 120)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, err = self._proc.communicate(timeout=10)
        finally:
            os.unlink(self._body_file)
        if self._proc.returncode != 0:
            raise RuntimeError(f"loadgen failed ({self._proc.returncode}): {err[-2000:]}")
        return LoadResult(**json.loads(out.strip().splitlines()[-1]))


def run_loadgen(transport: str, target: str, body: bytes, concurrency: int, seconds: float,
                method: str = "", use_wrk: bool | None = None) -> LoadResult:
    """Drive `target` from a separate process for `seconds` and return what it measured."""
    return LoadProcess(transport, target, body, concurrency, seconds, method, use_wrk).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="closed-loop load generator (one JSON line)")
    parser.add_argument("transport", choices=["rest", "grpc"])
    parser.add_argument("target", help="REST: URL; gRPC: host:port")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--method", default="/tensorflow.serving.PredictionService/Predict")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-wrk", action="store_true", help="REST: use the asyncio client")
    parser.add_argument("--start-at", type=float, default=None,
                        help="time.time() to start at, so a caller can align its own events")
    args = parser.parse_args(argv)
    body = Path(args.body_file).read_bytes()
    if args.start_at is not None:
        # Process start-up (imports, connections) must not eat into the window.
        time.sleep(min(30.0, max(0.0, args.start_at - time.time())))
    result: LoadResult
    if args.transport == "rest":
        if have_wrk() and not args.no_wrk:
            result = run_wrk(args.target, body, args.concurrency, args.seconds)
        else:
            result = asyncio.run(_run_http(args.target, body, args.concurrency, args.seconds))
    elif args.concurrency <= THREADED_GRPC_MAX:
        result = _run_grpc_threads(args.target, args.method, body, args.concurrency,
                                   args.seconds)
    else:
        result = asyncio.run(_run_grpc(args.target, args.method, body, args.concurrency,
                                       args.seconds))
    payload: dict[str, Any] = asdict(result)
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
