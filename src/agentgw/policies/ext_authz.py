"""``extAuthz``: ask an external authorizer (OPA, Authorino, your own) about each request.

Two protocols, as in Envoy:

* ``protocol: {grpc: {context: {k: v}}}`` (the default) -- ``envoy.service.auth.v3.
  Authorization/Check``: a ``CheckRequest`` with the method, path, host, scheme, query,
  headers and the client address (``context`` becomes ``context_extensions``). An OK
  answer's ``headers`` are set on the upstream request, ``headers_to_remove`` removed,
  ``response_headers_to_add`` added to the client's response; a denial's status (403 if
  unset), headers and body are sent to the client.
* ``protocol: {http: {path, addRequestHeaders, includeResponseHeaders}}`` -- the request
  head is sent to the authorizer (same method, ``path`` prefix + original path and
  query, the request's headers, no body). A 2xx allows, and the answer's headers (only
  those in ``includeResponseHeaders`` if given, else all but framing/standard ones) are
  set on the upstream request; anything else is sent back to the client as the denial.

``includeRequestHeaders`` limits which request headers are sent. If the authorizer can't
be reached, times out (``timeout``, default 1s) or answers garbage, ``failureMode``
decides: ``deny`` (default; 403), ``{denyWithStatus: N}``, or ``allow``.
"""

from __future__ import annotations

import logging
import weakref

from ..engine.http import HOP_BY_HOP, Headers, Reply, error_body
from ..proxy.policy import Policy
from .auth_common import HttpSideClient, SideCallError
from .grpc_unary import call_unary

log = logging.getLogger("agentgw.auth")

_NOT_FORWARDED = HOP_BY_HOP | {"content-length", "content-type", "date", "server", "content-encoding"}


class ExtAuthzFailure(Exception):
    pass


def _reply(status: int, headers, body: bytes) -> Reply:
    h = Headers()
    for k, v in headers:
        k = k.lower()
        if k in HOP_BY_HOP or k == "content-length":
            continue
        h.append((k, v))
    if not body:
        if not h.has("content-type"):
            h.append(("content-type", "application/json"))
        body = error_body(
            "forbidden" if status == 403 else "unauthenticated" if status == 401 else "denied",
            "extAuthz: denied by the external authorizer",
        )
    return Reply(status, h, body)


class _GrpcTransport:
    """A blocking grpc channel whose futures are bridged onto the event loop."""

    def __init__(self, address: str, timeout: float, root_ca: bytes | None = None, tls: bool = False):
        self.address = address
        self.timeout = timeout
        self.root_ca = root_ca
        self.tls = tls
        self._call = None

    def _callable(self):
        if self._call is None:
            import grpc

            from . import ext_authz_proto as pb

            if self.tls:
                ch = grpc.secure_channel(self.address, grpc.ssl_channel_credentials(root_certificates=self.root_ca))
            else:
                ch = grpc.insecure_channel(self.address)
            self._channel = ch
            weakref.finalize(self, ch.close)  # a config reload drops this policy: close its channel
            self._call = ch.unary_unary(
                pb.METHOD,
                request_serializer=pb.CheckRequest.SerializeToString,
                response_deserializer=pb.CheckResponse.FromString,
            )
        return self._call

    async def check(self, request):
        return await call_unary(
            self._callable(), request, self.timeout, lambda exc: ExtAuthzFailure(type(exc).__name__)
        )

    def close(self):
        ch = getattr(self, "_channel", None)
        if ch is not None:
            ch.close()


class ExtAuthz(Policy):
    order = 30
    NAME = "extAuthz"

    def __init__(
        self,
        *,
        grpc: _GrpcTransport | None = None,
        http: HttpSideClient | None = None,
        http_path: str = "",
        add_request_headers: dict[str, str] | None = None,
        include_response_headers: list[str] | None = None,
        include_request_headers: list[str] | None = None,
        context: dict[str, str] | None = None,
        failure_allow: bool = False,
        failure_status: int = 403,
    ):
        self.grpc = grpc
        self.http = http
        self.http_path = http_path.rstrip("/")
        self.add_request_headers = dict(add_request_headers or {})
        self.include_response = {h.lower() for h in include_response_headers} if include_response_headers else None
        self.include_request = {h.lower() for h in include_request_headers} if include_request_headers else None
        self.context = dict(context or {})
        self.failure_allow = failure_allow
        self.failure_status = failure_status

    def on_request(self, ctx):
        return self._check(ctx)

    def _request_headers(self, ctx):
        inc = self.include_request
        for k, v in ctx.req.headers:
            if k in HOP_BY_HOP or k == "content-length":
                continue
            if inc is None or k in inc or k == "host":
                yield k, v

    async def _check(self, ctx):
        grpc, http = self.grpc, self.http
        try:
            if grpc is not None:
                return await self._check_grpc(ctx, grpc)
            if http is None:  # (compiled with one transport or the other)
                raise RuntimeError("extAuthz has no authorization service")
            return await self._check_http(ctx, http)
        except (TimeoutError, ExtAuthzFailure, SideCallError, ValueError) as exc:
            log.warning("extAuthz: authorizer unavailable: %s", exc or type(exc).__name__)
            if self.failure_allow:
                return None
            return Reply.error(self.failure_status, "ext_authz_error", "extAuthz: authorization service unavailable")

    # -- gRPC ------------------------------------------------------------------------------
    async def _check_grpc(self, ctx, grpc: _GrpcTransport):
        from . import ext_authz_proto as pb

        req = ctx.req
        cr = pb.CheckRequest()
        a = cr.attributes
        sa = a.source.address.socket_address
        sa.address = req.client_addr or ""
        from ..cel import client_identity

        ident = client_identity(req.tls)
        if ident:
            a.source.principal = ident
        h = a.request.http
        h.method = req.method
        h.path = ctx.path + (f"?{ctx.query}" if ctx.query else "")
        h.host = req.host
        h.scheme = req.scheme
        h.query = ctx.query or ""
        h.protocol = f"HTTP/{req.http_version}"
        hm = h.headers
        for k, v in self._request_headers(ctx):
            hm[k] = f"{hm[k]},{v}" if k in hm else v
        for k, v in self.context.items():
            a.context_extensions[k] = v
        resp = await grpc.check(cr)
        if resp.status.code == 0:
            ok = resp.ok_response
            headers = ctx.req.headers
            for name in ok.headers_to_remove:
                n = name.lower()
                if n not in ("host",):
                    headers.remove(n)
            for opt in ok.headers:
                k = opt.header.key.lower()
                v = opt.header.value or opt.header.raw_value.decode("latin-1")
                if not k or k == "host" or k in HOP_BY_HOP or any(c in v for c in "\r\n\x00"):
                    continue
                if opt.HasField("append") and opt.append.value:
                    headers.append((k, v))
                else:
                    headers.set(k, v)
            if ok.response_headers_to_add:
                extra = [(o.header.key.lower(), o.header.value) for o in ok.response_headers_to_add if o.header.key]

                def add(_ctx, _status, rh, extra=extra):
                    for k, v in extra:
                        rh.append((k, v))

                ctx.add_response_hook(add)
            return None
        d = resp.denied_response
        status = d.status.code if resp.HasField("denied_response") and d.status.code >= 200 else 403
        hs = [(o.header.key, o.header.value) for o in d.headers if o.header.key]
        return _reply(status, hs, d.body.encode("utf-8"))

    # -- HTTP ------------------------------------------------------------------------------
    async def _check_http(self, ctx, http: HttpSideClient):
        req = ctx.req
        path = self.http_path + ctx.path + (f"?{ctx.query}" if ctx.query else "")
        hs = [(k, v) for k, v in self._request_headers(ctx) if k != "host"]
        hs.append(("x-forwarded-for", req.client_addr or ""))
        hs.append(("x-forwarded-proto", req.scheme))
        hs.append(("x-forwarded-host", req.host))
        for k, v in self.add_request_headers.items():
            hs.append((k.lower(), v))
        status, rh, body = await http.request(ctx.bind.services.pool, req.method, path, hs, b"", limit=64 * 1024)
        if 200 <= status < 300:
            inc = self.include_response
            headers = ctx.req.headers
            for k, v in rh:
                if inc is not None:
                    if k not in inc:
                        continue
                elif k in _NOT_FORWARDED:
                    continue
                if k == "host" or k in HOP_BY_HOP:
                    continue
                headers.set(k, v)
            return None
        return _reply(status if status >= 300 else 403, rh, body)
