"""The request pipeline: listener → route match → policy chain → backend → response policies.

Everything here reads structures compiled once per config load (see ``compile.py``):
a bind holds its listeners, a listener its route table, a route its request-policy
chain (bound methods in order), its response hooks and its backend. A request walks
them and touches no config model. Hot reload swaps the ``BindRuntime`` a server points
at; a request in flight keeps the snapshot it started with.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from .context import Ctx
from .engine.http import GatewayError, Reply
from .policies.base import Deferred
from .routing.paths import DEFAULT_RULES, canonical_path, plain_path
from .routing.table import RouteTable, hostname_matches
from .telemetry.metrics import status_label

if TYPE_CHECKING:
    from .telemetry.tracing import RequestTracer

log = logging.getLogger("agentgw")


class Route:
    __slots__ = ("name", "request_chain", "response_chain", "backend", "policies", "listener", "response_edits")

    def __init__(self, name: str, policies: list, backend, listener: str = ""):
        from .policies.base import overrides

        policies = sorted(policies, key=lambda p: p.order)
        self.name = name
        self.policies = policies
        self.request_chain = tuple(p.on_request for p in policies if overrides(p, "on_request"))
        self.response_chain = tuple(p.on_response for p in policies if overrides(p, "on_response"))
        self.backend = backend
        self.listener = listener
        self.response_edits = any(p.edits_response_headers for p in policies if overrides(p, "on_response"))


class ListenerRuntime:
    """A listener: its route table plus the policies that run before routing."""

    __slots__ = (
        "name",
        "hostname",
        "protocol",
        "routes",
        "tls",
        "request_chain",
        "response_chain",
        "response_edits",
        "path_rules",
        "client_certs",
    )

    def __init__(
        self,
        name: str,
        hostname: str | None,
        protocol: str,
        routes: RouteTable,
        tls=None,
        policies: Sequence = (),
        path_rules=DEFAULT_RULES,
        client_certs: bool = False,
    ):
        from .policies.base import overrides

        policies = sorted(policies, key=lambda p: p.order)
        self.name = name
        self.hostname = hostname
        self.protocol = protocol
        self.routes = routes
        self.tls = tls
        self.path_rules = path_rules  # routing.paths.PathRules: the listener's path readings
        # the listener verifies client certificates (see client_cert_refusal)
        self.client_certs = client_certs
        self.request_chain = tuple(p.on_request for p in policies if overrides(p, "on_request"))
        self.response_chain = tuple(p.on_response for p in policies if overrides(p, "on_response"))
        self.response_edits = any(p.edits_response_headers for p in policies if overrides(p, "on_response"))


class BindRuntime:
    """One port: its listeners (most specific hostname first) and shared services."""

    __slots__ = ("name", "port", "listeners", "single", "services", "tracer", "trusted_proxies")

    def __init__(self, port: int, listeners: list[ListenerRuntime], services):
        self.name = str(port)
        self.port = port
        self.listeners = listeners
        self.single = listeners[0] if len(listeners) == 1 and not listeners[0].hostname else None
        self.services = services  # metrics, access log
        self.tracer: RequestTracer | None = None  # when tracing is configured
        # peers whose X-Forwarded-Proto/-Host are believed (config.trustedProxies)
        self.trusted_proxies: tuple = ()

    def trusts(self, peer: str) -> bool:
        """Whether ``peer`` (the client's address) is a configured trusted proxy."""
        if not self.trusted_proxies or not peer:
            return False
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)

    def select(self, host: str) -> ListenerRuntime | None:
        for lst in self.listeners:
            if hostname_matches(lst.hostname, host):
                return lst
        return None


_NOT_FOUND = ("route_not_found", "no route matches this request")


def client_cert_refusal(req, listener: ListenerRuntime) -> tuple[int, str, str] | None:
    """Why a request may not reach a listener that verifies client certificates, or None.

    SNI chooses the TLS handshake and Host the listener. OpenSSL keeps the verify mode of
    the handshake's first context when SNI switches to a listener's, so on a bind with
    several HTTPS listeners the handshake only *asks* for a certificate (compile.py
    ``_sni_context``), checks one that is sent against the chosen listener's CA, and the
    listener's requirement is enforced here: the handshake must have been this
    listener's (SNI ``public.test`` with Host ``admin.test`` is 421) and must have
    verified a certificate."""
    tls = req.tls
    used = tls.get("context") if tls is not None else None
    if used is not listener.tls and (
        # a connection made before a reload used the listener's previous context
        used is None or getattr(used, "listener_hostname", 0) != listener.hostname
    ):
        return (
            421,
            "misdirected_request",
            ("this connection's TLS handshake was for another host: connect with this host as the TLS server name"),
        )
    if not tls.get("peercert"):
        return 403, "client_certificate_required", "this listener requires a client certificate"
    return None


def canonical_request_path(req, listener: ListenerRuntime) -> str:
    """The request's one path (routing.paths), written back to the request so that every
    policy, log line and the upstream read the same; raises a 400 GatewayError."""
    raw = req.path
    path = canonical_path(raw, listener.path_rules)
    if path != raw:
        req.path = path
        req.target = f"{path}?{req.query}" if req.query else path
    return path


async def handle(bind: BindRuntime, req, ex) -> None:
    ctx = Ctx(req, ex, bind)
    try:
        listener = bind.single or bind.select(req.host)
        if listener is None:
            ctx.respond(Reply.error(404, "listener_not_found", "no listener for this host"))
            return
        ctx.listener = listener
        if listener.client_certs:
            refusal = client_cert_refusal(req, listener)
            if refusal is not None:
                ctx.respond(Reply.error(*refusal))
                return
        ctx.path = canonical_request_path(req, listener)
        path = ctx.path
        if await run_chain(ctx, listener.request_chain):  # gateway phase (e.g. authentication)
            return
        match = listener.routes.match(req.method, req.host, path, req.headers, req.query)
        if match is None:
            ctx.respond(Reply.error(404, *_NOT_FOUND))
            return
        route = match.route
        ctx.route = route
        ctx.match = match
        if bind.tracer is not None:
            bind.tracer.start(ctx)
        if await run_chain(ctx, route.request_chain):
            return
        await _backend(ctx).serve(ctx)
    except GatewayError as exc:
        answer_error(ctx, exc)
    finally:
        observe(ctx)


def answer_error(ctx: Ctx, exc: GatewayError) -> None:
    """A gateway error as the client's answer, or a cut connection once a response began."""
    ex = ctx.ex
    if not ctx.upstream_error and exc.status >= 500:
        ctx.upstream_error = exc.message
    if not ex.started:
        ctx.respond(exc.reply())
    elif not ex.finished:
        ex.abort()


def observe(ctx: Ctx) -> None:
    """Metrics and access log for one finished exchange (called exactly once)."""
    bind = ctx.bind
    services = bind.services
    duration = time.perf_counter() - ctx.start
    route = ctx.route
    ex = ctx.ex
    req = ctx.req
    status = ex.status if ex.started else 0
    attrs = ctx.attrs
    services.metrics.observe(
        (
            bind.name,
            route.name if route is not None else "",
            ctx.backend_name,
            req.method,
            status_label(status),
            attrs.get("principal", "") if attrs else "",  # agent_identity (JWT sub, SA, key name)
        ),
        duration,
    )
    if attrs and "trace" in attrs:
        attrs["trace"][0].finish(ctx, status)
    if services.access_log.enabled:
        services.access_log.record(ctx, duration)


def handle_fast(bind: BindRuntime, req, ex) -> bool:
    """Serve a request without a task for as long as nothing on its way has to wait.

    Routing and the route's policies run right here in the parser callback; a plain
    HTTP backend with a pooled connection sends the request at once and relays the
    response from the upstream's read callback. What each step returns decides the rest
    (``_continue_fast``): an answer, a :class:`Deferred` resumed from its callback, or
    any other awaitable, which finishes the chain and the backend in a task. Returns
    False, having done nothing, for what only the general path (``handle`` in a task)
    does: no listener or route (404), listener-level request policies, tracing.
    """
    listener = bind.single or bind.select(req.host)
    if listener is None or listener.request_chain or bind.tracer is not None:
        return False
    if listener.client_certs and client_cert_refusal(req, listener) is not None:
        return False  # answered by ``handle``
    path = req.path
    if plain_path(path) is None or "//" in path or "/." in path:  # else already canonical
        try:
            path = canonical_request_path(req, listener)
        except GatewayError:
            return False  # answered by ``handle``
    try:
        match = listener.routes.match(req.method, req.host, path, req.headers, req.query)
    except GatewayError:
        return False  # answered by ``handle``
    if match is None:
        return False
    route = match.route
    ctx = Ctx(req, ex, bind)
    ctx.listener = listener
    ctx.path = path
    ctx.route = route
    ctx.match = match
    _continue_fast(ctx, route.request_chain, 0)
    return True


def _continue_fast(ctx: Ctx, chain: tuple, start: int) -> None:
    """Run ``chain[start:]`` and then the backend, without a task for as long as every
    step answers at once or waits on a single future (:class:`Deferred`)."""
    ex = ctx.ex
    try:
        for i in range(start, len(chain)):
            r = chain[i](ctx)
            if r is not None:
                cls = r.__class__
                if cls is Reply:
                    ctx.respond(r)
                    observe(ctx)
                    return
                if cls is Deferred:  # e.g. a Redis check: resume from its callback
                    r.fut.add_done_callback(partial(_resume_fast, ctx, r, chain, i + 1))
                    return
                # any other awaitable (a token-cache miss...): finish in a task
                ex.conn.spawn(ex, finish_chain(ctx, r, chain[i + 1 :]))
                return
        try_fast = getattr(_backend(ctx), "try_fast", None)
        if try_fast is not None and try_fast(ctx):
            return
    except GatewayError as exc:
        answer_error(ctx, exc)
        observe(ctx)
        return
    ex.conn.spawn(ex, serve_backend(ctx))


def _resume_fast(ctx: Ctx, pending: Deferred, chain: tuple, start: int, fut) -> None:
    """A deferred policy answer is in: finish that step, then carry on as ``handle_fast``."""
    ex = ctx.ex
    if ex.disconnected:
        observe(ctx)  # the client left while the check was out, as a cancelled task would
        return
    try:
        r = pending.decide(fut)
        if r is not None:
            ctx.respond(r)
            observe(ctx)
            return
        _continue_fast(ctx, chain, start)
    except GatewayError as exc:
        answer_error(ctx, exc)
        observe(ctx)
    except Exception:
        # No task or parser callback is above this frame to catch it: answer here.
        log.exception("unhandled error while handling %s %s", ctx.req.method, ctx.req.path)
        ex.fail_internal()
        observe(ctx)


async def run_chain(ctx: Ctx, chain) -> bool:
    """Run request policies in order; True when one of them answered the request."""
    for step in chain:
        r = step(ctx)
        if r is not None:
            if r.__class__ is not Reply:
                r = await r
                if r is None:
                    continue
            ctx.respond(r)
            return True
    return False


async def finish_chain(ctx: Ctx, pending, rest: tuple) -> None:
    """The rest of a fast-path request whose policy chain had to wait on I/O."""
    try:
        r = await pending
        if r is not None:
            ctx.respond(r)
            answered = True
        else:
            answered = await run_chain(ctx, rest)
    except GatewayError as exc:
        answer_error(ctx, exc)
        observe(ctx)
        return
    except BaseException:
        observe(ctx)
        raise
    if answered:
        observe(ctx)
        return
    await serve_backend(ctx)


def _backend(ctx: Ctx):
    backend = ctx.route.backend  # type: ignore[union-attr]  # routed: set before any backend step
    if backend is None:
        raise GatewayError(503, "no_healthy_backend", "the route has no backend")
    return backend


async def serve_backend(ctx: Ctx, work=None) -> None:
    """The backend step of ``handle``, for a request whose policies already ran; or
    ``work``, the rest of a backend's own task-free start that had to go on in a task."""
    try:
        await (_backend(ctx).serve(ctx) if work is None else work)
    except GatewayError as exc:
        answer_error(ctx, exc)
    finally:
        observe(ctx)
