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

Descriptors that read ``mcp.*`` are checked by the MCP backend per tool call (when the
tool and target are known); ``type: tokens`` descriptors gate requests while the window
has tokens left and are charged the LLM response's token usage afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from functools import partial
from typing import ClassVar

import hiredis

from ..cel import Expression, _Binder, activation, is_no_value
from ..engine.http import Headers, Reply
from .base import Deferred, Policy

log = logging.getLogger("agentgw.ratelimit")

# KEYS: counters. ARGV[i]: the amount to add to KEYS[i], or "g" to only read it.
# ARGV[#KEYS + 1]: TTL in ms for a counter this call creates.
_SCRIPT = """
local ttl = ARGV[#KEYS + 1]
local out = {}
for i, k in ipairs(KEYS) do
  local a = ARGV[i]
  if a == 'g' then
    out[i] = tonumber(redis.call('GET', k) or '0')
  else
    local n = tonumber(a)
    local c = redis.call('INCRBY', k, n)
    if c == n then redis.call('PEXPIRE', k, ttl) end
    out[i] = c
  end
end
return out
"""


class _Values:
    """CEL values of a descriptor's entries (compiled once; memoised per input)."""

    __slots__ = ("keys", "exprs", "binder", "memo", "uses_mcp", "uses_llm", "stringify")

    def __init__(self, entries: list[tuple[str, str]], when: str | None = None, stringify: bool = True):
        self.stringify = stringify  # False: keep bool/int/float values as they are (logs, spans)

        self.keys = tuple(k for k, _ in entries)
        self.exprs = [Expression(v) for _, v in entries]
        if when is not None:  # evaluated first; must be true for the entries to count
            self.exprs.insert(0, Expression(f"({when}) ? true : false"))
        self.binder = _Binder(self.exprs)
        self.memo: dict = {}
        names = set()
        for e in self.exprs:
            names.update(e.refs)
        self.uses_mcp = "mcp" in names
        self.uses_llm = "llm" in names

    def evaluate(self, ctx) -> tuple | None:
        """The entry values as strings, or None when the descriptor doesn't apply."""
        return self.binder.memoized(ctx, self.memo, self._evaluate)

    def _evaluate(self, data: dict) -> tuple | None:
        act = activation(data)
        out = []
        for e in self.exprs:
            try:
                r = e.program.eval(act)
                if is_no_value(r):  # a missing key, a type error...: no value
                    return None
                v = r.value()
            except Exception:
                return None
            if isinstance(v, bool):
                v = ("true" if v else "false") if self.stringify else v
            elif isinstance(v, (int, float, str)):
                v = str(v) if self.stringify else v
            else:  # an error value, a map, a list: no usable value
                return None
            out.append(v)
        if len(out) > len(self.keys):  # the `when` condition
            if out[0] not in ("true", True):
                return None
            out = out[1:]
        return tuple(out)


def _limit_reply(limit: int, reset: float, message: str = "rate limit exceeded") -> Reply:
    r = str(max(1, math.ceil(reset)))
    h = Headers(
        [
            ("retry-after", r),
            ("x-ratelimit-limit", str(limit)),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", r),
        ]
    )
    return Reply.error(429, "rate_limited", message, h)


def _unavailable_reply() -> Reply:
    return Reply.error(503, "rate_limit_unavailable", "the rate limit service is unavailable")


class LimiterMetrics:
    def __init__(self, services):
        metrics = getattr(services, "metrics", None)
        if metrics is None:
            from ..telemetry.metrics import Metrics

            m = Metrics()
        else:
            m = metrics.m
        self.checks = m.counter(
            "agentgw_ratelimit_checks_total",
            "Global rate limit decisions by limiter (redis, rls) and result "
            "(allowed, limited, failed_open, failed_closed).",
            ("limiter", "result"),
        )
        self.errors = m.counter(
            "agentgw_ratelimit_errors_total", "Failed calls to the rate limit store or service.", ("limiter", "type")
        )
        self._last_log = 0.0

    def failure(self, limiter: str, kind: str, exc: BaseException, mode: str) -> None:
        self.errors.inc((limiter, kind))
        now = time.monotonic()
        if now - self._last_log >= 10.0:
            self._last_log = now
            log.warning(
                "%s rate limiter unavailable (%s: %s); failure mode %s: %s",
                limiter,
                kind,
                str(exc) or "no answer within the timeout",
                mode,
                "allowing requests" if mode == "failOpen" else "refusing requests with 503",
            )


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _RespConnection(asyncio.Protocol):
    """One pipelined connection: commands are written as they come, replies matched FIFO.
    RESP framing is hiredis's (the C parser redis-py uses when it is installed)."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.reader = hiredis.Reader(replyError=RedisReplyError)
        self.waiters: deque = deque()
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        try:
            import socket

            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiters = self.waiters
        while True:
            try:
                value = reader.gets()
            except hiredis.ProtocolError:
                log.warning("redis: malformed reply; reconnecting")
                self.transport.close()  # waiters fail in connection_lost
                return
            if value is False:
                return
            fut = waiters.popleft() if waiters else None
            if fut is not None and not fut.done():
                if isinstance(value, RedisReplyError):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)

    def connection_lost(self, exc) -> None:
        self.lost = True
        err = ConnectionError(f"redis connection lost: {exc}" if exc else "redis connection closed")
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(err)

    def call(self, *args) -> asyncio.Future:
        fut = self.loop.create_future()
        if self.lost:
            fut.set_exception(ConnectionError("redis connection closed"))
            return fut
        self.waiters.append(fut)
        self.transport.write(hiredis.pack_command(args))
        return fut

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.close()


class RedisStore:
    """One pipelined Redis connection per URL per process; checks batched per loop tick.

    The hot path uses its own pipelined connection, with hiredis packing commands and
    parsing replies (a command is a few bytes; the reply an array of integers): a general
    client's per-call machinery (pool checkout, per-read timeouts) cost several times the
    round trip in measurements, and this is the one call every limited request makes.
    The URL is parsed by redis-py (``redis://``, ``rediss://``, user, password, database).
    """

    _by_url: ClassVar[dict[str, RedisStore]] = {}

    @classmethod
    def get(cls, url: str, timeout: float) -> RedisStore:
        st = cls._by_url.get(url)
        if st is None:
            st = cls._by_url[url] = cls(url)
        st.timeout = timeout
        return st

    def __init__(self, url: str):
        from redis.asyncio.connection import SSLConnection, parse_url

        self.url = url
        opts = parse_url(url)
        self.host = opts.get("host", "127.0.0.1")
        self.port = int(opts.get("port", 6379))
        self.db = int(opts.get("db", 0) or 0)
        self.username = opts.get("username")
        self.password = opts.get("password")
        self.tls = opts.get("connection_class") is SSLConnection
        self.timeout = 0.1
        self.conn: _RespConnection | None = None
        self.connecting: asyncio.Future | None = None
        self.sha: str | None = None
        self.pending: list = []  # (keys, args, future)
        self.scheduled = False
        self.down_until = 0.0

    async def _connect(self) -> _RespConnection:
        loop = asyncio.get_running_loop()
        ssl_ctx = None
        if self.tls:
            import ssl

            ssl_ctx = ssl.create_default_context()
        _, conn = await loop.create_connection(lambda: _RespConnection(loop), self.host, self.port, ssl=ssl_ctx)
        try:
            if self.password is not None:
                auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
                await conn.call(*auth)
            if self.db:
                await conn.call("SELECT", self.db)
            self.sha = (await conn.call("SCRIPT", "LOAD", _SCRIPT)).decode()
        except BaseException:
            conn.close()
            raise
        return conn

    async def _connection(self) -> _RespConnection:
        conn = self.conn
        if conn is not None and not conn.lost:
            return conn
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self._connect())
        fut = self.connecting
        try:
            conn = await asyncio.shield(fut)
        finally:
            if fut.done() and self.connecting is fut:
                self.connecting = None
        self.conn = conn
        return conn

    def check(self, keys: list, args: list, loop=None) -> asyncio.Future:
        """Future of the counters after the update (an exception when Redis failed).

        Request paths pass their loop: ``asyncio.get_running_loop()`` costs a
        ``getpid()`` system call on every call in CPython 3.11."""
        if loop is None:
            loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if time.monotonic() < self.down_until:
            fut.set_exception(ConnectionError("redis marked down after a recent failure"))
            return fut
        self.pending.append((keys, args, fut))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._flush, loop)
        return fut

    def _flush(self, loop) -> None:
        batch, self.pending, self.scheduled = self.pending, [], False
        if not batch:
            return
        conn = self.conn
        if conn is None or conn.lost or self.sha is None:
            loop.create_task(self._connect_then_send(batch, loop))
        else:
            self._send(conn, batch, loop)

    async def _connect_then_send(self, batch: list, loop) -> None:
        try:
            conn = await asyncio.wait_for(self._connection(), self.timeout)
        except Exception as exc:
            self._fail(batch, exc if str(exc) else TimeoutError("no connection within the timeout"))
            return
        self._send(conn, batch, loop)

    def _send(self, conn, batch: list, loop, retried: bool = False) -> None:
        """One EVALSHA for the whole batch; no task, no coroutine: callbacks only."""
        keys: list = []
        args: list = []
        ttl = 0
        for k, a, _ in batch:
            keys.extend(k)
            args.extend(a[:-1])
            ttl = max(ttl, a[-1])
        args.append(ttl)
        fut = conn.call("EVALSHA", self.sha, len(keys), *keys, *args)
        timer = loop.call_later(self.timeout, self._expire, fut, conn)

        def done(f):
            timer.cancel()
            if f.cancelled():
                self._fail(batch, TimeoutError("no answer within the timeout"))
                return
            exc = f.exception()
            if exc is None:
                res = f.result()
                i = 0
                for k, _, w in batch:
                    n = len(k)
                    if not w.done():
                        w.set_result(res[i : i + n])
                    i += n
            elif isinstance(exc, RedisReplyError) and str(exc).startswith("NOSCRIPT") and not retried:
                self.sha = None  # Redis restarted: scripts are gone; load again, resend once
                loop.create_task(self._reload_then_send(conn, batch, loop))
            else:
                self._fail(batch, exc)

        fut.add_done_callback(done)

    async def _reload_then_send(self, conn, batch, loop) -> None:
        try:
            self.sha = (await asyncio.wait_for(conn.call("SCRIPT", "LOAD", _SCRIPT), self.timeout)).decode()
        except Exception as exc:
            self._fail(batch, exc)
            return
        self._send(conn, batch, loop, retried=True)

    @staticmethod
    def _expire(fut, conn) -> None:
        if not fut.done():
            fut.cancel()
            conn.close()  # replies may still come: start over on a fresh connection

    def _fail(self, batch: list, exc: BaseException) -> None:
        if not isinstance(exc, RedisReplyError):
            self.down_until = time.monotonic() + 0.25
            if self.conn is not None:
                self.conn.close()
                self.conn = None
        for _, _, w in batch:
            if not w.done():
                w.set_exception(exc)

    def incr(self, keys: list, amount: int, ttl_ms: int) -> None:
        """Fire-and-forget charge (LLM token usage after the response)."""
        if time.monotonic() < self.down_until or not keys:
            return
        fut = self.check(keys, [amount] * len(keys) + [ttl_ms])
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())


class _Descriptor:
    __slots__ = ("index", "values", "limit", "window", "tokens")

    def __init__(self, index: int, values: _Values, limit: int, window: int, tokens: bool):
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
            return _unavailable_reply()
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
                return _limit_reply(d.limit, start + d.window - now)
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


def compile_rate_limits(compiler, p, path: str, route_id: str) -> list:
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
                vals = _Values([(e.key, e.value) for e in d.entries], d.when)
            except CelError as exc:
                compiler.errors.add(f"{path}.globalRateLimit.descriptors[{di}].entries", str(exc))
                continue
            descs.append(
                _Descriptor(di, vals, d.rate_limit.requests_per_unit, d.rate_limit.seconds, d.type == "tokens")
            )
        timeout = float(g.redis.timeout) if g.redis.timeout is not None else 0.1
        store = RedisStore.get(g.redis.url, timeout)
        if not getattr(compiler, "_limiter_metrics", None):
            compiler._limiter_metrics = LimiterMetrics(services)
        out.append(
            GlobalRateLimit(
                store,
                descs,
                g.redis.key_prefix,
                g.failure_mode == "failOpen",
                g.window == "sliding",
                compiler._limiter_metrics,
                route_id,
            )
        )
    r = getattr(p, "remote_rate_limit", None)
    if r is not None:
        from .remote_ratelimit import compile_remote

        if not getattr(compiler, "_limiter_metrics", None):
            compiler._limiter_metrics = LimiterMetrics(services)
        pol = compile_remote(compiler, r, f"{path}.remoteRateLimit", compiler._limiter_metrics)
        if pol is not None:
            out.append(pol)
    return out
