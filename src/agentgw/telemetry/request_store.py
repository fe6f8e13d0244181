"""``config.database`` / ``config.logging.database``: every logged request as a row in a
database (PostgreSQL, or SQLite for any other URL).

The tables are agentgateway's request log tables (``request_logs``, and
``request_log_payloads``, which stays empty: prompts and completions are not stored), so
a database shared with agentgateway, and the queries and dashboards written against it,
keep working. A row holds the request's times, status, error, trace ids, the LLM call
(operation, provider, model, tokens), the caller (``agentgateway_user`` /
``agentgateway_group`` from ``config.standardAttributes``), the client's user agent, and
the access-log fields as JSON (``attributes_json``: what the access log would print,
after its ``filter`` and ``fields``).

The request path only appends a tuple to a list. Rows are written in batches, off the
request path: PostgreSQL through an asyncpg pool of ``maxConnections`` (default 5),
SQLite on a worker thread. The tables are created on first use (``CREATE TABLE IF NOT
EXISTS``). A database that is down or refuses a batch loses that batch, not requests:
the failure is logged once per distinct reason and counted in
``agentgw_request_log_rows_dropped_total``; the next batch tries again. At most
``MAX_QUEUED`` rows wait; beyond that new rows are dropped (and counted) until the
database catches up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.request_store")

MAX_QUEUED = 50_000
BATCH = 2_000
FLUSH_INTERVAL = 0.2  # seconds a row may wait for its batch
DEFAULT_MAX_CONNECTIONS = 5

COLUMNS = (
    "id",
    "started_at",
    "completed_at",
    "duration_ms",
    "trace_id",
    "span_id",
    "http_status",
    "error",
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "agentgateway_user",
    "agentgateway_group",
    "user_agent_name",
    "has_payload",
    "attributes_json",
)

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_request_logs_completed_at ON request_logs(completed_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS idx_request_logs_http_status_completed_at"
    " ON request_logs(http_status, completed_at DESC)",
    "CREATE INDEX IF NOT EXISTS idx_request_logs_gen_ai_completed_at"
    " ON request_logs(gen_ai_provider_name, gen_ai_request_model, completed_at DESC)",
    "CREATE INDEX IF NOT EXISTS idx_request_logs_user_completed_at"
    " ON request_logs(agentgateway_user, completed_at DESC, id DESC)",
)

_PG_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS request_logs (
    id TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL,
    duration_ms BIGINT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    http_status INTEGER,
    error TEXT,
    gen_ai_operation_name TEXT,
    gen_ai_provider_name TEXT,
    gen_ai_request_model TEXT,
    gen_ai_response_model TEXT,
    input_tokens BIGINT,
    output_tokens BIGINT,
    total_tokens BIGINT,
    cost DOUBLE PRECISION,
    agentgateway_user TEXT,
    agentgateway_group TEXT,
    user_agent_name TEXT,
    has_payload BOOLEAN NOT NULL,
    attributes_json JSONB NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS request_log_payloads (
    log_id TEXT PRIMARY KEY REFERENCES request_logs(id) ON DELETE CASCADE,
    request_prompt_json JSONB,
    response_completion_json JSONB
)""",
    *_INDEXES,
)

_SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS request_logs (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    completed_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    http_status INTEGER,
    error TEXT,
    gen_ai_operation_name TEXT,
    gen_ai_provider_name TEXT,
    gen_ai_request_model TEXT,
    gen_ai_response_model TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    cost REAL,
    agentgateway_user TEXT,
    agentgateway_group TEXT,
    user_agent_name TEXT,
    has_payload INTEGER NOT NULL,
    attributes_json TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS request_log_payloads (
    log_id TEXT PRIMARY KEY REFERENCES request_logs(id) ON DELETE CASCADE,
    request_prompt_json TEXT,
    response_completion_json TEXT
)""",
    *_INDEXES,
)


#: access-log fields that are columns, or say nothing about the request
_NOT_ATTRIBUTES = frozenset(("time", "level", "msg", "trace_id", "span_id"))


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def sqlite_path(url: str) -> str:
    """The file of a SQLite URL: ``sqlite://data.db``, ``sqlite:///abs/path.db``,
    ``sqlite:data.db`` or a plain path (agentgateway treats every non-Postgres URL as
    SQLite); ``?…`` options are dropped."""
    p = url
    for prefix in ("sqlite://", "sqlite:"):
        if p.startswith(prefix):
            p = p[len(prefix) :]
            break
    return p.split("?", 1)[0] or "data.db"


def uuid7() -> str:
    """A time-ordered UUID (version 7), as agentgateway's row ids are."""
    ms = time.time_ns() // 1_000_000
    r = int.from_bytes(os.urandom(10), "big")
    v = (ms << 80) | (0x7 << 76) | ((r >> 62) & 0xFFF) << 64 | (0b10 << 62) | (r & ((1 << 62) - 1))
    h = f"{v:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def user_agent_name(ua: str) -> str | None:
    """The first product of a ``User-Agent`` (``curl/8.5`` → ``curl``)."""
    ua = ua.strip()
    if not ua:
        return None
    return ua.split(None, 1)[0].split("/", 1)[0] or None


class _Postgres:
    def __init__(self, url: str, max_connections: int):
        self.url = url
        self.max = max_connections
        self.pool: Any = None
        self.sql = (
            f"INSERT INTO request_logs ({', '.join(COLUMNS)}) VALUES ("
            + ", ".join(f"${i}::jsonb" if c == "attributes_json" else f"${i}" for i, c in enumerate(COLUMNS, 1))
            + ") ON CONFLICT (id) DO NOTHING"
        )

    async def write(self, rows: list[tuple]) -> None:
        import asyncpg

        if self.pool is None:
            pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.max, command_timeout=30)
            try:
                async with pool.acquire() as c:
                    for stmt in _PG_SCHEMA:
                        await c.execute(stmt)
            except BaseException:
                await pool.close()
                raise
            self.pool = pool
        async with self.pool.acquire() as c:
            await c.executemany(self.sql, [_pg_row(r) for r in rows])

    async def close(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (TimeoutError, OSError):
                pool.terminate()


def _pg_row(r: tuple) -> tuple:
    from datetime import UTC, datetime

    return (
        r[0],
        datetime.fromtimestamp(r[1], UTC),
        datetime.fromtimestamp(r[2], UTC),
        *r[3:],
    )


class _Sqlite:
    def __init__(self, path: str):
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.lock = threading.Lock()
        self.sql = f"INSERT OR IGNORE INTO request_logs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

    def _write(self, rows: list[tuple]) -> None:
        with self.lock:
            if self.conn is None:
                conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA foreign_keys=ON")
                for stmt in _SQLITE_SCHEMA:
                    conn.execute(stmt)
                conn.commit()
                self.conn = conn
            with self.conn:
                self.conn.executemany(self.sql, [_sqlite_row(r) for r in rows])

    async def write(self, rows: list[tuple]) -> None:
        await asyncio.to_thread(self._write, rows)

    async def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1_000_000):06d}Z"


def _sqlite_row(r: tuple) -> tuple:
    return (r[0], _iso(r[1]), _iso(r[2]), *r[3:19], int(r[19]), r[20])


class RequestStore:
    """One database's request log: rows queued by the request path, written in batches."""

    _cache: ClassVar[dict[tuple, RequestStore]] = {}

    @classmethod
    def get(cls, url: str, max_connections: int) -> RequestStore:
        """The store for this database, kept across reloads (its queue and pool with it)."""
        key = (url, max_connections)
        s = cls._cache.get(key)
        if s is None:
            s = cls._cache[key] = cls(url, max_connections)
        return s

    def __init__(self, url: str, max_connections: int):
        self.url = url
        self.db: _Postgres | _Sqlite = (
            _Postgres(url, max_connections) if is_postgres(url) else _Sqlite(sqlite_path(url))
        )
        self.rows: list[tuple] = []
        self.dropped = 0
        self.written = 0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._warned: str | None = None

    # -- request path ------------------------------------------------------------------------
    def emit(self, ctx, fields: dict, duration: float, attributes) -> None:
        """Queue the row of a finished request (``fields``: its access-log fields)."""
        if len(self.rows) >= MAX_QUEUED:
            self.dropped += 1
            return
        now = time.time()
        attrs = ctx.attrs
        call = attrs.get("llm.call")
        usage = attrs.get("llm_usage")
        user, group = attributes.user_group(ctx)
        ex = ctx.ex
        self.rows.append(
            (
                uuid7(),
                now - duration,
                now,
                int(duration * 1000),
                fields.get("trace_id"),
                fields.get("span_id"),
                ex.status if ex.started else None,
                ctx.upstream_error or fields.get("error"),
                attrs.get("llm.operation") if call is not None else None,
                call[1] if call is not None else None,
                call[0] if call is not None else None,
                getattr(usage, "response_model", None) if call is not None else None,
                usage.input if usage is not None else None,
                usage.output if usage is not None else None,
                usage.total if usage is not None else None,
                None,  # no model prices are configured here
                user,
                group,
                user_agent_name(ctx.req.headers.get("user-agent") or ""),
                False,
                orjson.dumps({k: v for k, v in fields.items() if k not in _NOT_ATTRIBUTES}, default=str).decode(),
            )
        )
        if self._timer is None and self._task is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._start_flush)

    # -- writer --------------------------------------------------------------------------------
    def _start_flush(self) -> None:
        self._timer = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self.rows:
                batch, self.rows = self.rows[:BATCH], self.rows[BATCH:]
                try:
                    await self.db.write(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a database problem loses the batch, never a request
                    self.dropped += len(batch)
                    why = f"{type(exc).__name__}: {exc}"
                    if why != self._warned:
                        self._warned = why
                        log.warning("request log database %s: %s; rows dropped", _safe(self.url), why)
                    break
                else:
                    self.written += len(batch)
                    self._warned = None
        finally:
            self._task = None
            if self.rows and self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._start_flush)

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (within ``timeout``), then close the connections."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            if self._task is not None:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            if self.rows:
                self._task = asyncio.get_running_loop().create_task(self._flush())
                await asyncio.wait_for(self._task, timeout)
        except TimeoutError:
            log.warning("request log database %s: %d rows not written at shutdown", _safe(self.url), len(self.rows))
        await self.db.close()


def _safe(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


async def close_all() -> None:
    for s in list(RequestStore._cache.values()):
        await s.close()
    RequestStore._cache.clear()


class StandardAttributes:
    """``config.standardAttributes``: who made the request, for ``agentgateway_user`` and
    ``agentgateway_group``. Each is a CEL expression; unset, the user is the caller's
    authenticated identity (API key name, JWT subject, basic-auth user, client
    certificate, Kubernetes service account: what the metrics call the principal) and
    the group is the API key's ``group`` metadata or the token's first ``groups``."""

    __slots__ = ("user", "group")

    def __init__(self, user=None, group=None):
        self.user = user
        self.group = group

    def user_group(self, ctx) -> tuple[str | None, str | None]:
        attrs = ctx.attrs
        if self.user is not None:
            v = self.user.evaluate(ctx)
            user = _text(v[0]) if v is not None else None
        else:
            p = attrs.get("principal")
            user = p if isinstance(p, str) and p else None
        if self.group is not None:
            v = self.group.evaluate(ctx)
            group = _text(v[0]) if v is not None else None
        else:
            group = None
            key = attrs.get("apiKey")
            if isinstance(key, dict) and isinstance(key.get("group"), str):
                group = key["group"]
            else:
                jwt = attrs.get("jwt")
                gs = jwt.get("groups") if isinstance(jwt, dict) else None
                if isinstance(gs, list) and gs and isinstance(gs[0], str):
                    group = gs[0]
        return user, group


def _text(v) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else orjson.dumps(v, default=str).decode()


def compile_request_store(scope: CompileScope, cfg) -> tuple[RequestStore, StandardAttributes] | None:
    """The store of ``config.logging.database`` (else ``config.database``), or None."""
    from ..cel import CelError
    from ..policies.descriptors import DescriptorValues

    c = cfg.config
    lg = c.logging
    if lg is not None and lg.database is not None:
        db, path = lg.database, "config.logging.database"
    else:
        db, path = c.database, "config.database"
    sa = c.standard_attributes
    if db is None:
        if sa is not None:
            scope.errors.add(
                "config.standardAttributes", "is only used with config.database (the request log database)"
            )
        return None
    if is_postgres(db.url):
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            scope.errors.add(f"{path}.url", "PostgreSQL needs asyncpg: pip install 'agentgw[database]'")
            return None
    elif db.max_connections is not None:
        scope.errors.add(
            f"{path}.maxConnections", "is only used with PostgreSQL (SQLite is written through one connection)"
        )
        return None
    exprs = {}
    for key in ("user", "group"):
        src = getattr(sa, key, None) if sa is not None else None
        if src:
            try:
                exprs[key] = DescriptorValues([(key, src)], stringify=False, structured=True)
            except CelError as exc:
                scope.errors.add(f"config.standardAttributes.{key}", str(exc))
    # a relative SQLite file is the working directory's, as agentgateway opens it
    url = db.url if is_postgres(db.url) else os.path.abspath(sqlite_path(db.url))
    if getattr(scope.services, "pool", None) is None:  # `agentgw validate`: nothing is served
        return None
    return RequestStore.get(url, db.max_connections or DEFAULT_MAX_CONNECTIONS), StandardAttributes(**exprs)
