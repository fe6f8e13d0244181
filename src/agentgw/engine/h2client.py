"""The upstream HTTP/2 client: multiplexed connections, one exchange per stream.

Backends that speak HTTP/2 (gRPC services, h2-only inference servers, any backend whose
``http.version`` policy says HTTP2) are reached through this module. A connection
(:class:`H2ClientConnection`) carries many exchanges at once, each an
:class:`H2UpstreamStream` with the interface of :class:`~.client.UpstreamConnection`:
``send_head`` / ``wait_head`` / ``stream_to`` / ``read_body`` / ``release`` behave as
they do for HTTP/1.1, so the backends, the relay and the retry logic cannot tell the two
protocols apart. What a stream adds is ``trailers`` (the response's trailer fields, which
gRPC's status travels in) and ``multiplexed`` (a request body is framed by DATA frames and
END_STREAM, never chunked).

The request head arrives as the HTTP/1.1 head the backends build (one place decides what
goes upstream: ``heads.build_request_head``); it becomes HTTP/2 fields here: ``:method``,
``:scheme``, ``:authority`` (from Host), ``:path``, the other fields minus the
connection-specific ones (RFC 9113 §8.2.2), with ``te: trailers`` when the client asked
for trailers.

Flow control: a response body is acknowledged (WINDOW_UPDATE) as it is handed on, except
while the stream is paused by the client's backpressure (``pause_reading``): the upstream
then stalls on that stream only, after at most its window (``STREAM_WINDOW``). The
connection's window is larger than all its streams' together, so one slow client never
starves the others. A request body goes out as the upstream's windows allow; past
``WRITE_HIGH`` bytes queued the stream reports ``write_paused`` and ``drain`` waits.

Failure vocabulary, as the HTTP/1.1 client's: a stream the upstream refused before
working on it (RST_STREAM REFUSED_STREAM, or a GOAWAY that did not let it in) is a
:class:`~.client.StaleConnection`, which a replayable request may send again; a reset
before the head is an :class:`~.client.UpstreamReset`; a head timeout a 504. Closing a
stream (``close``) resets that stream only (CANCEL); the connection and its other
streams go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from .client import NoResponse, ResponseReader, StaleConnection, UpstreamProtocolError, UpstreamReset
from .http import GatewayError, Headers

if TYPE_CHECKING:
    from .client import ConnectionPool, UpstreamTarget

log = logging.getLogger("agentgw.engine")

#: our receive windows: each stream's, and the connection's (larger than all streams' at
#: the stream cap together, so that a paused stream cannot starve the others)
STREAM_WINDOW = 1024 * 1024
CONNECTION_WINDOW = 128 * 1024 * 1024
#: streams per connection, at most (the upstream's SETTINGS_MAX_CONCURRENT_STREAMS may
#: lower it); a busier target gets another connection
MAX_STREAMS = 100
#: a request body queued beyond this (waiting for the upstream's window) pauses its writer
WRITE_HIGH = 256 * 1024
#: response header lists larger than this are refused (the stream is reset, 502)
MAX_HEADER_LIST = 256 * 1024
#: stream ids are 31 bits; a connection near the end of them takes no new streams
_LAST_STREAM_ID = 2**31 - 1 - 2 * MAX_STREAMS

# Connection-specific request fields (RFC 9113 §8.2.2), and the ones that become
# pseudo-header fields; ``te`` is sent as ``trailers`` only (see send_head).
_DROP_REQUEST = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"te",
        b"http2-settings",
    }
)
# Response fields that are the connection's business on HTTP/1.1 (never sent on h2, but a
# peer that sends them anyway must not get them relayed as framing)
_DROP_RESPONSE = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})


def request_fields(head: bytes, scheme: bytes, trailers: bool) -> tuple[list[tuple[bytes, bytes]], bool]:
    """An HTTP/1.1 request head (as ``heads.build_request_head`` writes it) as HTTP/2
    fields, and whether the request has a body (a content-length or chunked framing)."""
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    target = rest.rpartition(b" ")[0]
    authority = b""
    fields: list[tuple[bytes, bytes]] = []
    has_body = False
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name in _DROP_REQUEST:
            if name == b"host":
                authority = value
            elif name == b"transfer-encoding":
                has_body = True
            continue
        if name == b"content-length":
            has_body = value != b"0"
        fields.append((name, value))
    out = [(b":method", method), (b":scheme", scheme)]
    if method != b"CONNECT":
        out.append((b":authority", authority))
        out.append((b":path", target or b"/"))
    else:
        out.append((b":authority", target))
    if trailers:
        out.append((b"te", b"trailers"))
    out.extend(fields)
    return out, has_body


class H2ClientConnection(asyncio.Protocol):
    """One HTTP/2 connection to an upstream target, carrying up to ``capacity`` streams."""

    def __init__(self, pool: ConnectionPool, target: UpstreamTarget):
        self.pool = pool
        self.target = target
        self.loop = pool.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.streams: dict[int, H2UpstreamStream] = {}
        self.closed = False
        self.goaway = False  # the upstream is going away (or we are): no new streams
        self.write_paused = False
        self.last_used = self.loop.time()
        self.reused = 0  # streams opened before the current one
        # streams handed out (open_stream) whose request is not sent yet: they count
        # against the capacity, so that requests taking streams in the same turn (all
        # those that waited for this connection to open) do not overfill it
        self.reserved = 0
        self._flush_due = False
        self.scheme = b"https" if target.ssl is not None else b"http"
        # responses are validated by h2 (their fields may be relayed to HTTP/1.1 clients);
        # requests are ours (``request_fields``: lowercase names from a head we built)
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_inbound_headers=True,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        conn = self.h2 = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                # (no MAX_CONCURRENT_STREAMS: 0 for pushed streams, which ENABLE_PUSH
                # already rules out: h2 would count a late HEADERS on a stream we reset
                # against it and fail the connection)
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        conn.decoder.max_header_list_size = MAX_HEADER_LIST

    # -- capacity ----------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return min(MAX_STREAMS, self.h2.remote_settings.max_concurrent_streams)

    def available(self) -> bool:
        """Whether a new stream may open here now."""
        return (
            not self.closed
            and not self.goaway
            and len(self.streams) + self.reserved < self.capacity
            and self.h2.highest_outbound_stream_id < _LAST_STREAM_ID
        )

    def open_stream(self) -> H2UpstreamStream:
        stream = H2UpstreamStream(self)
        stream.reused = self.reused
        self.reused += 1
        self.reserved += 1
        stream._reserved = True
        return stream

    # -- asyncio protocol ----------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        conn = self.h2
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fatal(UpstreamProtocolError(f"upstream broke the HTTP/2 protocol: {exc}"))
            return
        heads: list[H2UpstreamStream] = []
        try:
            for ev in events:
                self._event(ev, heads)
        except h2.exceptions.ProtocolError as exc:
            self._fatal(UpstreamProtocolError(f"upstream broke the HTTP/2 protocol: {exc}"))
            return
        # Heads are announced after the whole read is handled, so that a small response's
        # body (and its end) is already here and can go out with its head in one write.
        for stream in heads:
            stream._announce()
        self.flush()

    def _event(self, ev, heads: list) -> None:
        cls = ev.__class__
        if cls is h2.events.DataReceived:
            stream = self.streams.get(ev.stream_id)
            if stream is None:
                self._ack(ev.flow_controlled_length, ev.stream_id)
            else:
                stream._data(ev.data, ev.flow_controlled_length)
        elif cls is h2.events.ResponseReceived:
            stream = self.streams.get(ev.stream_id)
            if stream is not None and stream._head(ev.headers):
                heads.append(stream)
        elif cls is h2.events.TrailersReceived:
            stream = self.streams.get(ev.stream_id)
            if stream is not None:
                stream.trailers = [(n, v) for n, v in ev.headers if not n.startswith(b":")]
        elif cls is h2.events.StreamEnded:
            stream = self.streams.get(ev.stream_id)
            if stream is not None:
                stream._ended()
        elif cls is h2.events.StreamReset:
            stream = self.streams.pop(ev.stream_id, None)
            if stream is not None:
                stream._reset_by_peer(ev.error_code)
                self._stream_gone()
        elif cls is h2.events.WindowUpdated:
            if ev.stream_id:
                stream = self.streams.get(ev.stream_id)
                if stream is not None:
                    stream._pump()
            else:
                self._pump_all()
        elif cls is h2.events.RemoteSettingsChanged:
            if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                self._pump_all()
        elif cls is h2.events.ConnectionTerminated:
            self._goaway_received(ev.last_stream_id, ev.error_code)
        elif cls is h2.events.InformationalResponseReceived:
            pass  # 100 Continue / 103: the final response follows
        # (PingReceived: h2 answers it; SettingsAcknowledged, PingAckReceived: nothing)

    def _goaway_received(self, last_stream_id: int | None, code) -> None:
        """No new streams; the ones it did not let in failed before any work (retryable)."""
        self.goaway = True
        self.pool.forget_h2(self)
        last = last_stream_id if last_stream_id is not None else 2**31
        for sid in [s for s in self.streams if s > last]:
            stream = self.streams.pop(sid)
            stream._fail(StaleConnection("upstream HTTP/2 connection went away before taking the request"))
        if not self.streams:
            self.close()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.closed = True
        self.pool.forget_h2(self)
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream._connection_lost()

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        self._pump_all()
        for stream in list(self.streams.values()):
            stream._wake_writers()

    # -- writing -----------------------------------------------------------------------------
    def flush(self) -> None:
        self._flush_due = False
        data = self.h2.data_to_send()
        if data and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def schedule_flush(self) -> None:
        """Write at the end of this loop turn: frames of all streams sent in it go together."""
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self.flush)

    def _ack(self, n: int, stream_id: int) -> None:
        if n:
            try:
                self.h2.acknowledge_received_data(n, stream_id)
            except h2.exceptions.ProtocolError:
                pass

    def _pump_all(self) -> None:
        for stream in list(self.streams.values()):
            if stream._queue or stream._end_pending:
                stream._pump()

    def reset(self, stream_id: int, code: int) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            pass  # (already closed)
        self.schedule_flush()

    def _stream_gone(self) -> None:
        self.last_used = self.loop.time()
        if self.goaway and not self.streams:
            self.close()

    def detach(self, stream: H2UpstreamStream) -> None:
        """``stream`` is finished with (released or closed)."""
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
            self._stream_gone()

    def _fatal(self, err: GatewayError) -> None:
        """The connection can't go on: every stream fails with ``err``."""
        log.debug("HTTP/2 upstream %s: %s", self.target.authority, err.message)
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream._fail(err)
        self.close()

    def close(self) -> None:
        """Close now (a GOAWAY first, when the connection still works)."""
        if self.closed:
            return
        self.closed = True
        self.pool.forget_h2(self)
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.h2.close_connection()
                self.transport.write(self.h2.data_to_send())
            except h2.exceptions.ProtocolError:
                pass
            self.transport.close()
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream._connection_lost()


class H2UpstreamStream(ResponseReader):
    """One exchange on an :class:`H2ClientConnection`: ``UpstreamConnection``'s interface."""

    multiplexed = True
    upgraded = False
    upgrade_offer = None
    keep_alive = True
    close_delimited = False

    __slots__ = (
        "connection",
        "target",
        "loop",
        "stream_id",
        "reused",
        "closed",
        "status",
        "head",
        "relay",
        "resp_cl",
        "trailers",
        "head_only",
        "chunks",
        "done",
        "error",
        "_headers",
        "_head_fut",
        "_on_head",
        "_announced",
        "_timer",
        "_sink",
        "_sink_end",
        "_sink_error",
        "_body_waiter",
        "_queue",
        "_queued",
        "_end_pending",
        "_sent_end",
        "_drain_waiters",
        "_read_paused",
        "_unacked",
        "_got_bytes",
        "_reserved",
    )

    def __init__(self, connection: H2ClientConnection):
        self.connection = connection
        self.target = connection.target
        self.loop = connection.loop
        self.stream_id = 0
        self.reused = 0
        self.closed = False
        self.status = 0
        self.head = b""
        self.relay: bytes | None = b""
        self.resp_cl: bytes | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.head_only = False
        self.chunks: list[bytes] = []
        self.done = False
        self.error: BaseException | None = None
        self._headers: Headers | None = None
        self._head_fut: asyncio.Future | None = None
        self._on_head: Callable | None = None
        self._announced = False
        self._timer: asyncio.TimerHandle | None = None
        self._sink: Callable[[bytes], None] | None = None
        self._sink_end: Callable[[], None] | None = None
        self._sink_error: Callable[[BaseException], None] | None = None
        self._body_waiter: asyncio.Future | None = None
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._end_pending = False
        self._sent_end = False
        self._drain_waiters: list[asyncio.Future] = []
        self._read_paused = False
        self._unacked = 0
        self._got_bytes = False
        self._reserved = False  # holding a place in the connection's capacity (reserved)

    # -- request -------------------------------------------------------------------------------
    def send_head(
        self,
        head: bytes,
        body: bytes | None,
        on_head: Callable | None = None,
        *,
        head_only: bool = False,
        upgrade: str | None = None,
        timeout: float | None = None,
        trailers: bool = False,
    ) -> None:
        """Open the stream with the request head (an HTTP/1.1 head, see
        :func:`request_fields`) and, when ``body`` is given, the whole body; otherwise
        the body follows by :meth:`write` and ends with :meth:`end_body`. The response
        head is announced as :meth:`UpstreamConnection.send_head` describes."""
        if upgrade is not None:
            raise UpstreamProtocolError("protocol switches are not relayed over HTTP/2 to backends")
        conn = self.connection
        self.head_only = head_only
        if on_head is None:
            self._head_fut = self.loop.create_future()
        else:
            self._on_head = on_head
            if timeout is not None:
                self._timer = self.loop.call_later(timeout, self._head_timeout, timeout)
        self._unreserve()
        fields, has_body = request_fields(head, conn.scheme, trailers)
        if conn.closed or not conn.available():
            # (taken from the pool in the same turn as the connection went away)
            self._fail(StaleConnection("upstream HTTP/2 connection went away before taking the request"))
            return
        h = conn.h2
        sid = self.stream_id = h.get_next_available_stream_id()
        conn.streams[sid] = self
        end = body is not None and not body
        if body is None and not has_body:
            end = True
        try:
            h.send_headers(sid, fields, end_stream=end)
        except h2.exceptions.ProtocolError as exc:
            conn.streams.pop(sid, None)
            self._fail(UpstreamProtocolError(f"request not sendable over HTTP/2: {exc}"))
            return
        if end:
            self._sent_end = True
        elif body:
            self._queue.append(body)
            self._queued = len(body)
            self._end_pending = True
            self._pump()
        conn.schedule_flush()

    def write(self, data: bytes) -> None:
        if not data or self.closed or self._sent_end:
            return
        self._queue.append(data)
        self._queued += len(data)
        self._pump()

    def end_body(self, chunked: bool = False) -> None:
        """The request body is complete (END_STREAM once what is queued is out)."""
        if self.closed or self._sent_end:
            return
        self._end_pending = True
        self._pump()

    @property
    def write_paused(self) -> bool:
        return self._queued > WRITE_HIGH or self.connection.write_paused

    async def drain(self) -> None:
        while self.write_paused:
            if self.closed or self.connection.closed:
                raise UpstreamReset("upstream closed the stream")
            fut = self.loop.create_future()
            self._drain_waiters.append(fut)
            await fut

    def _wake_writers(self, exc: BaseException | None = None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                if exc is None:
                    w.set_result(None)
                else:
                    w.set_exception(exc)

    def _pump(self) -> None:
        """Send what the upstream's windows allow of the queued body; END_STREAM after it."""
        conn = self.connection
        if conn.closed or self.closed or self._sent_end:
            return
        h = conn.h2
        sid = self.stream_id
        queue = self._queue
        try:
            while queue:
                window = h.local_flow_control_window(sid)
                if window <= 0:
                    break
                chunk = queue[0]
                n = min(window, h.max_outbound_frame_size)
                if n >= len(chunk):
                    queue.popleft()
                    n = len(chunk)
                else:
                    queue[0] = chunk[n:]
                    chunk = chunk[:n]
                self._queued -= n
                last = self._end_pending and not queue
                h.send_data(sid, chunk, end_stream=last)
                if last:
                    self._sent_end = True
            if self._end_pending and not queue and not self._sent_end:
                h.end_stream(sid)
                self._sent_end = True
        except h2.exceptions.ProtocolError as exc:  # the stream is closed (reset, ended)
            log.debug("HTTP/2 upstream stream %d: request body not sent: %s", sid, exc)
            queue.clear()
            self._queued = 0
        conn.schedule_flush()
        if not self.write_paused:
            self._wake_writers()

    # -- response (from the connection) ----------------------------------------------------
    def _head(self, fields: list) -> bool:
        """The response head: True when it is to be announced."""
        self._got_bytes = True
        status = 0
        lines = []
        relay = []
        cl = None
        for name, value in fields:
            if name[:1] == b":":
                if name == b":status":
                    status = int(value)
                continue
            line = name + b": " + value + b"\r\n"
            lines.append(line)
            if name == b"content-length":
                cl = value
            elif name not in _DROP_RESPONSE:
                relay.append(line)
        self.status = status
        self.head = b"".join(lines)
        self.relay = b"".join(relay)
        self.resp_cl = cl
        if self.head_only or status in (204, 304):
            self.resp_cl = cl if self.head_only else None
        t = self._timer
        if t is not None:
            t.cancel()
            self._timer = None
        return True

    def _announce(self) -> None:
        if self._announced or not self.status:
            return
        self._announced = True
        cb = self._on_head
        if cb is not None:
            self._on_head = None
            cb(self, None)
            return
        f = self._head_fut
        if f is not None and not f.done():
            f.set_result(None)

    def _data(self, data: bytes, flow_len: int) -> None:
        self._got_bytes = True
        if self._read_paused:
            self._unacked += flow_len
        else:
            self.connection._ack(flow_len, self.stream_id)
        if not data:
            return
        sink = self._sink
        if sink is not None:
            sink(data)
        else:
            self.chunks.append(data)
            self._wake_body()

    def _ended(self) -> None:
        """END_STREAM from the upstream: the response is complete (trailers, if any, are in)."""
        if not self.status:
            # a stream that ended without a final response head
            self.connection.streams.pop(self.stream_id, None)
            self._fail(UpstreamReset("upstream ended the HTTP/2 stream without a response"))
            return
        if self.done:
            return
        self.done = True
        conn = self.connection
        if conn.streams.get(self.stream_id) is self and self._sent_end:
            del conn.streams[self.stream_id]  # both sides are closed: the stream is over
            conn._stream_gone()
        if self._announced:
            end = self._sink_end
            if end is not None:
                self._sink = self._sink_end = self._sink_error = None
                end()
            self._wake_body()

    def _wake_body(self, exc: BaseException | None = None) -> None:
        w = self._body_waiter
        if w is not None:
            self._body_waiter = None
            if not w.done():
                if exc is None:
                    w.set_result(None)
                else:
                    w.set_exception(exc)

    def _reset_by_peer(self, code) -> None:
        self.closed = True  # (the connection has let go of it)
        if self.done:
            # RFC 9113 §8.1: the response is complete and the upstream wants no more of
            # the request body
            self._queue.clear()
            self._queued = 0
            self._sent_end = True
            self._wake_writers()
        elif code == ErrorCodes.REFUSED_STREAM and not self.status:
            self._fail(StaleConnection("upstream refused the HTTP/2 stream before working on it"))
        else:
            name = getattr(code, "name", str(code))
            where = "before responding" if not self.status else "mid-response"
            self._fail(UpstreamReset(f"upstream reset the HTTP/2 stream {where} ({name})"))

    def _connection_lost(self) -> None:
        if self.done or self.closed:
            return
        if not self.status and not self._got_bytes and self.reused:
            self._fail(StaleConnection("pooled upstream HTTP/2 connection closed before responding"))
        elif not self.status and not self._got_bytes:
            self._fail(NoResponse())
        elif not self.status:
            self._fail(UpstreamReset())
        else:
            self._fail(UpstreamReset("upstream closed the connection mid-response"))

    def _fail(self, exc: BaseException) -> None:
        if self.error is not None:
            return
        self.error = exc
        t = self._timer
        if t is not None:
            t.cancel()
            self._timer = None
        self._wake_writers(exc)
        self._report(exc)

    # -- response body consumption (as UpstreamConnection's) ----------------------------------
    @property
    def headers(self) -> Headers:
        h = self._headers
        if h is None:
            h = self._headers = Headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.raw_headers])
        return h

    # -- backpressure from the client ----------------------------------------------------------
    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        self._read_paused = False
        n, self._unacked = self._unacked, 0
        if n and not self.connection.closed and not self.closed:
            self.connection._ack(n, self.stream_id)
            self.connection.schedule_flush()

    def start_tunnel(self, client) -> bytes:
        raise UpstreamProtocolError("protocol switches are not relayed over HTTP/2 to backends")

    # -- release -------------------------------------------------------------------------------
    def release(self) -> None:
        """Done with the exchange: a complete one just leaves its connection; one cut short
        is reset (CANCEL)."""
        if self.closed:
            return
        if self.done and self.error is None:
            self.closed = True
            if not self._sent_end:
                # the upstream answered before the whole request body: stop sending it
                self.connection.reset(self.stream_id, ErrorCodes.NO_ERROR)
            self.connection.detach(self)
        else:
            self.close()

    def _unreserve(self) -> None:
        if self._reserved:
            self._reserved = False
            self.connection.reserved -= 1

    def close(self) -> None:
        """Reset this stream (CANCEL); the connection and its other streams go on."""
        if self.closed:
            return
        self._unreserve()  # (closed before its request was sent)
        self.closed = True
        self._queue.clear()
        self._queued = 0
        conn = self.connection
        if self.stream_id and not conn.closed:
            if not (self.done and self._sent_end):
                conn.reset(self.stream_id, ErrorCodes.CANCEL)
        conn.detach(self)
        if self.error is None and not self.done:
            self._fail(UpstreamReset("the exchange was cancelled"))
