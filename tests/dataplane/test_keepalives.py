"""TCP keepalive on upstream connections (``config.backend.keepalives``) and on client
connections (``frontendPolicies.tcp.keepalives``), read back from the gateway's own
sockets.

The gateway exposes nothing about its sockets, so the test looks at them from outside:
the kernel's table (``/proc/<pid>/net/tcp``) says which socket is the connection and
whether its keepalive timer runs; a duplicate of the gateway's file descriptor
(``pidfd_getfd``) gives the options themselves (``getsockopt``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import socket

import httpx
import pytest

from tests.support.harness import RawHTTP, gateway_config, route, wait_for

_TIMER_KEEPALIVE = 2  # /proc/net/tcp "tr": the keepalive timer is pending
_USER_HZ = os.sysconf("SC_CLK_TCK")
_SYS_PIDFD_GETFD = 438


@dataclasses.dataclass
class TcpEntry:
    local_port: int
    remote_port: int
    state: int
    timer: int
    when: float  # seconds until the timer fires
    inode: int


def tcp_entries(pid: int) -> list[TcpEntry]:
    out = []
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            timer, when = p[5].split(":")
            out.append(
                TcpEntry(
                    local_port=int(p[1].split(":")[1], 16),
                    remote_port=int(p[2].split(":")[1], 16),
                    state=int(p[3], 16),
                    timer=int(timer, 16),
                    when=int(when, 16) / _USER_HZ,
                    inode=int(p[9]),
                )
            )
    return out


def socket_fds(pid: int) -> dict[int, int]:
    """inode -> fd of the sockets ``pid`` holds."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out[int(link[8:-1])] = int(fd)
    return out


def gateway_connection(
    pid: int, *, local_port: int | None = None, remote_port: int | None = None
) -> tuple[TcpEntry, int]:
    """The established connection of process ``pid`` with these ports, and its fd there."""

    def find():
        fds = socket_fds(pid)
        for e in tcp_entries(pid):
            if e.state != 1 or e.inode not in fds:  # ESTABLISHED, held by pid
                continue
            if local_port is not None and e.local_port != local_port:
                continue
            if remote_port is not None and e.remote_port != remote_port:
                continue
            return e, fds[e.inode]
        return None

    return wait_for(find, 5.0, message=f"a connection of pid {pid} (local {local_port}, remote {remote_port})")


def keepalive_options(pid: int, fd: int) -> tuple[int, int, int, int]:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT) of fd ``fd`` of ``pid``."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        mine = libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if mine < 0:
            err = ctypes.get_errno()
            if err in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                pytest.skip(f"cannot read another process's socket here: {os.strerror(err)}")
            raise OSError(err, os.strerror(err))
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=mine)  # a duplicate: closing it leaves the gateway's alone
    try:
        return (
            s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )
    finally:
        s.close()


def _upstream_connection(gw, up) -> tuple[TcpEntry, tuple]:
    """After one request, the gateway's pooled connection to ``up``: entry and options."""
    assert httpx.get(gw.url + "/x", timeout=10).status_code == 200
    entry, fd = gateway_connection(gw.proc.pid, remote_port=up.port)
    return entry, keepalive_options(gw.proc.pid, fd)


def test_backend_keepalives_are_set_on_upstream_connections(harness):
    up = harness.upstream("ka-up")
    keep = {"backend": {"keepalives": {"time": "37s", "interval": "11s", "retries": 4}}}
    gw = harness.gateway(gateway_config([route("r", [up.host])], extra_config=keep))
    entry, opts = _upstream_connection(gw, up)
    assert opts == (1, 37, 11, 4)
    assert entry.timer == _TIMER_KEEPALIVE and 30 < entry.when <= 37, entry

    # agentgateway's defaults for what is left out: on, 180s, 180s, 9
    gw2 = harness.gateway(gateway_config([route("r", [up.host])], extra_config={"backend": {"keepalives": {}}}))
    assert _upstream_connection(gw2, up)[1] == (1, 180, 180, 9)


@pytest.mark.parametrize("backend", [None, {"keepalives": {"enabled": False, "time": "5s"}}])
def test_no_backend_keepalives_without_them(harness, backend):
    up = harness.upstream("ka-off")
    extra = {"backend": backend} if backend is not None else None
    gw = harness.gateway(gateway_config([route("r", [up.host])], extra_config=extra))
    entry, opts = _upstream_connection(gw, up)
    assert opts[0] == 0
    assert entry.timer != _TIMER_KEEPALIVE, entry


def _client_connection(gw) -> tuple[TcpEntry, tuple, RawHTTP]:
    """A keep-alive client connection after one request: the gateway's side of it."""
    c = RawHTTP(gw.port)
    assert c.request("GET", "/x").status == 200
    entry, fd = gateway_connection(gw.proc.pid, local_port=gw.port, remote_port=c.sock.getsockname()[1])
    return entry, keepalive_options(gw.proc.pid, fd), c


def test_frontend_keepalives_are_set_on_client_connections_and_follow_reloads(harness):
    up = harness.upstream("ka-front")
    cfg = gateway_config([route("r", [up.host])])
    cfg["frontendPolicies"] = {"tcp": {"keepalives": {"time": "41s", "interval": "13s", "retries": 3}}}
    gw = harness.gateway(cfg)
    entry, opts, c = _client_connection(gw)
    assert opts == (1, 41, 13, 3)
    assert entry.timer == _TIMER_KEEPALIVE and 35 < entry.when <= 41, entry

    # a reload applies to the connections accepted from then on
    cfg["frontendPolicies"]["tcp"]["keepalives"] = {"time": "23s"}
    gw.reload(cfg)
    entry2, opts2, c2 = _client_connection(gw)
    assert opts2 == (1, 23, 180, 9)
    cfg["frontendPolicies"]["tcp"]["keepalives"] = {"enabled": False}
    gw.reload(cfg)
    _, opts3, c3 = _client_connection(gw)
    assert opts3[0] == 0
    # the first connection was not touched
    assert (
        keepalive_options(
            gw.proc.pid, gateway_connection(gw.proc.pid, local_port=gw.port, remote_port=c.sock.getsockname()[1])[1]
        )
        == opts
    )
    for conn in (c, c2, c3):
        conn.close()


def test_no_frontend_keepalives_without_them(harness):
    up = harness.upstream("ka-front-off")
    gw = harness.gateway(gateway_config([route("r", [up.host])]))
    entry, opts, c = _client_connection(gw)
    c.close()
    assert opts[0] == 0
    assert entry.timer != _TIMER_KEEPALIVE, entry


def test_keepalive_values_outside_the_kernels_range_are_refused(tmp_path):
    from tests.support.harness import dump_yaml, run_cli

    cfg = gateway_config([route("r", ["127.0.0.1:9"])])
    cfg["config"]["backend"] = {"keepalives": {"time": "500ms", "retries": 0}}
    cfg["frontendPolicies"] = {"tcp": {"keepalives": {"interval": "10h"}}}
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode == 1
    assert [line.split(": ", 1)[1] for line in r.stderr.splitlines()] == [  # after <file>:<line>:<column>
        "config.backend.keepalives.retries: must be from 1 to 127 (the kernel's range)",
        "frontendPolicies.tcp.keepalives.interval: must be from 1s to 32767s (the kernel's range; fractions round up)",
    ], r.stderr
