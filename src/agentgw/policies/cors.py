"""``cors``: answer preflights and add CORS headers to responses for allowed origins.

Origins may be exact (``https://app.example.com``), ``*``, or contain a ``*`` wildcard
(``https://*.example.com``). A request whose ``Origin`` is not allowed passes through
untouched: the browser then enforces the policy by not seeing any allow headers.
"""

from __future__ import annotations

import re

from ..engine.http import Headers, Reply
from ..proxy.policy import Policy


class Cors(Policy):
    order = 10

    def __init__(
        self,
        *,
        allow_origins: list[str] | None = None,
        allow_methods: list[str] | None = None,
        allow_headers: list[str] | None = None,
        expose_headers: list[str] | None = None,
        max_age: float | None = None,
        allow_credentials: bool = False,
    ):
        origins = allow_origins or []
        self.any_origin = "*" in origins
        self.exact = frozenset(o for o in origins if "*" not in o)
        self.patterns = [
            re.compile("^" + ".*".join(re.escape(p) for p in o.split("*")) + "$")
            for o in origins
            if "*" in o and o != "*"
        ]
        self.methods = ", ".join(allow_methods or [])
        self.headers = ", ".join(allow_headers or [])
        self.expose = ", ".join(expose_headers or [])
        self.max_age = str(int(max_age)) if max_age is not None else None
        self.credentials = allow_credentials

    @classmethod
    def from_config(cls, c) -> Cors:
        """The policy for a ``cors`` block (``config.models.Cors``)."""
        return cls(
            allow_origins=c.allow_origins,
            allow_methods=c.allow_methods,
            allow_headers=c.allow_headers,
            expose_headers=c.expose_headers,
            max_age=float(c.max_age) if c.max_age is not None else None,
            allow_credentials=c.allow_credentials,
        )

    def allowed(self, origin: str) -> bool:
        if self.any_origin or origin in self.exact:
            return True
        return any(p.match(origin) for p in self.patterns)

    def _allow_origin(self, origin: str) -> str:
        # With credentials, "*" is not allowed by browsers: echo the origin instead.
        return "*" if self.any_origin and not self.credentials else origin

    def on_request(self, ctx):
        req = ctx.req
        origin = req.headers.get("origin")
        if origin is None or not self.allowed(origin):
            return None
        if req.method == "OPTIONS" and req.headers.has("access-control-request-method"):
            h = Headers([("access-control-allow-origin", self._allow_origin(origin))])
            if self.credentials:
                h.append(("access-control-allow-credentials", "true"))
            if self.methods:
                h.append(("access-control-allow-methods", self.methods))
            if self.headers:
                h.append(("access-control-allow-headers", self.headers))
            if self.max_age is not None:
                h.append(("access-control-max-age", self.max_age))
            if not self.any_origin or self.credentials:
                h.append(("vary", "Origin"))
            return Reply(200, h)
        ctx.add_response_hook(self._decorate)
        return None

    def _decorate(self, ctx, status, headers: Headers) -> None:
        origin = ctx.req.headers.get("origin") or ""
        headers.set("access-control-allow-origin", self._allow_origin(origin))
        if self.credentials:
            headers.set("access-control-allow-credentials", "true")
        if self.expose:
            headers.set("access-control-expose-headers", self.expose)
        if not self.any_origin or self.credentials:
            headers.add("vary", "Origin")
