"""The client-facing HTTP/2 server: one protocol per connection, one exchange per stream.

A connection becomes HTTP/2 in :class:`~.server.HttpServerProtocol`, which hands its
transport over here when TLS negotiated ``h2`` (ALPN) or when the connection's first bytes
are the HTTP/2 preface (h2c with prior knowledge). From then on the frames are parsed by
the sans-IO ``h2`` library and each request stream becomes the same :class:`~.server.Request`
the HTTP/1.1 parser builds, answered through an :class:`H2Exchange` that has the interface
of :class:`~.server.Exchange`: the pipeline, the backends and the policies cannot tell the
two protocols apart (``request.http_version`` is ``"2"``).

What HTTP/2 adds to the connection bookkeeping:

* flow control in both directions. A response body goes out as the client's windows
  allow; what does not fit waits in the stream's queue, and while anything waits the
  stream's pause hooks hold its upstream (the same hooks the HTTP/1.1 path drives from the
  socket's backpressure). A request body is acknowledged (WINDOW_UPDATE) as it is
  buffered, except while the body holds more than its high-water mark unread
  (``RequestBody`` pauses "reading"): the client then stalls on that stream only.
* limits and defences that HTTP/1.1 does not need: concurrent streams, header list size,
  CONTINUATION floods (``h2`` caps the frames; the buffered block is capped here too),
  rapid reset (CVE-2023-44487) and PING / SETTINGS / unknown-frame floods, counted per
  connection in a fixed time window; WINDOW_UPDATE and PRIORITY frames bounded by the work
  that justifies them (DATA frames sent, streams opened), and runs of empty DATA frames:
  all answered with GOAWAY ENHANCE_YOUR_CALM.
* a client that breaks the protocol gets GOAWAY (PROTOCOL_ERROR or the code ``h2`` picked)
  and the connection closes; it is logged as one line, never a traceback.

Deadlines use the server's sweeper (``deadline`` / ``deadline_passed``): the header-read
timeout until the first request (and while a header block is incomplete), the idle timeout
between requests, the body timeout for request bodies still arriving. Draining sends
GOAWAY with the last stream id taken and closes once the streams in flight are done.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from .body import RequestBody
from .canon import BadHead, canonical_host
from .grpc import is_grpc, trailers_only
from .http import GatewayError, Headers, error_body
from .server import BODY_WAIT_BYTES, Request, run_handler

if TYPE_CHECKING:
    from .server import ServerSettings

log = logging.getLogger("agentgw.engine")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

MAX_CONCURRENT_STREAMS = 100
# Our receive windows: a stream's (SETTINGS_INITIAL_WINDOW_SIZE) and the connection's. The
# connection's is larger than all streams' together, so that a stream whose body is not
# being read (its window held) cannot starve the others.
STREAM_WINDOW = 256 * 1024
CONNECTION_WINDOW = 32 * 1024 * 1024
# Floods, counted per connection in fixed windows of FLOOD_WINDOW seconds. Browsers and
# SDK clients cancel a stream now and then and ping rarely; these counts are far above
# what they do and far below what an attack needs.
FLOOD_WINDOW = 10.0
MAX_RESETS = 200  # RST_STREAM from the client (rapid reset, CVE-2023-44487)
MAX_PINGS = 100
MAX_SETTINGS = 100
MAX_UNKNOWN = 100  # frames of unknown types (allowed by RFC 9113, and cheap to send)
# Frames that cost us work and move no data (as Envoy bounds them): WINDOW_UPDATEs beyond
# WINDOW_UPDATES_PER_DATA per DATA frame sent, PRIORITY frames beyond PRIORITY_PER_STREAM
# per stream opened (each plus a base of BASE_CONTROL), and more than MAX_EMPTY_DATA DATA
# frames in a row that carry nothing and end nothing.
WINDOW_UPDATES_PER_DATA = 10
# gRPC clients (grpcio) top up a stream's window, and the connection's, as they open it,
# before any DATA has come: that much per stream opened is work, not a flood
WINDOW_UPDATES_PER_STREAM = 4
PRIORITY_PER_STREAM = 100
BASE_CONTROL = 100
MAX_EMPTY_DATA = 10
# A request body still coming after its response is complete (the handler did not read
# it) is taken and dropped up to this much, so that clients that send the whole body
# before they read the answer (httpx) get it; past that the stream is reset (NO_ERROR,
# RFC 9113 §8.1), as nginx and Go do.
DISCARD_MAX = 1024 * 1024

# Connection-specific fields (RFC 9113 §8.2.2) never go out on a stream; the length is
# the stream's own business (END_STREAM), so a content-length is only sent when known.
_DROP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length"})
_DROP_B = frozenset(k.encode() for k in _DROP)

#: RFC 9110 tchar+ (a method); a request target's characters (visible ASCII); a control
#: character in a field value (HTAB allowed)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: a field name as HTTP/2 allows it on the wire: a token, lowercase (RFC 9113 §8.2.1)
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
#: fields that are HTTP/1.1's connection business and make an HTTP/2 request malformed
_CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})


class Malformed(Exception):
    """A request head HTTP/2 calls malformed (RFC 9113 §8.1.1): the stream is reset with
    PROTOCOL_ERROR, as h2 would have done (and h2spec expects)."""


_TARGET = re.compile(r"[\x21-\x7e]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

_RESETS, _PINGS, _SETTINGS, _UNKNOWN = 0, 1, 2, 3
_FLOOD_LIMITS = (MAX_RESETS, MAX_PINGS, MAX_SETTINGS, MAX_UNKNOWN)
_FLOOD_NAMES = ("stream resets", "PINGs", "SETTINGS frames", "frames of unknown types")


def _h2_headers(status: int, headers: Any, content_length: int | None) -> list[tuple[bytes, bytes]]:
    """A response head as HTTP/2 fields: ``:status``, the handler's fields minus the
    connection-specific ones (``headers`` is pairs or an encoded block of header lines,
    as :class:`~.server.Exchange` takes them), and ``content-length`` when known."""
    out = [(b":status", b"%d" % status)]
    if headers.__class__ is bytes:
        for line in headers.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                name = name.strip().lower()
                if name not in _DROP_B:
                    out.append((name, value.strip()))
    else:
        for k, v in headers:
            k = k.lower()
            if k not in _DROP:
                out.append((k.encode("latin-1"), v.encode("latin-1")))
    if content_length is not None:
        out.append((b"content-length", b"%d" % content_length))
    return out


class H2ServerProtocol(asyncio.Protocol):
    """One HTTP/2 client connection (given by :class:`~.server.HttpServerProtocol`)."""

    __slots__ = (
        "settings",
        "loop",
        "transport",
        "h2",
        "peer",
        "tls",
        "deadline",
        "streams",
        "_discarding",
        "write_paused",
        "_dead",
        "_eof",
        "_closing",
        "_flush_due",
        "_goaway",
        "_idle_deadline",
        "_head_deadline",
        "_flood",
        "_flood_start",
        "data_sent",
        "_window_updates",
        "_streams_opened",
        "_priorities",
        "_empty_data",
        "_header_cap",
    )

    def __init__(
        self,
        settings: ServerSettings,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        peer: str,
        tls: dict | None,
    ):
        self.settings = settings
        self.loop = loop
        self.transport = transport
        self.peer = peer
        self.tls = tls
        self.streams: dict[int, H2Exchange] = {}
        # answered streams whose request body is still coming: read to its end and
        # dropped, as the HTTP/1.1 path does (up to the body limit)
        self._discarding: dict[int, H2Exchange] = {}
        self.write_paused = False
        self._dead = False
        self._eof = False  # the client half-closed: no WINDOW_UPDATE can come any more
        self._closing = False  # no new streams: GOAWAY sent (draining) or received
        self._flush_due = False
        self._goaway: int | None = None  # the last stream id a graceful GOAWAY let in
        # with no stream open: when the connection is closed (the header-read timeout until
        # a first request, then the idle timeout from the end of the last stream)
        self._idle_deadline = loop.time() + settings.header_read_timeout
        self._head_deadline = 0.0  # a header block is incomplete: when it must be whole
        self._flood = [0, 0, 0, 0]
        self._flood_start = loop.time()
        # control frames against the work that justifies them (see WINDOW_UPDATES_PER_DATA)
        self.data_sent = 0  # DATA frames sent
        self._window_updates = 0
        self._streams_opened = 0
        self._priorities = 0
        self._empty_data = 0  # DATA frames in a row with no payload and no END_STREAM
        # The header list we take: room for the largest head the HTTP/1.1 path takes plus
        # HPACK's 32 bytes per field, so that a head over the limits gets the same 431
        # (and only a larger one breaks the connection, in the HPACK decoder).
        self._header_cap = settings.max_header_bytes + 32 * settings.max_header_count
        # The request head is validated here, in one pass (``_read_head``), rather than by
        # h2's chain of generators, which cost a fifth of an HTTP/2 request; the response
        # head is ours (``_h2_headers``: lowercase names, values an upstream parser or the
        # config has checked), so h2 does not check it again.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        conn = self.h2 = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self._header_cap,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        conn.decoder.max_header_list_size = self._header_cap
        self.deadline = self._idle_deadline

    # -- connection lifecycle -------------------------------------------------------------
    def start(self, data: bytes) -> None:
        """Our SETTINGS and connection window first, then what the client already sent."""
        conn = self.h2
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        if data:
            self.data_received(data)

    def connection_made(self, transport):  # (the transport comes from the HTTP/1.1 protocol)
        self.transport = transport

    def connection_lost(self, exc):
        if self._dead:
            return
        self._dead = True
        s = self.settings
        s.connections.discard(self)
        if s.on_connection_change:
            s.on_connection_change(-1)
        self.deadline = 0.0
        streams = list(self.streams.values())
        self.streams.clear()
        self._discarding.clear()
        for ex in streams:
            ex.client_gone()

    def eof_received(self):
        """A half-close from the client: the streams in flight whose request is whole are
        still answered; one whose body was still coming can never have it, and one whose
        response waits for window can never get it: those go as a client that left (else
        they would hold the connection open, in CLOSE-WAIT, for good)."""
        self._closing = True
        self._eof = True
        self._discarding.clear()
        for ex in [e for e in self.streams.values() if not e.request.body.complete]:
            del self.streams[ex.stream_id]
            ex.reset_by_peer()
        # a response waiting for window can't have it now (see H2Exchange.pump)
        for ex in [e for e in self.streams.values() if e._queue]:
            ex.pump()
        if not self.streams:
            return False
        return True

    def close(self) -> None:
        """Close after what was queued has gone out."""
        if not self._dead:
            self._flush()
            self.transport.close()

    def close_if_idle(self) -> None:
        """Draining: GOAWAY with the last stream taken, close once in-flight streams end."""
        if self._dead or self.transport is None:
            return
        if self._goaway is None:
            self._flush()
            self._goaway = self.h2.highest_inbound_stream_id
            # Written by hand: ``h2``'s own GOAWAY closes its state machine, and the
            # streams in flight must still be answered.
            frame = GoAwayFrame(stream_id=0, last_stream_id=self._goaway, error_code=0)
            if not self.transport.is_closing():
                self.transport.write(frame.serialize())
        self._closing = True
        if not self.streams:
            self.close()

    def _fatal(self, code: int, why: str, goaway: bool = True) -> None:
        """GOAWAY with ``code`` and close: the client broke the protocol or a limit.
        (``goaway`` False: ``h2`` has queued its own, for a frame it refused.)"""
        level = logging.DEBUG if code == ErrorCodes.NO_ERROR else logging.INFO
        try:
            name = ErrorCodes(code).name
        except ValueError:
            name = str(code)
        log.log(level, "HTTP/2 connection from %s closed (%s): %s", self.peer or "?", name, why)
        self._closing = True
        if goaway:
            try:
                self.h2.close_connection(error_code=code, additional_data=why.encode("utf-8", "replace")[:200])
            except h2.exceptions.ProtocolError:
                pass
        self.close()

    # -- deadlines (the server's sweeper) -------------------------------------------------
    def deadline_passed(self) -> None:
        if not self.streams:
            if self._head_deadline or not self.h2.highest_inbound_stream_id:
                self._fatal(ErrorCodes.NO_ERROR, "timed out reading request headers")
            else:
                self._fatal(ErrorCodes.NO_ERROR, "idle timeout")
            return
        now = self.loop.time()
        limit = self.settings.body_timeout
        for ex in list(self.streams.values()):
            body = ex.request.body
            if not body.complete and not ex._read_paused and now - ex._last_read >= limit:
                ex.body_timed_out()
        self._rearm()

    def _rearm(self) -> None:
        """The next deadline: the body timeout while a request body is arriving, none
        while responses are being sent, the idle timeout with no stream at all."""
        if self._dead:
            return
        if self.streams:
            waiting = False
            for ex in self.streams.values():
                if not ex.request.body.complete:
                    waiting = True
                    break
            self.deadline = self.loop.time() + self.settings.body_timeout if waiting else 0.0
        else:
            self.deadline = self._head_deadline or self._idle_deadline

    # -- writing --------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write what ``h2`` has queued (frames of every stream, in order)."""
        self._flush_due = False
        data = self.h2.data_to_send()
        if data and not self._dead and not self.transport.is_closing():
            self.transport.write(data)

    def schedule_flush(self) -> None:
        """Write at the end of this loop turn: the frames of all streams answered in it
        go out in one write (the coalescing engine/outbox.py does for HTTP/1.1)."""
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush)

    def pause_writing(self):
        self.write_paused = True
        for ex in list(self.streams.values()):
            ex.update_pause()

    def resume_writing(self):
        self.write_paused = False
        for ex in list(self.streams.values()):
            ex.update_pause()

    # -- reading --------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        conn = self.h2
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # ``h2`` has queued its GOAWAY (with the error's code), except for a bad preface
            code = getattr(exc, "error_code", None) or ErrorCodes.PROTOCOL_ERROR
            closed = conn.state_machine.state == h2.connection.ConnectionState.CLOSED
            self._fatal(code, str(exc) or "protocol error", goaway=not closed)
            return
        except Exception:  # a bug in the frame handling: the connection can't go on
            log.exception("HTTP/2 frame handling failed")
            self._fatal(ErrorCodes.INTERNAL_ERROR, "internal error")
            return
        starts: list[H2Exchange] = []
        try:
            for ev in events:
                self._event(ev, starts)
                if self._dead or self.transport.is_closing():
                    return
        except h2.exceptions.ProtocolError as exc:
            self._fatal(getattr(exc, "error_code", None) or ErrorCodes.PROTOCOL_ERROR, str(exc) or "protocol error")
            return
        self._check_buffer()
        if self._dead or self.transport.is_closing():
            return
        for ex in starts:
            if not ex.disconnected and self.streams.get(ex.stream_id) is ex:
                self._start(ex)
        self._rearm()
        self._flush()

    def _check_buffer(self) -> None:
        """What this read left incomplete. A frame over our SETTINGS_MAX_FRAME_SIZE is
        refused from its header (``h2`` checks the length only once the whole frame is
        in: a client announcing 16 MiB would be buffered up to that). A header block:
        bound its size (CONTINUATION floods) and the time until it is whole (the
        header-read timeout)."""
        buf = self.h2.incoming_buffer
        pending = getattr(buf, "_data", b"")  # (``h2``'s buffer of an incomplete frame)
        if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > self.h2.max_inbound_frame_size:
            self._fatal(ErrorCodes.FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE")
            return
        # (``h2`` keeps the HEADERS / CONTINUATION frames of an unfinished block here)
        frames = getattr(buf, "_headers_buffer", None)
        if frames:
            if sum(len(f.data) for f in frames) > self._header_cap:
                self._fatal(ErrorCodes.ENHANCE_YOUR_CALM, "header block too large")
                return
            if not self._head_deadline:
                self._head_deadline = self.loop.time() + self.settings.header_read_timeout
        elif self._head_deadline:
            self._head_deadline = 0.0

    def _count(self, kind: int) -> bool:
        """Count one frame of a flood-prone kind; True (and GOAWAY) past its limit."""
        now = self.loop.time()
        if now - self._flood_start >= FLOOD_WINDOW:
            self._flood_start = now
            self._flood = [0, 0, 0, 0]
        self._flood[kind] += 1
        if self._flood[kind] > _FLOOD_LIMITS[kind]:
            self._fatal(ErrorCodes.ENHANCE_YOUR_CALM, f"too many {_FLOOD_NAMES[kind]}")
            return True
        return False

    def _event(self, ev, starts: list[H2Exchange]) -> None:
        cls = ev.__class__
        if cls is h2.events.DataReceived:
            if ev.data or ev.stream_ended is not None:
                self._empty_data = 0
            else:
                self._empty_data += 1
                if self._empty_data > MAX_EMPTY_DATA:
                    self._fatal(ErrorCodes.ENHANCE_YOUR_CALM, "too many empty DATA frames")
                    return
            ex = self.streams.get(ev.stream_id) or self._discarding.get(ev.stream_id)
            if ex is None:
                self._ack(ev.flow_controlled_length, ev.stream_id)
            else:
                ex.data(ev.data, ev.flow_controlled_length)
        elif cls is h2.events.RequestReceived:
            self._streams_opened += 1
            self._request(ev, starts)
        elif cls is h2.events.StreamEnded:
            ex = self.streams.get(ev.stream_id)
            if ex is None:
                self._discarding.pop(ev.stream_id, None)
            else:
                ex.request.body.finish()
                if ex._due:
                    ex._due = False
                    starts.append(ex)
        elif cls is h2.events.WindowUpdated:
            self._window_updates += 1
            if self._window_updates > (
                BASE_CONTROL
                + WINDOW_UPDATES_PER_DATA * self.data_sent
                + WINDOW_UPDATES_PER_STREAM * self._streams_opened
            ):
                self._fatal(ErrorCodes.ENHANCE_YOUR_CALM, "too many WINDOW_UPDATE frames")
                return
            if ev.stream_id:
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.pump()
            else:
                self._pump_all()
        elif cls is h2.events.StreamReset:
            if ev.remote_reset and self._count(_RESETS):
                return
            self._discarding.pop(ev.stream_id, None)
            ex = self.streams.pop(ev.stream_id, None)
            if ex is not None:
                ex.reset_by_peer()
                self._stream_gone()
        elif cls is h2.events.RemoteSettingsChanged:
            if self._count(_SETTINGS):
                return
            if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                self._pump_all()
        elif cls is h2.events.PingReceived:
            self._count(_PINGS)
        elif cls is h2.events.ConnectionTerminated:
            # The client is going away: nothing more can be sent on this connection.
            self._closing = True
            self.close()
        elif cls is h2.events.PriorityUpdated:
            self._priorities += 1
            if self._priorities > BASE_CONTROL + PRIORITY_PER_STREAM * self._streams_opened:
                self._fatal(ErrorCodes.ENHANCE_YOUR_CALM, "too many PRIORITY frames")
        elif cls is h2.events.UnknownFrameReceived:
            self._count(_UNKNOWN)
        elif cls is h2.events.TrailersReceived:
            # dropped, as the HTTP/1.1 path drops a trailer section; pseudo-header fields
            # make them malformed (RFC 9113 §8.1)
            if any(n[:1] == b":" for n, _ in ev.headers):
                ex = self.streams.pop(ev.stream_id, None)
                self._discarding.pop(ev.stream_id, None)
                self.reset(ev.stream_id, ErrorCodes.PROTOCOL_ERROR)
                if ex is not None:
                    ex.reset_by_peer()
                    self._stream_gone()
        # (SettingsAcknowledged, PingAckReceived: nothing to do)

    def _ack(self, n: int, stream_id: int) -> None:
        if n:
            try:
                self.h2.acknowledge_received_data(n, stream_id)
            except h2.exceptions.ProtocolError:
                pass

    def _pump_all(self) -> None:
        for ex in list(self.streams.values()):
            if ex._queue:
                ex.pump()

    def reset(self, stream_id: int, code: int) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            pass  # (already closed)
        self.schedule_flush()

    # -- streams --------------------------------------------------------------------------
    def _request(self, ev: h2.events.RequestReceived, starts: list[H2Exchange]) -> None:
        sid = ev.stream_id
        ended = ev.stream_ended is not None
        if self._goaway is not None and sid > self._goaway:
            self.reset(sid, ErrorCodes.REFUSED_STREAM)  # (sent after our GOAWAY)
            return
        self._head_deadline = 0.0
        try:
            req = self._read_head(ev.headers)
        except Malformed as bad:
            log.debug("HTTP/2 stream %d from %s: malformed request: %s", sid, self.peer or "?", bad)
            self.reset(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        except BadHead as bad:
            self._refuse(sid, bad.status, bad.kind, bad.message, ended)
            return
        cl = req.headers.get("content-length")
        if cl is not None and (not cl.isdigit() or (cl != "0" and (ended or req.method == "HEAD"))):
            # h2 checks a declared length against DATA frames only: a stream ended with its
            # head, or a HEAD (taken as bodiless), must not declare a body an upstream
            # would wait for
            msg = "content-length does not match the request body"
            self._refuse(sid, 400, "invalid_content_length", msg, ended, head=req.method == "HEAD")
            return
        s = self.settings
        req.body = body = RequestBody(None, s.max_body_bytes)
        ex = H2Exchange(self, req, sid)
        body._conn = ex  # (the exchange is its body's "connection": per-stream flow control)
        self.streams[sid] = ex
        cl = req.headers.get("content-length")
        due = False
        if ended:
            body.complete = True
        elif cl is not None:
            n = int(cl) if cl.isdigit() else -1  # (``h2`` checks it against the DATA)
            if n > s.max_body_bytes:
                body.error = GatewayError(413, "payload_too_large", f"request body exceeds {s.max_body_bytes} bytes")
            else:
                due = 0 <= n <= BODY_WAIT_BYTES and not req.expect_continue
        if due:
            # As on HTTP/1.1: a small body is waited for, so the handler finds it whole
            # (the body timeout bounds the wait).
            ex._due = True
        else:
            starts.append(ex)

    def _read_head(self, fields: list) -> Request:
        """A request head from the HEADERS block, checked as RFC 9113 §8.2-8.3 asks
        (``Malformed``): pseudo-header fields known, once each, before the others, the
        mandatory ones present; names lowercase tokens; no connection-specific fields;
        ``te`` only ``trailers``. Then as the HTTP/1.1 path holds a request (``BadHead``)."""
        s = self.settings
        method = path = authority = ""
        pairs: list[tuple[str, str]] = []
        cookies: list[str] = []
        size = 0
        pseudo: set[bytes] = set()
        regular = False
        for name, value in fields:
            size += len(name) + len(value) + 4
            if name[:1] == b":":
                if regular:
                    raise Malformed("a pseudo-header field after a regular one")
                if name not in _PSEUDO:
                    raise Malformed(f"pseudo-header field {name.decode('latin-1')!r} in a request")
                if name in pseudo:
                    raise Malformed(f"{name.decode('latin-1')} twice")
                pseudo.add(name)
                if name == b":method":
                    method = value.decode("latin-1")
                elif name == b":path":
                    path = value.decode("latin-1")
                elif name == b":authority":
                    authority = value.decode("latin-1")
                continue
            regular = True
            if _NAME.fullmatch(name) is None:
                raise Malformed("a field name that is empty, not a token or not lowercase")
            if name in _CONNECTION_SPECIFIC:
                raise Malformed(f"connection-specific field {name.decode('latin-1')!r}")
            if name == b"te" and value.strip().lower() != b"trailers":
                raise Malformed("te other than trailers")
            k = name.decode("latin-1")
            v = value.decode("latin-1")
            if k == "cookie":
                cookies.append(v)  # (split per crumb on HTTP/2: joined for HTTP/1.1 upstreams)
            else:
                pairs.append((k, v))
        if method == "CONNECT":  # (RFC 9113 §8.5: :authority only; refused below)
            if b":authority" not in pseudo:
                raise Malformed("a CONNECT request without :authority")
        elif b":method" not in pseudo or b":scheme" not in pseudo or b":path" not in pseudo:
            raise Malformed("a mandatory pseudo-header field is missing")
        if b":path" in pseudo and not path:
            raise Malformed("an empty :path")
        if size > s.max_header_bytes:
            raise BadHead(431, "header_too_large", "request header section too large")
        if any(_BAD_VALUE.search(v) for _, v in pairs) or any(_BAD_VALUE.search(v) for v in cookies):
            # (h2 refuses only NUL, CR and LF; llhttp refuses every control character)
            raise BadHead(400, "invalid_header", "a header value holds a control character")
        if len(pairs) + (1 if cookies else 0) > s.max_header_count:  # (crumbs: one field on HTTP/1.1)
            raise BadHead(431, "too_many_headers", f"more than {s.max_header_count} header fields")
        if cookies:
            pairs.append(("cookie", "; ".join(cookies)))
        if s.underscore_headers != "allow" and any("_" in k for k, _ in pairs):
            if s.underscore_headers == "reject":
                raise BadHead(400, "invalid_header", "header names with '_' are refused on this port")
            pairs = [kv for kv in pairs if "_" not in kv[0]]
        if method == "CONNECT":
            raise BadHead(405, "method_not_allowed", "CONNECT is not supported on HTTP/2 streams")
        # What the upstream reads as its request line: the method a token, the target
        # visible ASCII with no space, as llhttp holds HTTP/1.1 requests to.
        if not _TOKEN.fullmatch(method):
            raise BadHead(400, "bad_request", "the :method is not a token")
        if not _TARGET.fullmatch(path):
            raise BadHead(400, "bad_request", "the :path holds a space, a control or a non-ASCII character")
        if path[:1] != "/":
            if path == "*":
                raise BadHead(400, "bad_request", "asterisk-form (*) request targets are not supported")
            raise BadHead(400, "bad_request", "the :path must start with /")
        if "#" in path:
            raise BadHead(400, "bad_request", "a fragment (#) is not allowed in the request target")
        # The authority, read once (engine.canon): :authority, or a Host field; both must
        # name the same host. The Host field carries it on, as on HTTP/1.1.
        hosts = [v for k, v in pairs if k == "host"]
        if len(hosts) > 1:
            raise BadHead(400, "invalid_host", "more than one Host header")
        if authority:
            host = canonical_host(authority)
            if hosts and canonical_host(hosts[0]) != host:
                raise BadHead(400, "invalid_host", "the Host header and :authority name different hosts")
        elif hosts:
            host = canonical_host(hosts[0])
        else:
            raise BadHead(400, "invalid_host", "HTTP/2 request without :authority or Host")
        headers = Headers([("host", host)])
        headers.extend(kv for kv in pairs if kv[0] != "host")
        req = Request()
        req.host = host
        req.target = path
        q = path.find("?")
        if q >= 0:
            req.path = path[:q]
            req.query = path[q + 1 :]
        else:
            req.path = path
            req.query = ""
        req.method = method
        req.http_version = "2"
        req.keep_alive = True
        req.headers = headers
        req.client_addr = self.peer
        req.scheme = s.scheme
        req.tls = self.tls
        exp = headers.get("expect")
        if exp is not None and exp.lower() == "100-continue":
            req.expect_continue = True
        return req

    def _refuse(self, sid: int, status: int, kind: str, message: str, ended: bool, head: bool = False) -> None:
        """Answer a request head that can't be taken (an error response on its stream;
        ``head``: to a HEAD, without the body)."""
        body = error_body(kind, message)
        fields = _h2_headers(status, [("content-type", "application/json")], len(body))
        try:
            self.h2.send_headers(sid, fields, end_stream=head)
            if not head:
                self.h2.send_data(sid, body, end_stream=True)
        except h2.exceptions.ProtocolError:  # (a client window smaller than the answer)
            self.reset(sid, ErrorCodes.INTERNAL_ERROR)
            return
        if not ended:
            self.reset(sid, ErrorCodes.NO_ERROR)  # the client need not send the body
        if not self.streams:
            self._idle_deadline = self.loop.time() + self.settings.idle_timeout

    def _start(self, ex: H2Exchange) -> None:
        """Run the handler for a stream whose head (and small body) is in."""
        err = ex.request.body.error
        if err is not None and isinstance(err, GatewayError) and err.status == 413:
            ex.send_error(413, "payload_too_large", str(err))
            return
        fast = self.settings.fast_handler
        if fast is not None:
            try:
                if fast(ex.request, ex):  # type: ignore[arg-type]  # (an Exchange in all but name)
                    return
            except Exception:
                log.exception("unhandled error while handling %s %s", ex.request.method, ex.request.path)
                ex.fail_internal()
                return
        ex.task = self.loop.create_task(self._run(ex, self.settings.handler(ex.request, ex)))  # type: ignore[arg-type]

    def spawn(self, ex: H2Exchange, coro) -> None:
        ex.task = self.loop.create_task(self._run(ex, coro))

    async def _run(self, ex: H2Exchange, coro) -> None:
        """The handler's task, with the HTTP/1.1 path's answers for its failures."""
        await run_handler(ex, coro)

    def stream_done(self, ex: H2Exchange) -> None:
        """A response is out (END_STREAM sent) or cut: the stream is over for us."""
        if self.streams.get(ex.stream_id) is ex:
            del self.streams[ex.stream_id]
        body = ex.request.body
        if not body.complete and not ex._reset:
            body.drop()
            if body.error is None:
                # the client is still sending a body nobody reads (see DISCARD_MAX)
                ex._discard_left = DISCARD_MAX
                self._discarding[ex.stream_id] = ex
            else:  # over the limit, or failed: stop it
                ex._reset = True
                self.reset(ex.stream_id, ErrorCodes.NO_ERROR)
        if ex.stream_id not in self._discarding:
            ex.detach()
        self._stream_gone()

    def _stream_gone(self) -> None:
        if self.streams or self._dead:
            return
        if self._closing or self.settings.draining:
            if self.settings.draining and self._goaway is None:
                self.close_if_idle()
            else:
                self.close()
            return
        self._idle_deadline = self.loop.time() + self.settings.idle_timeout
        self._rearm()


class _Detached:
    """A finished stream's stand-in for its request body (see :meth:`H2Exchange.detach`):
    what the body still asks of its connection is moot."""

    __slots__ = ()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def body_too_large(self) -> None:
        pass

    def request_body_wanted(self) -> None:
        pass


_DETACHED = _Detached()


class H2Exchange:
    """The response half of one HTTP/2 stream: :class:`~.server.Exchange`'s interface.

    It is also its request body's "connection" (``RequestBody`` calls ``pause_reading``,
    ``resume_reading``, ``body_too_large`` and ``request_body_wanted`` on it), so that
    backpressure on one stream's body holds that stream only."""

    __slots__ = (
        "conn",
        "request",
        "stream_id",
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
        "_queue",
        "_queued",
        "_end_pending",
        "_done",
        "_reset",
        "_due",
        "_paused",
        "_hooks",
        "_waiters",
        "_read_paused",
        "_unacked",
        "_last_read",
        "_discard_left",
        "_trailers",
    )

    def __init__(self, conn: H2ServerProtocol, request: Request, stream_id: int):
        self.conn = conn
        self.request = request
        self.stream_id = stream_id
        self.task: asyncio.Task | None = None
        self.started = False
        self.finished = False
        self.status = 0
        self.bytes_sent = 0
        self.chunked = False
        self.keep_alive = True
        self.head_only = request.method == "HEAD"
        self.continue_sent = False
        self.disconnected = False
        self._on_disconnect = None
        self._queue: deque[bytes] = deque()  # response body waiting for window
        self._queued = 0
        self._end_pending = False  # END_STREAM goes after the queue
        self._done = False  # END_STREAM sent, or the stream reset
        self._reset = False
        self._due = False  # started when its (small) body is in
        self._paused = False  # the pause hooks were told to pause
        self._hooks: list[tuple] = []
        self._waiters: list[asyncio.Future] = []
        self._read_paused = False
        self._unacked = 0  # request body bytes held back from WINDOW_UPDATE
        self._last_read = conn.loop.time()
        self._discard_left = 0
        self._trailers: list | None = None  # sent (with END_STREAM) after the body

    # -- writing ------------------------------------------------------------------------
    def _headers(self, fields: list, end_stream: bool) -> bool:
        try:
            self.conn.h2.send_headers(self.stream_id, fields, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:  # (a closed stream, a field h2 refuses)
            log.debug("HTTP/2 stream %d: response head not sent: %s", self.stream_id, exc)
            self.abort()
            return False
        self.conn.schedule_flush()
        return True

    def send(self, status: int, headers, body: bytes = b"") -> None:
        """A complete response (with its content-length)."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        if self.conn._dead or self._done:
            self.finished = True
            return
        no_body = self.head_only or status in (204, 304) or status < 200
        cl = None if status in (204, 304) else len(body)
        if not body and is_grpc(self.request.headers):
            cl = None  # a trailers-only gRPC answer: a content-length would read as metadata
        fields = _h2_headers(status, headers, cl)
        if no_body or not body:
            if self._headers(fields, True):
                self.finished = True
                self._sent_end()
            return
        if not self._headers(fields, False):
            return
        self.bytes_sent = len(body)
        self._queue.append(body)
        self._queued += len(body)
        self.finished = True
        self._end_pending = True
        self.pump()

    def send_error(self, status: int, kind: str, message: str) -> None:
        if is_grpc(self.request.headers):  # (see engine/grpc.py)
            self.send(200, trailers_only(status, message))
            return
        h = Headers([("content-type", "application/json")])
        self.send(status, h, error_body(kind, message))

    def start(self, status: int, headers, *, content_length: int | None = None) -> None:
        """Send the head of a streamed response (the body ends with END_STREAM)."""
        if self.started:
            raise RuntimeError("response already started")
        if status == 101:
            raise GatewayError(501, "not_implemented", "protocol switches are not supported on HTTP/2 streams")
        self.started = True
        self.status = status
        if self.conn._dead or self._done:
            return
        end = self.head_only or status in (204, 304)
        if self._headers(_h2_headers(status, headers, content_length), end) and end:
            self._sent_end_keep_open()

    def write(self, data: bytes) -> None:
        if not data or self.head_only or self._done or self.conn._dead:
            return
        self.bytes_sent += len(data)
        self._queue.append(data)
        self._queued += len(data)
        self.pump()

    def end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """The response is complete: END_STREAM after the queued body, on a HEADERS frame
        of ``trailers`` (an upstream's trailer fields, such as gRPC's status) if given."""
        if self.finished:
            return
        self.finished = True
        if self._done or self.conn._dead:
            self.conn.stream_done(self)
            return
        if trailers:
            fields = [(n, v) for n, v in trailers if n not in _DROP_B and n[:1] != b":"]
            if fields:
                self._trailers = fields
        self._end_pending = True
        self.pump()

    def fail_internal(self) -> None:
        if not self.started:
            self.send_error(500, "internal_error", "internal gateway error")
        elif not self.finished:
            self.abort()

    def abort(self) -> None:
        """Cut this stream (RST_STREAM): a response that can't be completed must not
        look complete. The connection and its other streams go on."""
        self.finished = True
        self.keep_alive = False
        self._queue.clear()
        self._queued = 0
        if not self._done:
            self._done = True
            if not self.conn._dead and not self._reset:
                self._reset = True
                self.conn.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
        self._wake()
        self.conn.stream_done(self)

    # -- flow control -------------------------------------------------------------------
    def pump(self) -> None:
        """Send what the client's windows (the stream's and the connection's) allow of the
        queued body, then END_STREAM once the queue is empty and the response ended."""
        conn = self.conn
        h = conn.h2
        sid = self.stream_id
        queue = self._queue
        try:
            ended = False
            while queue:
                window = h.local_flow_control_window(sid)
                if window <= 0:
                    if conn._eof:  # the client half-closed: no window will open
                        self.abort()
                        return
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
                ended = self._end_pending and not queue and self._trailers is None
                h.send_data(sid, chunk, end_stream=ended)
                conn.data_sent += 1
            if self._end_pending and not queue:
                self._end_pending = False
                if self._trailers is not None:
                    h.send_headers(sid, self._trailers, end_stream=True)
                elif not ended:
                    h.end_stream(sid)
                conn.schedule_flush()
                self._sent_end()
                return
        except h2.exceptions.ProtocolError as exc:  # the stream is gone (reset, closed)
            log.debug("HTTP/2 stream %d: body not sent: %s", sid, exc)
            self._queue.clear()
            self._queued = 0
            self._done = True
            self._wake()
            self.finished = True
            conn.stream_done(self)
            return
        conn.schedule_flush()
        self.update_pause()

    def _sent_end(self) -> None:
        """END_STREAM is out: the response is complete."""
        self._done = True
        self._wake()
        self.conn.stream_done(self)

    def _sent_end_keep_open(self) -> None:
        """A head-only response (HEAD, 204, 304) went out with END_STREAM: complete once
        the handler ends it (``end``)."""
        self._done = True

    def update_pause(self) -> None:
        """Pause hooks follow the stream: paused while body waits for window, or while
        the connection's socket is backed up."""
        want = bool(self._queued) or self.conn.write_paused
        if want == self._paused:
            return
        self._paused = want
        if want:
            for hook in self._hooks:
                hook[0]()
        else:
            for hook in self._hooks:
                hook[1]()
            self._wake()

    def _wake(self, exc: BaseException | None = None) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                if exc is None:
                    w.set_result(None)
                else:
                    w.set_exception(exc)

    async def drain(self) -> None:
        if self._paused and not self._done and not self.conn._dead:
            fut = self.conn.loop.create_future()
            self._waiters.append(fut)
            await fut

    def add_pause_hook(self, pause, resume) -> tuple:
        hook = (pause, resume)
        self._hooks.append(hook)
        if self._paused:
            pause()
        return hook

    def remove_pause_hook(self, hook) -> None:
        try:
            self._hooks.remove(hook)
        except ValueError:
            pass

    # -- what a handler may ask of the connection -------------------------------------
    def spawn(self, coro) -> None:
        self.conn.spawn(self, coro)

    @property
    def draining(self) -> bool:
        return self.conn.settings.draining

    def switch_protocols(self, upstream) -> None:
        raise GatewayError(501, "not_implemented", "protocol switches are not supported on HTTP/2 streams")

    # -- the request body's side (RequestBody calls these) --------------------------------
    def data(self, data: bytes, flow_len: int) -> None:
        """A DATA frame of this stream's request body."""
        body = self.request.body
        self._last_read = self.conn.loop.time()
        if data and not body.complete:
            body.feed(data)
        if self._discard_left:
            self._discard_left -= flow_len
            if self._discard_left <= 0:  # (see DISCARD_MAX)
                self.conn._ack(flow_len, self.stream_id)
                self.body_too_large()
                return
        if self._read_paused and not body.discard and body.error is None:
            self._unacked += flow_len  # acknowledged when the body is read (resume_reading)
        else:
            self.conn._ack(flow_len, self.stream_id)

    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        self._read_paused = False
        n, self._unacked = self._unacked, 0
        if n and not self.conn._dead:
            self.conn._ack(n, self.stream_id)
            self.conn.schedule_flush()

    def body_too_large(self) -> None:
        """Past the body limit: the body's reader gets the 413; what still comes is
        acknowledged and dropped, and the stream reset once the response is out (now,
        if it is)."""
        self.resume_reading()
        self._discard_left = 0
        conn = self.conn
        if conn._discarding.pop(self.stream_id, None) is not None and not self._reset:
            self._reset = True
            conn.reset(self.stream_id, ErrorCodes.NO_ERROR)

    def request_body_wanted(self) -> None:
        if self.request.expect_continue and not self.continue_sent and not self.started and not self._done:
            self.continue_sent = True
            try:
                self.conn.h2.send_headers(self.stream_id, [(b":status", b"100")])
            except h2.exceptions.ProtocolError:
                return
            self.conn.schedule_flush()

    def body_timed_out(self) -> None:
        """The request body stopped arriving: 408 if nothing was sent yet, else a cut
        stream; the handler's body read raises too."""
        err = GatewayError(408, "request_body_timeout", "timed out reading the request body")
        self.request.body.fail(err)
        task = self.task
        if not self.started:
            self.send_error(408, err.kind, err.message)
        elif not self.finished:
            self.abort()
        self.client_gone()
        if task is not None and not task.done():
            task.cancel()

    def detach(self) -> None:
        """The stream is over: let go of what refers back to this exchange (its body's
        link to it, the disconnect callback, which is often an upstream stream's
        ``close``), so that the request is freed by reference counting, not left as a
        cycle for the collector, whose passes stall every stream of the process."""
        self._on_disconnect = None
        self.request.body._conn = _DETACHED

    # -- disconnect notification ----------------------------------------------------------
    def reset_by_peer(self) -> None:
        """The client reset the stream (RST_STREAM): as a client that left."""
        self._done = True
        self._reset = True
        self._queue.clear()
        self._queued = 0
        self.client_gone()

    def on_disconnect(self, callback) -> None:
        self._on_disconnect = callback

    def client_gone(self) -> None:
        self.disconnected = True
        self.request.body.fail(ConnectionResetError("client disconnected"))
        self._wake(ConnectionResetError("client disconnected"))
        cb = self._on_disconnect
        if cb is not None:
            cb()
        t = self.task
        if t is not None and not t.done() and not self.finished:
            t.cancel()
