"""The request pipeline: listener → route match → policy chain → backend → response policies.

Everything here reads structures compiled once per config load (``proxy/runtime.py``,
built by ``compile.py``) and touches no config model.

There is one pipeline with two ways of running it. ``handle_fast`` runs in the parser
callback and goes as far as it can without a task: the route's policies, and the
backend's ``try_fast``; the first step that has to wait hands the rest to a task
(``Ctx.spawn``), a step waiting on one future (``Deferred``) resumes from its callback.
``handle`` is the same walk in a task, for what the fast path declines (no listener or
route, listener policies, tracing). Every request ends in ``Ctx.finish``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from ..engine.http import GatewayError, Reply
from ..routing.paths import canonical_path, plain_path
from .context import Ctx
from .policy import Deferred
from .runtime import BindRuntime, ListenerRuntime

if TYPE_CHECKING:
    from ..engine.server import Exchange, Request

log = logging.getLogger("agentgw")


_NOT_FOUND = ("route_not_found", "no route matches this request")


def client_cert_refusal(req: Request, listener: ListenerRuntime) -> tuple[int, str, str] | None:
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
    if tls is None or not tls.get("peercert"):
        return 403, "client_certificate_required", "this listener requires a client certificate"
    return None


def canonical_request_path(req: Request, listener: ListenerRuntime) -> str:
    """The request's one path (routing.paths), written back to the request so that every
    policy, log line and the upstream read the same; raises a 400 GatewayError."""
    raw = req.path
    path = canonical_path(raw, listener.path_rules)
    if path != raw:
        req.path = path
        req.target = f"{path}?{req.query}" if req.query else path
    return path


async def handle(bind: BindRuntime, req: Request, ex: Exchange) -> None:
    """The whole pipeline in a task (see the module's docstring for when)."""
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
        await ctx.backend().serve(ctx)
    except GatewayError as exc:
        ctx.fail(exc)
    finally:
        ctx.finish()


def handle_fast(bind: BindRuntime, req: Request, ex: Exchange) -> bool:
    """Serve a request without a task for as long as nothing on its way has to wait.

    Routing and the route's policies run right here in the parser callback; a backend
    whose ``try_fast`` takes the request (a plain HTTP backend with a pooled connection)
    sends it at once and relays the response from the upstream's read callback. What
    each step returns decides the rest (``_continue_fast``): an answer, a
    :class:`Deferred` resumed from its callback, or any other awaitable, which finishes
    the chain and the backend in a task. Returns False, having done nothing, for what
    only ``handle`` does: no listener or route (404), listener-level request policies,
    tracing.
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
    try:
        for i in range(start, len(chain)):
            r = chain[i](ctx)
            if r is not None:
                cls = r.__class__
                if cls is Reply:
                    ctx.respond(r)
                    ctx.finish()
                    return
                if cls is Deferred:  # e.g. a Redis check: resume from its callback
                    r.fut.add_done_callback(partial(_resume_fast, ctx, r, chain, i + 1))
                    return
                # any other awaitable (a token-cache miss...): finish in a task
                ctx.ex.spawn(_finish_chain(ctx, r, chain[i + 1 :]))
                return
        if ctx.backend().try_fast(ctx):
            return
    except GatewayError as exc:
        ctx.fail(exc)
        return
    ctx.spawn()


def _resume_fast(ctx: Ctx, pending: Deferred, chain: tuple, start: int, fut) -> None:
    """A deferred policy answer is in: finish that step, then carry on as ``handle_fast``."""
    if ctx.ex.disconnected:
        ctx.finish()  # the client left while the check was out, as a cancelled task would
        return
    try:
        r = pending.decide(fut)
        if r is not None:
            ctx.respond(r)
            ctx.finish()
            return
        _continue_fast(ctx, chain, start)
    except GatewayError as exc:
        ctx.fail(exc)
    except Exception:
        # No task or parser callback is above this frame to catch it: answer here.
        log.exception("unhandled error while handling %s %s", ctx.req.method, ctx.req.path)
        ctx.ex.fail_internal()
        ctx.finish()


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


async def _finish_chain(ctx: Ctx, pending, rest: tuple) -> None:
    """The rest of a fast-path request whose policy chain had to wait on I/O."""
    try:
        r = await pending
        if r is not None:
            ctx.respond(r)
        elif not await run_chain(ctx, rest):
            await ctx.run_backend()
            return
    except GatewayError as exc:
        ctx.fail(exc)
    finally:
        ctx.finish()
