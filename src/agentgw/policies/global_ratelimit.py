"""``globalRateLimit``: one limit for every process and replica, counted in Redis.

An agentgw extension (agentgateway's global limits go through an Envoy rate-limit
service: ``remoteRateLimit``, which agentgw also speaks). The shape mirrors a
``RateLimitConfig``: each descriptor is a list of ``entries`` (a key and a CEL
expression for its value) plus ``rateLimit: {requestsPerUnit, unit}``::

    globalRateLimit:
      redis: {url: redis://redis:6379/0, timeout: 100ms}
      failureMode: failOpen            # or failClosed (503 while Redis is unreachable)
      window: fixed                    # or sliding
      descriptors:
      - entries: [{key: generic_key, value: '"counter"'}]
        rateLimit: {requestsPerUnit: 5, unit: MINUTE}
      - entries: [{key: user, value: jwt.sub}]
        rateLimit: {requestsPerUnit: 100, unit: MINUTE}

A descriptor whose entries don't all evaluate to a value (a missing claim, an error)
doesn't apply to the request, as in Envoy. A request passes when every applicable
descriptor is under its limit.

Counting: a fixed window is one counter per (descriptor, values, window start), bumped
with ``INCRBY`` and given a TTL when created; the request is allowed while the count is
at most the limit. ``sliding`` also reads the previous window's counter and weighs it by
the part of that window still inside the sliding one (the usual two-window estimate).
Every check a process makes within one event-loop tick goes to Redis as **one** script
call (``EVALSHA`` over all their keys), so a busy gateway makes one round trip per tick,
not per request. Each call has a short deadline (``redis.timeout``, 100 ms by default);
a failed or late answer applies ``failureMode`` to the requests that were waiting, is
counted in ``agentgw_ratelimit_errors_total`` and logged (at most once every 10 s), and
Redis is left alone for 250 ms before the next try, so an outage never stalls traffic.
The connection, batching and script are :mod:`.redis_client`'s.

Descriptors that read ``mcp.*`` are checked by the MCP backend per tool call (when the
tool and target are known); ``type: tokens`` descriptors gate requests while the window
has tokens left and are charged the LLM response's token usage afterwards.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING

from ..proxy.policy import Deferred, Policy
from .descriptors import DescriptorValues, LimiterMetrics, limit_reply, unavailable_reply
from .redis_client import RedisStore, parse_redis_url

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope


class _Descriptor:
    __slots__ = ("index", "values", "limit", "window", "tokens")

    def __init__(self, index: int, values: DescriptorValues, limit: int, window: int, tokens: bool):
        self.index = index
        self.values = values
        self.limit = limit
        self.window = window
        self.tokens = tokens


class _TokenCharge:
    """Duck-types :class:`TokenBucket` for the LLM backend's after-the-fact charge."""

    __slots__ = ("store", "keys", "ttl_ms", "tokens")

    def __init__(self, store: RedisStore, keys: list, ttl_ms: int):
        self.store = store
        self.keys = keys
        self.ttl_ms = ttl_ms
        self.tokens = float("inf")  # pre-count estimates are not checked against Redis

    def available(self) -> bool:
        return True

    def charge(self, n: float) -> None:
        n = int(n)
        if n > 0:
            self.store.incr(self.keys, n, self.ttl_ms)


class GlobalRateLimit(Policy):
    """Request-phase check of the non-MCP descriptors (the MCP ones run per tool call)."""

    order = 51

    def __init__(
        self,
        store: RedisStore,
        descriptors: list[_Descriptor],
        prefix: str,
        fail_open: bool,
        sliding: bool,
        metrics: LimiterMetrics,
        route_id: str,
    ):
        self.store = store
        self.request_desc = [d for d in descriptors if not d.values.uses_mcp]
        self.mcp_desc = [d for d in descriptors if d.values.uses_mcp]
        self.prefix = f"{{{prefix}}}:{route_id}"  # hash tag: one cluster slot per route
        self.fail_open = fail_open
        self.mode = "failOpen" if fail_open else "failClosed"
        self.sliding = sliding
        self.metrics = metrics
        self.needs_llm = any(d.values.uses_llm for d in descriptors)

    # -- request phase --------------------------------------------------------------------
    def on_request(self, ctx):
        if self.mcp_desc:
            ctx.attrs["mcp_rate_limit"] = self.check_tool
        if not self.request_desc:
            return None
        if self.needs_llm and "llm" not in ctx.attrs:
            return self._with_model(ctx)
        return self._check(ctx, self.request_desc)

    async def _with_model(self, ctx):
        body = ctx.req.body
        try:
            data = body.buffered() if body.complete else await body.read_all()
            import orjson

            doc = orjson.loads(data) if data else {}
            if isinstance(doc, dict) and isinstance(doc.get("model"), str):
                ctx.attrs["llm"] = {"model": doc["model"]}
        except Exception:
            pass
        r = self._check(ctx, self.request_desc)
        return (await r) if r is not None else None

    def _plan(self, ctx, descs):
        now = time.time()
        keys: list = []
        args: list = []
        checks = []  # (descriptor, index of its counter in keys, weight of prev or None)
        ttl = 0
        for d in descs:
            vals = d.values.evaluate(ctx)
            if vals is None:
                continue
            w = d.window
            start = int(now // w) * w
            base = f"{self.prefix}:{d.index}:" + "\x1f".join(vals)
            checks.append((d, len(keys), start, None))
            keys.append(f"{base}:{start}")
            args.append(0 if d.tokens else 1)
            if self.sliding:
                weight = 1.0 - (now - start) / w
                checks[-1] = (d, len(keys) - 1, start, weight)
                keys.append(f"{base}:{start - w}")
                args.append("g")
            ttl = max(ttl, int(w * (2000 if self.sliding else 1000)) + 1000)
        return keys, args, checks, ttl

    def _check(self, ctx, descs):
        keys, args, checks, ttl = self._plan(ctx, descs)
        if not keys:
            return None
        args.append(ttl)
        fut = self.store.check(keys, args, ctx.bind.services.loop)
        return Deferred(fut, partial(self._decide, ctx, keys, checks, ttl))

    def _decide(self, ctx, keys, checks, ttl, fut: asyncio.Future):
        """The answer once Redis replied (or failed): None, 429, or the failure mode's."""
        m = self.metrics
        exc = TimeoutError("no answer within the timeout") if fut.cancelled() else fut.exception()
        if exc is not None:  # Redis down, timeout, protocol error
            kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            m.failure("redis", kind, exc, self.mode)
            if self.fail_open:
                m.checks.inc(("redis", "failed_open"))
                return None
            m.checks.inc(("redis", "failed_closed"))
            return unavailable_reply()
        counts = fut.result()
        now = time.time()
        token_keys = []
        for d, i, start, weight in checks:
            count = counts[i]
            if weight is not None:
                count = count + counts[i + 1] * weight
            if d.tokens:
                token_keys.append(keys[i])
                over = count >= d.limit
            else:
                over = count > d.limit
            if over:
                m.checks.inc(("redis", "limited"))
                return limit_reply(d.limit, start + d.window - now)
        if token_keys:
            lst = ctx.attrs.get("token_buckets")
            charge = _TokenCharge(self.store, token_keys, ttl)
            ctx.attrs["token_buckets"] = (list(lst) + [charge]) if lst else [charge]
        m.checks.inc(("redis", "allowed"))
        return None

    # -- MCP phase --------------------------------------------------------------------------
    async def check_tool(self, ctx, target: str, tool: str) -> str | None:
        """Called by the MCP backend for a ``tools/call``: None, or why it is refused."""
        mcp = ctx.attrs.get("mcp")
        if not isinstance(mcp, dict) or (mcp.get("tool") or {}).get("name") != tool:
            ctx.attrs["mcp"] = {"method": "tools/call", "tool": {"name": tool, "target": target}}
        r = self._check(ctx, self.mcp_desc)
        if r is None:
            return None
        r = await r
        if r is None:
            return None
        if r.status == 503:
            return "rate limit service unavailable"
        return f"rate limit exceeded for tool {tool!r}"


def compile_rate_limits(compiler: CompileScope, p, path: str, route_id: str) -> list:
    """``globalRateLimit`` and ``remoteRateLimit`` of a policy block → policies."""
    out: list = []
    if p is None:
        return out
    services = compiler.services
    g = getattr(p, "global_rate_limit", None)
    if g is not None:
        from ..cel import CelError

        descs = []
        for di, d in enumerate(g.descriptors):
            try:
                vals = DescriptorValues([(e.key, e.value) for e in d.entries], d.when)
            except CelError as exc:
                compiler.errors.add(f"{path}.globalRateLimit.descriptors[{di}].entries", str(exc))
                continue
            descs.append(
                _Descriptor(di, vals, d.rate_limit.requests_per_unit, d.rate_limit.seconds, d.type == "tokens")
            )
        try:
            address = parse_redis_url(g.redis.url)
        except ValueError as exc:
            compiler.errors.add(f"{path}.globalRateLimit.redis.url", str(exc))
            address = None
        timeout = float(g.redis.timeout) if g.redis.timeout is not None else 0.1
        limiter_metrics = compiler.shared("limiter_metrics", lambda: LimiterMetrics(services))
        if address is not None:
            out.append(
                GlobalRateLimit(
                    RedisStore.get(address, timeout),
                    descs,
                    g.redis.key_prefix,
                    g.failure_mode == "failOpen",
                    g.window == "sliding",
                    limiter_metrics,
                    route_id,
                )
            )
    r = getattr(p, "remote_rate_limit", None)
    if r is not None:
        from .remote_ratelimit import compile_remote

        metrics = compiler.shared("limiter_metrics", lambda: LimiterMetrics(services))
        pol = compile_remote(compiler, r, f"{path}.remoteRateLimit", metrics)
        if pol is not None:
            out.append(pol)
    return out
