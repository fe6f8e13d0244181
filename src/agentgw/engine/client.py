"""The upstream HTTP/1.1 client: pooled keep-alive connections, one request at a time each.

The measurements that shaped agentgw showed the upstream client is where Python proxies
lose their speed (a general-purpose client costs ~60 µs per request). This one is an
asyncio Protocol around llhttp's response parser with no per-request task and no
per-chunk coroutine: response body chunks are either buffered (small responses, which
then go out in one write) or handed to a *sink* callback that writes them straight to the
client socket, with each side's backpressure pausing the other side's reads.

Failure vocabulary (mapped to client responses by the proxy):
  * :class:`UpstreamConnectError` — could not connect (502; 504 when it timed out);
  * :class:`StaleConnection` — a reused keep-alive connection closed before any byte of
    the response arrived; the request may be sent again on a fresh connection;
  * :class:`NoResponse` — any connection closed before any byte of the response
    arrived (502; ``StaleConnection`` is the case of a reused one);
  * :class:`UpstreamReset` — the connection broke before the response head (502);
  * :class:`UpstreamProtocolError` — the upstream answered outside the exchange: a
    ``101 Switching Protocols`` the request did not ask for, or a 1xx with a body (502);
  * a head timeout (504) closes the connection, which can't be reused.

Protocol switches: a 101 is honoured only when the request offered an upgrade (the
``upgrade`` argument of :meth:`UpstreamConnection.send_head`, the request's ``Upgrade``
value) and the 101 names, in ``Upgrade`` with ``Connection: upgrade``, only protocols
offered there. An exchange started without an offer (every caller but a relayed upgrade
request, and every callback-mode exchange) fails on any 101 and closes the connection,
so no caller can be turned into a raw tunnel by its upstream. The check runs only for
1xx heads.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from .heads import scan_response_head
from .http import GatewayError, Headers
from .outbox import BufferedWriter, outbox_for
from .tcp import Keepalive, set_keepalive

if TYPE_CHECKING:
    from .h2client import H2ClientConnection

# A response head larger than this is refused (502) rather than buffered without end.
MAX_RESPONSE_HEAD = 256 * 1024


class UpstreamConnectError(GatewayError):
    def __init__(self, message: str, timeout: bool = False):
        if timeout:
            super().__init__(504, "upstream_connect_timeout", message)
        else:
            super().__init__(502, "upstream_connect_failed", message)


class UpstreamReset(GatewayError):
    def __init__(self, message: str = "upstream closed the connection before responding"):
        super().__init__(502, "upstream_reset", message)


class NoResponse(UpstreamReset):
    """The connection closed before any byte of the response arrived."""


class StaleConnection(NoResponse):
    """A pooled connection died before answering; safe to retry a replayable request."""


class UpstreamProtocolError(GatewayError):
    """The upstream answered outside the exchange (the connection is closed)."""

    def __init__(self, message: str):
        super().__init__(502, "upstream_protocol_error", message)


def _tokens(value: str) -> set[str]:
    """The protocols named by an ``Upgrade`` value, lowercase (``websocket``, ``foo/1``)."""
    return {t for t in (p.strip(" \t").lower() for p in value.split(",")) if t}


#: Linux's TCP_QUICKACK (None elsewhere); reads under _SMALL_READ bytes ask for it
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_SMALL_READ = 4096


class UpstreamTarget:
    """Where to connect: address plus TLS settings. Shared by all requests to it."""

    __slots__ = ("host", "port", "ssl", "server_hostname", "key", "authority", "connect_timeout", "unix", "http2")

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 10.0,
        tls_key: str = "",
        unix: str | None = None,
        http2: bool = False,
    ):
        self.host = host
        self.port = port
        self.unix = unix  # a unix socket's path: connect there (``host`` is then only the Host)
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        default_port = 443 if ssl is not None else 80
        self.authority = host if port == default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):  # IPv6 literal
            self.authority = f"[{host}]" if port == default_port else f"[{host}]:{port}"
        # ``http2``: exchanges go as streams on a multiplexed HTTP/2 connection (h2client);
        # with TLS, ``ssl`` offers ``h2`` by ALPN
        self.http2 = http2
        self.key = (host, port, tls_key if ssl is not None else "", server_hostname or "", unix or "", http2)
        if unix is not None:
            self.authority = host

    def __repr__(self) -> str:
        where = f"unix:{self.unix}" if self.unix is not None else f"{self.host}:{self.port}"
        return f"UpstreamTarget({where}{' tls' if self.ssl else ''}{' h2' if self.http2 else ''})"


class ResponseReader:
    """The ways to take a response's body, shared by an HTTP/1.1 connection and an HTTP/2
    stream (``h2client``): both keep ``head``, ``chunks``, ``done``, ``error``, the sink
    callbacks and ``_body_waiter`` the same way, in their own slots (so mypy, which checks
    a slotted mixin's writes against its own empty slots, is told so where they are
    written; without ``__slots__`` here every instance would carry a ``__dict__``)."""

    __slots__ = ()
    head: bytes
    chunks: list[bytes]
    done: bool
    error: BaseException | None
    loop: asyncio.AbstractEventLoop
    _sink: Callable[[bytes], None] | None
    _sink_end: Callable[[], None] | None
    _sink_error: Callable[[BaseException], None] | None
    _body_waiter: asyncio.Future | None

    _on_head: Callable | None
    _head_fut: asyncio.Future | None
    _timer: asyncio.TimerHandle | None

    if TYPE_CHECKING:  # (each protocol's own)

        def _fail(self, exc: BaseException) -> None: ...

        def close(self) -> None: ...

    def _report(self, exc: BaseException) -> None:
        """Give ``exc`` to whoever waits on the exchange: the head's callback or future,
        else the body's sink or reader."""
        cb = self._on_head
        if cb is not None:
            self._on_head = None  # type: ignore[misc]  # (a subclass's slot)
            cb(self, exc)
            return
        f = self._head_fut
        if f is not None and not f.done():
            f.set_exception(exc)
            return
        err = self._sink_error
        if err is not None:
            self._sink = self._sink_end = self._sink_error = None  # type: ignore[misc]  # (a subclass's slot)
            err(exc)
        w = self._body_waiter
        if w is not None:
            self._body_waiter = None  # type: ignore[misc]  # (a subclass's slot)
            if not w.done():
                w.set_exception(exc)

    async def wait_head(self, timeout: float | None) -> None:
        """Wait for the response head; a timeout closes the connection (504)."""
        fut: asyncio.Future = self._head_fut  # type: ignore[assignment]  # set by send_head, which comes first
        if fut.done():
            fut.result()
            return
        if timeout is not None:
            self._timer = self.loop.call_later(timeout, self._head_timeout, timeout)  # type: ignore[misc]
        try:
            await fut
        except BaseException:
            del self, fut  # see UpstreamConnection._unheld
            raise

    def _head_timeout(self, timeout: float) -> None:
        self._timer = None  # type: ignore[misc]  # (a subclass's slot)
        self._fail(GatewayError(504, "upstream_timeout", f"upstream did not respond within {timeout:g}s"))
        self.close()

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The response header fields as raw ``(name, value)`` byte pairs, in order."""
        out = []
        for line in self.head.split(b"\r\n")[:-1]:
            name, _, value = line.partition(b":")
            out.append((name, value.strip(b" \t")))
        return out

    def stream_to(
        self,
        on_chunk: Callable[[bytes], None],
        on_end: Callable[[], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Deliver the body by callbacks: buffered chunks now, the rest as it arrives."""
        chunks, self.chunks = self.chunks, []  # type: ignore[misc]  # (a subclass's slot)
        for c in chunks:
            on_chunk(c)
        if self.done:
            on_end()
            return
        if self.error is not None:
            on_error(self.error)
            return
        self._sink = on_chunk  # type: ignore[misc]  # (a subclass's slot)
        self._sink_end = on_end  # type: ignore[misc]  # (a subclass's slot)
        self._sink_error = on_error  # type: ignore[misc]  # (a subclass's slot)

    async def read_body(self, limit: int | None = None, deadline: float | None = None) -> bytes:
        """Buffer the whole response body (502 beyond ``limit`` bytes, 504 past ``deadline``)."""
        parts: list[bytes] = []
        size = 0
        while (chunks := await self.read_chunks(deadline)) is not None:
            parts += chunks
            if limit is not None:
                size += sum(map(len, chunks))
                if size > limit:
                    raise GatewayError(502, "upstream_response_too_large", f"upstream response exceeds {limit} bytes")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read_chunks(self, deadline: float | None = None) -> list[bytes] | None:
        """The body chunks that arrived since the last call, waiting if there are none
        yet; ``None`` once the body is over. Waiting past ``deadline`` (loop time) raises
        a 504 ``GatewayError`` (the body is unfinished, so ``release`` closes the connection).

        A coroutine rather than an async generator, so a reader that stops early (an MCP
        answer found in a stream) leaves nothing behind: an abandoned async generator is
        registered with the loop and closed later by a task of its own."""
        while not self.chunks:
            if self.done:
                return None
            if self.error is not None:
                try:
                    raise self.error
                finally:
                    del self  # see _unheld
            fut = self.loop.create_future()
            self._body_waiter = fut  # type: ignore[misc]  # (a subclass's slot)
            try:
                if deadline is None:
                    await fut
                else:
                    timer = self.loop.call_at(deadline, self._body_timeout, fut)
                    try:
                        await fut
                    finally:
                        timer.cancel()
            except BaseException:
                del self, fut  # see _unheld
                raise
        chunks, self.chunks = self.chunks, []  # type: ignore[misc]  # (a subclass's slot)
        return chunks

    # _unheld: a failed exchange's error is kept by its connection (``error``, the future
    # it was raised from), and the error's traceback keeps the frames it passed through.
    # A frame there that still held the connection would make each failed exchange a
    # reference cycle, left to the cyclic collector (see docs/dataplane.md): the awaiting
    # frames above let go of it before the error leaves them.

    def _body_timeout(self, fut: asyncio.Future) -> None:
        if not fut.done():
            fut.set_exception(GatewayError(504, "upstream_timeout", "upstream response body did not complete in time"))

    async def iter_body(self):
        """Yield response body chunks as they arrive, for readers that take the whole body
        (transforming streams)."""
        while (chunks := await self.read_chunks()) is not None:
            for c in chunks:
                yield c


class UpstreamConnection(ResponseReader, BufferedWriter, asyncio.Protocol):
    #: a request body is framed by this connection (chunked) rather than by the protocol
    multiplexed = False
    #: trailer fields of the response (HTTP/1.1 trailers are not read: always None)
    trailers = None

    __slots__ = (
        "pool",
        "target",
        "loop",
        "transport",
        "parser",
        "closed",
        "reused",
        "last_used",
        "write_paused",
        "_drain_waiters",
        "_read_paused",
        # per-request state
        "status",
        "head",
        "relay",
        "_headbuf",
        "_head_start",
        "_headers",
        "resp_cl",
        "resp_te",
        "keep_alive",
        "head_only",
        "_head_fut",
        "_on_head",
        "_got_bytes",
        "_informational",
        "_timer",
        "chunks",
        "done",
        "error",
        "_sink",
        "_sink_end",
        "_sink_error",
        "_body_waiter",
        "upgrade_offer",
        "upgraded",
        "_tunnel_peer",
        "_tunnel_leftover",
        "close_delimited",
        "_out",
        "_outbox",
        "_sock",
    )

    def __init__(self, pool: ConnectionPool, target: UpstreamTarget):
        self.pool = pool
        self.target = target
        self.loop = pool.loop
        # None until connection_made, which comes before any use
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = 0
        self.last_used = 0.0
        self.write_paused = False
        self._drain_waiters: list[asyncio.Future] = []
        self._read_paused = False
        self._out: bytes | None = None  # a write held to the end of this loop turn
        self._outbox = outbox_for(self.loop)
        self._sock = None  # the TCP socket, for TCP_QUICKACK (see data_received)
        self._reset_state()

    def _reset_state(self) -> None:
        self.status = 0
        self.head = b""  # the final response's header lines, each ending in CRLF
        self.relay: bytes | None = b""  # those without hop-by-hop/framing fields (see heads.py)
        self._headbuf = b""  # what arrived while a response head was unfinished
        self._head_start = 0  # where the head being parsed starts in _headbuf
        self._headers: Headers | None = None
        self.resp_cl: bytes | None = None
        self.resp_te = False
        self.keep_alive = True
        self.head_only = False
        self._head_fut: asyncio.Future | None = None
        # callback mode: on_head(conn, exc) instead of a future
        self._on_head: Callable[[UpstreamConnection, BaseException | None], None] | None = None
        self._got_bytes = False
        self._informational = False
        self._timer: asyncio.TimerHandle | None = None
        self.chunks: list[bytes] = []
        self.done = False
        self.error: BaseException | None = None
        self._sink: Callable[[bytes], None] | None = None
        self._sink_end: Callable[[], None] | None = None
        self._sink_error: Callable[[BaseException], None] | None = None
        self._body_waiter: asyncio.Future | None = None
        self.upgrade_offer: str | None = None  # the request's Upgrade value, if it asked
        self.upgraded = False
        self._tunnel_peer: asyncio.Transport | None = None
        self._tunnel_leftover = b""
        self.close_delimited = False

    # -- asyncio protocol -------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        if _QUICKACK is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                self._sock = sock

    def data_received(self, data: bytes) -> None:
        if self._tunnel_peer is not None:
            self._tunnel_peer.write(data)
            return
        self._got_bytes = True
        if not self.status:
            # A response head is read from these bytes once llhttp has checked it (see
            # on_headers_complete); it is nearly always in the first read, whole.
            buf = self._headbuf
            if not buf:
                self._headbuf = data
            elif len(buf) > MAX_RESPONSE_HEAD:  # all head so far, and no end to it yet
                self._fail(UpstreamReset("upstream response head too large"))
                self.close()
                return
            else:
                self._headbuf = buf + data
        try:
            self.parser.feed_data(data)
            if not self.done and len(data) < _SMALL_READ and self._sock is not None:
                # A small read that leaves the response unfinished: the upstream may be
                # holding its next small write for our ACK (Nagle, when it sets no
                # TCP_NODELAY, as Python's http.server does), and the kernel delays that
                # ACK by up to 40 ms since we send nothing back. Acknowledge now.
                try:
                    self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                except OSError:
                    self._sock = None
            cb = self._on_head
            if cb is not None and self.status:
                # Called after the whole read is parsed, so a small response's body is
                # already here and can go out with its head in one write.
                self._on_head = None
                cb(self, None)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self.upgraded = True
            self._tunnel_leftover = data[offset:]
            self.transport.pause_reading()
            self._resolve_head()
        except httptools.HttpParserError as exc:
            err = exc.__context__  # what a callback raised (on_headers_complete)
            if isinstance(err, UpstreamProtocolError):
                err.__traceback__ = None  # its frames hold this connection (see _unheld)
            else:
                err = UpstreamReset(f"invalid response from upstream: {exc}")
            del exc
            self._fail(err)
            self.close()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        # The parser holds this protocol (its callbacks): drop it, on every path out,
        # so that a closed connection is freed by reference counting.
        self.parser = None  # type: ignore[assignment]  # nothing parses after connection_lost
        self.closed = True
        self._out = None
        self.pool.forget(self)
        if self._tunnel_peer is not None:
            self._tunnel_peer.close()
            self._tunnel_peer = None
            return
        if self._on_head is not None or (self._head_fut is not None and not self._head_fut.done()):
            # (a head awaited by a future or by a callback: see send_head)
            if self._got_bytes:
                self._fail(UpstreamReset())
            elif self.reused:
                self._fail(StaleConnection("pooled upstream connection closed before responding"))
            else:
                self._fail(NoResponse())
        elif self.status and not self.done:
            if self.close_delimited and exc is None:
                self.on_message_complete()
            else:
                self._fail(UpstreamReset("upstream closed the connection mid-response"))
        for w in self._drain_waiters:
            if not w.done():
                w.set_exception(UpstreamReset("upstream closed the connection"))
        self._drain_waiters.clear()

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def drain(self) -> None:
        if self.closed:
            raise UpstreamReset("upstream closed the connection")
        if self.write_paused:
            fut = self.loop.create_future()
            self._drain_waiters.append(fut)
            await fut

    def pause_reading(self) -> None:
        if not self._read_paused and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            if self._out is not None:
                self.flush_output()
            self.closed = True
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.close()

    # -- httptools callbacks ----------------------------------------------------------------
    # There is no on_header (nor on_status): a call into Python per header line costs more
    # than reading the whole head from the bytes once llhttp has accepted it
    # (``heads.scan_response_head``). data_received keeps what arrives while a head is
    # unfinished; it is nearly always in the first read, whole.

    @property
    def headers(self) -> Headers:
        """The response headers as (lowercase name, value) strings, decoded on first use."""
        h = self._headers
        if h is None:
            h = self._headers = Headers(
                [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in self.raw_headers]
            )
        return h

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        end, self.head, self.relay, self.resp_cl, self.resp_te = scan_response_head(self._headbuf, self._head_start)
        if status < 200:  # the only branch a 1xx adds to the common path
            if status == 101:
                self._check_switch()  # raises unless the request asked for this protocol
            elif status >= 100:
                if status > 103 and (self.resp_te or (self.resp_cl and self.resp_cl.strip(b"0"))):
                    # llhttp would read a body (RFC 9112 §6.3: a 1xx has none), and the
                    # bytes after it as the final response: don't guess which is meant
                    raise UpstreamProtocolError(f"upstream sent an interim response ({status}) with a body")
                self._informational = True  # 100 Continue / 102 / 103: wait for the final response
                self._head_start = end
                return
        self._headbuf = b""
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        if status != 101 and not self.head_only and status not in (204, 304):
            if self.resp_cl is None and not self.resp_te:
                self.close_delimited = True
        if status == 101:
            return  # resolved when the parser raises HttpParserUpgrade
        self._resolve_head()
        if self.head_only:
            # llhttp can't be told a HEAD response has no body; finish here and don't reuse.
            self.keep_alive = False
            self.on_message_complete()

    def _check_switch(self) -> None:
        """A 101 head: raise (the exchange fails, the connection closes) unless the request
        offered an upgrade and the 101 names, with ``Connection: upgrade``, only protocols
        offered (RFC 9110 §7.8; tokens compared case-insensitively)."""
        offer = self.upgrade_offer
        if offer is None:
            raise UpstreamProtocolError("upstream switched protocols (101) though the request asked for no upgrade")
        named = _tokens(",".join(self.headers.get_all("upgrade")))
        if not named:
            raise UpstreamProtocolError("upstream answered 101 Switching Protocols without an Upgrade header")
        if not self.parser.should_upgrade():
            raise UpstreamProtocolError("upstream answered 101 Switching Protocols without Connection: upgrade")
        other = named - _tokens(offer)
        if other:
            raise UpstreamProtocolError(
                f"upstream switched protocols to {', '.join(sorted(other))}, which the request did not offer ({offer})"
            )

    def on_body(self, body: bytes) -> None:
        sink = self._sink
        if sink is not None:
            sink(body)
        else:
            self.chunks.append(body)
            w = self._body_waiter
            if w is not None:
                self._body_waiter = None
                if not w.done():
                    w.set_result(None)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self.done:
            return
        self.done = True
        end = self._sink_end
        if end is not None:
            self._sink = self._sink_end = self._sink_error = None
            end()
        w = self._body_waiter
        if w is not None:
            self._body_waiter = None
            if not w.done():
                w.set_result(None)

    # -- request side -----------------------------------------------------------------------
    def _resolve_head(self) -> None:
        t = self._timer
        if t is not None:
            t.cancel()
            self._timer = None
        f = self._head_fut
        if f is not None and not f.done():
            f.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        t = self._timer
        if t is not None:
            t.cancel()
            self._timer = None
        self._report(exc)

    def send_head(
        self,
        head: bytes,
        body: bytes | None,
        on_head: Callable[[UpstreamConnection, BaseException | None], None] | None = None,
        *,
        head_only: bool = False,
        upgrade: str | None = None,
        timeout: float | None = None,
        trailers: bool = False,
    ) -> None:
        """Write a request (head plus, when known, the whole body) and expect a response.

        The response head is announced one of two ways: with ``on_head``, by a call
        ``on_head(conn, exc)`` once it is parsed (with whatever body came with it) or
        with the error if the exchange fails first (a 504 past ``timeout``, which closes
        the connection), so no task needs to wait; without, by :meth:`wait_head`.

        ``upgrade``: the request's ``Upgrade`` value when ``head`` asks for a protocol
        switch (``Connection: upgrade``); only then can a 101 answer it (``upgraded``,
        then :meth:`start_tunnel`). Without it, a 101 fails the exchange (502).
        ``trailers`` (the client accepts trailer fields) matters on HTTP/2 only."""
        self._reset_state()
        self.upgrade_offer = upgrade
        self.head_only = head_only
        if on_head is None:
            self._head_fut = self.loop.create_future()
        else:
            self._on_head = on_head
            if timeout is not None:
                self._timer = self.loop.call_later(timeout, self._head_timeout, timeout)
        self.send_bytes(head + body if body else head)

    def write(self, data: bytes) -> None:
        self.send_bytes(data)

    def end_body(self, chunked: bool = False) -> None:
        """The request body is complete: the last chunk of a chunked body."""
        if chunked:
            self.send_bytes(b"0\r\n\r\n")

    # -- tunnels ------------------------------------------------------------------------------
    def start_tunnel(self, client: asyncio.Transport) -> bytes:
        """Switch to raw bytes toward ``client``; returns bytes read past the 101 head."""
        self._tunnel_peer = client
        leftover, self._tunnel_leftover = self._tunnel_leftover, b""
        self.transport.resume_reading()
        return leftover

    # -- release ------------------------------------------------------------------------------
    def release(self) -> None:
        """Return to the pool if the exchange finished cleanly, else close."""
        if self.closed or self._tunnel_peer is not None:
            return  # closed, or now a tunnel that closes with its peer
        if self.done and self.keep_alive and self.error is None and self.upgrade_offer is None:
            # (a connection that offered an upgrade is not pooled, even when declined: an
            # idle connection can never be switched by what its upstream sends next)
            # Reading may have been paused for the client's backpressure by the read that
            # also ended the response: a pooled connection must read again, or the next
            # exchange on it never sees its response (and a close while idle goes unseen).
            self.resume_reading()
            self.pool.put(self)
        else:
            self.close()


class ConnectionPool:
    """Idle keep-alive connections per upstream target, LIFO (warm sockets first).

    ``keepalive``: TCP keepalive probes on every connection it opens (see ``tcp``), or
    ``None`` to leave them off."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        idle_timeout: float = 90.0,
        max_idle_per_target: int | None = None,
        on_connect_error: Callable[[UpstreamTarget], None] | None = None,
        on_connect: Callable[[UpstreamTarget], None] | None = None,
        keepalive: Keepalive | None = None,
    ):
        self.loop = loop
        self.keepalive = keepalive
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle_per_target
        self.on_connect_error = on_connect_error
        self.on_connect = on_connect
        self._idle: dict[tuple, list[UpstreamConnection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        # HTTP/2 targets: their open connections (each carrying streams), and the one
        # connection being opened per target, which requests arriving meanwhile wait for
        # rather than each opening its own
        self._h2: dict[tuple, list[H2ClientConnection]] = {}
        self._h2_opening: dict[tuple, asyncio.Future] = {}

    def take_idle(self, target: UpstreamTarget) -> UpstreamConnection | None:
        """A pooled connection to ``target``, or None (no await on the fast path). For an
        HTTP/2 target, a new stream on a connection that has room for one."""
        if target.http2:
            for h2conn in self._h2.get(target.key, ()):
                if h2conn.available():
                    return h2conn.open_stream()  # type: ignore[return-value]  # (the same interface)
            return None
        idle = self._idle.get(target.key)
        while idle:
            conn = idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                conn.reused += 1
                return conn
        return None

    async def acquire(self, target: UpstreamTarget) -> UpstreamConnection:
        conn = self.take_idle(target)
        if conn is not None:
            return conn
        return await self.connect(target)

    async def exchange(
        self, target: UpstreamTarget, head: bytes, body: bytes | None, timeout: float | None
    ) -> UpstreamConnection:
        """Send one whole request on a pooled connection and return it with the response
        head read. A pooled connection found dead before answering (``StaleConnection``)
        is replaced by a new one, once; any other failure closes the connection and
        raises (a 504 past ``timeout``). For replayable requests only: the body is sent
        again on the new connection."""
        conn = await self.acquire(target)
        while True:
            try:
                conn.send_head(head, body)
                await conn.wait_head(timeout)
                return conn
            except StaleConnection:  # (only a reused connection is found stale)
                conn.close()
            except BaseException:
                conn.close()
                del conn  # see UpstreamConnection._unheld
                raise
            conn = await self.connect(target)

    async def connect(self, target: UpstreamTarget) -> UpstreamConnection:
        """A new connection to ``target``; for an HTTP/2 target, a stream on a connection
        with room (one being opened is waited for, else a new one is opened)."""
        if target.http2:
            return await self._h2_stream(target)  # (a stream: the same interface)
        return await self._open(target, lambda: UpstreamConnection(self, target))

    async def _h2_stream(self, target: UpstreamTarget):
        from .h2client import H2ClientConnection  # (it builds on this module)

        key = target.key
        while True:
            stream = self.take_idle(target)
            if stream is not None:
                return stream
            opening = self._h2_opening.get(key)
            if opening is None:
                break
            await asyncio.shield(opening)  # (its failure is the opener's to report)
        fut = self.loop.create_future()
        self._h2_opening[key] = fut
        try:
            conn = await self._open(target, lambda: H2ClientConnection(self, target))
        except BaseException:
            fut.set_result(None)
            raise
        finally:
            if self._h2_opening.get(key) is fut:
                del self._h2_opening[key]
        if not fut.done():
            fut.set_result(None)
        self._h2.setdefault(key, []).append(conn)  # type: ignore[arg-type]
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(min(self.idle_timeout, 5.0), self._sweep)
        return conn.open_stream()  # type: ignore[attr-defined]

    def forget_h2(self, conn: H2ClientConnection) -> None:
        lst = self._h2.get(conn.target.key)
        if lst:
            try:
                lst.remove(conn)
            except ValueError:
                pass

    async def _open(self, target: UpstreamTarget, factory) -> UpstreamConnection:
        try:
            hostname = (target.server_hostname or target.host) if target.ssl else None
            if target.unix is not None:
                opening = self.loop.create_unix_connection(
                    factory, target.unix, ssl=target.ssl, server_hostname=hostname
                )
            else:
                opening = self.loop.create_connection(
                    factory, target.host, target.port, ssl=target.ssl, server_hostname=hostname
                )
            transport, conn = await asyncio.wait_for(opening, target.connect_timeout)
        except TimeoutError:
            if self.on_connect_error:
                self.on_connect_error(target)
            raise UpstreamConnectError(
                f"timed out connecting to {target.authority} after {target.connect_timeout:g}s", timeout=True
            ) from None
        except _ssl.SSLError as exc:
            if self.on_connect_error:
                self.on_connect_error(target)
            raise UpstreamConnectError(f"TLS handshake with {target.authority} failed: {exc.reason or exc}") from None
        except (OSError, socket.gaierror) as exc:
            if self.on_connect_error:
                self.on_connect_error(target)
            raise UpstreamConnectError(f"could not connect to {target.authority}: {exc.strerror or exc}") from None
        if self.on_connect:
            self.on_connect(target)
        if transport.is_closing():
            # closed as it opened (a server that speaks first in another protocol, such as
            # an HTTP/2 server's SETTINGS read as an HTTP/1.1 response): its socket is gone
            raise UpstreamConnectError(f"{target.authority} closed the connection as it opened")
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if self.keepalive is not None:
                set_keepalive(sock, self.keepalive)
        return conn

    def put(self, conn: UpstreamConnection) -> None:
        lst = self._idle.get(conn.target.key)
        if lst is None:
            lst = self._idle[conn.target.key] = []
        if self.max_idle is not None and len(lst) >= self.max_idle:
            conn.close()
            return
        conn.last_used = self.loop.time()
        lst.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(min(self.idle_timeout, 5.0), self._sweep)

    def forget(self, conn: UpstreamConnection) -> None:
        lst = self._idle.get(conn.target.key)
        if lst:
            try:
                lst.remove(conn)
            except ValueError:
                pass

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = self.loop.time() - self.idle_timeout
        any_left = False
        for lst in self._idle.values():
            for conn in [c for c in lst if c.last_used < cutoff]:
                conn.close()
            any_left = any_left or bool(lst)
        for h2list in self._h2.values():
            for h2conn in [c for c in h2list if not c.streams and c.last_used < cutoff]:
                h2conn.close()
            any_left = any_left or bool(h2list)
        if any_left:
            self._sweeper = self.loop.call_later(min(self.idle_timeout, 5.0), self._sweep)

    def close(self) -> None:
        for lst in self._idle.values():
            for conn in list(lst):
                conn.close()
        self._idle.clear()
        for h2list in self._h2.values():
            for h2conn in list(h2list):
                h2conn.close()
        self._h2.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
