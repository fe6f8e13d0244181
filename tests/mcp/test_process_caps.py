"""stdio process caps (stdioLimits / stdio.maxProcesses*): per target and per client, a
JSON-RPC error at the cap with no process started, processes reaped and counted down when
sessions end, and no process at all before the route's authentication has passed."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.identity.support import JwksServer, claims, new_rsa, public_jwks, sign
from tests.support.harness import gateway_config, metric_sum, parse_metrics, route, wait_for

from .conftest import PY, children_of, mcp_config

ACCEPT = {"accept": "application/json, text/event-stream"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
TOO_MANY = -32005
ISS = "https://issuer.test"


def counted_stdio(name: str, log: Path, delay: float = 0.0) -> dict:
    """The demo stdio server behind a shell that first appends its pid to ``log``: every
    process the gateway ever starts leaves a line, however short its life."""
    pause = f"sleep {delay}; " if delay else ""
    return {
        "cmd": "/bin/sh",
        "args": ["-c", f'echo $$ >> "$0"; {pause}exec "$1" -m agentgw_demo.mcp_server --name "$2"', str(log), PY, name],
    }


def started(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def client(ip: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from ``ip`` (any 127/8 address is local)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=20)


def init(c: httpx.Client, url: str, headers: dict | None = None) -> httpx.Response:
    return c.post(url, json=INIT, headers={**ACCEPT, **(headers or {})})


def opened(c: httpx.Client, url: str, headers: dict | None = None) -> str:
    r = init(c, url, headers)
    assert r.status_code == 200 and "result" in r.json(), r.text
    return r.headers["mcp-session-id"]


def refused(r: httpx.Response, limit: str, cap: int) -> None:
    """The answer at a cap: HTTP 200 (the transport's answer to a JSON-RPC request) with a
    JSON-RPC error naming the cap, and no session."""
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == 1 and "result" not in doc, doc
    err = doc["error"]
    assert err["code"] == TOO_MANY and err["data"]["limit"] == limit and err["data"]["max"] == cap, err
    assert err["message"].startswith("too many MCP sessions for "), err
    assert "mcp-session-id" not in r.headers


def whoami(c: httpx.Client, url: str, sid: str, headers: dict | None = None) -> int:
    r = c.post(
        url,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
        headers={**ACCEPT, "mcp-session-id": sid, **(headers or {})},
    )
    assert r.status_code == 200 and "result" in r.json(), r.text
    return int(r.json()["result"]["content"][0]["text"].split()[-1])


def delete(c: httpx.Client, url: str, sid: str, headers: dict | None = None) -> None:
    r = c.delete(url, headers={"mcp-session-id": sid, **(headers or {})})
    assert r.status_code == 200, r.text


def kids(gw) -> int:
    return len(children_of(gw.proc.pid))


def gauge(gw, target: str) -> float | None:
    text = httpx.get(gw.stats_url + "/metrics", timeout=5).text
    return metric_sum(parse_metrics(text), "agentgw_mcp_stdio_processes", target=target)


def settle(gw, n: int, log: Path | None = None, started_n: int | None = None) -> None:
    wait_for(lambda: kids(gw) == n, timeout=15, message=f"{n} stdio processes")
    assert gauge(gw, "weather") == n
    if log is not None:
        assert started(log) == started_n


# -------------------------------------------------------------------------------------------
def test_caps_per_client_and_per_target(harness, tmp_path):
    log = tmp_path / "starts"
    gw = harness.gateway(
        mcp_config(
            {
                "stdioLimits": {"maxProcesses": 3, "maxProcessesPerClient": 2},
                "targets": [{"name": "weather", "stdio": counted_stdio("weather", log)}],
            }
        )
    )
    url = gw.url + "/mcp"
    a, b, c = client("127.0.0.1"), client("127.0.0.2"), client("127.0.0.3")
    with a, b, c:
        a1, a2 = opened(a, url), opened(a, url)
        for _ in range(3):  # the client is at its cap: refused, nothing started
            refused(init(a, url), "maxProcessesPerClient", 2)
        settle(gw, 2, log, 2)
        b1 = opened(b, url)  # another client is still served
        refused(init(c, url), "maxProcesses", 3)  # the target is full
        refused(init(b, url), "maxProcesses", 3)
        settle(gw, 3, log, 3)
        pids = {whoami(a, url, a1), whoami(a, url, a2), whoami(b, url, b1)}
        assert pids == set(children_of(gw.proc.pid))
        # DELETE reaps the session's process and gives its place back
        delete(a, url, a1)
        settle(gw, 2, log, 3)
        c1 = opened(c, url)
        refused(init(a, url), "maxProcesses", 3)
        delete(b, url, b1)
        settle(gw, 2, log, 4)
        opened(a, url)
        refused(init(a, url), "maxProcessesPerClient", 2)
        settle(gw, 3, log, 5)
        assert whoami(c, url, c1) in children_of(gw.proc.pid)
        # the refused initializes are counted apart
        text = httpx.get(gw.stats_url + "/metrics", timeout=5).text
        n = metric_sum(
            parse_metrics(text), "agentgw_mcp_requests_total", method="initialize", status="too_many_sessions"
        )
        assert n == 7


def test_concurrent_initializes_never_exceed_the_caps(harness, tmp_path):
    log = tmp_path / "starts"
    gw = harness.gateway(
        mcp_config(
            {
                "stdioLimits": {"maxProcesses": 4, "maxProcessesPerClient": 3},
                "targets": [{"name": "weather", "stdio": counted_stdio("weather", log)}],
            }
        )
    )
    url = gw.url + "/mcp"
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], kids(gw))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    clients = {ip: client(ip) for ip in ("127.0.0.1", "127.0.0.2")}
    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda ip: (ip, init(clients[ip], url)), ["127.0.0.1"] * 10 + ["127.0.0.2"] * 10))
    finally:
        stop.set()
        sampler.join(5)
        for c in clients.values():
            c.close()
    ok = [ip for ip, r in answers if "result" in r.json()]
    assert len(ok) == 4 and max(ok.count("127.0.0.1"), ok.count("127.0.0.2")) <= 3
    for _, r in answers:
        if "error" in r.json():
            assert r.status_code == 200 and r.json()["error"]["code"] == TOO_MANY
    assert peak[0] <= 4
    settle(gw, 4, log, 4)  # no process was started for a refused initialize


def test_idle_expiry_process_exit_and_client_gone_give_places_back(harness, tmp_path):
    log = tmp_path / "starts"
    slow = tmp_path / "slow-starts"
    gw = harness.gateway(
        mcp_config(
            {
                "stdioLimits": {"maxProcessesPerClient": 1},
                "targets": [
                    {"name": "weather", "stdio": counted_stdio("weather", log)},
                    {"name": "slow", "stdio": {**counted_stdio("math", slow, delay=2), "maxProcessesPerClient": 2}},
                ],
            },
            extra_config={"mcp": {"sessionTtl": "3s"}},
        )
    )
    url = gw.url + "/mcp"
    with client() as c:
        # one session holds one process of each target; an initialize over the cap of
        # one target starts no process of the other either
        t0 = time.monotonic()
        sid = opened(c, url)
        assert time.monotonic() - t0 >= 2
        refused(init(c, url), "maxProcessesPerClient", 1)
        assert started(log) == 1 and started(slow) == 1 and kids(gw) == 2
        # idle expiry: the unused session is closed, its processes reaped, the place freed
        assert sid
        wait_for(lambda: kids(gw) == 0, timeout=15, message="idle session's processes reaped")
        assert gauge(gw, "weather") == 0 and gauge(gw, "slow") == 0
        opened(c, url)
        assert started(log) == 2 and started(slow) == 2 and kids(gw) == 2

    # process exit: a target that dies gives its place back at once
    gw2 = harness.gateway(
        mcp_config(
            {
                "stdioLimits": {"maxProcessesPerClient": 1},
                "targets": [{"name": "weather", "stdio": counted_stdio("weather", log)}],
            }
        )
    )
    url2 = gw2.url + "/mcp"
    with client() as c:
        sid = opened(c, url2)
        pid = whoami(c, url2, sid)
        refused(init(c, url2), "maxProcessesPerClient", 1)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: kids(gw2) == 0, timeout=10, message="dead target reaped")
        assert gauge(gw2, "weather") == 0
        sid2 = opened(c, url2)
        assert whoami(c, url2, sid2) != pid

    # client gone mid-initialize (the target takes 2s to start): the process is reaped
    gw3 = harness.gateway(
        mcp_config(
            {
                "stdioLimits": {"maxProcessesPerClient": 1},
                "targets": [{"name": "weather", "stdio": counted_stdio("weather", slow, delay=2)}],
            }
        )
    )
    for _ in range(3):
        send_and_reset(gw3.port, slow, started(slow))
        wait_for(lambda: kids(gw3) == 0, timeout=15, message="process of an abandoned initialize reaped")
        assert gauge(gw3, "weather") == 0
    with client() as c:
        opened(c, gw3.url + "/mcp")
        assert kids(gw3) == 1


def test_principal_is_the_client_and_no_process_before_apikey(harness, tmp_path):
    log = tmp_path / "starts"
    keys = [{"key": "key-alice", "metadata": {"name": "alice"}}, {"key": "key-bob", "metadata": {"name": "bob"}}]
    gw = harness.gateway(
        mcp_config(
            {"targets": [{"name": "weather", "stdio": {**counted_stdio("weather", log), "maxProcessesPerClient": 1}}]},
            policies={"apiKey": {"mode": "strict", "keys": keys}},
        )
    )
    url = gw.url + "/mcp"
    alice, bob = {"authorization": "Bearer key-alice"}, {"authorization": "Bearer key-bob"}
    with client() as c:
        for h in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic YTpi"}) * 10:
            r = init(c, url, h)
            assert r.status_code == 401, r.text
        assert started(log) == 0 and kids(gw) == 0
        a = opened(c, url, alice)
        refused(init(c, url, alice), "maxProcessesPerClient", 1)
        b = opened(c, url, bob)  # same address, another principal
        settle(gw, 2, log, 2)
        # the session id alone is not a credential: without the key, no access
        assert (
            c.post(
                url, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers={**ACCEPT, "mcp-session-id": a}
            ).status_code
            == 401
        )
        delete(c, url, a, alice)
        settle(gw, 1, log, 2)
        opened(c, url, alice)
        whoami(c, url, b, bob)
        settle(gw, 2, log, 3)


def test_no_process_before_jwt_auth_on_route_or_listener(harness, tmp_path):
    key, stranger = new_rsa("k1"), new_rsa("k2")
    jwks = JwksServer(public_jwks(key))
    try:
        logs = {p: tmp_path / f"starts-{p}" for p in ("remote", "inline", "listener")}

        def mcp_route(name: str, prefix: str, policies: dict | None = None) -> dict:
            return route(
                name,
                [{"mcp": {"targets": [{"name": "weather", "stdio": counted_stdio("weather", logs[name])}]}}],
                prefix=prefix,
                policies=policies,
            )

        remote = {"jwtAuth": {"mode": "strict", "issuer": ISS, "jwks": {"url": f"http://{jwks.host}/jwks"}}}
        inline = {"jwtAuth": {"mode": "strict", "issuer": ISS, "jwks": json.dumps(public_jwks(key))}}
        # route policies: the task-free path (inline keys answer at once, a JWKS fetch waits)
        gw = harness.gateway(
            gateway_config(
                [mcp_route("remote", "/remote", remote), mcp_route("inline", "/inline", inline)], logging_format=None
            )
        )
        # listener policies: the general path
        cfg = gateway_config([mcp_route("listener", "/")], logging_format=None)
        cfg["binds"][0]["listeners"][0]["policies"] = inline
        lgw = harness.gateway(cfg)
        bad = [
            {},
            {"authorization": "Bearer not.a.jwt"},
            {"authorization": f"Bearer {sign(stranger, claims(iss=ISS))}"},  # unknown kid: a JWKS refetch first
            {"authorization": f"Bearer {sign(key, claims(iss=ISS, ttl=-120))}"},
            {"authorization": f"Bearer {sign(key, claims(iss='https://other.test'))}"},
        ]
        urls = {"remote": gw.url + "/remote/mcp", "inline": gw.url + "/inline/mcp", "listener": lgw.url + "/mcp"}

        def attempt(job):
            name, h = job
            with client() as c:
                return init(c, urls[name], h).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(attempt, [(n, h) for n in urls for h in bad] * 6))
        assert codes == [401] * len(codes)
        assert kids(gw) == 0 and kids(lgw) == 0
        assert all(started(log) == 0 for log in logs.values())
        good = {"authorization": f"Bearer {sign(key, claims(iss=ISS))}"}
        with client() as c:
            for name, url in urls.items():
                opened(c, url, good)
                assert started(logs[name]) == 1
        assert kids(gw) == 2 and kids(lgw) == 1
    finally:
        jwks.close()


class LegacyStream:
    """A 2024-11-05 HTTP+SSE session by hand; leaving it resets the connection, as a
    client that goes away does."""

    def __init__(self, gw):
        self.gw = gw
        self.conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.request("GET", "/sse", headers={"accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.readline() == b"event: endpoint\n"
        self.endpoint = self.resp.readline().decode().split(": ", 1)[1].strip()

    def initialize(self) -> dict:
        msg = {**INIT, "params": {**INIT["params"], "protocolVersion": "2024-11-05"}}
        assert httpx.post(self.gw.url + self.endpoint, json=msg, timeout=20).status_code == 202
        while line := self.resp.readline():
            if line.startswith(b"data: "):
                doc = json.loads(line[6:])
                if doc.get("id") == 1:
                    return doc
        raise AssertionError("stream ended")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.resp.close()
        self.conn.close()


def test_legacy_sse_sessions_are_capped_and_freed_when_the_stream_ends(harness, tmp_path):
    log = tmp_path / "starts"
    gw = harness.gateway(
        mcp_config(
            {
                "stdioLimits": {"maxProcessesPerClient": 1},
                "targets": [{"name": "weather", "stdio": counted_stdio("weather", log)}],
            }
        )
    )
    with LegacyStream(gw) as s1:
        assert "result" in s1.initialize()
        with LegacyStream(gw) as s2:
            err = s2.initialize()["error"]
            assert err["code"] == TOO_MANY and err["data"]["limit"] == "maxProcessesPerClient"
        settle(gw, 1, log, 1)
    settle(gw, 0, log, 1)  # the stream was the session: its process went with it
    with LegacyStream(gw) as s3:
        assert "result" in s3.initialize()
        settle(gw, 1, log, 2)


def test_resumed_sessions_count_and_delete_starts_nothing(harness, tmp_path):
    """A sealed session id resumed on another replica starts its stdio process there,
    under that replica's caps; a DELETE of a session the replica does not hold starts none."""
    logs = [tmp_path / "starts-1", tmp_path / "starts-2"]
    extra = {"session": {"key": "33" * 32}}
    gw1, gw2 = (
        harness.gateway(
            mcp_config(
                {
                    "targets": [
                        {"name": "weather", "stdio": {**counted_stdio("weather", log), "maxProcessesPerClient": 1}}
                    ]
                },
                extra_config=extra,
            )
        )
        for log in logs
    )
    u1, u2 = gw1.url + "/mcp", gw2.url + "/mcp"
    with client("127.0.0.1") as c, client("127.0.0.2") as d:
        s1, s2 = opened(c, u1), opened(d, u1)
        whoami(c, u2, s1)  # resumed on gw2: one process there
        assert started(logs[1]) == 1
        r = c.post(
            u2, json={"jsonrpc": "2.0", "id": 5, "method": "tools/list"}, headers={**ACCEPT, "mcp-session-id": s2}
        )
        assert r.status_code == 200 and r.json()["error"]["code"] == TOO_MANY, r.text  # same client (address) on gw2
        r = c.get(u2, headers={"accept": "text/event-stream", "mcp-session-id": s2})
        assert r.status_code == 429 and r.json()["error"]["type"] == "too_many_sessions"
        r = c.post(
            u2,
            json={"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
            headers={**ACCEPT, "mcp-session-id": s2},
        )
        assert r.status_code == 429 and r.json()["error"]["code"] == TOO_MANY
        delete(c, u2, s2)  # not held by gw2: ended without starting a process
        assert started(logs[1]) == 1 and kids(gw2) == 1
        r = d.post(
            u2, json={"jsonrpc": "2.0", "id": 6, "method": "tools/list"}, headers={**ACCEPT, "mcp-session-id": s2}
        )
        assert r.status_code == 404  # deleted here: never resumed again
        delete(d, u1, s2)  # (on gw1, which held it, its process and place go too)
        s3 = opened(d, u1)
        whoami(d, u2, s3)  # another session of that client resumes on gw2 under its own cap
        assert started(logs[1]) == 2 and kids(gw2) == 2


def send_and_reset(port: int, log: Path, before: int) -> None:
    """POST an initialize, wait until its process has started, then reset the connection
    (a client that goes away mid-initialize)."""
    body = json.dumps(INIT).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        s.sendall(
            b"POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"accept: application/json, text/event-stream\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        wait_for(lambda: started(log) > before, timeout=10, message="process started")


def test_stateless_mode_shares_one_process(harness, tmp_path):
    """statefulMode: stateless runs one process per stdio target for every client, and
    the client whose initialize started it may leave without breaking it for the others."""
    log = tmp_path / "starts"
    gw = harness.gateway(
        mcp_config(
            {
                "statefulMode": "stateless",
                "targets": [{"name": "weather", "stdio": counted_stdio("weather", log, delay=1)}],
            }
        )
    )
    url = gw.url + "/mcp"
    send_and_reset(gw.port, log, 0)

    def one(ip):
        with client(ip) as c:
            return init(c, url)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, [f"127.0.0.{i}" for i in range(1, 21)]))
    for r in answers:
        assert r.status_code == 200 and "result" in r.json() and "mcp-session-id" not in r.headers, r.text
    with client() as c:
        r = c.post(
            url,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
            headers=ACCEPT,
        )
        pid = int(r.json()["result"]["content"][0]["text"].split()[-1])
    assert started(log) == 1 and children_of(gw.proc.pid) == [pid]


@pytest.mark.parametrize(
    "backend, where",
    [
        (
            {"stdioLimits": {}, "targets": [{"name": "h", "mcp": {"host": "http://127.0.0.1:1/mcp"}}]},
            "stdioLimits: has no effect: the backend has no stdio targets",
        ),
        (
            {
                "statefulMode": "stateless",
                "stdioLimits": {"maxProcesses": 2},
                "targets": [{"name": "w", "stdio": {"cmd": "x"}}],
            },
            "stdioLimits: has no effect with statefulMode: stateless",
        ),
        (
            {
                "statefulMode": "stateless",
                "targets": [{"name": "w", "stdio": {"cmd": "x", "maxProcessesPerClient": 2}}],
            },
            "targets[0].stdio.maxProcessesPerClient: has no effect with statefulMode: stateless",
        ),
        (
            {"stdioLimits": {"maxProcesses": 0}, "targets": [{"name": "w", "stdio": {"cmd": "x"}}]},
            "stdioLimits.maxProcesses: ",
        ),
        (
            {"targets": [{"name": "w", "stdio": {"cmd": "x", "maxProcessesPerClient": -1}}]},
            "targets[0].stdio.maxProcessesPerClient: ",
        ),
        (
            {"stdioLimits": {"maxProcess": 3}, "targets": [{"name": "w", "stdio": {"cmd": "x"}}]},
            "stdioLimits.maxProcess: unknown field",
        ),
    ],
)
def test_config_errors_name_the_field(tmp_path, backend, where):
    import yaml

    from agentgw.compile import compile_config
    from agentgw.config import ConfigError, load_config_file

    class NoServices:
        pool = None
        on_upstream_error = None

    f = tmp_path / "c.yaml"
    f.write_text(
        yaml.safe_dump({"binds": [{"port": 3000, "listeners": [{"routes": [{"backends": [{"mcp": backend}]}]}]}]})
    )
    with pytest.raises(ConfigError) as ei:
        compile_config(load_config_file(str(f)), NoServices(), str(tmp_path))
    prefix = "binds[0].listeners[0].routes[0].backends[0].mcp."
    assert any(e.startswith(prefix + where) for e in ei.value.errors), ei.value.errors


def test_defaults_apply_and_a_target_overrides_the_backend(tmp_path):
    import yaml

    from agentgw.compile import compile_config
    from agentgw.config import load_config_file

    class NoServices:
        pool = None
        on_upstream_error = None

    backend = {
        "stdioLimits": {"maxProcessesPerClient": 4},
        "targets": [{"name": "a", "stdio": {"cmd": "x"}}, {"name": "b", "stdio": {"cmd": "x", "maxProcesses": 2}}],
    }
    f = tmp_path / "c.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "binds": [
                    {
                        "port": 3000,
                        "listeners": [
                            {
                                "routes": [
                                    {"matches": [{"path": {"pathPrefix": "/x"}}], "backends": [{"mcp": backend}]},
                                    {"backends": [{"mcp": {"targets": [{"name": "c", "stdio": {"cmd": "x"}}]}}]},
                                ]
                            }
                        ],
                    }
                ]
            }
        )
    )
    rt = compile_config(load_config_file(str(f)), NoServices(), str(tmp_path))
    routes = {m.route for lst in rt.binds[3000].listeners for m in lst.routes.anyhost}
    caps = {t.name: (t.max_processes, t.max_processes_per_client) for r in routes for t in r.backend.targets}
    assert caps == {"a": (64, 4), "b": (2, 4), "c": (64, 8)}
