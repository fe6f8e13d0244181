"""A real HTTP upstream used as the backend in gateway tests.

Built on aiohttp, independent from agentgw.  Run it with::

    python -m tests.support.upstream --port 0 [--port 0 ...] [--name NAME]
        [--tls-cert CERT --tls-key KEY]

It prints ``READY <port> [<port> ...]`` once every listening socket is bound.

Endpoints (any path not listed below behaves like ``/echo``):

* ``/echo*``            JSON description of the request (method, path, raw query,
                        headers as ``[name, value]`` pairs, body, upstream name).
                        ``?status=N``, ``?delay=S`` and ``?header=k:v`` (repeatable).
* ``/sse?n=N&interval=S``      ``text/event-stream``, one ``data: {"i":..,"t":..}``
                               event per interval.
* ``/chunked?n=N&interval=S``  chunked body, one line per interval.
* ``/big?size=N[&chunked=1]``  deterministic body of N bytes (see ``big_body``).
* ``/slow?delay=S``            answers after S seconds.
* ``/die[?chunked=1]``         headers and part of the body, then aborts the connection.
* ``/reset``                   aborts the connection before sending anything.
* ``/status/N``                empty-ish response with status N.
* ``/ws``                      WebSocket echo (text and binary).
* ``/count[?path=P]``          requests served by this process per path.
* ``/flaky?fail=K&key=X``      the first K requests with key X get 503, then 200.
* ``/upload``                  reads the request body incrementally and reports when
                               each piece arrived (to prove request streaming).

Every response carries ``x-upstream-name`` and ``x-upstream-port``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import signal
import ssl
import sys
import time

from aiohttp import WSMsgType, web

PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


def big_body(size: int) -> bytes:
    """The deterministic body served by ``/big?size=N``."""
    reps = size // len(PATTERN) + 1
    return (PATTERN * reps)[:size]


class State:
    def __init__(self, name: str) -> None:
        self.name = name
        self.counts: collections.Counter[str] = collections.Counter()
        self.flaky: collections.Counter[str] = collections.Counter()
        self.log: collections.deque[list] = collections.deque(maxlen=2000)


def _split_raw(request: web.Request) -> tuple[str, str]:
    raw = request.raw_path
    path, sep, query = raw.partition("?")
    return path, query


def _local_port(request: web.Request) -> int:
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sock[1]) if sock else 0


def _peer_port(request: web.Request) -> int:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return int(peer[1]) if peer else 0


def _fnum(request: web.Request, name: str, default: float) -> float:
    try:
        return float(request.query.get(name, default))
    except ValueError:
        return default


def _inum(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        return default


async def handle_echo(request: web.Request, state: State) -> web.StreamResponse:
    body = await request.read()
    delay = _fnum(request, "delay", 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    path, query = _split_raw(request)
    payload = {
        "upstream": state.name,
        "port": _local_port(request),
        "peer_port": _peer_port(request),
        "method": request.method,
        "path": path,
        "query": query,
        "raw_path": request.raw_path,
        "http_version": f"{request.version.major}.{request.version.minor}",
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "body": body.decode("utf-8", errors="replace"),
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    status = _inum(request, "status", 200)
    resp = web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
    )
    for item in request.query.getall("header", []):
        k, _, v = item.partition(":")
        if k:
            resp.headers.add(k.strip(), v.strip())
    return resp


async def handle_sse(request: web.Request, state: State) -> web.StreamResponse:
    n = _inum(request, "n", 3)
    interval = _fnum(request, "interval", 0.1)
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
    )
    await resp.prepare(request)
    for i in range(n):
        if i:
            await asyncio.sleep(interval)
        event = f"data: {json.dumps({'i': i, 't': time.time()})}\n\n"
        await resp.write(event.encode())
    await resp.write_eof()
    return resp


async def handle_chunked(request: web.Request, state: State) -> web.StreamResponse:
    n = _inum(request, "n", 3)
    interval = _fnum(request, "interval", 0.05)
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(n):
        if i:
            await asyncio.sleep(interval)
        await resp.write(f"chunk {i} {time.time()}\n".encode())
    await resp.write_eof()
    return resp


async def handle_big(request: web.Request, state: State) -> web.StreamResponse:
    size = _inum(request, "size", 1024)
    body = big_body(size)
    if request.query.get("chunked") == "1":
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        step = 64 * 1024
        for off in range(0, len(body), step):
            await resp.write(body[off : off + step])
        await resp.write_eof()
        return resp
    return web.Response(body=body, content_type="application/octet-stream")


async def handle_slow(request: web.Request, state: State) -> web.StreamResponse:
    await request.read()
    delay = _fnum(request, "delay", 1.0)
    await asyncio.sleep(delay)
    return web.json_response({"slept": delay, "upstream": state.name})


async def handle_die(request: web.Request, state: State) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
    if request.query.get("chunked") == "1":
        resp.enable_chunked_encoding()
    else:
        resp.content_length = 100_000
    await resp.prepare(request)
    await resp.write(b"x" * 1000)
    await asyncio.sleep(0.2)
    if request.transport is not None:
        request.transport.abort()
    # Make the handler end without aiohttp trying to finish the response.
    raise asyncio.CancelledError()


async def handle_trailers(request: web.Request, state: State) -> web.StreamResponse:
    """A chunked response with a trailer section, written raw (aiohttp can't send
    trailers); the connection closes after it."""
    if request.transport is not None:
        request.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\nX-Head-Field: h\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer-Field: t\r\nSet-Cookie: from-trailer=1\r\n\r\n"
        )
        request.transport.close()
    raise asyncio.CancelledError()


async def handle_interim(request: web.Request, state: State) -> web.StreamResponse:
    """A 103 Early Hints, then the final response with hop-by-hop fields, written raw and
    in small pieces so its head spans several reads; the connection closes after it."""
    t = request.transport
    if t is not None:
        raw = (
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nKeep-Alive: timeout=5\r\n"
            b"Connection: close\r\nX-End-To-End: e\r\ncontent-LENGTH: 2\r\n\r\nok"
        )
        for i in range(0, len(raw), 37):
            t.write(raw[i : i + 37])
            await asyncio.sleep(0.01)
        t.close()
    raise asyncio.CancelledError()


async def handle_bighead(request: web.Request, state: State) -> web.StreamResponse:
    """A response head that never ends: 1 KiB header lines until the peer gives up."""
    t = request.transport
    if t is not None:
        t.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
        line = b"X-Pad: " + b"p" * 1017 + b"\r\n"
        for _ in range(2048):  # 2 MiB at most
            if t.is_closing():
                break
            t.write(line * 16)
            await asyncio.sleep(0.001)
        t.close()
    raise asyncio.CancelledError()


async def handle_reset(request: web.Request, state: State) -> web.StreamResponse:
    if request.transport is not None:
        sock = request.transport.get_extra_info("socket")
        if sock is not None:
            import socket as _socket
            import struct

            try:  # RST instead of FIN
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        request.transport.abort()
    raise asyncio.CancelledError()


async def handle_status(request: web.Request, state: State) -> web.StreamResponse:
    path, _ = _split_raw(request)
    try:
        code = int(path.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        code = 400
    if code in (204, 304) or code < 200:
        return web.Response(status=code)
    return web.json_response({"status": code, "upstream": state.name}, status=code)


async def handle_ws(request: web.Request, state: State) -> web.StreamResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data == "close":
                await ws.close()
                break
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        else:
            break
    return ws


async def handle_count(request: web.Request, state: State) -> web.StreamResponse:
    if request.query.get("reset") == "1":
        state.counts.clear()
        state.flaky.clear()
        state.log.clear()
    path = request.query.get("path")
    if path is not None:
        return web.json_response({"path": path, "count": state.counts.get(path, 0)})
    return web.json_response({"counts": dict(state.counts), "log": list(state.log), "upstream": state.name})


async def handle_flaky(request: web.Request, state: State) -> web.StreamResponse:
    body = await request.read()
    fail = _inum(request, "fail", 1)
    key = request.query.get("key", "default")
    state.flaky[key] += 1
    n = state.flaky[key]
    payload = {"key": key, "attempt": n, "body_len": len(body), "upstream": state.name}
    if n <= fail:
        return web.json_response(payload, status=503)
    return web.json_response(payload, status=200)


async def handle_upload(request: web.Request, state: State) -> web.StreamResponse:
    started = time.time()
    pieces = []
    total = 0
    h = hashlib.sha256()
    while True:
        data = await request.content.readany()
        if not data:
            break
        pieces.append([time.time(), len(data)])
        total += len(data)
        h.update(data)
    return web.json_response(
        {
            "handler_started": started,
            "pieces": pieces,
            "total": total,
            "sha256": h.hexdigest(),
            "upstream": state.name,
        }
    )


ROUTES = {
    "/sse": handle_sse,
    "/chunked": handle_chunked,
    "/big": handle_big,
    "/slow": handle_slow,
    "/die": handle_die,
    "/reset": handle_reset,
    "/trailers": handle_trailers,
    "/interim": handle_interim,
    "/bighead": handle_bighead,
    "/ws": handle_ws,
    "/count": handle_count,
    "/flaky": handle_flaky,
    "/upload": handle_upload,
}


def make_app(name: str) -> web.Application:
    state = State(name)
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app["state"] = state

    async def dispatch(request: web.Request) -> web.StreamResponse:
        path, _ = _split_raw(request)
        if path != "/count":
            state.counts[path] += 1
            state.log.append([request.method, request.raw_path])
        handler = ROUTES.get(path)
        if handler is None and path.startswith("/status/"):
            handler = handle_status
        if handler is None:
            handler = handle_echo
        return await handler(request, state)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-upstream-name"] = name
        response.headers["x-upstream-port"] = str(_local_port(request))

    app.on_response_prepare.append(on_prepare)
    app.router.add_route("*", "/{tail:(?s:.*)}", dispatch)  # (?s): decoded paths may hold newlines
    return app


async def serve(args: argparse.Namespace) -> None:
    app = make_app(args.name)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ssl_ctx = None
    if args.tls_cert:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
    ports = []
    for port in args.port or [0]:
        site = web.TCPSite(runner, args.host, port, ssl_context=ssl_ctx, backlog=512)
        await site.start()
        server = site._server  # noqa: SLF001 - needed to learn the bound port
        ports.append(server.sockets[0].getsockname()[1])
    print("READY " + " ".join(str(p) for p in ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="test upstream server")
    p.add_argument("--port", type=int, action="append", help="repeatable; 0 = any")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--name", default="upstream")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
