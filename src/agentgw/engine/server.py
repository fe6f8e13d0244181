"""The client-facing HTTP/1.1 server: one asyncio Protocol per connection.

Bytes go straight from ``data_received`` into llhttp (via httptools); its callbacks build
a :class:`Request` and an :class:`Exchange` (the response side of one request), and the
handler coroutine runs as one task per request. Everything else here is connection
bookkeeping that a gateway needs and a framework would hide: pipelining (requests are
answered strictly in order), keep-alive, flow control in both directions, limits
(header bytes → 431, body bytes → 413, header-read deadline → 408, connection cap), and
protocol switches (WebSocket) that turn the connection into a raw tunnel.

Timers are not armed per request: each connection carries a ``deadline`` and one sweeper
per server closes the ones that passed it. That keeps two timer handles per request off
the hot path at the cost of ±1 s precision, which is fine for idle and slowloris limits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httptools

from .body import RequestBody
from .canon import BadHead, canonical_host, split_absolute_form
from .canon import known as _known_hosts
from .grpc import wants_trailers
from .heads import FieldSink, decode_fields
from .http import GatewayError, Headers, encode_headers, error_body, status_line
from .outbox import BufferedWriter, outbox_for
from .tcp import Keepalive, set_keepalive

log = logging.getLogger("agentgw.engine")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Connection states, for deadline handling.
_IDLE, _READING, _ACTIVE, _TUNNEL = 0, 1, 2, 3
BODY_WAIT_BYTES = 64 << 10  # request bodies up to this size are in before a request starts


class ServerSettings:
    """Per-bind settings and shared state read by every connection on that bind."""

    def __init__(
        self,
        handler: Callable[[Request, Exchange], Awaitable[None]],
        *,
        scheme: str = "http",
        max_header_bytes: int = 64 * 1024,
        max_body_bytes: int = 10 * 1024 * 1024,
        header_read_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        body_timeout: float = 60.0,
        max_header_count: int = 100,
        underscore_headers: str = "drop",
        max_connections: int = 10000,
        on_connection_change: Callable[[int], None] | None = None,
        keepalive: Keepalive | None = None,
    ):
        self.handler = handler
        # fast_handler(req, ex) -> bool: try to serve without a task (see proxy/pipeline.py);
        # False means "not handled, run ``handler`` in a task".
        self.fast_handler: Callable[[Request, Exchange], bool] | None = None
        self.scheme = scheme
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.header_read_timeout = header_read_timeout
        self.idle_timeout = idle_timeout
        # longest wait for the next bytes of a request body that is being read
        self.body_timeout = body_timeout
        self.max_header_count = max_header_count
        # header names with "_": "drop" (nginx's default), "reject" (400) or "allow".
        # CGI-style upstreams (WSGI, PHP, Rack) read "x_user" as "x-user", past policies
        # that strip or set the dashed name.
        self.underscore_headers = underscore_headers
        self.max_connections = max_connections
        self.on_connection_change = on_connection_change
        # TCP keepalive probes on accepted connections (see ``tcp``); None: off
        self.keepalive = keepalive
        # CONNECT requests: ``connect_handler(host, port)`` returns ``takeover(transport,
        # data)``, given the connection once it has answered 200, or ``(status, kind,
        # message)`` to refuse; None: CONNECT is answered 405 (tunnelProtocol: connect)
        self.connect_handler: Callable[[str, int], Any] | None = None
        self.connections: set[HttpServerProtocol] = set()
        self.draining = False
        self._sweeper: asyncio.TimerHandle | None = None

    # -- deadline sweeper ---------------------------------------------------------------
    def start_sweeper(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeper is None:
            self._sweeper = loop.call_later(1.0, self._sweep, loop)

    def stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for conn in list(self.connections):
            if conn.deadline and now >= conn.deadline:
                conn.deadline_passed()
        self._sweeper = loop.call_later(1.0, self._sweep, loop)

    def drain(self) -> None:
        """Stop keep-alive: idle connections close now, busy ones after their response."""
        self.draining = True
        for conn in list(self.connections):
            conn.close_if_idle()


class Request:
    """One parsed request head plus its body stream."""

    method: str
    target: str
    path: str
    query: str
    headers: Headers
    http_version: str
    keep_alive: bool
    body: RequestBody
    client_addr: str
    scheme: str
    upgrade: bool
    expect_continue: bool
    tls: dict | None
    host: str

    __slots__ = (
        "method",
        "target",
        "path",
        "query",
        "headers",
        "http_version",
        "keep_alive",
        "body",
        "client_addr",
        "scheme",
        "upgrade",
        "expect_continue",
        "tls",
        "host",
    )

    def __init__(self):
        self.upgrade = False
        self.expect_continue = False
        # ``host``: the canonical authority (engine.canon), also the Host field's value


class HttpServerProtocol(BufferedWriter, asyncio.Protocol):
    __slots__ = (
        "settings",
        "loop",
        "transport",
        "parser",
        "peer",
        "tls",
        "deadline",
        "state",
        "current",
        "queue",
        "write_paused",
        "_drain_waiters",
        "_pause_hooks",
        "_url",
        "_fields",
        "on_url",
        "on_header",
        "_req",
        "_closing",
        "_read_paused",
        "_tunnel",
        "_tunnel_buffer",
        "_connect",
        "_dead",
        "_pending",
        "_body_due",
        "_out",
        "_outbox",
        "_sniff",
    )

    def __init__(self, settings: ServerSettings, loop: asyncio.AbstractEventLoop):
        self.settings = settings
        self.loop = loop
        # None until connection_made, which comes before any use
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._url: list[bytes] = []
        # Raw header names and values of the head (or trailer section) being parsed,
        # alternating, decoded together once it is complete (see on_headers_complete).
        # The parser's URL and header callbacks append to these lists directly: C
        # callables, so llhttp hands over each piece without entering the interpreter.
        self._fields = FieldSink()
        self.on_url = self._url.append
        self.on_header = self._fields
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self.tls: dict | None = None
        self.deadline = 0.0
        self.state = _IDLE
        self.current: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.write_paused = False
        self._drain_waiters: list[asyncio.Future] = []
        self._pause_hooks: list = []
        self._req: Request | None = None
        self._closing = False
        self._read_paused = False
        self._tunnel: asyncio.Transport | None = None
        self._tunnel_buffer: list[bytes] | None = None
        self._connect: tuple[str, int] | None = None  # a CONNECT request's target
        self._dead = False
        self._pending: Exchange | None = None  # parsed in this read, started after it
        # The pending exchange's body has a content-length of at most BODY_WAIT_BYTES: it
        # starts once the body is in. Handlers can then serve it on the task-free path
        # (which needs the whole body) instead of waiting for the body in a task; the
        # header-read deadline bounds the wait.
        self._body_due = False
        self._out: bytes | None = None  # a write held to the end of this loop turn
        self._outbox = outbox_for(loop)
        # HTTP/2 detection (see _first_bytes): b"" until the connection's first bytes are
        # looked at (or the start of a preface they were), None once it speaks HTTP/1.1.
        self._sniff: bytes | None = b""

    # -- connection lifecycle -------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        s = self.settings
        if len(s.connections) >= s.max_connections:
            body = error_body("too_many_connections", "connection limit reached")
            transport.write(
                status_line(503)
                + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            transport.close()
            self._dead = True
            return
        s.connections.add(self)
        if s.on_connection_change:
            s.on_connection_change(1)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if s.keepalive is not None:
                set_keepalive(sock, s.keepalive)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer[0] if isinstance(peer, tuple) else str(peer)
        if transport.get_extra_info("sslcontext") is not None:
            ssl_obj = transport.get_extra_info("ssl_object")
            self.tls = {
                "peercert": transport.get_extra_info("peercert"),
                "version": ssl_obj.version() if ssl_obj else None,
                # the context the handshake used (SNI may have switched to a listener's)
                "context": ssl_obj.context if ssl_obj else None,
            }
            # HTTP/2: TLS negotiated h2 (ALPN), the connection is h2server's
            if ssl_obj is not None and ssl_obj.selected_alpn_protocol() == "h2":
                self._to_h2(b"")
                return
        self.deadline = self.loop.time() + s.header_read_timeout

    def connection_lost(self, exc):
        # The parser holds this protocol (its callbacks): drop it so that a closed
        # connection is freed by reference counting, not left to the cyclic collector.
        self.parser = None  # type: ignore[assignment]  # nothing parses after connection_lost
        if self._dead:
            return
        self._dead = True
        self._out = None
        s = self.settings
        s.connections.discard(self)
        if s.on_connection_change:
            s.on_connection_change(-1)
        self.deadline = 0.0
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
        for ex in [self.current, *self.queue]:
            if ex is not None:
                ex.client_gone()
        self.queue.clear()
        for w in self._drain_waiters:
            if not w.done():
                w.set_exception(ConnectionResetError("client disconnected"))
        self._drain_waiters.clear()

    def eof_received(self):
        """The client half-closed: answer what it already sent, then close."""
        if self._tunnel is not None:
            self._tunnel.write_eof() if self._tunnel.can_write_eof() else None
            return True
        self._closing = True
        if self.current is not None or self.queue:
            return True  # keep the write side open for the response(s)
        return False

    # -- writing --------------------------------------------------------------------------
    def close(self) -> None:
        """Close after what was written (including a held write) has gone out."""
        if self._out is not None:
            self.flush_output()
        self.transport.close()

    # -- flow control ---------------------------------------------------------------------
    def pause_writing(self):
        self.write_paused = True
        for hook in self._pause_hooks:
            hook[0]()

    def resume_writing(self):
        self.write_paused = False
        for hook in self._pause_hooks:
            hook[1]()
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def drain(self) -> None:
        if self.write_paused and not self._dead:
            fut = self.loop.create_future()
            self._drain_waiters.append(fut)
            await fut

    def add_pause_hook(self, pause, resume) -> tuple:
        hook = (pause, resume)
        self._pause_hooks.append(hook)
        if self.write_paused:
            pause()
        return hook

    def remove_pause_hook(self, hook) -> None:
        try:
            self._pause_hooks.remove(hook)
        except ValueError:
            pass

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self._dead:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self._dead:
            self._read_paused = False
            self.transport.resume_reading()

    # -- parsing --------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.write(data)
            return
        if self._tunnel_buffer is not None:
            self._tunnel_buffer.append(data)
            return
        if self._closing:
            return
        state = self.state
        if state == _IDLE:
            self.state = _READING
            self.deadline = self.loop.time() + self.settings.header_read_timeout
            if self._sniff is not None:  # the connection's first bytes: HTTP/2 preface?
                first = self._first_bytes(data)
                if first is None:
                    return
                data = first
        elif state == _ACTIVE and self._req is not None:
            # a request body still coming in: the client may pause, but not forever
            self.deadline = self.loop.time() + self.settings.body_timeout
        try:
            self.parser.feed_data(data)
            if self._url or self._fields:
                # A head (or trailer section) is still incomplete after this read: bound
                # what it may hold before the rest arrives.
                self._check_head_size()
            ex = self._pending
            if ex is not None and (ex.request.body.complete or not self._body_due):
                # Start after the whole read is parsed, so a body that came in the same
                # packet as its head is already complete when the handler looks; a small
                # body sent in a write of its own (HTTP clients such as httpx write the
                # head and the body separately) is waited for here, from the reads, so
                # that the handler still finds it whole (see _body_due).
                self._pending = None
                self._start(ex)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            if self._connect is not None:
                self._open_tunnel(data[offset:])
                return
            self._tunnel_buffer = [data[offset:]] if offset < len(data) else []
            self.pause_reading()
            self._start_pending()
        except httptools.HttpParserCallbackError as exc:
            # httptools keeps what the callback raised as the context
            bad = exc.__context__
            if isinstance(bad, BadHead):  # a head with no single reading, or over a limit
                self._reject(bad.status, bad.kind, bad.message)
            else:
                log.exception("parser callback failed")
                self._reject(400, "bad_request", "malformed request")
        except httptools.HttpParserError as exc:
            msg = str(exc) or "malformed request"
            self._reject(400, "bad_request", f"malformed request: {msg}")

    # -- HTTP/2 (engine/h2server.py) -------------------------------------------------------
    def _first_bytes(self, data: bytes) -> bytes | None:
        """The first bytes of a connection (this runs once per connection, never per
        request): the HTTP/2 preface hands the connection to h2server (h2c, prior
        knowledge) and None is returned; anything else is HTTP/1.1 from here on, the
        bytes to parse are returned. ``PRI *`` is no HTTP/1.1 request (llhttp reads it
        as the preface only), so its first four bytes decide; fewer are held."""
        if self._sniff:
            data = self._sniff + data
        if data[:4] == b"PRI ":
            self._to_h2(data)
            return None
        if len(data) < 4 and b"PRI ".startswith(data):
            self._sniff = data
            self.state = _IDLE  # (looked at again with the next bytes)
            return None
        self._sniff = None
        return data

    def _to_h2(self, data: bytes) -> None:
        """Give the connection to an HTTP/2 protocol (``data``: what it read already).
        It takes this one's place in the connection set (and its count)."""
        from .h2server import H2ServerProtocol  # (imported by the first HTTP/2 connection)

        proto = H2ServerProtocol(self.settings, self.loop, self.transport, self.peer, self.tls)
        self._dead = True
        self._sniff = None
        self.parser = None  # type: ignore[assignment]  # nothing parses here any more
        self.deadline = 0.0
        s = self.settings
        s.connections.discard(self)
        s.connections.add(proto)  # type: ignore[arg-type]  # (the sweeper's and drain's interface)
        self.transport.set_protocol(proto)
        proto.start(data)

    def _start_pending(self) -> None:
        if self._pending is not None:
            ex, self._pending = self._pending, None
            self._start(ex)

    def _reject(self, status: int, kind: str, message: str) -> None:
        """Answer a request that can't be parsed and close: the framing can't be trusted."""
        self._closing = True
        if self._req is not None and self._req.body is not None:
            self._req.body.fail(GatewayError(status, kind, message))
        if self.current is None and self._pending is None:
            self._write_error_and_close(status, kind, message)
        else:
            # answer the requests read before the bad one, then close
            self._start_pending()

    def _write_error_and_close(self, status: int, kind: str, message: str) -> None:
        if self.transport is None or self._dead:
            return
        body = error_body(kind, message)
        self.send_bytes(
            status_line(status)
            + b"content-type: application/json\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        self.close()

    # httptools callbacks. There is no on_message_begin (a call into Python per request):
    # per-message state is reset once a head is complete, and the header-read deadline is
    # armed in data_received when bytes arrive on an idle connection.
    #
    # on_url and on_header are not methods: they are C callables set per connection in
    # __init__ (a list's append, a heads.FieldSink) that keep the raw bytes as they arrive;
    # the head is decoded in one call when it is complete (heads.decode_fields) instead of
    # a call into Python, a decode, a lower() and an rstrip() per header (SDK clients send
    # a dozen headers or more). Their size is checked
    # then too, and after any read that leaves a head unfinished, so an oversized head is
    # refused (431) before it can grow past one read beyond the limit.
    def _check_head_size(self) -> None:
        """Refuse an unfinished head already over the limit (counted as on_headers_complete
        counts a finished one: the target plus each "name: value\\r\\n")."""
        fields = self._fields
        size = sum(map(len, self._url)) + sum(map(len, fields)) + 2 * len(fields)
        if size > self.settings.max_header_bytes:
            fields.clear()
            self._reject(431, "header_too_large", "request header section too large")

    def on_headers_complete(self) -> None:
        parser = self.parser
        url = self._url
        raw_target = b"".join(url) if len(url) != 1 else url[0]
        # The headers, decoded all at once (see heads.decode_fields).
        pairs, names, size = decode_fields(self._fields)
        s = self.settings
        if len(raw_target) + size > s.max_header_bytes:
            raise BadHead(431, "header_too_large", "request header section too large")
        if len(pairs) > s.max_header_count:
            raise BadHead(431, "too_many_headers", f"more than {s.max_header_count} header fields")
        if s.underscore_headers != "allow" and "_" in "\0".join(names):
            if s.underscore_headers == "reject":
                raise BadHead(400, "invalid_header", "header names with '_' are refused on this port")
            pairs = [kv for kv in pairs if "_" not in kv[0]]
            names = [kv[0] for kv in pairs]
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadHead(505, "http_version_not_supported", f"HTTP/{version} is not supported on this port")
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":
            if s.connect_handler is None:
                raise BadHead(405, "method_not_allowed", "CONNECT is not enabled on this listener")
            if self.current is not None or self._pending is not None or self.queue:
                raise BadHead(400, "bad_request", "CONNECT must be the first request on its connection")
            self._connect = connect_target(raw_target)
            url.clear()
            return
        target = raw_target.decode("latin-1")
        if "#" in target:  # (on the str: ``bytes in bytes`` first tries the needle as an int)
            raise BadHead(400, "bad_request", "a fragment (#) is not allowed in the request target")
        headers = Headers(pairs)
        req = Request()
        # The authority, read once (engine.canon): one Host, canonical, agreeing with an
        # absolute-form target; the Host field is rewritten to that form.
        n_host = names.count("host")
        if n_host > 1:
            raise BadHead(400, "invalid_host", "more than one Host header")
        if target[:1] != "/":
            if target == "*":
                raise BadHead(400, "bad_request", "asterisk-form (*) request targets are not supported")
            authority, target = split_absolute_form(target)
            if n_host and canonical_host(pairs[names.index("host")][1]) != authority:
                raise BadHead(400, "invalid_host", "the Host header and the request target name different hosts")
            headers.set("host", authority)
            req.host = authority
        elif n_host:
            i = names.index("host")
            raw_host = pairs[i][1]
            host = _known_hosts.get(raw_host) or canonical_host(raw_host)
            if host != raw_host:
                headers[i] = ("host", host)
            req.host = host
        elif version == "1.1":
            raise BadHead(400, "invalid_host", "HTTP/1.1 request without a Host header")
        else:
            req.host = ""
        req.target = target
        q = target.find("?")
        if q >= 0:
            req.path = target[:q]
            req.query = target[q + 1 :]
        else:
            req.path = target
            req.query = ""
        req.method = method
        req.http_version = version
        req.keep_alive = parser.should_keep_alive() and not self.settings.draining
        req.headers = headers
        url.clear()
        req.client_addr = self.peer
        req.scheme = self.settings.scheme
        req.tls = self.tls
        if parser.should_upgrade():
            req.upgrade = True
            # What follows its head is held for a tunnel (the parser stops there): a
            # response that is not a 101 ends the connection, which can't go on as HTTP.
            req.keep_alive = False
        req.body = body = RequestBody(self, s.max_body_bytes)
        self._req = req
        # The headers that shape the exchange (llhttp has refused conflicting framing).
        due = False
        if "content-length" in names:
            v = pairs[names.index("content-length")][1]
            n = int(v) if v.isdigit() else -1  # (llhttp has refused a malformed one)
            if n > s.max_body_bytes:
                body.error = GatewayError(413, "payload_too_large", f"request body exceeds {s.max_body_bytes} bytes")
                req.keep_alive = False
            else:
                due = 0 <= n <= BODY_WAIT_BYTES
        elif "transfer-encoding" not in names:
            body.complete = True  # no body
        if "expect" in names and pairs[names.index("expect")][1].lower() == "100-continue":
            req.expect_continue = True
            due = False  # the client waits for 100 Continue, which the handler sends
        ex = Exchange(self, req)
        if self.current is None and self._pending is None:
            self._pending = ex
            self._body_due = due
        else:
            self.queue.append(ex)
            if len(self.queue) > 8:
                self.pause_reading()

    def on_body(self, body: bytes) -> None:
        req = self._req
        if req is not None:
            req.body.feed(body)

    def on_message_complete(self) -> None:
        if self._fields:
            # A chunked body's trailer section: not forwarded, and never to be read as the
            # next request's headers.
            self._fields.clear()
        req = self._req
        if req is not None:
            req.body.finish()
            if self.state == _ACTIVE:
                self.deadline = 0.0  # the body is in: no body deadline
        self._req = None

    # -- exchanges ------------------------------------------------------------------------
    def _start(self, ex: Exchange) -> None:
        self.current = ex
        self.state = _ACTIVE
        # a body still to come is bounded by the body timeout (refreshed on each read)
        self.deadline = 0.0 if self._req is None else self.loop.time() + self.settings.body_timeout
        err = ex.request.body.error
        if err is not None and isinstance(err, GatewayError) and err.status == 413:
            ex.send_error(413, "payload_too_large", str(err))
            return
        fast = self.settings.fast_handler
        if fast is not None:
            try:
                if fast(ex.request, ex):
                    return
            except Exception:
                log.exception("unhandled error while handling %s %s", ex.request.method, ex.request.path)
                ex.fail_internal()
                return
        ex.task = self.loop.create_task(self._run(ex, self.settings.handler(ex.request, ex)))

    def spawn(self, ex: Exchange, coro) -> None:
        """Continue an exchange in a task (a fast handler handing over to async work)."""
        ex.task = self.loop.create_task(self._run(ex, coro))

    async def _run(self, ex: Exchange, coro) -> None:
        await run_handler(ex, coro)

    def exchange_done(self, ex: Exchange) -> None:
        """Called when a response is complete: next pipelined request, idle, or close."""
        if self.current is not ex:
            return
        self.current = None
        if self._dead:
            return
        req = ex.request
        if not req.body.complete:
            req.body.drop()
        if not ex.keep_alive:
            self._closing = True
            self.close()
            return
        if self.queue:
            # Requests already read are answered, even when the connection is closing.
            # Started from the loop, not from here: a run of responses that complete
            # synchronously must not nest one call per pipelined request.
            nxt = self.queue.popleft()
            if len(self.queue) <= 8:
                self.resume_reading()
            self.current = nxt
            self.loop.call_soon(self._start, nxt)
            return
        if self._closing or self.settings.draining:
            self._closing = True
            self.close()
            return
        self.state = _IDLE
        self.deadline = self.loop.time() + self.settings.idle_timeout

    def body_too_large(self) -> None:
        self.pause_reading()
        self._closing = True

    def request_body_wanted(self) -> None:
        ex = self.current
        if ex is not None and ex.request.expect_continue and not ex.continue_sent and not ex.started:
            ex.continue_sent = True
            self.send_bytes(_CONTINUE)

    def deadline_passed(self) -> None:
        if self.state == _READING:
            self._closing = True
            if self._pending is not None:  # a head in, its small body still due
                self._write_error_and_close(408, "request_body_timeout", "timed out reading the request body")
            else:
                self._write_error_and_close(408, "request_header_timeout", "timed out reading request headers")
        elif self.state == _IDLE:
            self.close()
        elif self.state == _ACTIVE and (req := self._req) is not None:
            if self._read_paused:
                # the gateway stopped reading (backpressure): the client is not late
                self.deadline = self.loop.time() + self.settings.body_timeout
                return
            self._body_timed_out(req)
        self.deadline = 0.0

    def _body_timed_out(self, req: Request) -> None:
        """A request body stopped arriving (``req``'s, the one being read): fail it, answer
        408 if nothing was sent yet (else cut the response), and close; the handler's body
        read raises too."""
        self._closing = True
        err = GatewayError(408, "request_body_timeout", "timed out reading the request body")
        self._req = None
        req.body.fail(err)
        ex = self.current
        if ex is None or ex.finished:
            self.close()
            return
        task = ex.task
        if not ex.started:
            ex.send_error(408, err.kind, err.message)  # closes: the body failed
        else:
            ex.abort()
        # whatever still works on this exchange (a task, a callback) stops as for a
        # client that left
        ex.client_gone()
        if task is not None and not task.done():
            task.cancel()

    def close_if_idle(self) -> None:
        if self.state == _IDLE and self.current is None and self.transport is not None:
            self.close()

    # -- CONNECT --------------------------------------------------------------------------
    def _open_tunnel(self, data: bytes) -> None:
        """After a CONNECT head: the handler takes the connection (200, then the bytes
        are its own), or refuses it (an error answer, then close)."""
        host, port = self._connect  # type: ignore[misc]  # (set by on_headers_complete)
        self.state = _TUNNEL
        self.deadline = 0.0
        try:
            take = self.settings.connect_handler(host, port)  # type: ignore[misc]  # (checked at the head)
        except Exception:
            log.exception("CONNECT handler failed")
            take = (500, "internal_error", "internal error")
        if isinstance(take, tuple):
            self._closing = True
            self._write_error_and_close(*take)
            return
        self.send_bytes(b"HTTP/1.1 200 OK\r\n\r\n")
        self.flush_output()
        # the connection is the tunnel's now: this protocol lets go of it
        transport = self.transport
        self.parser = None  # type: ignore[assignment]  # nothing parses here any more
        self._dead = True
        s = self.settings
        s.connections.discard(self)
        if s.on_connection_change:
            s.on_connection_change(-1)
        take(transport, data)

    # -- tunnels (protocol switch) --------------------------------------------------------
    def start_tunnel(self, upstream: asyncio.Transport) -> None:
        """After a 101 response: bytes flow raw between client and ``upstream``."""
        self.state = _TUNNEL
        self.deadline = 0.0
        self._tunnel = upstream
        buffered, self._tunnel_buffer = self._tunnel_buffer or [], None
        for chunk in buffered:
            if chunk:
                upstream.write(chunk)
        self.resume_reading()

    def tunnel_closed(self) -> None:
        self._tunnel = None
        if self.transport is not None:
            self.close()


def connect_target(target: bytes) -> tuple[str, int]:
    """A CONNECT request's authority-form target, ``host:port`` (``[v6]:port``)."""
    text = target.decode("latin-1")
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (
        not sep
        or not host
        or not port.isdigit()
        or not 0 < int(port) < 65536
        or any(c in host for c in "/?#@ \t")
        or (":" in host and not text.startswith("["))
    ):
        raise BadHead(400, "bad_request", "a CONNECT target must be host:port")
    return host.lower().rstrip("."), int(port)


async def run_handler(ex, coro) -> None:
    """A handler's task, for an HTTP/1.1 or an HTTP/2 exchange: a failure is answered
    (the error's status, or 500 for a bug, logged), a response begun is cut rather than
    left looking complete, and a handler that answered nothing gets a 500."""
    try:
        await coro
    except asyncio.CancelledError:
        if not ex.finished:
            ex.abort()
        return
    except GatewayError as e:
        if not ex.started:
            ex.send_error(e.status, e.kind, e.message)
        else:
            ex.abort()
    except Exception:  # a bug: log it, answer 500, never leak the traceback
        log.exception("unhandled error while handling %s %s", ex.request.method, ex.request.path)
        if not ex.started:
            ex.send_error(500, "internal_error", "internal gateway error")
        else:
            ex.abort()
    if not ex.finished:
        if not ex.started:
            ex.send_error(500, "internal_error", "handler produced no response")
        else:
            ex.end()


class Exchange:
    """The response half of one request: what the handler writes to the client."""

    __slots__ = (
        "conn",
        "request",
        "task",
        "started",
        "finished",
        "status",
        "bytes_sent",
        "chunked",
        "keep_alive",
        "head_only",
        "continue_sent",
        "disconnected",
        "_on_disconnect",
    )

    def __init__(self, conn: HttpServerProtocol, request: Request):
        self.conn = conn
        self.request = request
        self.task: asyncio.Task | None = None
        self.started = False
        self.finished = False
        self.status = 0
        self.bytes_sent = 0
        self.chunked = False
        self.keep_alive = request.keep_alive
        self.head_only = request.method == "HEAD"
        self.continue_sent = False
        self.disconnected = False
        self._on_disconnect = None

    # -- writing ------------------------------------------------------------------------
    def _head(self, status: int, headers, extra: bytes) -> bytes:
        """``headers`` is header pairs, or an already-encoded block of header lines."""
        hb = headers if headers.__class__ is bytes else encode_headers(headers)
        if self.keep_alive or status == 101:  # (a 101 says Connection: upgrade, set by its caller)
            return b"".join((status_line(status), hb, extra, b"\r\n"))
        return b"".join((status_line(status), hb, extra, b"connection: close\r\n\r\n"))

    def send(self, status: int, headers, body: bytes = b"") -> None:
        """A complete response in one write (content-length framing). ``headers`` may be
        header pairs or an encoded block of header lines (see ``_head``)."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        if self.request.body.error is not None or (
            not self.request.body.complete and self.request.body.size > self.request.body.limit
        ):
            self.keep_alive = False
        no_body = self.head_only or status in (204, 304) or status < 200
        cl = b"" if status in (204, 304) else b"content-length: %d\r\n" % len(body)
        data = self._head(status, headers, cl)
        if not no_body and body:
            data += body
            self.bytes_sent = len(body)
        self.conn.send_bytes(data)
        self._finish()

    def send_error(self, status: int, kind: str, message: str) -> None:
        h = Headers([("content-type", "application/json")])
        self.send(status, h, error_body(kind, message))

    def start(self, status: int, headers, *, content_length: int | None = None) -> None:
        """Send the head of a streamed response; chunked unless a length is given."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        if status == 101:
            extra = b""
        elif content_length is not None:
            extra = b"content-length: %d\r\n" % content_length
        elif self.head_only or status in (204, 304):
            extra = b""
        elif self.request.http_version == "1.0":
            self.keep_alive = False  # close-delimited body
            extra = b""
        else:
            self.chunked = True
            extra = b"transfer-encoding: chunked\r\n"
        self.conn.send_bytes(self._head(status, headers, extra))

    def write(self, data: bytes) -> None:
        if not data or self.head_only or self.conn._dead:
            return
        self.bytes_sent += len(data)
        if self.chunked:
            self.conn.send_bytes(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.conn.send_bytes(data)

    def end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """The response is complete; ``trailers`` (an upstream's trailer fields) go in a
        chunked body's trailer section when the client accepts them (``TE: trailers``),
        and are dropped otherwise."""
        if self.finished:
            return
        if self.chunked and not self.head_only:
            if trailers and wants_trailers(self.request):
                self.conn.send_bytes(b"0\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in trailers) + b"\r\n")
            else:
                self.conn.send_bytes(b"0\r\n\r\n")
        self._finish()

    def fail_internal(self) -> None:
        """After an unhandled error: a 500 if nothing was sent yet, else a cut connection."""
        if not self.started:
            self.send_error(500, "internal_error", "internal gateway error")
        elif not self.finished:
            self.abort()

    def abort(self) -> None:
        """Cut the client connection: a response that can't be completed must not look complete."""
        self.finished = True
        self.keep_alive = False
        conn = self.conn
        if not conn._dead and conn.transport is not None:
            conn.flush_output()  # earlier (complete) pipelined responses still go out
            conn.transport.abort()
        conn.exchange_done(self)

    def _finish(self) -> None:
        self.finished = True
        self.conn.exchange_done(self)

    async def drain(self) -> None:
        await self.conn.drain()

    # -- what a handler may ask of the connection -------------------------------------
    def spawn(self, coro) -> None:
        """Go on in a task: a fast handler handing the exchange over to async work."""
        self.conn.spawn(self, coro)

    def add_pause_hook(self, pause, resume) -> tuple:
        """Have ``pause()`` / ``resume()`` follow the client's write backpressure (an
        upstream relaying into this exchange stops reading while the client is slow)."""
        return self.conn.add_pause_hook(pause, resume)

    def remove_pause_hook(self, hook) -> None:
        self.conn.remove_pause_hook(hook)

    @property
    def draining(self) -> bool:
        """The server is shutting down or dropping this port: long streams should end."""
        return self.conn.settings.draining

    def switch_protocols(self, upstream) -> None:
        """After a 101 sent with :meth:`start`: splice the client connection to the
        upstream connection ``upstream`` (an ``engine.client.UpstreamConnection`` that
        read the 101). The exchange is over for HTTP; either side closing closes the other."""
        conn = self.conn
        conn.flush_output()  # the 101 head goes before any tunnelled byte
        leftover = upstream.start_tunnel(conn.transport)
        if leftover:
            conn.transport.write(leftover)
        conn.start_tunnel(upstream.transport)
        self.keep_alive = False
        self.finished = True

    # -- disconnect notification ----------------------------------------------------------
    def on_disconnect(self, callback) -> None:
        self._on_disconnect = callback

    def client_gone(self) -> None:
        self.disconnected = True
        self.request.body.fail(ConnectionResetError("client disconnected"))
        cb = self._on_disconnect
        if cb is not None:
            cb()
        t = self.task
        if t is not None and not t.done() and not self.finished:
            t.cancel()
