"""The last requests the gateway finished, for the admin API (``/api/v1/requests``).

A bounded ring (the last ``SIZE`` requests) fed from the same place and the same facts
as the access log (``Ctx.finish``), whatever the log level. Recording is one tuple and
one ``deque.append`` per request: ``record`` *is* the deque's ``append`` while nobody
tails the buffer; while a live tail (``requests/stream``) is open it is ``_publish``,
which also hands the entry to each tail's queue. Entries are turned into JSON-able
dicts only when read.

An entry: ``(start, method, target, route, backend, status, duration, facts)`` --
``start`` on the ``perf_counter`` clock (the end, ``start + duration``, is turned into
wall time when read), ``duration`` in seconds, ``facts`` None or a small dict of what
the request's protocol added (MCP target and tool, A2A method, LLM model and tokens:
what the access log and the request log database record).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

SIZE = 1000
#: entries a live tail may fall behind by before it is dropped (a stalled client)
TAIL_BACKLOG = 1000


def facts(attrs: dict) -> dict | None:
    """The protocol facts of a finished request (its ``ctx.attrs``), or None."""
    out: dict[str, Any] = {}
    mcp = attrs.get("mcp.call")
    if mcp is not None:
        out["mcp_target"], out["mcp_tool"] = mcp
    log = attrs.get("log")
    if log:
        for k in ("a2a_agent", "a2a_method", "a2a_task_id"):
            v = log.get(k)
            if v:
                out[k] = v
    llm = attrs.get("llm.call")
    if llm is not None:
        out["llm_model"], out["llm_provider"] = llm
    usage = attrs.get("llm_usage")
    if usage is not None:
        out["input_tokens"] = getattr(usage, "input", None)
        out["output_tokens"] = getattr(usage, "output", None)
    return out or None


class RecentRequests:
    __slots__ = ("ring", "record", "tails")

    def __init__(self, size: int = SIZE):
        self.ring: deque[tuple] = deque(maxlen=size)
        self.tails: set[asyncio.Queue] = set()
        self.record = self.ring.append

    # -- live tails ---------------------------------------------------------------------
    def _publish(self, entry: tuple) -> None:
        self.ring.append(entry)
        for q in tuple(self.tails):
            if q.qsize() >= TAIL_BACKLOG:
                self.tails.discard(q)  # too slow: the stream ends (see ``tail``)
                q.put_nowait(None)
            else:
                q.put_nowait(entry)
        if not self.tails:
            self.record = self.ring.append

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self.tails.add(q)
        self.record = self._publish
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.tails.discard(q)
        if not self.tails:
            self.record = self.ring.append

    # -- reading ------------------------------------------------------------------------
    def entries(self) -> list[tuple]:
        """Oldest first."""
        return list(self.ring)


def as_dict(entry: tuple, offset: float | None = None) -> dict:
    """An entry as the API shows it; ``offset`` is wall time minus ``perf_counter``."""
    start, method, target, route, backend, status, duration, extra = entry
    if offset is None:
        offset = time.time() - time.perf_counter()
    wall = start + duration + offset
    d: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int((wall % 1) * 1000):03d}Z",
        "method": method,
        "path": target,
        "route": route,
        "backend": backend,
        "status": status,
        "duration_ms": round(duration * 1000, 3),
    }
    if extra:
        d.update(extra)
    return d


def matches(d: dict, route: str | None, status: str | None, q: str | None) -> bool:
    """The ``route=``, ``status=`` and ``q=`` filters of ``GET requests``: ``status`` is
    a code (``404``) or a class (``5xx``); ``q`` a case-insensitive substring of the
    method, path, route, backend or a protocol fact."""
    if route is not None and d["route"] != route:
        return False
    if status is not None:
        s = str(d["status"])
        if status.lower().endswith("xx"):
            if not s.startswith(status[0]):
                return False
        elif s != status:
            return False
    if q:
        ql = q.lower()
        hay = (str(v) for k, v in d.items() if k not in ("time", "status", "duration_ms"))
        if not any(ql in h.lower() for h in hay):
            return False
    return True
