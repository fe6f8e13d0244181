"""The access log: one line per request, JSON or text, written in batches.

Formatting a line is cheap; a write syscall per request is not. Lines are collected and
flushed to stdout every 50 ms (and at shutdown), so logging costs about one syscall per
batch. The log never contains credentials: it records the request line and routing
facts, not headers or bodies.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson


def _now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class AccessLog:
    def __init__(self, fmt: str = "text", stream=None, enabled: bool = True):
        self.json = fmt == "json"
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stdout.buffer
        self._buf: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def record(self, ctx, duration: float) -> None:
        req = ctx.req
        ex = ctx.ex
        route = ctx.route
        fields = {
            "time": _now_iso(),
            "level": "info",
            "msg": "request",
            "bind": ctx.bind.name if ctx.bind is not None else "",
            "listener": ctx.listener.name if ctx.listener is not None else "",
            "route": route.name if route is not None else "",
            "backend": ctx.backend_name,
            "client": req.client_addr,
            "method": req.method,
            "path": req.target,
            "host": req.headers.get("host", ""),
            "status": ex.status,
            "duration_ms": round(duration * 1000, 3),
            "bytes_sent": ex.bytes_sent,
            "bytes_received": req.body.size,
        }
        if ctx.upstream_error:
            fields["upstream_error"] = ctx.upstream_error
        extra = ctx.attrs.get("log")
        if extra:
            fields.update(extra)
        if self.json:
            line = orjson.dumps(fields) + b"\n"
        else:
            line = (
                " ".join(
                    f"{k}={_text(v)}" for k, v in fields.items() if k not in ("time", "level", "msg")
                ).join((f"{fields['time']} info request ", "\n"))
            ).encode("utf-8", "replace")
        self._buf.append(line)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(0.05, self.flush)

    def flush(self) -> None:
        self._timer = None
        if self._buf:
            data, self._buf = b"".join(self._buf), []
            try:
                self.stream.write(data)
                self.stream.flush()
            except (OSError, ValueError):
                pass


def _text(v) -> str:
    s = str(v)
    if not s or " " in s or '"' in s:
        return orjson.dumps(s).decode()
    return s
