"""One gateway process: load, compile, serve, watch the file, reload, drain.

Reload never drops traffic: a new config is compiled off to the side; only when it is
complete does each bind's server switch to the new ``BindRuntime`` (a pointer swap read
at the start of every request). Connections and in-flight requests on ports that stay
are untouched; new ports start listening; removed ports stop listening and their
connections are drained. A bind whose TLS settings changed gets a new server on the
same listening socket (a duplicate of it), so no connection waiting to be accepted is
lost. A config that fails to load or compile, or names a port that another process
already listens on, is logged with the path of each bad field, counted as a failed
reload, and the old config keeps serving: new ports are opened before anything switches.
Admin, stats and readiness addresses (``config.adminAddr``...) that change are applied
the same way: the new ones open before the switch, the old ones close after it. What
only a restart can change -- ``config.enableIpv6`` (the host of every traffic port), an
admin address with ``--workers`` (the supervisor serves it), an admin address moving to
another host on the same port -- fails the reload with a log line saying so.

Traffic ports are this gateway's alone (see ``ports``): the single process binds them
without SO_REUSEPORT and holds a port lock; a ``--workers`` worker asks the supervisor
(``claim_socket``) and then binds with SO_REUSEPORT to share the port with its siblings.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable
from typing import Any

from . import __version__
from .admin.api import AdminApi
from .admin.server import AdminHandler, AdminServer, serve_admin
from .compile import Runtime, check_config_text, compile_config_file
from .config import ConfigError, redacted_dump
from .engine.client import ConnectionPool
from .engine.server import HttpServerProtocol, ServerSettings
from .engine.tcpproxy import TcpSession, hand_over, start_tls_server
from .ports import (
    ADMIN_KEYS,
    PortInUse,
    PortLock,
    admin_addrs,
    admin_error,
    admin_port_owner,
    cannot_listen,
    claim,
    duplicate,
    own_conflicts,
    port_keys,
    same_port,
)
from .proxy.pipeline import handle, handle_fast
from .proxy.runtime import BindRuntime
from .proxy.tcp import select_listener, select_route
from .telemetry.accesslog import AccessLog
from .telemetry.metrics import GatewayMetrics, render
from .telemetry.recent import RecentRequests
from .telemetry.setup import configure_logging

log = logging.getLogger("agentgw")


class NeedsRestart(Exception):
    """A reload changes a setting that only a restart applies; ``str()`` is one line."""


class Services:
    """Process-wide services that outlive config reloads."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.metrics = GatewayMetrics()
        self.access_log = AccessLog()
        self.recent = RecentRequests()  # the admin API's recent requests (fed by Ctx.finish)
        self.admin_handler: Any = None  # the admin address's handler (the UI on traffic listeners uses it)
        m = self.metrics
        self.pool = ConnectionPool(
            loop,
            on_connect=lambda t: m.upstream_connects.inc((t.authority,)),
            on_connect_error=lambda t: m.upstream_connect_errors.inc((t.authority,)),
        )

    def on_upstream_error(self, ctx, exc) -> None:
        self.metrics.upstream_errors.inc((ctx.backend_name, exc.kind))


class BindServer:
    """A listening socket for one bind, pointing at the current ``BindRuntime``.

    An internal bind (``mode: internal``) has a server that never listens: CONNECT
    tunnels to its port are handed to it (``take``)."""

    def __init__(self, proc: GatewayProcess, runtime: BindRuntime, tls, rt: Runtime):
        self.proc = proc
        self.runtime = runtime
        self.tls = tls
        # what the listening socket speaks, fixed for its life (a change needs a new server)
        self.kind = _kind(runtime)
        self.handshake_timeout = rt.tls_handshake_timeout
        self.connect_timeout = rt.connect_timeout
        self.server: asyncio.AbstractServer | None = None
        m = proc.services.metrics
        key = (runtime.name,)
        gauge = m.active_connections

        def on_conn(delta: int, _key=key, _g=gauge) -> None:
            _g.series[_key] = _g.series.get(_key, 0) + delta

        https = tls is not None or any(lst.protocol == "HTTPS" for lst in runtime.tcp or ())
        self.settings = ServerSettings(
            self._handle,
            scheme="https" if https else "http",
            on_connection_change=on_conn,
        )
        self.settings.fast_handler = self._handle_fast
        self.apply_settings(rt)

    def apply_settings(self, rt: Runtime) -> None:
        """The connection settings of ``rt`` (limits, keepalive), for new connections and
        the deadlines of open ones."""
        limits = rt.limits
        s = self.settings
        s.keepalive = rt.frontend_keepalive
        s.max_header_bytes = limits.max_header_bytes
        s.max_body_bytes = limits.max_body_bytes
        s.header_read_timeout = limits.header_read_timeout
        s.idle_timeout = limits.idle_timeout
        s.max_connections = limits.max_connections
        s.max_header_count = limits.max_header_count
        s.underscore_headers = limits.underscore_headers
        s.body_timeout = limits.request_body_timeout
        s.connect_handler = self._connect if self.runtime.connect else None
        self.connect_timeout = rt.connect_timeout

    def _handle(self, req, ex):
        return handle(self.runtime, req, ex)

    def _handle_fast(self, req, ex) -> bool:
        return handle_fast(self.runtime, req, ex)

    # -- TCP and TLS listeners, CONNECT tunnels ---------------------------------------------
    def _session(self, dest_port: int) -> TcpSession:
        """The protocol of one connection to this bind's TCP / TLS listeners."""
        s = self.settings
        return TcpSession(
            self.proc.loop,
            self._chooser(dest_port),
            sniff=self.runtime.sniff,
            connect_timeout=self.connect_timeout,
            hello_timeout=s.header_read_timeout,
            connections=s.connections,
            on_connection_change=s.on_connection_change,
            max_connections=s.max_connections,
        )

    def _chooser(self, dest_port: int):
        rt = self.runtime  # (the config the connection started with)
        loop = self.proc.loop

        def choose(sni: str | None, transport):
            lst = select_listener(rt.tcp or (), sni)
            if lst is None:
                return None
            if lst.protocol == "HTTPS":  # terminated here, for the HTTP routes
                ctx, settings, timeout = lst.tls, self.settings, self.handshake_timeout
                if not isinstance(ctx, ssl.SSLContext):  # tls.mode: dynamicCa
                    if not sni:
                        return None  # no name to issue a certificate for
                    ctx = ctx.context_for(sni)
                return lambda transport, data: start_tls_server(
                    loop, transport, data, ctx, HttpServerProtocol(settings, loop), timeout
                )
            if lst.protocol not in ("TCP", "TLS"):
                return None
            route = select_route(lst.tcp_routes, sni if lst.protocol == "TLS" else None)
            target = route.pick() if route is not None else None
            where = target.address(sni, dest_port, transport) if target is not None else None
            if where is None or lst.tls is None:
                return where
            # a TLS listener with tls: terminated here, the plain bytes to the backend
            ctx, s, timeout = lst.tls, self.settings, self.handshake_timeout

            def inner(transport, data):
                app = TcpSession(
                    loop,
                    lambda _sni, _transport: where,
                    sniff=False,
                    connect_timeout=self.connect_timeout,
                    connections=s.connections,
                    on_connection_change=s.on_connection_change,
                )
                start_tls_server(loop, transport, data, ctx, app, timeout)

            return inner

        return choose

    def take(self, dest_port: int):
        """``takeover(transport, data)`` for a connection tunnelled to this bind's port."""
        loop = self.proc.loop
        if self.runtime.tcp is not None:
            return lambda transport, data: hand_over(transport, data, self._session(dest_port))
        if self.tls is not None:  # HTTPS: terminated with the bind's (SNI-switching) context
            ctx, settings, timeout = self.tls, self.settings, self.handshake_timeout

            def https(sni, _transport):
                return lambda transport, data: start_tls_server(
                    loop, transport, data, ctx, HttpServerProtocol(settings, loop), timeout
                )

            s = self.settings

            def take_https(transport, data):
                hand_over(
                    transport,
                    data,
                    TcpSession(
                        loop,
                        https,
                        sniff=True,
                        hello_timeout=s.header_read_timeout,
                        connections=s.connections,
                        on_connection_change=s.on_connection_change,
                    ),
                )

            return take_https
        return lambda transport, data: hand_over(transport, data, HttpServerProtocol(self.settings, loop))

    def _connect(self, host: str, port: int):
        """A CONNECT request on this bind: the tunnel goes to the bind of ``port``."""
        target = self.runtime.peers.get(port)
        srv = self.proc.servers.get(port)
        if target is None or srv is None or srv is self or target.connect:
            return (403, "forbidden", f"CONNECT to port {port} is not allowed: no bind serves it")
        return srv.take(port)

    async def start(self, host: str, *, reuse_port: bool = False, sock=None) -> None:
        """Listen on ``host:port`` (SO_REUSEPORT only for ``--workers`` siblings), or on
        ``sock``, an already listening socket (a bind whose TLS changed)."""
        loop = self.proc.loop
        settings = self.settings
        if self.kind == "internal":
            settings.start_sweeper(loop)
            return
        factory: Callable[[], asyncio.Protocol]
        if self.kind == "tcp":
            port = self.runtime.port
            factory = lambda: self._session(port)  # noqa: E731
        else:
            factory = lambda: HttpServerProtocol(settings, loop)  # noqa: E731
        # a client that has not finished the TLS handshake in time is disconnected
        tls = {"ssl": self.tls, "ssl_handshake_timeout": self.handshake_timeout} if self.tls is not None else {}
        if sock is not None:
            self.server = await loop.create_server(factory, sock=sock, backlog=2048, **tls)
        else:
            self.server = await loop.create_server(
                factory,
                host=host,
                port=self.runtime.port,
                reuse_port=reuse_port,
                reuse_address=True,
                backlog=2048,
                **tls,
            )
        settings.start_sweeper(loop)

    async def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class GatewayProcess:
    def __init__(
        self,
        config_path: str,
        *,
        serve_admin_ports: bool = True,
        control_socket: str | None = None,
        claim_socket: str | None = None,
    ):
        self.config_path = os.path.abspath(config_path)
        self.source = config_path  # the file's name in messages: as the user wrote it
        self.base_dir = os.path.dirname(self.config_path)
        self.serve_admin_ports = serve_admin_ports
        self.control_socket = control_socket
        self.claim_socket = claim_socket  # set in a --workers worker: the supervisor decides
        self.locks: dict[int, PortLock] = {}
        self.admin_listening: list[tuple[str, str, str]] = []
        self.loop = asyncio.get_running_loop()
        self.services = Services(self.loop)
        self.runtime: Runtime | None = None
        self.servers: dict[int, BindServer] = {}
        # listening admin-style servers by address (``config.adminAddr``...);
        # ``admin_listening`` is what the config asked for
        self.admin_servers: dict[str, AdminServer] = {}
        self.admin_handler: AdminHandler | None = None
        self.control_server: AdminServer | None = None  # --workers: the supervisor asks here
        self.ready = False
        self._stopping = asyncio.Event()
        self._digest = b""
        self._stat = None
        self._watch_task: asyncio.Task | None = None
        self._reload_lock = asyncio.Lock()  # one reload at a time (the file watcher, the admin API)
        self.last_reload_error: str | None = None
        self.log_level = "info"
        self.host = "0.0.0.0"

    # -- loading --------------------------------------------------------------------------
    def _load(self) -> tuple[Runtime, bytes]:
        with open(self.config_path, "rb") as f:
            raw = f.read()
        digest = hashlib.sha256(raw).digest()
        return compile_config_file(self.config_path, self.services, source=self.source), digest

    async def start(self) -> None:
        runtime, digest = self._load()  # ConfigError propagates: refuse to start
        self._apply_process_settings(runtime)
        self.runtime = runtime
        self._digest = digest
        self._stat = self._stat_file()
        if runtime.cfg.config.enable_ipv6:
            self.host = "::"
        keys = port_keys(runtime.cfg)
        admin = admin_addrs(runtime.cfg) if self.serve_admin_ports else []
        own_conflicts(keys, admin)
        for port, bind in runtime.binds.items():
            srv = BindServer(self, bind, runtime.bind_tls.get(port), runtime)
            if srv.kind == "internal":
                await srv.start(self.host)  # (no socket: reached through CONNECT tunnels)
            else:
                await self._listen(srv, port, keys.get(port, f"port {port}"))
            self.servers[port] = srv
        handler = self.admin_handler = AdminHandler(
            config_dump=self.config_dump,
            ready=lambda: self.ready,
            metrics_text=self.metrics_text,
            metrics_snapshot=self.services.metrics.m.snapshot,
            api=AdminApi(self, check_config_text) if self.serve_admin_ports else None,
        )
        self.services.admin_handler = handler
        self.admin_servers.update(await self._open_admin(admin))
        self.admin_listening = admin
        if self.control_socket:
            self.control_server = await serve_admin(self.loop, "unix:" + self.control_socket, handler)
        self.services.metrics.reloads.inc(("ok",))
        self._watch_task = self.loop.create_task(self._watch())
        tune_gc()
        self.ready = True
        log.info(
            "agentgw %s serving %s",
            __version__,
            ", ".join(f":{p}" for p, s in self.servers.items() if s.kind != "internal") or "no binds",
        )

    async def _listen(self, srv: BindServer, port: int, key: str) -> None:
        """Open ``port`` for ``srv`` if no other process listens on it; else ``PortInUse``."""
        if self.claim_socket:
            await claim(self.claim_socket, port, self.host, key)
        else:
            self.locks[port] = PortLock.acquire(port, key, self.loop)
        try:
            await srv.start(self.host, reuse_port=bool(self.claim_socket))
        except OSError as exc:
            lock = self.locks.pop(port, None)
            if lock is not None:
                lock.release()
            raise cannot_listen(key, port, exc) from None

    def close_listeners(self) -> None:
        """Stop listening everywhere and give the ports up (a start that failed)."""
        for srv in self.servers.values():
            if srv.server is not None:
                srv.server.close()
                srv.server = None
            srv.settings.stop_sweeper()
        for s in [*self.admin_servers.values(), self.control_server]:
            if s is not None:
                s.close()
        self._release_locks(list(self.locks))

    async def _open_admin(self, admin: list[tuple[str, str, str]]) -> dict[str, AdminServer]:
        """Listen on each admin-style address of ``admin`` not listened on yet; all or
        nothing (``PortInUse`` closes the ones opened)."""
        opened: dict[str, AdminServer] = {}
        for key, addr, what in admin:
            if addr in self.admin_servers:
                continue
            try:
                srv = await serve_admin(self.loop, addr, self.admin_handler)
            except OSError as exc:
                for o in opened.values():
                    o.close()
                raise admin_error(key, addr, what, exc) from None
            if srv is not None:
                opened[addr] = srv
        return opened

    def _release_locks(self, ports) -> None:
        for port in ports:
            lock = self.locks.pop(port, None)
            if lock is not None:
                lock.release()

    def _apply_process_settings(self, runtime: Runtime) -> None:
        lg = runtime.cfg.config.logging
        level = (lg.level if lg and lg.level else "info").lower()
        fmt = lg.format if lg and lg.format else "text"
        self.services.access_log.fields = runtime.access_log
        self._logging(level, fmt)
        self.services.metrics.m.remove = runtime.metrics_remove
        bd = runtime.cfg.config.backend
        pool = self.services.pool
        pool.keepalive = runtime.backend_keepalive  # connections opened from now on
        if bd is not None:
            if bd.pool_idle_timeout is not None:
                pool.idle_timeout = float(bd.pool_idle_timeout)
            if bd.pool_max_size is not None:
                pool.max_idle = bd.pool_max_size

    def _logging(self, level: str, fmt: str) -> None:
        configure_logging(level, fmt)
        self.log_level = level
        al = self.services.access_log
        al.json = fmt == "json"
        al.stdout = level in ("trace", "debug", "info")
        al.enabled = al.stdout or (
            al.fields is not None and (al.fields.otlp is not None or al.fields.store is not None)
        )

    # -- admin callbacks ----------------------------------------------------------------------
    def set_log_level(self, level: str) -> None:
        """The admin API's ``PUT log-level``: until the next reload applies the config's."""
        lg = self.runtime.cfg.config.logging if self.runtime else None
        self._logging(level, lg.format if lg and lg.format else "text")

    def file_written(self) -> None:
        """The admin API wrote the config file and applies it itself: the watcher is not
        to see the change."""
        self._stat = self._stat_file()

    def config_dump(self) -> dict:
        return redacted_dump(self.runtime.cfg) if self.runtime else {}

    def metrics_text(self) -> bytes:
        return render(self.services.metrics.m.snapshot())

    # -- reload -------------------------------------------------------------------------------
    def _stat_file(self):
        try:
            st = os.stat(self.config_path)
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return None

    async def _watch(self) -> None:
        """Poll the file once a second. Polling (not inotify) also sees Kubernetes
        ConfigMap updates, which swap a symlink rather than write the file."""
        while True:
            await asyncio.sleep(1.0)
            st = self._stat_file()
            if st is None or st == self._stat:
                continue
            self._stat = st
            try:
                with open(self.config_path, "rb") as f:
                    digest = hashlib.sha256(f.read()).digest()
            except OSError:
                continue
            if digest != self._digest:
                await self.reload()

    async def reload(self) -> bool:
        async with self._reload_lock:
            return await self._reload()

    async def _reload(self) -> bool:
        self.last_reload_error = None
        try:
            runtime, digest = self._load()
        except ConfigError as exc:
            self.services.metrics.reloads.inc(("failed",))
            log.error("config reload failed; keeping the running config:\n%s", exc)
            self._digest = self._digest  # retry only when the file changes again
            self.last_reload_error = str(exc)
            return False
        except OSError as exc:
            self.services.metrics.reloads.inc(("failed",))
            log.error("config reload failed: cannot read %s: %s", self.config_path, exc)
            self.last_reload_error = f"cannot read {self.source}: {exc}"
            return False
        try:
            await self._apply(runtime)
        except (PortInUse, NeedsRestart) as exc:
            self.services.metrics.reloads.inc(("failed",))
            log.error("config reload failed; keeping the running config: %s", exc)
            self.last_reload_error = str(exc)
            return False  # retried when the file changes again (or is touched)
        self._digest = digest
        self.services.metrics.reloads.inc(("ok",))
        log.info("config reloaded: serving %s", ", ".join(f":{p}" for p in self.servers) or "no binds")
        return True

    async def _apply(self, runtime: Runtime) -> None:
        """Switch to ``runtime``: first open every new server, traffic and admin (all or
        nothing: ``PortInUse`` leaves the running config untouched), then swap, then
        close the ports and admin addresses removed."""
        old = self.servers
        keys = port_keys(runtime.cfg)
        admin = admin_addrs(runtime.cfg) if self.serve_admin_ports else []
        self._needs_restart(runtime, admin)
        own_conflicts(keys, admin)
        fresh: dict[int, BindServer] = {}
        opened: list[int] = []  # ports new to this config, listening now
        new_admin: dict[str, AdminServer] = {}
        try:
            for port, bind in runtime.binds.items():
                tls = runtime.bind_tls.get(port)
                srv = old.get(port)
                if srv is not None and _same_tls(srv.tls, tls) and srv.kind == _kind(bind):
                    continue
                key = keys.get(port, f"port {port}")
                f = BindServer(self, bind, tls, runtime)
                if f.kind == "internal" or (srv is not None and srv.kind == "internal"):
                    if srv is not None and srv.kind != f.kind:
                        raise NeedsRestart(f"{key}: changing a bind's mode (standard / internal) needs a restart")
                    await f.start(self.host)
                elif srv is not None:  # TLS or protocol changed: a new server on the same listening socket
                    try:
                        socks = duplicate(srv.server)
                        try:
                            await f.start(self.host, sock=socks[0])
                        finally:
                            for extra in socks[1:]:
                                extra.close()
                    except OSError as exc:
                        f.settings.stop_sweeper()
                        raise cannot_listen(key, port, exc) from None
                else:
                    owner = admin_port_owner(port, self.admin_listening)
                    if owner is not None:
                        raise PortInUse(f"{key}: port {port} is already used by {owner}")
                    await self._listen(f, port, key)
                    opened.append(port)
                fresh[port] = f
            new_admin = await self._open_admin(admin)
        except PortInUse:
            for f in fresh.values():
                await f.stop_listening()
                f.settings.stop_sweeper()
            self._release_locks(opened)
            raise
        self._apply_process_settings(runtime)
        if self.serve_admin_ports:
            wanted = {addr for _, addr, _ in admin}
            for addr in [a for a in self.admin_servers if a not in wanted]:
                self.admin_servers.pop(addr).close()
            self.admin_servers.update(new_admin)
            if admin != self.admin_listening:
                log.info("admin endpoints: %s", ", ".join(f"{k}={a}" for k, a, _ in admin) or "off")
            self.admin_listening = admin
        new: dict[int, BindServer] = {}
        for port, bind in runtime.binds.items():
            srv = fresh.get(port)
            if srv is None:
                srv = old[port]
                srv.runtime = bind
                srv.apply_settings(runtime)
            new[port] = srv
        for port, srv in old.items():
            if new.get(port) is not srv:
                await srv.stop_listening()
                srv.settings.drain()
        self._release_locks([p for p in old if p not in new])
        self.servers = new
        self.runtime = runtime

    def _needs_restart(self, runtime: Runtime, admin: list[tuple[str, str, str]]) -> None:
        """Refuse (``NeedsRestart``) a reload that changes what only a restart can: the
        listening host of every traffic port (``enableIpv6``), an admin address served
        by the supervisor (``--workers``), or an admin address moving to another host on
        the port it is listening on."""
        if self.runtime is None:  # (nothing running yet: nothing a restart would keep)
            return
        cur = self.runtime.cfg.config
        new = runtime.cfg.config
        if bool(cur.enable_ipv6) != bool(new.enable_ipv6):
            raise NeedsRestart("changing config.enableIpv6 needs a restart (every traffic port would be opened again)")
        if not self.serve_admin_ports:
            for name, attr, _ in ADMIN_KEYS:
                if getattr(cur, attr) != getattr(new, attr):
                    raise NeedsRestart(
                        f"changing config.{name} needs a restart with --workers (the supervisor serves it)"
                    )
            return
        going = [a for _, a, _ in self.admin_listening if a not in {x for _, x, _ in admin}]
        for key, addr, _ in admin:
            if addr in self.admin_servers:
                continue
            for a in going:
                if same_port(a, addr):
                    raise NeedsRestart(f"changing {key} from {a} to {addr} (the same port) needs a restart")

    # -- shutdown -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def shutdown(self) -> None:
        """Drain, as agentgateway does: readiness turns to 503 and keep-alive stops at
        once; new connections are still accepted for ``connectionMinTerminationDeadline``
        (default 0: none), each served one request, since clients and load balancers
        take a moment to stop sending; then listening stops, in-flight requests get up to
        ``connectionTerminationDeadline`` (default 30s) to finish, and what is left is
        closed."""
        self.ready = False
        if self._watch_task is not None:
            self._watch_task.cancel()
        c = self.runtime.cfg.config if self.runtime else None
        minimum = 0.0
        if c is not None and c.connection_min_termination_deadline is not None:
            minimum = float(c.connection_min_termination_deadline)
        for srv in self.servers.values():
            srv.settings.drain()
        if minimum > 0:
            log.info("draining: still accepting connections for %gs (connectionMinTerminationDeadline)", minimum)
            await asyncio.sleep(minimum)
        for srv in self.servers.values():
            await srv.stop_listening()
            srv.settings.drain()  # (idle connections accepted meanwhile)
        self._release_locks(list(self.locks))  # not listening any more: another gateway may start
        deadline = 30.0
        if c is not None and c.connection_termination_deadline is not None:
            deadline = float(c.connection_termination_deadline)
        end = self.loop.time() + deadline
        while any(s.settings.connections for s in self.servers.values()) and self.loop.time() < end:
            await asyncio.sleep(0.05)
        for srv in self.servers.values():
            for conn in list(srv.settings.connections):
                if conn.transport is not None:
                    conn.close()
            srv.settings.stop_sweeper()
        for s in [*self.admin_servers.values(), self.control_server]:
            if s is not None:
                s.close()
        mcp = getattr(self.services, "mcp", None)
        if mcp is not None:  # MCP sessions: stop stdio servers (and reap them)
            await mcp.close()
        self.services.pool.close()
        self.services.access_log.flush()
        from .telemetry import otlp_logs, request_store, tracing

        tracing.shutdown()  # export the spans still buffered
        otlp_logs.shutdown()  # and the access-log records
        await request_store.close_all()  # and the request log database's rows


def tune_gc() -> None:
    """Keep the cyclic collector off the request path.

    A proxied request allocates a few dozen short-lived objects, none in reference
    cycles that matter; with the default gen-0 threshold (700) CPython would run a
    collection every few requests. Objects alive after startup (modules, compiled
    config) are frozen out of the scans, and gen-0 runs every 50k allocations instead.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _kind(runtime: BindRuntime) -> str:
    """``internal`` (no socket), ``tcp`` (TCP / TLS listeners, by SNI) or ``http``."""
    if runtime.internal:
        return "internal"
    return "tcp" if runtime.tcp is not None else "http"


def _same_tls(a, b) -> bool:
    return a is None and b is None


async def run_process(
    config_path: str,
    *,
    control_socket: str | None = None,
    serve_admin_ports: bool = True,
    claim_socket: str | None = None,
) -> int:
    proc = GatewayProcess(
        config_path,
        control_socket=control_socket,
        serve_admin_ports=serve_admin_ports,
        claim_socket=claim_socket,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, proc.request_stop)
    try:
        await proc.start()
    except ConfigError as exc:
        log.error("invalid config %s:\n%s", config_path, exc)
        return 1
    except PortInUse as exc:
        proc.close_listeners()
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        proc.close_listeners()
        log.error("cannot start: %s", exc)
        return 1
    await proc.wait_stopped()
    log.info("shutting down: draining connections")
    await proc.shutdown()
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
