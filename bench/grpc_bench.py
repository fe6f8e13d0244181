#!/usr/bin/env python3
"""gRPC upstream and load client for ``bench/run.py grpc``.

    python bench/grpc_bench.py server --port P [--mode aio|sync]
    python bench/grpc_bench.py client --target HOST:PORT --calls N [--concurrency C] ...

The server answers one unary method, ``/bench.Echo/Unary``, with a generic handler on raw
bytes (no protobuf on either side: what is measured is the transport and the proxy hop),
echoing the request message. ``grpc.health.v1.Health/Check`` (SERVING) is registered too,
so the server can be probed with any health client.

The client makes unary calls on one channel and prints one JSON object on stdout:

* ``--concurrency 1``: ``--warmup-calls`` calls not recorded, then ``--calls`` calls one
  after another, each timed with ``time.perf_counter_ns`` (the blocking stub, as a
  service calling another does);
* ``--concurrency C`` (> 1): ``grpc.aio``, C coroutines each calling back to back for
  ``--warmup-s`` (not recorded), then for ``--duration-s``, every call timed.

With ``--cpu-pid PID`` the client samples that process tree's CPU (utime/stime from
/proc) right before and after the recorded calls, so the warm-up and the client's own
start-up stay outside the proxy's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

METHOD = "/bench.Echo/Unary"
PAYLOAD = b"bench-grpc-unary-" + b"x" * 47  # 64 bytes


# ---------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------


def _handlers():
    import grpc

    def unary(request: bytes, context) -> bytes:
        return request

    return grpc.method_handlers_generic_handler("bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)})


def serve_sync(port: int, workers: int) -> None:
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((_handlers(),))
    hs = health.HealthServicer()
    hs.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"grpc server (sync, {workers} workers) on :{port}", flush=True)
    server.wait_for_termination()


def serve_aio(port: int) -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    async def unary(request: bytes, context) -> bytes:
        return request

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)}),)
        )
        hs = health.aio.HealthServicer()
        await hs.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(hs, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print(f"grpc server (aio) on :{port}", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


# ---------------------------------------------------------------------------
# client
# ---------------------------------------------------------------------------


def _cpu(pid: int | None) -> tuple[float, float] | None:
    if pid is None:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lib

    return lib.cpu_times(pid)


def _pct(sorted_ns: list[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    i = min(len(sorted_ns) - 1, max(0, round(q / 100 * len(sorted_ns)) - 1))
    return sorted_ns[i] / 1e6


def _report(lat_ns: list[int], errors: int, first_error: str | None, elapsed: float, cpu0, cpu1) -> dict:
    s = sorted(lat_ns)
    out = {
        "calls": len(s),
        "errors": errors,
        "first_error": first_error,
        "elapsed_s": elapsed,
        "rps": len(s) / elapsed if elapsed > 0 else 0.0,
        "mean_ms": (sum(s) / len(s) / 1e6) if s else None,
        "min_ms": s[0] / 1e6 if s else None,
        "max_ms": s[-1] / 1e6 if s else None,
        "percentiles_ms": {f"{q:g}": _pct(s, q) for q in (50, 75, 90, 99, 99.9)},
    }
    if cpu0 is not None and cpu1 is not None:
        out["cpu_user_s"] = cpu1[0] - cpu0[0]
        out["cpu_sys_s"] = cpu1[1] - cpu0[1]
    return out


def client_sequential(a: argparse.Namespace) -> dict:
    import grpc

    ch = grpc.insecure_channel(a.target)
    call = ch.unary_unary(METHOD)
    errors, first = 0, None
    for _ in range(a.warmup_calls):
        try:
            call(PAYLOAD, timeout=a.timeout)
        except grpc.RpcError as e:
            errors += 1
            first = first or f"{e.code()}: {e.details()}"
    if errors:
        return _report([], errors, first, 0.0, None, None)
    lat: list[int] = []
    pc = time.perf_counter_ns
    cpu0 = _cpu(a.cpu_pid)
    t0 = pc()
    for _ in range(a.calls):
        s = pc()
        try:
            r = call(PAYLOAD, timeout=a.timeout)
        except grpc.RpcError as e:
            errors += 1
            first = first or f"{e.code()}: {e.details()}"
            continue
        lat.append(pc() - s)
        if r != PAYLOAD:
            errors += 1
            first = first or f"unexpected reply {r[:40]!r}"
    elapsed = (pc() - t0) / 1e9
    cpu1 = _cpu(a.cpu_pid)
    ch.close()
    return _report(lat, errors, first, elapsed, cpu0, cpu1)


def client_concurrent(a: argparse.Namespace) -> dict:
    import grpc

    async def main() -> dict:
        async with grpc.aio.insecure_channel(a.target) as ch:
            call = ch.unary_unary(METHOD)
            state = {"record": False, "stop": False, "errors": 0, "first": None}
            lat: list[int] = []
            pc = time.perf_counter_ns

            async def worker() -> None:
                while not state["stop"]:
                    s = pc()
                    try:
                        r = await call(PAYLOAD, timeout=a.timeout)
                    except grpc.RpcError as e:
                        state["errors"] += 1
                        state["first"] = state["first"] or f"{e.code()}: {e.details()}"
                        continue
                    if state["record"]:
                        lat.append(pc() - s)
                        if r != PAYLOAD:
                            state["errors"] += 1

            tasks = [asyncio.create_task(worker()) for _ in range(a.concurrency)]
            await asyncio.sleep(a.warmup_s)
            cpu0 = _cpu(a.cpu_pid)
            state["record"] = True
            t0 = time.perf_counter()
            await asyncio.sleep(a.duration_s)
            state["record"] = False
            elapsed = time.perf_counter() - t0
            cpu1 = _cpu(a.cpu_pid)
            state["stop"] = True
            await asyncio.gather(*tasks, return_exceptions=True)
            return _report(lat, state["errors"], state["first"], elapsed, cpu0, cpu1)

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--mode", choices=("aio", "sync"), default="aio")
    s.add_argument("--workers", type=int, default=16, help="sync mode: thread pool size")
    c = sub.add_parser("client")
    c.add_argument("--target", required=True, help="host:port")
    c.add_argument("--calls", type=int, default=2000, help="recorded calls (sequential)")
    c.add_argument("--warmup-calls", type=int, default=200, help="calls before recording (sequential)")
    c.add_argument("--concurrency", type=int, default=1)
    c.add_argument("--duration-s", type=float, default=10.0, help="recorded seconds (concurrent)")
    c.add_argument("--warmup-s", type=float, default=2.0, help="seconds before recording (concurrent)")
    c.add_argument("--timeout", type=float, default=10.0, help="per-call deadline (sent as grpc-timeout)")
    c.add_argument("--cpu-pid", type=int, default=None, help="sample this process tree's CPU around the recorded calls")
    a = ap.parse_args(argv)
    if a.cmd == "server":
        if a.mode == "aio":
            serve_aio(a.port)
        else:
            serve_sync(a.port, a.workers)
        return 0
    res = client_sequential(a) if a.concurrency <= 1 else client_concurrent(a)
    print(json.dumps(res))
    return 0 if res["errors"] == 0 and res["calls"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
