"""Raw TCP proxying: a client connection spliced to an upstream connection.

A ``TcpSession`` is the protocol of one accepted (or CONNECT-tunnelled) client
connection on a TCP or TLS listener. It optionally reads the TLS ClientHello first (to
route by its SNI name without terminating TLS), asks its ``choose`` callback where the
connection goes, and then either

* dials the upstream ``(host, port)`` and splices the two connections: bytes flow both
  ways as they arrive, with backpressure both ways (a side whose write buffer fills
  stops the other side's reads until it drains), half-closes passed on where the
  transports support them; either side closing closes the other; or
* hands the connection over (``choose`` returned a callable): another protocol takes the
  transport with the bytes read so far, e.g. TLS termination into the HTTP server for a
  listener that serves HTTPS by SNI (``start_tls_server``).

Nothing here knows about listeners or routes; ``choose`` (from ``proxy/tcp.py``) does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

log = logging.getLogger("agentgw.tcp")

#: the longest ClientHello read while looking for its SNI name
MAX_HELLO = 16 * 1024
#: bytes read ahead of an upstream that is not connected yet before reading pauses
MAX_PENDING = 64 * 1024


class NotTLS(Exception):
    """The first bytes are not a TLS ClientHello."""


def client_hello_sni(data: bytes) -> tuple[bool, str | None]:
    """``(complete, name)``: whether ``data`` holds a whole ClientHello, and its SNI host
    name (lower case; ``None`` when it names none). Raises `NotTLS` for anything else."""
    hs = bytearray()
    pos = 0
    while True:
        if len(data) - pos < 5:
            return False, None
        if data[pos] != 0x16 or data[pos + 1] != 3:
            raise NotTLS("not a TLS handshake record")
        n = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if n == 0 or n > 16384 + 2048:
            raise NotTLS("bad TLS record length")
        if len(data) - pos - 5 < n:
            return False, None
        hs += data[pos + 5 : pos + 5 + n]
        pos += 5 + n
        if len(hs) >= 4:
            if hs[0] != 1:
                raise NotTLS("the first handshake message is not a ClientHello")
            need = 4 + int.from_bytes(hs[1:4], "big")
            if need > MAX_HELLO:
                raise NotTLS("ClientHello too large")
            if len(hs) >= need:
                return True, _sni(bytes(hs[4:need]))


def _sni(body: bytes) -> str | None:
    try:
        p = 2 + 32  # version, random
        p += 1 + body[p]  # session id
        p += 2 + int.from_bytes(body[p : p + 2], "big")  # cipher suites
        p += 1 + body[p]  # compression methods
        if p + 2 > len(body):
            return None  # no extensions
        end = p + 2 + int.from_bytes(body[p : p + 2], "big")
        p += 2
        while p + 4 <= end:
            etype = int.from_bytes(body[p : p + 2], "big")
            elen = int.from_bytes(body[p + 2 : p + 4], "big")
            p += 4
            if etype == 0:  # server_name
                q = p + 2
                stop = p + elen
                while q + 3 <= stop:
                    ntype, nlen = body[q], int.from_bytes(body[q + 1 : q + 3], "big")
                    q += 3
                    if ntype == 0:
                        name = body[q : q + nlen].decode("ascii").lower().rstrip(".")
                        if not name or any(c in name for c in "/:@ \t\r\n"):
                            raise NotTLS("invalid SNI name")
                        return name
                    q += nlen
                return None
            p += elen
    except (IndexError, UnicodeDecodeError):
        raise NotTLS("malformed ClientHello") from None
    return None


#: ``choose(sni, transport)``: where the connection goes -- ``(host, port)`` to splice to (or
#: ``(host, port, ssl_context, server_name)`` to splice to over TLS), a
#: callable ``takeover(transport, data)`` that takes the connection over, or ``None``
#: to close it.
Chooser = Callable[[str | None, Any], Any]


class TcpSession(asyncio.Protocol):
    """One client connection proxied to one upstream connection."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        choose: Chooser,
        *,
        sniff: bool,
        connect_timeout: float = 10.0,
        hello_timeout: float = 10.0,
        connections: set | None = None,
        on_connection_change: Callable[[int], None] | None = None,
        max_connections: int | None = None,
    ):
        self.loop = loop
        self.max_connections = max_connections
        self.choose = choose
        self.sniff = sniff
        self.connect_timeout = connect_timeout
        self.hello_timeout = hello_timeout
        self.connections = connections
        self.on_connection_change = on_connection_change
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.pending: bytearray | None = bytearray()  # read before the upstream is there
        self.routed = False
        self.closed = False
        self.client_eof = False
        self.up_eof = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None

    # -- the client side ------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.connections is not None:
            if self.max_connections is not None and len(self.connections) >= self.max_connections:
                self.closed = True  # (config.limits.maxConnections: nothing to answer on a byte stream)
                transport.abort()
                return
            self.connections.add(self)
        if self.on_connection_change is not None:
            self.on_connection_change(1)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if self.sniff:
            self._timer = self.loop.call_later(self.hello_timeout, self.close)
        else:
            self._route(None)

    def data_received(self, data: bytes) -> None:
        up = self.upstream
        if up is not None:
            up.write(data)
            return
        pending = self.pending
        if pending is None:
            return
        pending += data
        if not self.routed:
            try:
                complete, name = client_hello_sni(bytes(pending))
            except NotTLS as exc:
                log.debug("tcp: closing a connection that is not TLS: %s", exc)
                self.close()
                return
            if complete:
                self._route(name)
            elif len(pending) > MAX_HELLO + 5 * 8:
                self.close()
            return
        if len(pending) > MAX_PENDING and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.client_eof = True
        up = self.upstream
        if up is not None and up.can_write_eof():
            up.write_eof()
            if self.up_eof:
                self.close()
            return True
        if up is None and self.routed:
            return True  # sent once the upstream is there
        self.close()
        return False

    def connection_lost(self, exc) -> None:
        self._gone()
        up, self.upstream = self.upstream, None
        if up is not None:
            up.close()

    def pause_writing(self) -> None:
        # the client reads slower than the upstream sends
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- routing and the upstream ---------------------------------------------------------
    def _route(self, name: str | None) -> None:
        self.routed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            where = self.choose(name, self.transport)
        except Exception:
            log.exception("tcp: choosing a destination failed")
            where = None
        if where is None:
            self.close()
            return
        if callable(where):
            transport, data = self.transport, bytes(self.pending or b"")
            self.pending = None
            self._gone()
            self.transport = None
            where(transport, data)
            return
        self._task = self.loop.create_task(self._connect(*where))

    async def _connect(
        self, host: str, port: int, tls: ssl.SSLContext | None = None, server_name: str | None = None
    ) -> None:
        try:
            transport, _ = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Upstream(self), host, port, ssl=tls, server_hostname=server_name if tls else None
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError) as exc:  # (ssl.SSLError is an OSError)
            log.info("tcp: cannot connect to %s:%s: %s", host, port, exc or type(exc).__name__)
            self.close()
            return
        if self.closed:
            transport.close()
            return
        self.upstream = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        pending, self.pending = self.pending, None
        if pending:
            transport.write(bytes(pending))
        if self.client_eof:
            if transport.can_write_eof():
                transport.write_eof()
            else:
                self.close()
                return
        if self.transport is not None:
            self.transport.resume_reading()

    def upstream_data(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def upstream_eof(self) -> bool:
        self.up_eof = True
        t = self.transport
        if t is not None and t.can_write_eof():
            t.write_eof()
            if self.client_eof:
                self.close()
            return True
        self.close()
        return False

    def upstream_lost(self) -> None:
        self.upstream = None
        self.close()

    # -- the end --------------------------------------------------------------------------
    def close(self) -> None:
        """Close both sides (what was written goes out first)."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()
        up, self.upstream = self.upstream, None
        if up is not None:
            up.close()

    def _gone(self) -> None:
        if self.connections is not None and self in self.connections:
            self.connections.discard(self)
            if self.on_connection_change is not None:
                self.on_connection_change(-1)

    # (ServerSettings.drain and the deadline sweeper treat connections alike)
    deadline = 0.0

    def close_if_idle(self) -> None:
        """A drain: a tunnel is never idle; it ends when either side closes."""


class _Upstream(asyncio.Protocol):
    __slots__ = ("session",)

    def __init__(self, session: TcpSession):
        self.session = session

    def data_received(self, data: bytes) -> None:
        self.session.upstream_data(data)

    def eof_received(self) -> bool:
        return self.session.upstream_eof()

    def connection_lost(self, exc) -> None:
        self.session.upstream_lost()

    def pause_writing(self) -> None:
        # the upstream reads slower than the client sends
        t = self.session.transport
        if t is not None:
            t.pause_reading()

    def resume_writing(self) -> None:
        t = self.session.transport
        if t is not None:
            t.resume_reading()


def start_tls_server(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    data: bytes,
    ctx: ssl.SSLContext,
    app: asyncio.Protocol,
    handshake_timeout: float,
) -> None:
    """Terminate TLS on ``transport`` (whose first ``data`` bytes were already read, the
    ClientHello) with ``ctx``, for the protocol ``app``, which gets ``connection_made``
    once the handshake is done."""
    # (no waiter: ``app.connection_made`` is the handshake's end; a float timeout is fine)
    proto = sslproto.SSLProtocol(
        loop,
        app,
        ctx,
        None,  # type: ignore[arg-type]
        server_side=True,
        ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]
    )
    transport.set_protocol(proto)
    proto.connection_made(transport)
    if data:
        view = proto.get_buffer(len(data))
        n = min(len(view), len(data))
        view[:n] = data[:n]
        proto.buffer_updated(n)
        rest = data[n:]
        while rest:
            view = proto.get_buffer(len(rest))
            n = min(len(view), len(rest))
            view[:n] = rest[:n]
            proto.buffer_updated(n)
            rest = rest[n:]
    transport.resume_reading()


def hand_over(transport: asyncio.Transport, data: bytes, app: asyncio.Protocol) -> None:
    """Give ``transport`` (``data`` already read from it) to the protocol ``app``."""
    transport.set_protocol(app)
    app.connection_made(transport)
    if data:
        app.data_received(data)
    transport.resume_reading()
