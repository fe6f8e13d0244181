"""Per-request state that flows through the policy chain to the backend.

One ``Ctx`` per request. Policies read the request and write their results here (the
upstream path/authority after rewrites, authenticated identities, headers to add to the
response); backends read it to build the upstream request. Nothing in it knows about a
specific policy or backend: each stores what it needs under its own attribute in
``attrs``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .engine.http import Headers, Reply

if TYPE_CHECKING:
    from .gateway import ListenerRuntime, Route


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
    )

    def __init__(self, req, ex, bind):
        self.req = req
        self.ex = ex
        self.bind = bind
        self.listener: ListenerRuntime | None = None
        self.route: Route | None = None
        self.match = None
        self.path = req.path
        self.query = req.query
        self.authority: str | None = None  # upstream Host override (urlRewrite etc.)
        self.start = time.perf_counter()
        self.backend_name = ""
        self.upstream_error = ""
        self.response_hooks: list | None = None  # per-request extra response hooks
        # body_filter(ctx, status, headers, body) -> body: buffer the whole upstream
        # response and rewrite it (e.g. an A2A agent card's URLs). Set by a policy before
        # the backend; it takes ctx as an argument so that it need not hold it (a
        # ctx -> filter -> ctx cycle would leave the exchange to the cyclic collector).
        self.body_filter = None
        # body_observer(chunk) / body_observer(None) at the end: see a streamed response
        # without changing it (e.g. A2A task states for logs and metrics).
        self.body_observer = None
        self.attrs: dict = {}

    @property
    def target(self) -> str:
        """Path plus query as it will be sent upstream."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def add_response_hook(self, hook) -> None:
        if self.response_hooks is None:
            self.response_hooks = [hook]
        else:
            self.response_hooks.append(hook)

    def finalize_headers(self, status: int, headers: Headers) -> None:
        """Run response policies (route's, then this request's) over a response head."""
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

    def respond(self, reply: Reply) -> None:
        """Send a gateway-generated response, with response policies applied."""
        shaper = self.attrs.get("reply_shaper")
        if shaper is not None:
            # a protocol's own error shape (e.g. a JSON-RPC error for an A2A call);
            # set by that protocol's policy, keeps the status
            reply = shaper(self, reply)
        self.finalize_headers(reply.status, reply.headers)
        self.ex.send(reply.status, reply.headers, reply.body)
