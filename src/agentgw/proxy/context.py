"""The request context: per-request state shared by the pipeline, policies and backends,
and the operations a backend needs from the pipeline.

One ``Ctx`` per request. Policies read the request and write their results here (the
upstream path/authority after rewrites, authenticated identities, headers to add to the
response); backends read it to build the upstream request. Nothing in it knows about a
specific policy or backend: each stores what it needs under its own key in ``attrs``.

A backend finishes a request through the context, never through the pipeline or the
client connection: :meth:`Ctx.respond` answers, :meth:`Ctx.fail` answers a
``GatewayError`` (or cuts a response already begun), :meth:`Ctx.spawn` goes on in a
task, and :meth:`Ctx.finish` records the request (metrics, access log, trace) exactly
once, whichever path gets there first.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import orjson

from ..engine.grpc import is_grpc_call, trailers_only
from ..engine.http import GatewayError, Reply, reason
from ..telemetry.metrics import status_label
from ..telemetry.recent import facts as recent_facts

if TYPE_CHECKING:
    from ..engine.server import Exchange, Request
    from ..routing.table import Match
    from .backend import Backend
    from .runtime import BindRuntime, ListenerRuntime, Route


def _message(reply: Reply) -> str:
    """The message of a gateway error reply (its JSON body's), else the status's reason."""
    try:
        err = orjson.loads(reply.body).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if isinstance(msg, str) and msg:
            return msg
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        pass
    return reason(reply.status)


class Ctx:
    __slots__ = (
        "req",
        "ex",
        "bind",
        "listener",
        "route",
        "match",
        "path",
        "query",
        "authority",
        "start",
        "backend_name",
        "upstream_error",
        "response_hooks",
        "body_filter",
        "body_observer",
        "attrs",
        "recorded",
    )

    def __init__(self, req: Request, ex: Exchange, bind: BindRuntime):
        self.req = req
        self.ex = ex
        self.bind = bind
        self.listener: ListenerRuntime | None = None
        self.route: Route | None = None
        self.match: Match | None = None
        self.path = req.path
        self.query = req.query
        self.authority: str | None = None  # upstream Host override (urlRewrite etc.)
        self.start = time.perf_counter()
        self.backend_name = ""
        self.upstream_error = ""
        self.response_hooks: list | None = None  # per-request extra response hooks
        # body_filter(ctx, status, headers, body) -> (status, body), or an awaitable of
        # it: buffer the whole upstream response and rewrite it (e.g. an A2A agent
        # card's URLs, answered 304 when the client has the rewritten card already; an
        # external processor's changes). Set by a policy before
        # the backend; it takes ctx as an argument so that it need not hold it (a
        # ctx -> filter -> ctx cycle would leave the exchange to the cyclic collector).
        self.body_filter: Any = None
        # body_observer(chunk) / body_observer(None) at the end: see a streamed response
        # without changing it (e.g. A2A task states for logs and metrics).
        self.body_observer: Any = None
        self.attrs: dict = {}
        self.recorded = False  # finish() has run

    @property
    def target(self) -> str:
        """Path plus query as it will be sent upstream."""
        return f"{self.path}?{self.query}" if self.query else self.path

    # -- response head -----------------------------------------------------------------
    def add_response_hook(self, hook) -> None:
        if self.response_hooks is None:
            self.response_hooks = [hook]
        else:
            self.response_hooks.append(hook)

    def finalize_headers(self, status: int, headers: Any) -> None:
        """Run response policies (the listener's, the route's, then this request's) over a
        response head: ``Headers``, or a read-only ``RawHeaderView`` (see relay.response_head)."""
        listener = self.listener
        if listener is not None and listener.response_chain:
            for hook in listener.response_chain:
                hook(self, status, headers)
        route = self.route
        if route is not None:
            for hook in route.response_chain:
                hook(self, status, headers)
        if self.response_hooks:
            for hook in self.response_hooks:
                hook(self, status, headers)

    # -- finishing -----------------------------------------------------------------------
    def respond(self, reply: Reply) -> None:
        """Send a gateway-generated response, with response policies applied."""
        if reply.status >= 400 and is_grpc_call(self.req):
            # a gRPC client reads the outcome from grpc-status (engine/grpc.py)
            decided = reply.status
            headers = trailers_only(decided, _message(reply), reply.headers)
            self.finalize_headers(200, headers)
            self.ex.send(200, headers, b"")
            # logs and metrics record what the gateway decided (401, 429...), which the
            # wire carries as the gRPC status under HTTP 200
            self.ex.status = decided
            return
        shaper = self.attrs.get("reply_shaper")
        if shaper is not None:
            # a protocol's own error shape (e.g. a JSON-RPC error for an A2A call);
            # set by that protocol's policy, keeps the status
            reply = shaper(self, reply)
        self.finalize_headers(reply.status, reply.headers)
        self.ex.send(reply.status, reply.headers, reply.body)

    def fail(self, exc: GatewayError) -> None:
        """Answer ``exc`` (or cut the connection once a response began), then finish."""
        ex = self.ex
        if not self.upstream_error and exc.status >= 500:
            self.upstream_error = exc.message
        if not ex.started:
            self.respond(exc.reply())
        elif not ex.finished:
            ex.abort()
        self.finish()

    def finish(self) -> None:
        """Record the finished request: one histogram update, the access-log line, the
        trace span's end. Only the first call counts, so every path that ends a request
        may call it."""
        if self.recorded:
            return
        self.recorded = True
        bind = self.bind
        services = bind.services
        duration = time.perf_counter() - self.start
        route = self.route
        ex = self.ex
        status = ex.status if ex.started else 0
        attrs = self.attrs
        rname = route.name if route is not None else ""
        req = self.req
        services.metrics.observe(
            (
                bind.name,
                rname,
                self.backend_name,
                req.method,
                status_label(status),
                attrs.get("principal", "") if attrs else "",  # agent_identity (JWT sub, SA, key name)
            ),
            duration,
        )
        if attrs and "trace" in attrs:
            attrs["trace"][0].finish(self, status)
        if services.access_log.enabled:
            services.access_log.record(self, duration)
        # the admin API's ring of recent requests (telemetry.recent: a deque's append)
        services.recent.record(
            (
                self.start,
                req.method,
                req.target,
                rname,
                self.backend_name,
                status,
                duration,
                recent_facts(attrs) if attrs else None,
            )
        )

    # -- going on in a task --------------------------------------------------------------
    def backend(self) -> Backend:
        """The route's backend; a 503 when the route has none."""
        backend = self.route.backend  # type: ignore[union-attr]  # routed: set before any backend step
        if backend is None:
            raise GatewayError(503, "no_healthy_backend", "the route has no backend")
        return backend

    def spawn(self, work: Awaitable[None] | None = None) -> None:
        """Go on in a task: with ``work``, the rest of a backend's own task-free start
        that has to wait; without, the route's backend ``serve`` from the start. A
        ``GatewayError`` is answered, and the request finishes, either way."""
        self.ex.spawn(self.run_backend(work))

    async def run_backend(self, work: Awaitable[None] | None = None) -> None:
        """The backend step, for a request whose policies have run (see :meth:`spawn`)."""
        try:
            await (self.backend().serve(self) if work is None else work)
        except GatewayError as exc:
            self.fail(exc)
        finally:
            self.finish()
