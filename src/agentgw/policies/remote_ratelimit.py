"""``remoteRateLimit``: ask an Envoy rate-limit service (``envoy.service.ratelimit.v3``).

agentgateway's shape::

    remoteRateLimit:
      domain: agentgateway
      host: ratelimit.default.svc:8081
      failureMode: failOpen          # or failClosed (503 while the service is unreachable)
      descriptors:
      - entries: [{key: user, value: jwt.sub}, {key: tool, value: '"echo"'}]
        type: requests

Each descriptor whose entry values all evaluate (CEL) is sent in one ``ShouldRateLimit``
call per request; ``OVER_LIMIT`` answers 429 with ``Retry-After`` from the service's
``duration_until_reset``, and the service's ``response_headers_to_add`` go on the
response. ``type: tokens`` descriptors are not checked up front: the LLM response's
token usage is reported afterwards (``hits_addend``), so later requests see it. Errors
and timeouts (``timeout``, default 200 ms) apply ``failureMode``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

from ..proxy.policy import Policy
from .descriptors import DescriptorValues, LimiterMetrics, limit_reply, unavailable_reply
from .grpc_unary import call_unary

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope


class RlsClient:
    """A blocking grpc channel whose futures are bridged onto the event loop."""

    def __init__(self, address: str, timeout: float):
        self.address = address
        self.timeout = timeout
        self._call = None

    def _callable(self):
        if self._call is None:
            import grpc

            from . import rls_proto as pb

            ch = grpc.insecure_channel(self.address)
            self._channel = ch
            weakref.finalize(self, ch.close)
            self._call = ch.unary_unary(
                pb.METHOD,
                request_serializer=pb.RateLimitRequest.SerializeToString,
                response_deserializer=pb.RateLimitResponse.FromString,
            )
        return self._call

    async def should_rate_limit(self, request):
        return await call_unary(self._callable(), request, self.timeout)


class _TokenReport:
    """Duck-types ``TokenBucket`` for the LLM backend: reports usage as ``hits_addend``."""

    __slots__ = ("policy", "descs", "tokens")

    def __init__(self, policy, descs):
        self.policy = policy
        self.descs = descs
        self.tokens = float("inf")

    def available(self) -> bool:
        return True

    def charge(self, n: float) -> None:
        n = int(n)
        if n <= 0:
            return
        req = self.policy._request(self.descs, n)
        task = asyncio.get_running_loop().create_task(self.policy.client.should_rate_limit(req))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


class RemoteRateLimit(Policy):
    order = 52

    def __init__(self, domain: str, client: RlsClient, descriptors: list, fail_open: bool, metrics: LimiterMetrics):
        self.domain = domain
        self.client = client
        self.requests = [v for v, tokens in descriptors if not tokens]
        self.token_descs = [v for v, tokens in descriptors if tokens]
        self.fail_open = fail_open
        self.mode = "failOpen" if fail_open else "failClosed"
        self.metrics = metrics

    def _request(self, descs: list, hits: int):
        from . import rls_proto as pb

        req = pb.RateLimitRequest(domain=self.domain, hits_addend=hits)
        for keys, vals in descs:
            d = req.descriptors.add()
            for k, v in zip(keys, vals):
                d.entries.add(key=k, value=v)
        return req

    def on_request(self, ctx):
        if self.token_descs:
            tds = [(v.keys, vals) for v in self.token_descs if (vals := v.evaluate(ctx)) is not None]
            if tds:
                lst = ctx.attrs.get("token_buckets")
                rep = _TokenReport(self, tds)
                ctx.attrs["token_buckets"] = (list(lst) + [rep]) if lst else [rep]
        descs = [(v.keys, vals) for v in self.requests if (vals := v.evaluate(ctx)) is not None]
        if not descs:
            return None
        return self._check(ctx, self._request(descs, 1))

    async def _check(self, ctx, req):
        from . import rls_proto as pb

        m = self.metrics
        try:
            resp = await self.client.should_rate_limit(req)
        except Exception as exc:
            code = getattr(exc, "code", None)
            kind = code().name.lower() if callable(code) else type(exc).__name__
            m.failure("rls", kind, exc, self.mode)
            if self.fail_open:
                m.checks.inc(("rls", "failed_open"))
                return None
            m.checks.inc(("rls", "failed_closed"))
            return unavailable_reply()
        if resp.response_headers_to_add:
            extra = [(h.key.lower(), h.value) for h in resp.response_headers_to_add]
            ctx.add_response_hook(lambda _c, _s, headers: headers.extend(extra))
        if resp.overall_code == pb.OVER_LIMIT:
            m.checks.inc(("rls", "limited"))
            reset, limit = 1.0, 0
            for st in resp.statuses:
                if st.code == pb.OVER_LIMIT:
                    d = st.duration_until_reset
                    reset = max(1.0, d.seconds + d.nanos / 1e9)
                    limit = st.current_limit.requests_per_unit
                    break
            return limit_reply(limit, reset)
        m.checks.inc(("rls", "allowed"))
        return None


def compile_remote(compiler: CompileScope, r, path: str, metrics: LimiterMetrics):
    from ..cel import CelError

    descs = []
    for di, d in enumerate(r.descriptors):
        try:
            descs.append((DescriptorValues([(e.key, e.value) for e in d.entries]), d.type == "tokens"))
        except CelError as exc:
            compiler.errors.add(f"{path}.descriptors[{di}].entries", str(exc))
    host = r.host
    if "://" in host:
        host = host.split("://", 1)[1]
    timeout = float(r.timeout) if r.timeout is not None else 0.2
    return RemoteRateLimit(r.domain, RlsClient(host, timeout), descs, r.failure_mode == "failOpen", metrics)
