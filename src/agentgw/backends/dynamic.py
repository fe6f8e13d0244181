"""``dynamic: {}`` on an HTTP route: the upstream is the request's own authority.

As agentgateway reads it: the Host (after any ``urlRewrite.authority``), on its port, or
443 for a request that came over TLS and 80 otherwise; the route backend's
``backendTLS`` (none: plain HTTP) and ``http`` settings apply to every such upstream.
An egress proxy that terminates TLS (``tls.mode: dynamicCa`` behind a CONNECT bind)
sends each request on to where the client meant it to go. It serves any host the
client names: restrict it with the listener's hostname or routes' hostnames.

One ``HttpBackendSet`` per authority, made on first use and kept (most recently used
first, up to ``MAX_AUTHORITIES``), so pooled connections, retries, timeouts and the
task-free path are the plain HTTP backend's.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict
from typing import Any

from ..engine.http import GatewayError
from ..proxy.backend import Backend
from .http import HttpBackend, HttpBackendSet, make_target

MAX_AUTHORITIES = 256


class DynamicHttpBackend(Backend):
    kind = "http"

    def __init__(
        self,
        pool: Any,
        *,
        tls: ssl.SSLContext | None,
        tls_key: str,
        sni: str | None,
        connect_timeout: float,
        timeout: float | None,
        traffic: dict,
        on_upstream_error: Any,
    ):
        self.pool = pool
        self.tls = tls
        self.tls_key = tls_key
        self.sni = sni
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.traffic = traffic
        self.on_upstream_error = on_upstream_error
        self.label = "dynamic"
        self._sets: OrderedDict[str, HttpBackendSet] = OrderedDict()

    def _for(self, ctx) -> HttpBackendSet:
        req = ctx.req
        authority = ctx.authority or req.host
        if not authority:
            raise GatewayError(400, "bad_request", "a dynamic backend needs the request's host")
        if authority.endswith("]") or ":" not in authority:  # no port: the scheme's
            authority = f"{authority}:{443 if req.scheme == 'https' else 80}"
        s = self._sets.get(authority)
        if s is not None:
            self._sets.move_to_end(authority)
            return s
        target, _ = make_target(
            authority, tls=self.tls, sni=self.sni, connect_timeout=self.connect_timeout, tls_key=self.tls_key
        )
        t = self.traffic
        s = HttpBackendSet(
            [(1, HttpBackend(authority, target, timeout=self.timeout))],
            self.pool,
            retry=t.get("retry"),
            request_timeout=t.get("request_timeout"),
            backend_timeout=t.get("backend_timeout"),
            on_upstream_error=self.on_upstream_error,
        )
        self._sets[authority] = s
        if len(self._sets) > MAX_AUTHORITIES:
            self._sets.popitem(last=False)
        return s

    def try_fast(self, ctx) -> bool:
        try:
            s = self._for(ctx)
        except (GatewayError, ValueError):
            return False  # answered by serve
        return s.try_fast(ctx)

    async def serve(self, ctx) -> None:
        try:
            s = self._for(ctx)
        except ValueError:
            raise GatewayError(400, "bad_request", "the request's host is not a usable upstream address") from None
        await s.serve(ctx)
