"""Relaying an upstream response to the client: one way for every backend and both paths.

An upstream response whose head is in (an ``engine.client.UpstreamConnection``) goes to
the client from the upstream's read callbacks: in one write when it arrived complete,
else streamed with backpressure both ways (the upstream stops reading while the client
is slow). An upstream failure mid-body cuts the client connection: a truncated response
must not look complete. ``relay`` is that for a request that ends there (it releases the
connection and finishes the request); ``relay_response`` is the same awaited by a task
that has more to do; both sit on ``start_relay``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine.grpc import wants_trailers
from ..engine.http import RawHeaderView, strip_hop_by_hop

if TYPE_CHECKING:
    from ..engine.client import UpstreamConnection
    from ..engine.server import Exchange
    from .context import Ctx

#: body_observer(chunk) for each chunk, then body_observer(None) (see Ctx.body_observer)
Observer = Callable[[bytes | None], None] | None


def response_head(ctx: Ctx, conn: UpstreamConnection) -> tuple[Any, str | None]:
    """The response head for the client, with response policies applied, and the
    upstream content-length: the upstream's header bytes as they are when no policy edits
    headers (read-only hooks see a ``RawHeaderView``), else decoded ``Headers``."""
    cl = conn.resp_cl.decode("latin-1") if conn.resp_cl is not None else None
    route, listener = ctx.route, ctx.listener
    if not ctx.response_hooks and not route.response_edits and not listener.response_edits:  # type: ignore[union-attr]
        raw = conn.relay
        if raw is not None:
            if route.response_chain or listener.response_chain:  # type: ignore[union-attr]  # read-only hooks
                ctx.finalize_headers(conn.status, RawHeaderView(conn.head))
            return raw, cl
    headers = strip_hop_by_hop(conn.headers)
    headers.remove("content-length")
    ctx.finalize_headers(conn.status, headers)
    return headers, cl


def relay(ctx: Ctx, conn: UpstreamConnection, headers: Any, cl: str | None) -> None:
    """Relay the response on ``conn`` (head final, see :func:`response_head`) to the end,
    from callbacks; then release ``conn`` (or close it, after a failure) and finish the
    request."""
    if conn.done:  # the usual case, kept free of the streaming closures
        _send_whole(ctx.ex, conn, conn.status, headers, cl, ctx.body_observer)
        conn.release()
        ctx.finish()
        return

    def finished(err: BaseException | None) -> None:
        if err is None:
            conn.release()
        else:
            conn.close()
        ctx.finish()

    start_relay(ctx, conn, conn.status, headers, cl, ctx.body_observer, finished)


async def relay_response(
    ctx: Ctx, conn: UpstreamConnection, status: int, headers: Any, cl: str | None, observer: Observer = None
) -> None:
    """:func:`start_relay` for a task: returns once the response is relayed (or cut)."""
    done = ctx.bind.services.loop.create_future()

    def finished(err: BaseException | None) -> None:
        if not done.done():
            done.set_result(None)

    detach = start_relay(ctx, conn, status, headers, cl, observer, finished)
    try:
        await done
    finally:
        detach()
        conn.resume_reading()


def start_relay(
    ctx: Ctx,
    conn: UpstreamConnection,
    status: int,
    headers: Any,
    cl: str | None,
    observer: Observer,
    finished: Callable[[BaseException | None], None],
) -> Callable[[], None]:
    """Relay a response whose head is final, from callbacks. ``finished(err)`` runs once
    when the client side is done (``err`` None on success). Returns ``detach()``, for a
    waiter that gives up early: it stops the client's backpressure from reaching ``conn``."""
    ex = ctx.ex
    if conn.done:
        _send_whole(ex, conn, status, headers, cl, observer)
        finished(None)
        return _nothing
    length = int(cl) if cl is not None and cl.isdigit() else None
    if length is not None and conn.multiplexed and not ex.head_only and wants_trailers(ctx.req):
        length = None  # an HTTP/2 upstream may end with trailers: chunked, so they can follow
    ex.start(status, headers, content_length=length)
    hook = ex.add_pause_hook(conn.pause_reading, conn.resume_reading)

    def detach() -> None:
        ex.remove_pause_hook(hook)

    def on_end() -> None:
        detach()
        if observer is not None:
            observer(None)
        trailers = conn.trailers
        if trailers is None:
            ex.end()
        else:
            ex.end(trailers)
        finished(None)

    def on_error(err: BaseException) -> None:
        detach()
        ctx.upstream_error = getattr(err, "message", str(err))
        ex.abort()
        finished(err)

    _stream_body(ex, conn, observer, on_end, on_error)
    return detach


def _nothing() -> None:
    pass


def _stream_body(ex: Exchange, conn: UpstreamConnection, observer: Observer, on_end, on_error) -> None:
    """Relay the response body as it arrives, showing each chunk to ``observer`` first."""
    if observer is None:
        conn.stream_to(ex.write, on_end, on_error)
        return
    write = ex.write

    def on_chunk(chunk: bytes) -> None:
        observer(chunk)
        write(chunk)

    conn.stream_to(on_chunk, on_end, on_error)


def _send_whole(
    ex: Exchange, conn: UpstreamConnection, status: int, headers: Any, cl: str | None, observer: Observer
) -> None:
    """Relay a response that arrived complete: one write, content-length framing."""
    body = b"".join(conn.chunks) if conn.chunks else b""
    conn.chunks = []
    if observer is not None:
        observer(body)
        observer(None)
    if ex.head_only and cl is not None:
        ex.start(status, headers, content_length=int(cl))
        ex.end()
    elif conn.trailers is not None:  # (an HTTP/2 upstream's trailers: gRPC's status)
        # no length: an HTTP/1.1 client gets the body chunked, so the trailers can follow
        ex.start(status, headers)
        ex.write(body)
        ex.end(conn.trailers)
    else:
        ex.send(status, headers, body)
