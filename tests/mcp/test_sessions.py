"""Sessions: a session moved between gateway processes, DELETE, TTL, no leftover processes."""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.support.harness import wait_for

from .conftest import children_of, demo_stdio, mcp_config

KEY = "11" * 32
ACCEPT = {"accept": "application/json, text/event-stream"}


class Raw:
    """The streamable-HTTP dance by hand (to move a session between gateways)."""

    def __init__(self, base: str):
        self.base = base
        self.sid = None
        self.n = 0

    def init(self) -> dict:
        r = self.post(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        )
        self.sid = r.headers["mcp-session-id"]
        httpx.post(
            self.base, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.h(), timeout=10
        )
        return r.json()["result"]

    def h(self) -> dict:
        return {**ACCEPT, **({"mcp-session-id": self.sid} if self.sid else {})}

    def post(self, method: str, params: dict | None = None, base: str | None = None) -> httpx.Response:
        self.n += 1
        msg = {"jsonrpc": "2.0", "id": self.n, "method": method}
        if params is not None:
            msg["params"] = params
        return httpx.post(base or self.base, json=msg, headers=self.h(), timeout=20)

    def call(self, tool: str, args: dict | None = None, base: str | None = None) -> dict:
        r = self.post("tools/call", {"name": tool, "arguments": args or {}}, base)
        assert r.status_code == 200, r.text
        return r.json()


def _text(doc: dict) -> str:
    return doc["result"]["content"][0]["text"]


def test_session_moves_between_replicas_with_the_same_key(harness, servers):
    beta = servers.fast("beta")
    targets = {
        "targets": [{"name": "beta", "mcp": {"host": beta.url}}, {"name": "weather", "stdio": demo_stdio("weather")}]
    }
    extra = {"session": {"key": KEY}}
    gw1 = harness.gateway(mcp_config(targets, extra_config=extra))
    gw2 = harness.gateway(mcp_config(targets, extra_config=extra))
    other = harness.gateway(mcp_config(targets, extra_config={"session": {"key": "22" * 32}}))
    c = Raw(gw1.url + "/mcp")
    c.init()
    assert _text(c.call("beta_bump")) == "1"
    pid1 = _text(c.call("weather_whoami")).split()[-1]
    # same Mcp-Session-Id, other process: the upstream HTTP session continues
    assert _text(c.call("beta_bump", base=gw2.url + "/mcp")) == "2"
    assert _text(c.call("beta_bump", base=gw1.url + "/mcp")) == "3"
    pid2 = _text(c.call("weather_whoami", base=gw2.url + "/mcp")).split()[-1]
    assert pid1 != pid2  # stdio targets are re-created on the new replica
    # a replica with another key can't read the session: 404 → the client re-initialises
    r = c.post("tools/list", base=other.url + "/mcp")
    assert r.status_code == 404
    # garbage ids too
    r = httpx.post(
        gw1.url + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**ACCEPT, "mcp-session-id": "bogus"},
    )
    assert r.status_code == 404
    r = httpx.post(gw1.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=ACCEPT)
    assert r.status_code == 400


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z" and False
    except FileNotFoundError:
        return True


def test_delete_ttl_and_shutdown_leave_no_processes(harness):
    targets = {
        "targets": [{"name": "weather", "stdio": demo_stdio("weather")}, {"name": "math", "stdio": demo_stdio("math")}]
    }
    gw = harness.gateway(mcp_config(targets, extra_config={"mcp": {"sessionTtl": "1s"}}))

    def pids(c):
        return {int(_text(c.call(f"{t}_whoami")).split()[-1]) for t in ("weather", "math")}

    a = Raw(gw.url + "/mcp")
    a.init()
    pa = pids(a)
    assert set(children_of(gw.proc.pid)) >= pa
    r = httpx.delete(gw.url + "/mcp", headers=a.h())
    assert r.status_code == 200
    wait_for(lambda: all(_pid_gone(p) for p in pa), timeout=10, message="stdio servers of a deleted session gone")
    # the spec: a terminated session's id is answered 404 (never resumed), DELETE included
    assert a.post("tools/list").status_code == 404
    assert httpx.delete(gw.url + "/mcp", headers=a.h()).status_code == 404
    assert not [p for p in children_of(gw.proc.pid) if not _pid_gone(p)]  # nothing re-created for it
    # idle TTL: a session nobody uses is closed and its processes reaped; without a
    # shared session key no other process can resume it, so it has expired: 404
    b = Raw(gw.url + "/mcp")
    b.init()
    pb = pids(b)
    wait_for(lambda: all(_pid_gone(p) for p in pb), timeout=15, message="idle session's stdio servers reaped")
    assert b.post("tools/list").status_code == 404
    # shutdown: a live session's processes go with the gateway
    c = Raw(gw.url + "/mcp")
    c.init()
    pc = pids(c)
    gw.stop(signal.SIGTERM)
    wait_for(lambda: all(_pid_gone(p) for p in pc), timeout=10, message="stdio servers gone after gateway shutdown")
    assert not [p for p in children_of(gw.proc.pid)]


def test_gateway_killed_takes_stdio_servers_with_it(harness):
    gw = harness.gateway(mcp_config({"targets": [{"name": "weather", "stdio": demo_stdio("weather")}]}))
    c = Raw(gw.url + "/mcp")
    c.init()
    pid = int(_text(c.call("whoami")).split()[-1])
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(5)
    wait_for(lambda: _pid_gone(pid), timeout=10, message="orphaned stdio server killed (PR_SET_PDEATHSIG)")
    time.sleep(0)
