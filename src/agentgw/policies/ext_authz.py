"""``extAuthz``: ask an external authorizer (OPA, Authorino, your own) about each request.

Two protocols, as in Envoy:

* ``protocol: {grpc: {context: {k: v}}}`` (the default) -- ``envoy.service.auth.v3.
  Authorization/Check``: a ``CheckRequest`` with the method, path, host, scheme, query,
  headers and the client address (``context`` becomes ``context_extensions``). An OK
  answer's ``headers`` are set on the upstream request, ``headers_to_remove`` removed,
  ``response_headers_to_add`` added to the client's response; a denial's status (403 if
  unset), headers and body are sent to the client.
* ``protocol: {http: {path, addRequestHeaders, body, includeResponseHeaders, redirect,
  metadata}}`` -- the request head is sent to the authorizer: the same method (or the
  ``:method`` of ``addRequestHeaders``), the path ``path`` gives (a CEL expression; by
  default the request's own path and query), the request's headers plus
  ``addRequestHeaders`` (CEL expressions), and ``body`` (a CEL expression: a string is
  sent as it is, other values as JSON) or no body. A 2xx allows, and the answer's
  headers (only those in ``includeResponseHeaders`` if given, else all but
  framing/standard ones) are set on the upstream request; ``metadata`` (CEL
  expressions over ``request`` and the answer as ``response.headers``, ``.body``,
  ``.code``) are evaluated and exposed as the CEL variable ``extauthz`` to later
  policies and the access log. A 401/403 with ``redirect`` set answers 302 to the
  location it gives; anything else is sent back to the client as the denial. A plain
  path instead of an expression (``path: /check``) is a prefix to the request's path,
  and a header value that is not an expression is sent as written (agentgw's earlier
  reading of both).

``cache: {key: [CEL...], ttl: CEL, maxEntries}`` keeps an answer (the headers it set,
its metadata, or the denial/redirect) by the values of ``key`` for the time ``ttl``
gives, evaluated after the answer is applied: a duration, or a timestamp / UNIX time
(``extauthz.expires - 5``) at which it expires. A key that does not evaluate is not
cached.

``includeRequestHeaders`` limits which request headers are sent. If the authorizer can't
be reached, times out (``timeout``, default 1s) or answers garbage, ``failureMode``
decides: ``deny`` (default; 403), ``{denyWithStatus: N}``, or ``allow``.
"""

from __future__ import annotations

import datetime
import logging
import time
import weakref
from typing import Any

import orjson

from ..cel import VARIABLES, activation, is_no_value, register_variable
from ..engine.http import HOP_BY_HOP, Headers, Reply, error_body
from ..proxy.policy import Policy
from .auth_common import HttpSideClient, SideCallError
from .grpc_unary import call_unary

log = logging.getLogger("agentgw.auth")

_NOT_FORWARDED = HOP_BY_HOP | {"content-length", "content-type", "date", "server", "content-encoding"}


class ExtAuthzFailure(Exception):
    pass


def _extauthz(ctx) -> dict:
    v = ctx.attrs.get("extauthz")
    return v if isinstance(v, dict) else {}


register_variable("extauthz", _extauthz)


def _eval(expr, ctx, extra: dict | None = None, act=None) -> Any:
    """The value of ``expr`` for this request; ``extra`` variables replace the request's;
    ``act``: an activation already built for the request."""
    if act is None:
        data = {name: VARIABLES[name](ctx) for name in expr.refs if not extra or name not in extra}
        if extra:
            data.update(extra)
        act = activation(data)
    res = expr.program.eval(act)
    if is_no_value(res):
        raise ValueError(f"{expr.source!r} did not evaluate")
    return res.value()


class _Request:
    """One activation over the request for all of a check's expressions, built on first use."""

    __slots__ = ("ctx", "names", "act")

    def __init__(self, ctx, names: frozenset):
        self.ctx = ctx
        self.names = names
        self.act = None

    def eval(self, expr) -> Any:
        if self.act is None:
            self.act = activation({n: VARIABLES[n](self.ctx) for n in self.names})
        return _eval(expr, self.ctx, act=self.act)


class _Cache:
    """Answers by key, bounded; ``(expires_at, kind, payload)`` per key."""

    __slots__ = ("keys", "ttl", "max_entries", "entries")

    def __init__(self, keys: list, ttl, max_entries: int):
        self.keys = keys
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: dict[tuple, tuple[float, str, Any]] = {}

    def key(self, ctx) -> tuple | None:
        if not self.keys or self.max_entries == 0:
            return None
        try:
            vals = tuple(_eval(k, ctx) for k in self.keys)
            hash(vals)
        except (ValueError, TypeError):
            return None
        return vals

    def get(self, key: tuple):
        hit = self.entries.get(key)
        if hit is None:
            return None
        if hit[0] > time.time():
            return hit
        del self.entries[key]
        return None

    def put(self, ctx, key: tuple, kind: str, payload) -> None:
        try:
            v = _eval(self.ttl, ctx)
        except ValueError as exc:
            log.debug("extAuthz: cache ttl: %s", exc)
            return
        now = time.time()
        if isinstance(v, datetime.timedelta):
            expires = now + v.total_seconds()
        elif isinstance(v, datetime.datetime):
            expires = v.timestamp()
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            expires = float(v)  # a UNIX time
        else:
            return
        if expires <= now:
            return
        entries = self.entries
        if len(entries) >= self.max_entries:
            for k in [k for k, e in entries.items() if e[0] <= now]:
                del entries[k]
            while len(entries) >= self.max_entries:
                del entries[next(iter(entries))]
        entries[key] = (expires, kind, payload)


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


#: what an HTTP check sends of the client's headers when includeRequestHeaders is unset
_HTTP_DEFAULT_HEADERS = frozenset({"authorization"})


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
        path_expr=None,
        header_exprs: list | None = None,
        body_expr=None,
        redirect=None,
        metadata: list | None = None,
        cache: _Cache | None = None,
    ):
        self.grpc = grpc
        self.http = http
        self.http_path = http_path.rstrip("/")
        self.path_expr = path_expr
        self.header_exprs = list(header_exprs or [])  # [(name, Expression)]
        self.body_expr = body_expr
        self.redirect = redirect
        self.metadata = list(metadata or [])  # [(name, Expression)]
        self.cache = cache
        exprs = [path_expr, body_expr, redirect, *(x for _, x in self.header_exprs)]
        self._names = frozenset(n for x in exprs if x is not None for n in x.refs)
        self.add_request_headers = dict(add_request_headers or {})
        self.include_response = {h.lower() for h in include_response_headers} if include_response_headers else None
        self.include_request = {h.lower() for h in include_request_headers} if include_request_headers else None
        self.context = dict(context or {})
        self.failure_allow = failure_allow
        self.failure_status = failure_status

    def on_request(self, ctx):
        cache = self.cache
        if cache is not None:
            key = cache.key(ctx)
            if key is not None:
                hit = cache.get(key)
                if hit is not None:
                    return self._replay(ctx, hit[1], hit[2])
            return self._check(ctx, key)
        return self._check(ctx)

    def _replay(self, ctx, kind: str, payload):
        if kind == "allow":
            headers, meta = payload
            for k, v in headers:
                ctx.req.headers.set(k, v)
            if meta is not None:
                ctx.attrs["extauthz"] = meta
            return None
        status, hs, body = payload
        return Reply(status, Headers(list(hs)), body)

    def _request_headers(self, ctx, default: frozenset[str] | None = None):
        """The client's headers the check carries: ``includeRequestHeaders``, or when it is
        unset ``default`` (None: all of them)."""
        inc = self.include_request if self.include_request is not None else default
        for k, v in ctx.req.headers:
            if k in HOP_BY_HOP or k == "content-length":
                continue
            if inc is None or k in inc or k == "host":
                yield k, v

    async def _check(self, ctx, key: tuple | None = None):
        grpc, http = self.grpc, self.http
        try:
            if grpc is not None:
                return await self._check_grpc(ctx, grpc)
            if http is None:  # (compiled with one transport or the other)
                raise RuntimeError("extAuthz has no authorization service")
            return await self._check_http(ctx, http, key)
        except (TimeoutError, ExtAuthzFailure, SideCallError, ValueError, TypeError) as exc:
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
    async def _check_http(self, ctx, http: HttpSideClient, key: tuple | None = None):
        req = ctx.req
        target = ctx.path + (f"?{ctx.query}" if ctx.query else "")
        rq = _Request(ctx, self._names)
        if self.path_expr is not None:
            path = rq.eval(self.path_expr)
            if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n\x00"):
                raise ValueError(f"path {self.path_expr.source!r} did not give a path")
        else:
            path = self.http_path + target
        method = req.method
        authority = None
        # over HTTP only Authorization goes by default, as agentgateway does (its gRPC
        # check carries every header): cookies and the rest stay with the gateway
        hs = [(k, v) for k, v in self._request_headers(ctx, _HTTP_DEFAULT_HEADERS) if k != "host"]
        hs.append(("x-forwarded-for", req.client_addr or ""))
        hs.append(("x-forwarded-proto", req.scheme))
        hs.append(("x-forwarded-host", req.host))
        for k, v in self.add_request_headers.items():
            hs.append((k.lower(), v))
        for name, expr in self.header_exprs:
            try:
                v = rq.eval(expr)
            except ValueError:
                continue  # no value: the header is not sent
            v = v if isinstance(v, str) else orjson.dumps(v).decode() if not isinstance(v, bytes) else v.decode()
            if any(c in v for c in "\r\n\x00"):
                continue
            if name == ":method":
                method = v.upper()
            elif name == ":authority":
                if any(c in v for c in " /?#@"):
                    continue  # not an authority: the address's own goes
                authority = v
            elif not name.startswith(":"):
                hs = [kv for kv in hs if kv[0] != name] + [(name, v)]
        body = b""
        if self.body_expr is not None:
            b = rq.eval(self.body_expr)
            body = b.encode() if isinstance(b, str) else b if isinstance(b, bytes) else orjson.dumps(b)
            if not any(k == "content-type" for k, _ in hs):
                hs.append(("content-type", "application/json" if not isinstance(b, (str, bytes)) else "text/plain"))
        status, rh, rbody = await http.request(
            ctx.bind.services.pool, method, path, hs, body, limit=256 * 1024, authority=authority
        )
        cache = self.cache if key is not None else None
        ckey: tuple = key or ()
        if 200 <= status < 300:
            inc = self.include_response
            headers = ctx.req.headers
            kept = []
            for k, v in rh:
                if inc is not None:
                    if k not in inc:
                        continue
                elif k in _NOT_FORWARDED:
                    continue
                if k == "host" or k in HOP_BY_HOP:
                    continue
                headers.set(k, v)
                kept.append((k, v))
            meta = None
            if self.metadata:
                response = {
                    "code": status,
                    "headers": _headers_map(rh),
                    "body": rbody.decode("utf-8", "replace"),
                }
                meta = {}
                for name, expr in self.metadata:
                    try:
                        meta[name] = _eval(expr, ctx, {"response": response})
                    except ValueError as exc:
                        log.debug("extAuthz: metadata %s: %s", name, exc)
                ctx.attrs["extauthz"] = meta
            if cache is not None:
                cache.put(ctx, ckey, "allow", (kept, meta))
            return None
        if status in (401, 403) and self.redirect is not None:
            loc = rq.eval(self.redirect)
            if not isinstance(loc, str) or any(c in loc for c in "\r\n\x00"):
                raise ValueError(f"redirect {self.redirect.source!r} did not give a location")
            reply = Reply(302, Headers([("location", loc)]), b"")
            if cache is not None:
                cache.put(ctx, ckey, "deny", (302, [("location", loc)], b""))
            return reply
        reply = _reply(status if status >= 300 else 403, rh, rbody)
        if cache is not None and status in (401, 403):
            cache.put(ctx, ckey, "deny", (reply.status, list(reply.headers), reply.body))
        return reply


def _headers_map(h) -> dict:
    out: dict[str, str] = {}
    for k, v in h:
        out[k] = v if k not in out else f"{out[k]}, {v}"
    return out
