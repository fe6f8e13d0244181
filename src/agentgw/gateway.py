"""The request pipeline: listener → route match → policy chain → backend → response policies.

Everything here reads structures compiled once per config load (see ``compile.py``):
a bind holds its listeners, a listener its route table, a route its request-policy
chain (bound methods in order), its response hooks and its backend. A request walks
them and touches no config model. Hot reload swaps the ``BindRuntime`` a server points
at; a request in flight keeps the snapshot it started with.
"""

from __future__ import annotations

import logging
import time

from .context import Ctx
from .engine.http import GatewayError, Reply
from .routing.paths import normalize_path
from .routing.table import RouteTable, hostname_matches

log = logging.getLogger("agentgw")


class Route:
    __slots__ = ("name", "request_chain", "response_chain", "backend", "policies", "listener")

    def __init__(self, name: str, policies: list, backend, listener: str = ""):
        from .policies.base import overrides

        policies = sorted(policies, key=lambda p: p.order)
        self.name = name
        self.policies = policies
        self.request_chain = tuple(p.on_request for p in policies if overrides(p, "on_request"))
        self.response_chain = tuple(p.on_response for p in policies if overrides(p, "on_response"))
        self.backend = backend
        self.listener = listener


class ListenerRuntime:
    """A listener: its route table plus the policies that run before routing."""

    __slots__ = ("name", "hostname", "protocol", "routes", "tls", "request_chain", "response_chain")

    def __init__(
        self, name: str, hostname: str | None, protocol: str, routes: RouteTable, tls=None, policies: list = ()
    ):
        from .policies.base import overrides

        policies = sorted(policies, key=lambda p: p.order)
        self.name = name
        self.hostname = hostname
        self.protocol = protocol
        self.routes = routes
        self.tls = tls
        self.request_chain = tuple(p.on_request for p in policies if overrides(p, "on_request"))
        self.response_chain = tuple(p.on_response for p in policies if overrides(p, "on_response"))


class BindRuntime:
    """One port: its listeners (most specific hostname first) and shared services."""

    __slots__ = ("name", "port", "listeners", "single", "services")

    def __init__(self, port: int, listeners: list[ListenerRuntime], services):
        self.name = str(port)
        self.port = port
        self.listeners = listeners
        self.single = listeners[0] if len(listeners) == 1 and not listeners[0].hostname else None
        self.services = services  # metrics, access log

    def select(self, host: str) -> ListenerRuntime | None:
        for lst in self.listeners:
            if hostname_matches(lst.hostname, host):
                return lst
        return None


_NOT_FOUND = ("route_not_found", "no route matches this request")


async def handle(bind: BindRuntime, req, ex) -> None:
    ctx = Ctx(req, ex, bind)
    try:
        listener = bind.single or bind.select(req.host)
        if listener is None:
            ctx.respond(Reply.error(404, "listener_not_found", "no listener for this host"))
            return
        ctx.listener = listener
        path = normalize_path(req.path)
        ctx.path = path
        for step in listener.request_chain:  # gateway-phase policies (e.g. authentication)
            r = step(ctx)
            if r is not None:
                if r.__class__ is not Reply:
                    r = await r
                    if r is None:
                        continue
                ctx.respond(r)
                return
        match = listener.routes.match(req.method, req.host, path, req.headers, req.query)
        if match is None:
            ctx.respond(Reply.error(404, *_NOT_FOUND))
            return
        route = match.route
        ctx.route = route
        ctx.match = match
        for step in route.request_chain:
            r = step(ctx)
            if r is not None:
                if r.__class__ is not Reply:
                    r = await r
                    if r is None:
                        continue
                ctx.respond(r)
                return
        backend = route.backend
        if backend is None:
            ctx.respond(Reply.error(503, "no_healthy_backend", "the route has no backend"))
            return
        await backend.serve(ctx)
    except GatewayError as exc:
        if not ctx.upstream_error and exc.status >= 500:
            ctx.upstream_error = exc.message
        if not ex.started:
            ctx.respond(exc.reply())
        elif not ex.finished:
            ex.abort()
    finally:
        services = bind.services
        duration = time.perf_counter() - ctx.start
        route = ctx.route
        status = ex.status if ex.started else 0
        services.metrics.observe(
            (
                bind.name,
                route.name if route is not None else "",
                ctx.backend_name,
                req.method,
                str(status),
            ),
            duration,
        )
        if services.access_log.enabled:
            services.access_log.record(ctx, duration)
