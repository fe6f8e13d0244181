"""A tiny HTTP echo server shipped for the quickstart, so a new user has an upstream.

``python -m agentgw_demo.echo --port 9001`` answers every request with JSON describing
it (method, path, headers, body) and ``/sse`` with a short event stream. It runs on
agentgw's own engine, so it needs nothing beyond the package.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop

from agentgw.engine.http import Headers
from agentgw.engine.server import HttpServerProtocol, ServerSettings


async def _handle(req, ex) -> None:
    if req.path == "/sse":
        ex.start(200, Headers([("content-type", "text/event-stream"), ("cache-control", "no-cache")]))
        for i in range(5):
            ex.write(b"data: " + orjson.dumps({"event": i}) + b"\n\n")
            await asyncio.sleep(0.2)
        ex.end()
        return
    body = await req.body.read_all()
    out = {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "headers": [[k, v] for k, v in req.headers],
        "body": body.decode("utf-8", "replace"),
        "server": "agentgw-demo-echo",
    }
    ex.send(200, Headers([("content-type", "application/json")]), orjson.dumps(out, option=orjson.OPT_INDENT_2))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    settings = ServerSettings(_handle)
    await loop.create_server(lambda: HttpServerProtocol(settings, loop), host, port, reuse_address=True)
    print(f"demo echo server on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description="agentgw demo echo upstream")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001)
    a = p.parse_args()
    try:
        uvloop.run(serve(a.host, a.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
