"""The admin listener's relay: ``/api/v1/relay/<port>/<path>`` sends the request to the
gateway's own bind on ``<port>`` and streams the answer back.

It is how the web UI's playgrounds reach a route from the admin page's origin, without
CORS on the route: the request enters the bind as any client's would (the route's
policies all apply; its peer is 127.0.0.1), with the caller's headers but the admin
API's own: ``x-agentgw-admin-authorization`` (checked before this runs, never passed on),
``x-agentgw-relay-host`` (the ``Host`` the route is to see; default
``localhost:<port>``), the browser's ``Origin``, ``Referer``, ``Cookie`` and
``Sec-Fetch-*``, and hop-by-hop headers. ``Authorization`` is never passed on either: a
browser attaches one by itself where a ``basicAuth`` policy once challenged it (the UI
on a traffic listener), and that credential is not the route's. The route's credential
goes in ``x-agentgw-relay-authorization`` and is sent as ``Authorization``. Only the ports of the running config's binds
are reachable: the relay is no open proxy. A TLS bind is reached over TLS without
verifying the certificate (it is this process's own listener, on loopback).
"""

from __future__ import annotations

import asyncio
import re
import ssl

import httptools

from ..engine.http import GatewayError, Headers, strip_hop_by_hop

__all__ = ["relay"]

MAX_BODY = 16 << 20
CONNECT_TIMEOUT = 5.0
HEAD_TIMEOUT = 300.0  # a tool call or a completion may think for a while
_DROP = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "origin",
        "referer",
        "cookie",
        "x-agentgw-admin-authorization",
        "x-agentgw-relay-host",
        "authorization",
        "x-agentgw-relay-authorization",
        # the request enters the bind from 127.0.0.1: what a proxy would say of the client
        # is the caller's claim here, and a bind that trusts loopback would believe it
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-real-ip",
    }
)
_DROP_BACK = frozenset({"connection", "keep-alive", "transfer-encoding", "trailer", "upgrade", "content-length"})
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class RelayError(GatewayError):
    def __init__(self, status: int, message: str):
        super().__init__(status, "relay_error", message)


class _Response:
    """httptools callbacks: the head, then body chunks into a queue."""

    def __init__(self):
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.head = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._name = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.put_nowait(bytes(body))

    def on_message_complete(self) -> None:
        self.chunks.put_nowait(None)


async def relay(req, ex, spec: str, raw_rest: str, rt) -> None:
    """Relay ``req`` to the bind named by ``spec`` (``<port>/<path>``)."""
    port_s, _, _ = spec.partition("/")
    path = "/" + raw_rest.partition("/")[2]
    if not port_s.isdigit():
        raise RelayError(404, "relay: /api/v1/relay/<port>/<path>, <port> a bind of this gateway")
    port = int(port_s)
    bind = rt.binds.get(port) if rt is not None else None
    if bind is None or getattr(bind, "internal", False):
        raise RelayError(404, f"relay: this gateway serves no bind on port {port}")
    if req.method in ("CONNECT", "TRACE"):
        raise RelayError(405, f"relay: {req.method} is not relayed")
    h = req.headers
    host = h.get("x-agentgw-relay-host") or f"localhost:{port}"
    if not _HOST.match(host):
        raise RelayError(400, "relay: x-agentgw-relay-host must be a host name or address, with an optional port")
    body = await req.body.read_all(MAX_BODY)
    target = path + (f"?{req.query}" if req.query else "")
    lines = [f"{req.method} {target} HTTP/1.1", f"host: {host}"]
    for name, value in strip_hop_by_hop(h):  # (and what Connection names)
        if name not in _DROP and not name.startswith(("sec-fetch-", "proxy-")):
            lines.append(f"{name}: {value}")
    route_credential = h.get("x-agentgw-relay-authorization")
    if route_credential:
        lines.append(f"authorization: {route_credential}")
    if body or req.method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body)}")
    lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    tls = rt.bind_tls.get(port) is not None or any(lst.tls is not None for lst in bind.tcp or bind.listeners)
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname=host.rsplit(":", 1)[0].strip("[]") if ctx else None
            ),
            CONNECT_TIMEOUT,
        )
    except (OSError, TimeoutError) as e:
        raise RelayError(502, f"relay: cannot connect to the bind on port {port}: {e}") from None
    resp = _Response()
    parser = httptools.HttpResponseParser(resp)

    async def pump() -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                resp.chunks.put_nowait(None)  # a close-delimited body ends here
                return
            parser.feed_data(data)

    writer.write(head + body)
    pumping = asyncio.ensure_future(pump())
    try:
        await _relay_answer(ex, resp, parser, pumping)
    finally:
        writer.close()
        if not pumping.done():
            pumping.cancel()


async def _relay_answer(ex, resp: _Response, parser, pumping: asyncio.Future) -> None:
    done, _ = await asyncio.wait({resp.head, pumping}, timeout=HEAD_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if not resp.head.done():
        if not done:
            raise RelayError(504, "relay: the gateway did not answer in time")
        exc = pumping.exception()
        raise RelayError(502, f"relay: no answer from the gateway ({exc or 'connection closed'})")
    headers = strip_hop_by_hop(Headers([(n, v) for n, v in resp.headers if n not in _DROP_BACK]))
    if headers.get("cache-control") is None:
        headers.append(("cache-control", "no-store"))
    ex.start(parser.get_status_code(), headers)
    while True:
        get = asyncio.ensure_future(resp.chunks.get())
        await asyncio.wait({get, pumping}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        if get.done():
            chunk = get.result()
            if chunk is None:
                ex.end()
                return
            ex.write(chunk)
            await ex.drain()
            continue
        get.cancel()
        if ex.disconnected or ex.draining:
            ex.abort()
            return
        if pumping.done() and pumping.exception() is not None and resp.chunks.empty():
            ex.abort()  # a body cut short (or unparsable) must not look complete
            return
