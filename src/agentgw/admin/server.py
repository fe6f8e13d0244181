"""Admin, stats and readiness endpoints, served by the same engine as traffic.

* admin (``config.adminAddr``, default 127.0.0.1:15000): ``GET /config_dump`` (the
  running config with every secret replaced by ``<redacted>``), ``GET /healthz/ready``;
* stats (``config.statsAddr``, default :15020): ``GET /metrics``, Prometheus text;
* readiness (``config.readinessAddr``, default :15021): ``GET /healthz/ready``;
* the admin API, ``/api/v1/`` on the admin address (``api.AdminApi``, ``docs/admin.md``),
  and the web UI at ``/ui/`` beside it (``static.UiAssets``).

The same handler also answers on a worker's private control socket when running with
``--workers``, where the supervisor asks for ``/metrics.json`` snapshots to merge.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

import orjson

from ..engine.http import Headers
from ..engine.server import HttpServerProtocol, ServerSettings
from .static import UiAssets

_JSON = Headers([("content-type", "application/json")])
_TEXT = Headers([("content-type", "text/plain; charset=utf-8")])
_PROM = Headers([("content-type", "text/plain; version=0.0.4; charset=utf-8")])


def parse_addr(addr: str) -> tuple[str, int] | str | None:
    """``ip:port`` / ``localhost:port`` / ``:port`` → (host, port); ``unix:/p`` → path; off → None."""
    if addr == "off":
        return None
    if addr.startswith("unix:"):
        return addr[5:]
    host, _, port = addr.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class AdminHandler:
    """Routes admin/stats/readiness paths to callables supplied by the process."""

    def __init__(self, *, config_dump, ready, metrics_text, metrics_snapshot=None, api=None):
        self.config_dump = config_dump
        self.ready = ready
        self.metrics_text = metrics_text
        self.metrics_snapshot = metrics_snapshot
        self.api = api  # api.AdminApi: the /api/v1/ endpoints (a single process; not --workers)
        self.ui = UiAssets() if api is not None else None

    async def __call__(self, req, ex) -> None:
        path = req.path
        if path.startswith(("/api/v1/", "/ui/api/v1/")) or path == "/api/v1":
            if self.api is None:
                ex.send_error(404, "not_found", "the admin API (/api/v1/) is not served with --workers yet")
                return
            await self.api(req, ex)
            return
        if req.method not in ("GET", "HEAD"):
            ex.send_error(405, "method_not_allowed", "admin endpoints are read-only")
            return
        if path == "/ui" or path.startswith("/ui/"):
            if self.ui is None or not self.api.on_admin_listener(ex):
                ex.send_error(404, "not_found", "the web UI is served on config.adminAddr by a single process")
                return
            self.ui.serve(req, ex)
            return
        if path == "/healthz/ready":
            ok = await _maybe_await(self.ready())
            if ok:
                ex.send(200, _TEXT.copy(), b"ready\n")
            else:
                ex.send(503, _TEXT.copy(), b"not ready\n")
        elif path == "/config_dump":
            dump = await _maybe_await(self.config_dump())
            ex.send(200, _JSON.copy(), orjson.dumps(dump, option=orjson.OPT_INDENT_2))
        elif path == "/metrics":
            ex.send(200, _PROM.copy(), await _maybe_await(self.metrics_text()))
        elif path == "/metrics.json" and self.metrics_snapshot is not None:
            ex.send(200, _JSON.copy(), orjson.dumps(self.metrics_snapshot()))
        elif path == "/":
            ex.send(
                200,
                _JSON.copy(),
                orjson.dumps(
                    {"endpoints": ["/config_dump", "/healthz/ready", "/metrics"] + (["/api/v1/"] if self.api else [])}
                ),
            )
        else:
            ex.send_error(404, "not_found", "unknown admin endpoint")


async def _maybe_await(v):
    if asyncio.iscoroutine(v) or isinstance(v, asyncio.Future):
        return await v
    return v


class AdminServer:
    """A listening admin-style server and the settings of its connections."""

    def __init__(self, loop, server: asyncio.Server, settings: ServerSettings, path: str | None = None):
        self.loop = loop
        self.server = server
        self.settings = settings
        self.path = path  # a unix socket's path

    @property
    def sockets(self):
        return self.server.sockets

    def close(self) -> None:
        """Stop listening (a unix socket's path is removed); idle connections close now,
        busy ones after their response, bounded by the usual deadlines."""
        self.server.close()
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None
        self.settings.drain()
        self._reap()

    def _reap(self) -> None:
        if self.settings.connections and not self.loop.is_closed():
            self.loop.call_later(1.0, self._reap)
        else:
            self.settings.stop_sweeper()


async def serve_admin(loop, addr: str, handler) -> AdminServer | None:
    """Start an admin-style server on ``addr`` (TCP or unix socket)."""
    where = parse_addr(addr)
    if where is None:
        return None
    settings = ServerSettings(handler, header_read_timeout=10.0, idle_timeout=60.0, max_connections=256)
    factory = lambda: HttpServerProtocol(settings, loop)  # noqa: E731
    if isinstance(where, str):
        if os.path.exists(where):
            if _unix_listening(where):  # another process serves it: don't take it over
                raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
            os.unlink(where)  # left behind by a process that is gone
        server = await loop.create_unix_server(factory, where)
    else:
        host, port = where
        server = await loop.create_server(factory, host, port, reuse_address=True)
    settings.start_sweeper(loop)
    return AdminServer(loop, server, settings, where if isinstance(where, str) else None)


def _unix_listening(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


async def fetch_unix(path: str, target: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``target`` from an admin handler listening on unix socket ``path``."""

    async def go():
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(f"GET {target} HTTP/1.1\r\nhost: local\r\nconnection: close\r\n\r\n".encode())
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body

    return await asyncio.wait_for(go(), timeout)
