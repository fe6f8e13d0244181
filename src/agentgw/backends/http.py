"""Plain HTTP backends: forward the request to an upstream and stream the answer back.

The request goes out as one write when its body is already complete (the usual case),
otherwise its body is pumped as it arrives, re-framed as chunked when the client sent it
chunked. The response comes back through :meth:`UpstreamConnection.stream_to`, straight
from the upstream socket callback into the client socket; if the client can't keep up,
reading from the upstream pauses.

Retries (``retry`` policy) happen only while nothing has been sent to the client and
only when the request body can be sent again (it was complete in memory when first
sent). A pooled connection that turns out to be dead before answering is retried once
on a fresh connection regardless of the retry policy, under the same body condition.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import random
import re
import ssl as _ssl
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..engine.client import ConnectionPool, StaleConnection, UpstreamConnection, UpstreamTarget
from ..engine.grpc import format_timeout as format_grpc_timeout
from ..engine.grpc import is_grpc_call, wants_trailers
from ..engine.grpc import parse_timeout as parse_grpc_timeout
from ..engine.heads import build_request_head
from ..engine.http import GatewayError, Headers, strip_hop_by_hop
from ..proxy.backend import Backend
from ..proxy.context import Ctx
from ..proxy.relay import relay, relay_response, response_head

if TYPE_CHECKING:
    from ..config import models as m
    from ..proxy.scope import CompileScope


class HttpBackend:
    """One upstream address (plus TLS settings) that requests can be sent to."""

    __slots__ = ("name", "target", "grpc_target", "host_override", "kind", "timeout", "router")

    def __init__(
        self,
        name: str,
        target: UpstreamTarget,
        *,
        host_override: str | None = None,
        timeout: float | None = None,
        grpc_target: UpstreamTarget | None = None,
    ):
        self.name = name
        self.target = target
        # where gRPC requests go when no ``http.version`` chose the protocol: the same
        # address over HTTP/2 (gRPC needs it); None when the version is set
        self.grpc_target = grpc_target
        self.host_override = host_override
        self.kind = "http"
        self.timeout = timeout  # the backend's own ``http.requestTimeout``
        # inferenceRouting: an endpoint picker names the address per request (backends/inference.py)
        self.router: Any = None

    def target_for(self, req) -> UpstreamTarget:
        """The target for ``req``: the backend's, or its HTTP/2 twin for a gRPC call (one
        that came over HTTP/2 with a gRPC content type) when no version was configured."""
        t = self.grpc_target
        if t is not None and is_grpc_call(req):
            return t
        return self.target


class RetryPolicy:
    __slots__ = ("attempts", "backoff", "codes")

    def __init__(self, attempts: int = 1, backoff: float = 0.0, codes: Sequence[int] = ()):
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.codes = frozenset(codes)

    def delay(self, attempt: int) -> float:
        """Exponential from ``backoff`` (attempt 0 → backoff, 1 → 2×, ...), capped at 10×."""
        return min(self.backoff * (2**attempt), self.backoff * 10) if self.backoff else 0.0


class WeightedChoice:
    """Pick an item by weight: one ``random()`` and a bisect over cumulative weights."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, weighted: Sequence[tuple[int, object]]):
        items, cum, total = [], [], 0
        for w, item in weighted:
            if w <= 0:
                continue
            total += w
            items.append(item)
            cum.append(total)
        self.items = items
        self.cum = cum
        self.total = total

    def pick(self):
        items = self.items
        if len(items) == 1:
            return items[0]
        if not items:
            return None
        return items[bisect.bisect_right(self.cum, random.random() * self.total)]

    def pick_other(self, tried: list):
        """A pick among the items not in ``tried`` (by weight), for a retry: a request
        retried after a failure goes to another backend while there is one, as Envoy's
        ``previous_hosts`` retry predicate does; ``pick()`` once every item was tried."""
        rest = [(i, item) for i, item in enumerate(self.items) if item not in tried]
        if not rest:
            return self.pick()
        weights = [self.cum[i] - (self.cum[i - 1] if i else 0) for i, _ in rest]
        return random.choices([item for _, item in rest], weights)[0]


def upstream_head(ctx, backend: HttpBackend, body_len: int | None, chunked: bool) -> bytes:
    """Serialise the upstream request head for ``ctx`` sent to ``backend``, in one call
    (``engine.heads.build_request_head``); a ``Connection`` header that names further
    hop-by-hop fields takes the general path, which removes them too."""
    req = ctx.req
    head = build_request_head(
        req.method,
        ctx.target,
        ctx.authority or backend.host_override,
        req.headers,
        req.client_addr,
        req.scheme,
        backend.target.authority,
        -1 if body_len is None else body_len,
        chunked,
    )
    if head is None:
        return _upstream_head_general(ctx, backend, body_len, chunked)
    return head


def _upstream_head_general(ctx, backend: HttpBackend, body_len: int | None, chunked: bool) -> bytes:
    """``upstream_head`` for requests whose ``Connection`` header lists other headers."""
    req = ctx.req
    headers = strip_hop_by_hop(req.headers, keep_upgrade=req.upgrade)
    host = ctx.authority or backend.host_override
    orig_host = req.headers.get("host")
    xff = None
    parts = []
    for k, v in headers:
        if k in ("host", "content-length", "expect", "x-forwarded-proto", "x-forwarded-host"):
            continue
        if k == "x-forwarded-for":
            xff = v if xff is None else f"{xff}, {v}"
            continue
        parts.append(f"{k}: {v}\r\n")
    return _finish_head(ctx, backend, parts, host, orig_host, xff, body_len, chunked)


def _finish_head(ctx, backend, parts, host, orig_host, xff, body_len, chunked) -> bytes:
    req = ctx.req
    if host is None:
        host = orig_host or backend.target.authority
    client_ip = req.client_addr
    parts.append(f"x-forwarded-for: {xff}, {client_ip}\r\n" if xff else f"x-forwarded-for: {client_ip}\r\n")
    parts.append(f"x-forwarded-proto: {req.scheme}\r\n")
    if orig_host:
        parts.append(f"x-forwarded-host: {orig_host}\r\n")
    if body_len is not None:
        parts.append(f"content-length: {body_len}\r\n")
    elif chunked:
        parts.append("transfer-encoding: chunked\r\n")
    return f"{req.method} {ctx.target} HTTP/1.1\r\nhost: {host}\r\n{''.join(parts)}\r\n".encode("latin-1")


def whole_request(ctx: Ctx, backend: HttpBackend) -> tuple[bytes, bytes]:
    """The upstream request for a body that is complete in memory: its head (with
    content-length when the client sent a body, of any framing) and the body."""
    req = ctx.req
    body = req.body
    if body.size > 0 or req.headers.has("content-length") or req.headers.has("transfer-encoding"):
        data = body.buffered()
        return upstream_head(ctx, backend, len(data), False), data
    return upstream_head(ctx, backend, None, False), b""


async def _pump_body(body, conn: UpstreamConnection, chunked: bool) -> None:
    """Copy a streaming request body to the upstream, honouring its backpressure (framed
    in chunks on HTTP/1.1 when its length is unknown; HTTP/2 frames it itself)."""
    chunked = chunked and not conn.multiplexed
    async for chunk in body.iter():
        if chunked:
            conn.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        else:
            conn.write(chunk)
        if conn.write_paused:
            await conn.drain()
    conn.end_body(chunked)


class HttpBackendSet(Backend):
    """The ``backends`` of a route that are plain HTTP upstreams: choose, send, relay."""

    kind = "http"

    def __init__(
        self,
        backends: list[tuple[int, HttpBackend]],
        pool: ConnectionPool,
        *,
        retry: RetryPolicy | None = None,
        request_timeout: float | None = None,
        backend_timeout: float | None = None,
        on_upstream_error=None,
    ):
        self.choice = WeightedChoice(backends)
        self.pool = pool
        self.retry = retry
        self.request_timeout = request_timeout
        self.backend_timeout = backend_timeout
        self.on_upstream_error = on_upstream_error
        names = {b.name for _, b in backends}
        self.label = names.pop() if len(names) == 1 else ""
        self.fast_ok = (
            retry is None
            and request_timeout is None
            and backend_timeout is None
            and all(b.timeout is None and b.router is None for _, b in backends)
        )

    # -- fast path (no task): see proxy.pipeline.handle_fast ----------------------------------------
    def try_fast(self, ctx) -> bool:
        """Send on a pooled connection and relay from callbacks, if nothing needs waiting.

        Declines (returns False, nothing sent) for retries, timeouts, streamed or upgrade
        requests, or when no idle connection is pooled; the task path handles those.
        """
        if not self.fast_ok:
            return False
        req = ctx.req
        body = req.body
        if not body.complete or body.error is not None or req.upgrade or ctx.body_filter is not None:
            return False
        backend = self.choice.pick()
        if backend is None:
            return False
        target = backend.target if req.http_version != "2" else backend.target_for(req)
        conn = self.pool.take_idle(target)
        if conn is None:
            return False
        ctx.backend_name = backend.name
        head, data = whole_request(ctx, backend)
        ctx.ex.on_disconnect(conn.close)
        if target.http2:
            # (a gRPC call's own deadline: the head must come within it, as DEADLINE_EXCEEDED)
            timeout = parse_grpc_timeout(req.headers.get("grpc-timeout")) if is_grpc_call(req) else None
            conn.send_head(
                head,
                data,
                partial(self._fast_head, ctx),
                head_only=req.method == "HEAD",
                trailers=wants_trailers(req),
                timeout=timeout,
            )
        else:
            conn.send_head(head, data, partial(self._fast_head, ctx), head_only=req.method == "HEAD")
        return True

    def _fast_head(self, ctx: Ctx, conn: UpstreamConnection, exc) -> None:
        if exc is not None:
            conn.close()
            if isinstance(exc, StaleConnection) and ctx.req.body.replayable and not ctx.ex.disconnected:
                ctx.spawn()  # a fresh connection, from a task
                return
            ctx.upstream_error = exc.message
            if self.on_upstream_error is not None:
                self.on_upstream_error(ctx, exc)
            ctx.fail(exc)
            return
        headers, cl = response_head(ctx, conn)
        relay(ctx, conn, headers, cl)

    async def serve(self, ctx) -> None:
        conn, pump = await self._exchange(ctx)
        try:
            await self._relay(ctx, conn)
        finally:
            if pump is not None and not pump.done():
                # the upstream answered before reading the whole request body
                pump.cancel()
                conn.close()
            conn.release()

    # -- request ------------------------------------------------------------------------
    async def _exchange(self, ctx) -> tuple[UpstreamConnection, asyncio.Future | None]:
        """Send the request (with retries); return the connection holding the response
        head, and the task still pumping a streamed request body (if any)."""
        req = ctx.req
        body = req.body
        retry = self.retry
        attempts = retry.attempts if retry is not None else 1
        loop = ctx.bind.services.loop
        # requestTimeout runs from the start of the request (policies that waited, an
        # injected delay, count against it)
        limit = self.request_timeout
        # what the upstream head offers (upstream_head keeps Upgrade only for these): a 101
        # naming anything else fails the exchange in the client (502, connection closed)
        trailers = wants_trailers(req)
        if is_grpc_call(req):
            limit = _grpc_deadline(req, limit, time.perf_counter() - ctx.start)
        deadline = loop.time() + limit - (time.perf_counter() - ctx.start) if limit else None
        offer = (req.headers.get("upgrade") or None) if req.upgrade else None
        last_error: GatewayError | None = None
        attempt = 0
        stale_retried = False
        tried: list = []  # backends that failed this request (retries go elsewhere first)
        while True:
            backend = self.choice.pick() if not tried else self.choice.pick_other(tried)
            if backend is None:
                raise GatewayError(503, "no_healthy_backend", "the route has no backend to send to")
            if backend.router is not None:  # the endpoint picker's choice (once per request)
                backend = await backend.router.route(ctx, backend)
                body = req.body  # (the picker may have replaced it)
            ctx.backend_name = backend.name
            timeout = self.backend_timeout
            if backend.timeout is not None:  # the backend's own limit; the shorter wins
                timeout = backend.timeout if timeout is None else min(timeout, backend.timeout)
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise GatewayError(504, "request_timeout", f"request timed out after {limit:g}s")
                timeout = remaining if timeout is None else min(timeout, remaining)
            replayable = body.complete and body.error is None and not body.consumed
            pump = None
            conn = None
            target = backend.target_for(req)
            try:
                conn = self.pool.take_idle(target)
                if conn is None:
                    conn = await self.pool.connect(target)
                if replayable:
                    head, data = whole_request(ctx, backend)
                    conn.send_head(head, data, head_only=req.method == "HEAD", upgrade=offer, trailers=trailers)
                else:
                    if body.error is not None:
                        raise body.error
                    cl = req.headers.get("content-length")
                    chunked = cl is None
                    conn.send_head(
                        upstream_head(ctx, backend, int(cl) if cl is not None else None, chunked),
                        None,
                        head_only=req.method == "HEAD",
                        upgrade=offer,
                        trailers=trailers,
                    )
                    pump = asyncio.ensure_future(_pump_body(body, conn, chunked))
                    pump.add_done_callback(partial(_pump_done, conn=conn))
                try:
                    await conn.wait_head(timeout)
                except GatewayError as exc:
                    if (
                        exc.status == 504
                        and exc.kind == "upstream_timeout"
                        and deadline is not None
                        and loop.time() >= deadline
                    ):
                        raise GatewayError(504, "request_timeout", f"request timed out after {limit:g}s") from None
                    raise
            except StaleConnection as exc:
                if conn is not None:
                    conn.close()
                if pump is not None:
                    pump.cancel()
                    if isinstance(body.error, GatewayError):
                        raise body.error from None
                if replayable and not stale_retried:
                    stale_retried = True
                    continue
                last_error = exc
            except GatewayError as exc:
                if conn is not None:
                    conn.close()
                if pump is not None:
                    pump.cancel()
                    if body.error is not None and isinstance(body.error, GatewayError):
                        raise body.error from None
                last_error = exc
            except asyncio.CancelledError:
                if conn is not None:
                    conn.close()
                if pump is not None:
                    pump.cancel()
                raise
            else:
                status = conn.status
                if retry is not None and status in retry.codes and attempt + 1 < attempts and replayable:
                    conn.close()
                    tried.append(backend)
                    await asyncio.sleep(retry.delay(attempt))
                    attempt += 1
                    continue
                return conn, pump
            # failed attempt
            conn = None  # (closed) see UpstreamConnection._unheld
            tried.append(backend)
            ctx.upstream_error = last_error.message
            if self.on_upstream_error is not None:
                self.on_upstream_error(ctx, last_error)
            if retry is not None and attempt + 1 < attempts and replayable:
                await asyncio.sleep(retry.delay(attempt))
                attempt += 1
                continue
            try:
                raise last_error
            finally:
                last_error = None  # its traceback holds this frame: a cycle if the frame held it

    # -- response -----------------------------------------------------------------------
    async def _relay(self, ctx, conn: UpstreamConnection) -> None:
        ex = ctx.ex
        status = conn.status
        if status == 101 and conn.upgraded:  # (the client has checked it was asked for)
            await self._tunnel(ctx, conn, strip_hop_by_hop(conn.headers))
            return
        if ctx.body_filter is not None:
            headers = strip_hop_by_hop(conn.headers)
            headers.remove("content-length")
            body = await conn.read_body(ctx.req.body.limit)
            filtered = ctx.body_filter(ctx, status, headers, body)
            if not isinstance(filtered, tuple):  # (an external processor's: awaited)
                filtered = await filtered
            status, body = filtered
            ctx.finalize_headers(status, headers)
            trailers = conn.trailers
            if trailers is None:
                ex.send(status, headers, body)
            else:  # (an HTTP/2 upstream's trailers: gRPC's status; chunked on HTTP/1.1)
                ex.start(status, headers)
                ex.write(body)
                ex.end(trailers)
            return
        headers, cl = response_head(ctx, conn)
        await relay_response(ctx, conn, status, headers, cl, ctx.body_observer)

    async def _tunnel(self, ctx, conn: UpstreamConnection, headers: Headers) -> None:
        """Protocol switch (WebSocket): relay the 101, then raw bytes both ways until one closes."""
        ex = ctx.ex
        up = conn.headers.get("upgrade")
        if up:
            headers.append(("connection", "upgrade"))
            headers.append(("upgrade", up))
        ctx.finalize_headers(101, headers)
        ex.start(101, headers)
        ex.switch_protocols(conn)


def _grpc_deadline(req, limit: float | None, elapsed: float) -> float | None:
    """A gRPC call's time limit: the shorter of its ``grpc-timeout`` and the route's
    request timeout (``limit``); when the route's is the shorter, the ``grpc-timeout``
    sent upstream says so (what remains of it), so that the server stops working when
    the gateway stops waiting."""
    own = parse_grpc_timeout(req.headers.get("grpc-timeout"))
    if limit is None:
        return own
    if own is None or limit < own:
        req.headers.set("grpc-timeout", format_grpc_timeout(max(limit - elapsed, 0.001)))
        return limit
    return own


def _pump_done(fut: asyncio.Future, conn: UpstreamConnection) -> None:
    if fut.cancelled():
        return
    if fut.exception() is not None:
        conn.close()


_VERSION = re.compile(r"(?i)(?:HTTP[/_]?)?(1(?:[._]?1)?|2(?:[._]?0)?)")


def parse_http_version(v: str) -> str | None:
    """A backend ``http.version`` as agentgw speaks it: ``"2"`` or ``"1.1"``; None when
    it names another (HTTP/1.0, HTTP/3). Accepts the CRD's ``HTTP1``/``HTTP2`` and the
    standalone file's ``HTTP/1.1``/``HTTP/2.0`` spellings."""
    m_ = _VERSION.fullmatch(v.strip())
    if m_ is None:
        return None
    return "2" if m_.group(1).startswith("2") else "1.1"


def compile_http_backend(
    scope: CompileScope,
    name: str,
    addr: str,
    tls_cfg: m.BackendTLS | None,
    path: str,
    timeout: float | None = None,
    tls_path: str | None = None,
    *,
    version: str | None = None,
) -> HttpBackend:
    """An upstream address from the config (``host:port`` or a URL) with its
    ``backendTLS`` and ``http.version`` (``"2"``: every request over HTTP/2; ``"1.1"``:
    every request over HTTP/1.1; None: HTTP/1.1, and HTTP/2 for gRPC calls); a bad
    address is reported at ``{path}.host``."""
    tls_ctx, sni, key = None, None, ""
    h2_ctx, h2_key = None, ""
    if tls_cfg is not None:
        sni = tls_cfg.hostname
        tpath = tls_path or f"{path}.policies.backendTLS"
        # what is offered follows the connection's protocol (scope.backend_tls): a list
        # that could not be offered as written is refused rather than quietly replaced
        if tls_cfg.alpn and version == "2" and "h2" not in tls_cfg.alpn:
            scope.errors.add(f"{tpath}.alpn", "HTTP/2 connections offer h2: the list needs h2 with http.version HTTP2")
        elif tls_cfg.alpn and version != "2" and "http/1.1" not in tls_cfg.alpn:
            scope.errors.add(
                f"{tpath}.alpn", "without http/1.1 the list needs an http.version of HTTP2 (requests go over HTTP/1.1)"
            )
        if version != "2":
            tls_ctx, key = scope.backend_tls(tls_cfg, tpath)
        if version != "1.1":
            h2_ctx, h2_key = scope.backend_tls(tls_cfg, tpath, http2=True)
    try:
        if version == "2":
            target, host_override = make_target(
                addr, tls=h2_ctx, sni=sni, connect_timeout=scope.connect_timeout, tls_key=h2_key, http2=True
            )
            grpc_target = None
        else:
            target, host_override = make_target(
                addr, tls=tls_ctx, sni=sni, connect_timeout=scope.connect_timeout, tls_key=key
            )
            grpc_target = None
            if version is None:
                grpc_target, _ = make_target(
                    addr, tls=h2_ctx, sni=sni, connect_timeout=scope.connect_timeout, tls_key=h2_key, http2=True
                )
    except (ValueError, IndexError) as exc:
        scope.errors.add(f"{path}.host", f"invalid backend address {addr!r}: {exc}")
        target, host_override = make_target("127.0.0.1:1", tls=None, sni=None, connect_timeout=1.0)
        grpc_target = None
    return HttpBackend(name, target, host_override=host_override, timeout=timeout, grpc_target=grpc_target)


@functools.cache
def _default_tls(http2: bool) -> _ssl.SSLContext:
    """The TLS context for ``https://`` backends without ``backendTLS`` (system trust
    store), one per protocol: the HTTP/2 one offers ``h2`` by ALPN."""
    ctx = _ssl.create_default_context()
    if http2:
        ctx.set_alpn_protocols(["h2"])
    return ctx


def make_target(
    addr: str,
    *,
    tls: _ssl.SSLContext | None,
    sni: str | None,
    connect_timeout: float,
    tls_key: str = "",
    http2: bool = False,
) -> tuple[UpstreamTarget, str | None]:
    """Parse ``host:port`` or ``http(s)://host[:port]`` into a target.

    Returns the target and the Host header to send: ``None`` (keep the client's Host)
    for ``host:port`` backends, the URL's authority for URL backends.
    """
    host_override = None
    scheme = None
    a = addr
    if "://" in a:
        scheme, a = a.split("://", 1)
        a = a.split("/", 1)[0]
        host_override = a
    if a.startswith("["):
        end = a.index("]")
        host = a[1:end]
        rest = a[end + 1 :]
        port = int(rest[1:]) if rest.startswith(":") else None
    elif a.count(":") == 1:
        host, p = a.rsplit(":", 1)
        port = int(p)
    else:
        host, port = a, None
    if scheme == "https" and tls is None:
        tls = _default_tls(http2)
        tls_key = tls_key or ("default-h2" if http2 else "default")
    if port is None:
        port = 443 if (scheme == "https" or tls is not None) else 80
    target = UpstreamTarget(
        host, port, ssl=tls, server_hostname=sni, connect_timeout=connect_timeout, tls_key=tls_key, http2=http2
    )
    return target, host_override
