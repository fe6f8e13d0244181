"""One gateway per port: refuse to listen where another process already listens.

Linux lets several sockets listen on one port when all of them set SO_REUSEPORT, and
then splits the connections between them. ``--workers N`` relies on that on purpose;
a second gateway (or nginx with ``reuseport``) started on the same port must not join
silently, so every gateway decides up front that its ports are its own:

* **Port lock.** The process that decides which ports the gateway serves (the single
  process, or the supervisor with ``--workers``) holds, for each traffic port, a unix
  socket named ``agentgw/port/<port>`` in the abstract namespace. Binding it is atomic
  and exclusive, the kernel drops it when the process dies (no stale lock files), and
  it is scoped to the network namespace, exactly like the port it stands for. Two
  gateways started at the same moment cannot both get it; the loser's error names the
  holder's pid.
* **Exclusive bind** (one process). The traffic socket is bound *without*
  SO_REUSEPORT, so the kernel refuses it while anything listens on the port, and
  refuses any later socket on the port, SO_REUSEPORT or not. A bind whose TLS changes on
  reload keeps its listening socket: the new server accepts on a duplicate of it.
* **Probe** (``--workers``). The workers must share the port through SO_REUSEPORT, so
  the supervisor checks first: binding a probe socket without SO_REUSEPORT fails with
  EADDRINUSE when any socket listens on the port, SO_REUSEPORT or not. Workers ask the
  supervisor (``claim``) before they bind a port, at start and on every reload; the
  supervisor takes the lock and probes the first time a port is claimed.

Residual risk, with ``--workers`` only: the kernel offers no way to close a SO_REUSEPORT
group to newcomers, so a process that is not agentgw, runs as the same user and sets
SO_REUSEPORT can still join a workers' port after the probe. (Other gateways are kept out
by the lock; a single-process gateway has no such gap, its socket lacks SO_REUSEPORT.) A
process without SO_REUSEPORT that takes the port between the probe and the workers' bind
makes that bind fail: the gateway stops, or the reload is refused, with the same message.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import sys

WILDCARD_HOSTS = ("", "0.0.0.0", "::")

ADMIN_KEYS = (  # (key, GatewayConfig field, what it serves)
    ("adminAddr", "admin_addr", "the admin endpoint"),
    ("statsAddr", "stats_addr", "the metrics endpoint"),
    ("readinessAddr", "readiness_addr", "the readiness endpoint"),
)


class PortInUse(Exception):
    """A port or address this config names can't be listened on; ``str()`` is one line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# -- what the config asks for ---------------------------------------------------------------
def port_keys(cfg) -> dict[int, str]:
    """Traffic port → the config key that asks for it (``binds[0].port``, ``mcp.port``...)."""
    keys: dict[int, str] = {}
    for i, b in enumerate(cfg.binds):
        if b.mode != "internal":  # (no socket)
            keys.setdefault(b.port, f"binds[{i}].port")
    for name, g in cfg.gateways.items():
        keys.setdefault(g.port, f"gateways.{name}.port")
    for key, sect in (("mcp", cfg.mcp), ("llm", cfg.llm)):
        # (attached to named gateways, the section has no port of its own)
        if sect is not None and not sect.gateways and not cfg._attaches_to_default(sect):
            keys.setdefault(sect.port, f"{key}.port")
    return keys


def admin_addrs(cfg) -> list[tuple[str, str, str]]:
    """``(key, addr, what)`` for each admin-style address that isn't ``off``, one per address."""
    c = cfg.config
    seen: set[str] = set()
    out = []
    for name, attr, what in ADMIN_KEYS:
        addr = getattr(c, attr)
        if addr == "off" or addr in seen:
            continue
        seen.add(addr)
        out.append((f"config.{name}", addr, what))
    return out


def in_use(key: str, port: int, holder: int | None = None) -> PortInUse:
    who = f" (agentgw, pid {holder})" if holder else ""
    return PortInUse(f"{key}: port {port} is already in use by another process{who}")


def admin_error(key: str, addr: str, what: str, exc: OSError) -> PortInUse:
    """The one-line refusal for an admin-style address, with the way out (``off``)."""
    where = _tcp(addr)
    if exc.errno == errno.EADDRINUSE:
        if where is not None:
            problem = f"port {where[1]} is already in use by another process ({addr})"
        else:
            problem = f"{addr} is already in use by another process"
    else:
        problem = f"cannot listen on {addr}: {exc.strerror or exc}"
    return PortInUse(f"{key}: {problem}; choose another address, or set {key}: off to disable {what}")


def cannot_listen(key: str, port: int, exc: OSError) -> PortInUse:
    if exc.errno == errno.EADDRINUSE:
        return in_use(key, port)
    return PortInUse(f"{key}: cannot listen on port {port}: {exc.strerror or exc}")


def _tcp(addr: str) -> tuple[str, int] | None:
    from .admin.server import parse_addr

    where = parse_addr(addr)
    if where is None or isinstance(where, str):
        return None
    host, port = where
    return ("127.0.0.1" if host == "localhost" else host), port


def _overlap(a: tuple[str, int], b: tuple[str, int]) -> bool:
    return a[1] == b[1] and (a[0] in WILDCARD_HOSTS or b[0] in WILDCARD_HOSTS or a[0] == b[0])


def own_conflicts(traffic: dict[int, str], admin: list[tuple[str, str, str]]) -> None:
    """Refuse a config whose own addresses collide (a bind on the admin port, say), which
    would otherwise be reported as "in use by another process"."""
    seen: list[tuple[tuple[str, int], str]] = [(("0.0.0.0", p), k) for p, k in traffic.items()]
    for key, addr, _what in admin:
        where = _tcp(addr)
        if where is None:
            continue
        for other, okey in seen:
            if _overlap(where, other):
                raise PortInUse(f"{key}: port {where[1]} is already used by {okey}")
        seen.append((where, key))


def same_port(a: str, b: str) -> bool:
    """Whether admin-style addresses ``a`` and ``b`` are TCP addresses that take the same
    port on overlapping hosts (a socket on one refuses the other)."""
    ta, tb = _tcp(a), _tcp(b)
    return ta is not None and tb is not None and _overlap(ta, tb)


def admin_port_owner(port: int, admin: list[tuple[str, str, str]]) -> str | None:
    """The admin key whose TCP address takes ``port`` on the traffic (wildcard) host."""
    for key, addr, _ in admin:
        where = _tcp(addr)
        if where is not None and where[1] == port:
            return key
    return None


# -- the lock -------------------------------------------------------------------------------
class PortLock:
    """Held while this gateway serves ``port``: an abstract unix socket ``agentgw/port/N``.

    It listens so that a refused gateway can name the holder's pid (SO_PEERCRED);
    connections to it are accepted and closed at once.
    """

    def __init__(self, port: int, sock: socket.socket | None, loop: asyncio.AbstractEventLoop | None):
        self.port = port
        self.sock = sock
        self.loop = loop
        if sock is not None and loop is not None:
            loop.add_reader(sock.fileno(), self._drop_connection, sock)

    @staticmethod
    def name(port: int) -> bytes:
        return b"\0agentgw/port/%d" % port

    @classmethod
    def acquire(cls, port: int, key: str, loop: asyncio.AbstractEventLoop | None = None) -> PortLock:
        if not sys.platform.startswith("linux"):  # no abstract namespace: the bind/probe decides alone
            return cls(port, None, None)
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:
            raise PortInUse(f"{key}: cannot check port {port}: {exc.strerror or exc}") from None
        try:
            s.bind(cls.name(port))
            s.listen(16)
            s.setblocking(False)
        except OSError as exc:
            s.close()
            if exc.errno == errno.EADDRINUSE:
                raise in_use(key, port, holder_pid(port)) from None
            raise PortInUse(f"{key}: cannot check port {port}: {exc.strerror or exc}") from None
        return cls(port, s, loop)

    def _drop_connection(self, sock: socket.socket) -> None:
        try:
            conn, _ = sock.accept()
            conn.close()
        except OSError:
            pass

    def release(self) -> None:
        if self.sock is not None:
            if self.loop is not None and not self.loop.is_closed():
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None


def holder_pid(port: int) -> int | None:
    """The pid holding the lock for ``port``, if it can be asked."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(PortLock.name(port))
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        return pid or None
    except OSError:
        return None
    finally:
        s.close()


# -- checking a port ------------------------------------------------------------------------
def probe(host: str, port: int, key: str) -> None:
    """Raise ``PortInUse`` if any socket listens on ``host:port`` (SO_REUSEPORT or not).

    A socket bound without SO_REUSEPORT conflicts with every listener on the port; with
    SO_REUSEADDR it doesn't conflict with connections lingering in TIME_WAIT. It is
    bound the way the traffic socket will be (IPv6 sockets v6-only) and never listens.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortInUse(f"{key}: cannot listen on port {port}: {exc.strerror or exc}") from None
    for family, type_, proto, _, addr in dict.fromkeys(infos):
        s = socket.socket(family, type_, proto)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(addr)
        except OSError as exc:
            raise cannot_listen(key, port, exc) from None
        finally:
            s.close()


def duplicate(server) -> list[socket.socket]:
    """New socket objects for the listening sockets of ``server`` (same kernel sockets)."""
    return [socket.socket(fileno=os.dup(s.fileno())) for s in server.sockets]


# -- claims (``--workers``): workers ask the supervisor before binding a port ----------------
async def claim(path: str, port: int, host: str, key: str, timeout: float = 5.0) -> None:
    """Ask the supervisor listening on ``path`` whether this gateway may serve ``port``."""

    async def go() -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(f"{port} {host or '-'} {key}\n".encode())
            return await reader.readline()
        finally:
            writer.close()

    try:
        answer = (await asyncio.wait_for(go(), timeout)).decode().rstrip("\n")
    except (TimeoutError, OSError) as exc:
        raise PortInUse(f"{key}: cannot check port {port} with the supervisor: {exc or 'timeout'}") from None
    if answer != "ok":
        raise PortInUse(answer.removeprefix("error ") or f"{key}: port {port} refused by the supervisor")


async def serve_claims(path: str, decide) -> asyncio.AbstractServer:
    """Answer claims on unix socket ``path``; ``decide(port, host, key)`` raises ``PortInUse``."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode().strip()
            port_s, host, key = line.split(" ", 2)
            try:
                decide(int(port_s), "" if host == "-" else host, key)
                writer.write(b"ok\n")
            except PortInUse as exc:
                writer.write(f"error {exc.message}\n".encode())
            await writer.drain()
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    return await asyncio.start_unix_server(on_client, path)
