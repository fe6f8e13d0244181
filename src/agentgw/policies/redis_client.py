"""The Redis side of ``globalRateLimit``: one pipelined connection per Redis and timeout.

Every check a process makes within one event-loop tick goes to Redis as **one**
``EVALSHA`` of :data:`COUNTER_SCRIPT` over all their keys, so a busy gateway makes one
round trip per tick, not per request. Commands are written as they come and replies
matched in order by callbacks (RESP framing by hiredis, the C parser redis-py uses):
a check is a future resolved from the connection's read callback, with no task and no
coroutine, which lets the gateway's fast path resume a request straight from it
(:class:`~agentgw.policies.base.Deferred`).

This is not redis-py's asyncio client on purpose: its per-call machinery (coroutines
through the client, pool, connection and stream reader, a timeout context per read)
made a checked request cost 1.7× (a connection driven directly) to 2.3× (the client)
the instructions it costs here, and doubled the round trip (bench/RESULTS.md).

Each batch has a deadline (``redis.timeout``, the connect included); a failed or late
answer fails the batch's checks, closes the connection, and leaves Redis alone for
250 ms, so an outage never stalls traffic; the next check reconnects. A Redis that lost
the script (a restart) gets it loaded again and the batch resent once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import deque
from typing import ClassVar, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import hiredis

log = logging.getLogger("agentgw.ratelimit")

#: KEYS: counters. ARGV[i]: the amount to add to KEYS[i], or "g" to only read it.
#: ARGV[#KEYS + 1]: TTL in ms for a counter this call creates. Returns the counters.
COUNTER_SCRIPT = """
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

#: After a failure, checks fail at once for this long (no pile-up behind a dead server).
DOWN_FOR = 0.25


class RedisAddress(NamedTuple):
    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS.

    Raises ValueError for anything else; the message never repeats the URL (it may
    hold a password)."""
    try:
        u = urlsplit(url.strip())
        port = u.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    scheme = u.scheme.lower()
    if scheme not in ("redis", "rediss"):
        what = f"scheme {scheme!r} is not supported" if scheme else "no scheme"
        raise ValueError(f"{what}: redis:// or rediss:// (TLS)")
    if not u.hostname:
        raise ValueError("no host")
    if port == 0:
        raise ValueError("port 0")
    db_text = u.path[1:] if u.path.startswith("/") else u.path
    for k, v in parse_qsl(u.query, keep_blank_values=True):
        if k != "db":
            raise ValueError(f"URL parameter {k!r} is not supported (only db)")
        db_text = v
    if u.fragment:
        raise ValueError("a URL fragment (#...) is not supported")
    if db_text and not (db_text.isascii() and db_text.isdigit()):
        raise ValueError("the path must be a database number (/0)")
    username = unquote(u.username) if u.username else None
    password = unquote(u.password) if u.password is not None else None
    if username and password is None:
        raise ValueError("a user name needs a password (redis://user:password@host)")
    return RedisAddress(u.hostname, port or 6379, int(db_text or 0), username, password, scheme == "rediss")


class RedisReplyError(Exception):
    """An error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _RespConnection(asyncio.Protocol):
    """One pipelined connection: commands are written as they come, replies matched FIFO."""

    # (set by connection_made: create_connection hands the protocol out only after it)
    transport: asyncio.Transport

    def __init__(self, loop):
        self.loop = loop
        self.reader = hiredis.Reader(replyError=RedisReplyError)
        self.waiters: deque = deque()
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        try:
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
    """Counters in one Redis, checked in batches (one per loop tick) on one connection.

    One store per (address, timeout) per process, kept across config reloads, so a
    route's ``redis.timeout`` is its own even when routes share a Redis."""

    _stores: ClassVar[dict[tuple[RedisAddress, float], RedisStore]] = {}

    @classmethod
    def get(cls, address: RedisAddress, timeout: float) -> RedisStore:
        key = (address, timeout)
        st = cls._stores.get(key)
        if st is None:
            st = cls._stores[key] = cls(address, timeout)
        return st

    def __init__(self, address: RedisAddress, timeout: float):
        self.address = address
        self.timeout = timeout
        self.conn: _RespConnection | None = None
        self.connecting: asyncio.Future[_RespConnection] | None = None
        self.sha: str | None = None
        self.pending: list = []  # (keys, args, future)
        self.scheduled = False
        self.down_until = 0.0

    async def _connect(self) -> _RespConnection:
        loop = asyncio.get_running_loop()
        a = self.address
        ssl_ctx = ssl.create_default_context() if a.tls else None
        _, conn = await loop.create_connection(lambda: _RespConnection(loop), a.host, a.port, ssl=ssl_ctx)
        try:
            if a.password is not None:
                auth = ("AUTH", a.username, a.password) if a.username else ("AUTH", a.password)
                await conn.call(*auth)
            if a.db:
                await conn.call("SELECT", a.db)
            self.sha = (await conn.call("SCRIPT", "LOAD", COUNTER_SCRIPT)).decode()
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

        ``args`` are the script's: an amount (or ``"g"``) per key, then the TTL in ms.
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

    def incr(self, keys: list, amount: int, ttl_ms: int) -> None:
        """Fire-and-forget charge (LLM token usage after the response)."""
        if time.monotonic() < self.down_until or not keys:
            return
        fut = self.check(keys, [amount] * len(keys) + [ttl_ms])
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())

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
            self.sha = (await asyncio.wait_for(conn.call("SCRIPT", "LOAD", COUNTER_SCRIPT), self.timeout)).decode()
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
            self.down_until = time.monotonic() + DOWN_FOR
            if self.conn is not None:
                self.conn.close()
                self.conn = None
        for _, _, w in batch:
            if not w.done():
                w.set_exception(exc)
