"""One gateway per port: a gateway refuses to start (or to reload) on a port another
process already listens on, SO_REUSEPORT or not, with a one-line error naming the
config key; ``--workers`` siblings still share their ports."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.harness import (
    TRACEBACK_MARKER,
    free_port,
    gateway_config,
    make_tls_files,
    route,
    run_cli,
    split_addr,
    subprocess_env,
    wait_for,
)


def direct(body: str) -> list[dict]:
    return [route("all", [], policies={"directResponse": {"body": body, "status": 200}})]


def run_refused(tmp_path: Path, cfg: dict, *args: str) -> str:
    """Start ``agentgw run`` on ``cfg``; assert it exits non-zero with no traceback; return its output."""
    path = tmp_path / f"refused-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli("run", "-f", str(path), *args, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"the gateway started:\n{out}"
    assert TRACEBACK_MARKER not in out, out
    return out


def listeners(port: int) -> int:
    """How many sockets listen on ``port`` (any address), from /proc/net/tcp{,6}."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def reuseport_listener(port: int, host: str = "0.0.0.0") -> socket.socket:
    """A socket listening the way nginx ``listen ... reuseport`` does."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    s.listen(64)
    return s


def served_by(url: str, n: int = 30) -> set[str]:
    """Bodies of ``n`` requests, each on a fresh connection."""
    return {httpx.get(url, timeout=5, headers={"connection": "close"}).text for _ in range(n)}


@pytest.mark.parametrize("workers", [None, 2])
def test_second_gateway_on_the_same_port_is_refused(harness, tmp_path, workers):
    first = harness.gateway(gateway_config(direct("first")))
    second = gateway_config(direct("second"), port=first.port)
    out = run_refused(tmp_path, second, *(["--workers", str(workers)] if workers else []))
    assert f"binds[0].port: port {first.port} is already in use by another process" in out, out
    assert f"pid {first.proc.pid}" in out, "the holder's pid should be named"
    # the first gateway still gets every connection
    assert served_by(first.url + "/x") == {"first"}
    assert listeners(first.port) == 1


@pytest.mark.parametrize("workers", [None, 2])
def test_gateway_started_second_cannot_join_a_workers_gateway(harness, tmp_path, workers):
    first = harness.gateway(gateway_config(direct("first")), workers=2)
    out = run_refused(
        tmp_path, gateway_config(direct("second"), port=first.port), *(["--workers", str(workers)] if workers else [])
    )
    assert f"binds[0].port: port {first.port} is already in use by another process" in out, out
    assert served_by(first.url + "/x") == {"first"}
    assert listeners(first.port) == 2  # the two workers, nobody else


@pytest.mark.parametrize("workers", [None, 2])
def test_two_gateways_started_together_one_wins(tmp_path, workers):
    """Started at the same moment on the same port: exactly one serves, the other exits."""
    port = free_port()
    procs = []
    for i in range(2):
        path = tmp_path / f"gw{i}.yaml"
        path.write_text(yaml.safe_dump(gateway_config(direct(f"gw{i}"), port=port)))
        cmd = [sys.executable, "-m", "agentgw", "run", "-f", str(path)] + (
            ["--workers", str(workers)] if workers else []
        )
        procs.append(
            subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=subprocess_env(),
                start_new_session=True,
            )
        )
    try:
        deadline = time.monotonic() + 30
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        losers = [p for p in procs if p.poll() is not None]
        assert len(losers) == 1, "one of the two gateways should have exited"
        loser = losers[0]
        winner = procs[1 - procs.index(loser)]
        out = loser.stdout.read()
        assert loser.returncode != 0
        assert f"binds[0].port: port {port} is already in use by another process" in out, out
        name = f"gw{procs.index(winner)}"
        wait_for(lambda: served_by(f"http://127.0.0.1:{port}/x", 1) == {name}, 15, message="the winner serving")
        assert served_by(f"http://127.0.0.1:{port}/x") == {name}
        assert listeners(port) == (workers or 1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
            p.stdout.close()


@pytest.mark.parametrize("workers", [None, 2])
def test_port_held_by_a_reuseport_socket_is_refused(tmp_path, workers):
    port = free_port()
    holder = reuseport_listener(port)
    try:
        out = run_refused(
            tmp_path, gateway_config(direct("gw"), port=port), *(["--workers", str(workers)] if workers else [])
        )
        assert f"binds[0].port: port {port} is already in use by another process" in out, out
        assert listeners(port) == 1  # nobody joined the holder
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        holder.settimeout(5)
        conn, _ = holder.accept()  # the connection reached the holder
        conn.close()
        c.close()
    finally:
        holder.close()


def test_port_held_by_a_plain_socket_on_one_address_is_refused(tmp_path):
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        out = run_refused(tmp_path, gateway_config(direct("gw"), port=port))
        assert f"binds[0].port: port {port} is already in use by another process" in out, out
    finally:
        holder.close()


def test_the_second_bind_is_named(tmp_path):
    port = free_port()
    holder = reuseport_listener(port)
    try:
        extra = [{"port": port, "listeners": [{"name": "b", "protocol": "HTTP", "routes": direct("b")}]}]
        out = run_refused(tmp_path, gateway_config(direct("gw"), extra_binds=extra))
        assert f"binds[1].port: port {port} is already in use by another process" in out, out
    finally:
        holder.close()


def test_a_port_freed_by_a_stopped_gateway_can_be_used_at_once(harness):
    first = harness.gateway(gateway_config(direct("first")))
    assert first.stop() == 0
    second = harness.gateway(gateway_config(direct("second"), port=first.port))
    assert served_by(second.url + "/x", 3) == {"second"}


@pytest.mark.parametrize("key", ["adminAddr", "statsAddr", "readinessAddr"])
@pytest.mark.parametrize("workers", [None, 2])
def test_admin_address_taken_says_off_disables_it(tmp_path, key, workers):
    cfg = gateway_config(direct("gw"))
    host, port = split_addr(cfg["config"][key])
    holder = socket.socket()
    holder.bind((host, port))
    holder.listen()
    try:
        out = run_refused(tmp_path, cfg, *(["--workers", str(workers)] if workers else []))
        line = f"config.{key}: port {port} is already in use by another process"
        assert line in out, out
        assert f"set config.{key}: off to disable" in out, out
    finally:
        holder.close()
    assert listeners(cfg["binds"][0]["port"]) == 0, "the traffic port was left open"


@pytest.mark.parametrize("workers", [None, 2])
def test_admin_addresses_can_be_off(tmp_path, workers):
    """``off`` (quoted, or YAML's bare ``off``) turns each admin-style address off, so a
    taken one can be given up."""
    cfg = gateway_config(direct("gw"))
    taken = [split_addr(cfg["config"][k]) for k in ("adminAddr", "statsAddr", "readinessAddr")]
    cfg["config"].update(adminAddr="off", statsAddr="off", readinessAddr="off")
    path = tmp_path / "off.yaml"
    path.write_text(yaml.safe_dump(cfg).replace("readinessAddr: 'off'", "readinessAddr: off"))
    assert "readinessAddr: off\n" in path.read_text()
    cmd = [sys.executable, "-m", "agentgw", "run", "-f", str(path)] + (["--workers", str(workers)] if workers else [])
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env(), start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{cfg['binds'][0]['port']}/x"

        def up() -> bool:
            assert p.poll() is None, p.stdout.read()
            try:
                return served_by(url, 1) == {"gw"}
            except httpx.HTTPError:
                return False

        wait_for(up, 20, message="the gateway serving")
        for addr in taken:
            with pytest.raises(OSError):
                socket.create_connection(addr, timeout=1).close()
    finally:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
        p.stdout.close()


def test_admin_unix_socket_in_use_is_refused(tmp_path):
    sock_path = tmp_path / "admin.sock"
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(str(sock_path))
    holder.listen()
    try:
        cfg = gateway_config(direct("gw"))
        cfg["config"]["adminAddr"] = f"unix:{sock_path}"
        out = run_refused(tmp_path, cfg)
        assert f"config.adminAddr: unix:{sock_path} is already in use by another process" in out, out
        assert "set config.adminAddr: off" in out
        assert sock_path.exists(), "the other process's socket was removed"
    finally:
        holder.close()


def test_bind_on_the_gateways_own_admin_port_is_named(tmp_path):
    cfg = gateway_config(direct("gw"))
    _, admin_port = split_addr(cfg["config"]["adminAddr"])
    cfg["binds"][0]["port"] = admin_port
    out = run_refused(tmp_path, cfg)
    assert f"config.adminAddr: port {admin_port} is already used by binds[0].port" in out, out


def test_workers_share_their_ports(harness):
    gw = harness.gateway(gateway_config(direct("gw")), workers=2)
    assert listeners(gw.port) == 2
    assert served_by(gw.url + "/x", 20) == {"gw"}


# -- hot reload ---------------------------------------------------------------------------
def _with_extra_bind(cfg: dict, port: int, body: str) -> dict:
    new = yaml.safe_load(yaml.safe_dump(cfg))
    new["binds"].append({"port": port, "listeners": [{"name": "extra", "protocol": "HTTP", "routes": direct(body)}]})
    return new


@pytest.mark.parametrize("workers", [None, 2])
def test_reload_adding_a_taken_port_is_refused(harness, workers):
    cfg = gateway_config(direct("v1"))
    gw = harness.gateway(cfg, workers=workers)
    failed_before = gw.metric("agentgw_config_reloads_total", result="failed") or 0
    port = free_port()
    holder = reuseport_listener(port)
    try:
        new = _with_extra_bind(cfg, port, "extra")
        new["binds"][0]["listeners"][0]["routes"] = direct("v2")
        assert gw.reload(new, expect="failed") == "failed"
        assert (gw.metric("agentgw_config_reloads_total", result="failed") or 0) > failed_before
        logs = gw.stdout_text() + gw.stderr_text()
        assert f"binds[1].port: port {port} is already in use by another process" in logs, gw.logs()
        # the old config keeps serving, and nobody joined the holder
        assert served_by(gw.url + "/x", 10) == {"v1"}
        assert listeners(port) == 1
    finally:
        holder.close()
    # once the port is free, the same change applies
    assert gw.reload(new) == "ok"
    wait_for(lambda: served_by(gw.url + "/x", 1) == {"v2"}, 10, message="v2 applied")
    wait_for(lambda: served_by(f"http://127.0.0.1:{port}/x", 10) == {"extra"}, 10, message="the new port serving")
    assert listeners(port) == (workers or 1)


def test_reload_adding_a_port_another_gateway_serves_is_refused(harness):
    other = harness.gateway(gateway_config(direct("other")))
    cfg = gateway_config(direct("v1"))
    gw = harness.gateway(cfg)
    assert gw.reload(_with_extra_bind(cfg, other.port, "mine"), expect="failed") == "failed"
    logs = gw.stdout_text() + gw.stderr_text()
    assert (
        f"binds[1].port: port {other.port} is already in use by another process (agentgw, pid {other.proc.pid})" in logs
    )
    assert served_by(other.url + "/x") == {"other"}


def test_reload_can_move_a_bind_to_another_port_and_back(harness):
    cfg = gateway_config(direct("v1"))
    gw = harness.gateway(cfg)
    old_port, new_port = gw.port, free_port()
    moved = yaml.safe_load(yaml.safe_dump(cfg))
    moved["binds"][0]["port"] = new_port
    assert gw.reload(moved) == "ok"
    wait_for(lambda: listeners(old_port) == 0, 5, message="the old port closed")
    # the port the gateway gave up is free for anyone (its lock is released too)
    taker = harness.gateway(gateway_config(direct("taker"), port=old_port))
    assert served_by(taker.url + "/x", 3) == {"taker"}
    taker.stop()
    assert gw.reload(cfg) == "ok"
    wait_for(lambda: served_by(f"http://127.0.0.1:{old_port}/x", 1) == {"v1"}, 10, message="moved back")


@pytest.mark.parametrize("workers", [None, 2])
def test_tls_change_on_reload_keeps_the_port(harness, tls_files, workers):
    """A bind whose certificate changes gets a new server on the same listening socket:
    the reload succeeds, new connections see the new certificate, and no connection is
    refused while the server is replaced."""
    cfg = gateway_config(direct("tls"), protocol="HTTPS", tls=tls_files)
    gw = harness.gateway(cfg, workers=workers)
    old_client = httpx.Client(verify=tls_files.client_context(), timeout=10)
    try:
        assert old_client.get(gw.url + "/x").text == "tls"
        other = make_tls_files(gw.workdir / "other-ca")
        new = yaml.safe_load(yaml.safe_dump(cfg))
        new["binds"][0]["listeners"][0]["tls"] = {"cert": str(other.cert), "key": str(other.key)}
        assert gw.reload(new) == "ok"

        def new_cert_served() -> bool:
            try:
                return (
                    httpx.get(
                        gw.url + "/x", verify=other.client_context(), timeout=5, headers={"connection": "close"}
                    ).text
                    == "tls"
                )
            except httpx.HTTPError:
                return False

        wait_for(new_cert_served, 10, message="the new certificate served")
        assert listeners(gw.port) == (workers or 1)
        stop = threading.Event()
        errors: list[str] = []

        def load():
            while not stop.is_set():
                try:
                    httpx.get(gw.url + "/x", verify=other.client_context(), timeout=5, headers={"connection": "close"})
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

        t = threading.Thread(target=load, daemon=True)
        t.start()
        time.sleep(0.3)
        # and once more, under load: no connection is refused while the server is replaced
        assert gw.reload(_retitled(new)) == "ok"
        time.sleep(0.5)
        stop.set()
        t.join(10)
        # (a connection the old server accepted but that sent nothing yet is closed by its
        # drain, as for any bind that stops; what must never happen is a refusal)
        refused = [e for e in errors if "refused" in e.lower()]
        assert refused == [], errors
    finally:
        old_client.close()


def _retitled(cfg: dict) -> dict:
    """The same config with a changed route body (a reload that rebuilds the TLS server)."""
    new = yaml.safe_load(yaml.safe_dump(cfg))
    new["binds"][0]["listeners"][0]["routes"] = direct("tls")
    new["binds"][0]["listeners"][0]["routes"][0]["name"] = "renamed"
    return new
