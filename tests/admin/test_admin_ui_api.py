"""The admin API endpoints the web UI stands on, through a real gateway process:
the topology, per-target health, whoami and Basic credentials, the config file's text,
and the relay to the gateway's own binds (who may use it, what it passes on and what
it keeps back, streaming)."""

from __future__ import annotations

import base64
import json
import sys
import time

import httpx
import pytest

from tests.support.harness import gateway_config, route, wait_for

TOKEN = "ui-admin-token-0123456789abcdef"
PASSWORD = "correct-horse-battery"
ENV = {"AGENTGW_TEST_ADMIN_TOKEN": TOKEN, "AGENTGW_TEST_ADMIN_PASSWORD": PASSWORD}
ADMIN = {"x-agentgw-admin-authorization": f"Bearer {TOKEN}"}
BASIC = "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()


def _headers_of(r: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in r.json()["headers"]}


def _api(gw) -> str:
    return f"http://{gw.admin_addr[0]}:{gw.admin_addr[1]}/api/v1"


def _config(upstream, admin: dict) -> dict:
    mcp = {
        "mcp": {
            "targets": [
                {
                    "name": "math",
                    "stdio": {"cmd": sys.executable, "args": ["-m", "agentgw_demo.mcp_server", "--name", "math"]},
                }
            ]
        }
    }
    routes = [
        route("hello", [], exact="/hello", policies={"directResponse": {"body": "hi", "status": 200}}),
        route("tools", [mcp], exact="/mcp"),
        route(
            "keyed",
            [upstream.host],
            prefix="/keyed",
            policies={"apiKey": {"mode": "strict", "keys": [{"key": "route-key-123"}]}},
        ),
        route("up", [upstream.host], prefix="/"),
    ]
    cfg = gateway_config(routes)
    cfg["config"]["admin"] = admin
    return cfg


@pytest.fixture
def gw(harness, upstream):
    return harness.gateway(
        _config(
            upstream,
            {
                "token": "$AGENTGW_TEST_ADMIN_TOKEN",
                "basicAuth": {"username": "ops", "password": "$AGENTGW_TEST_ADMIN_PASSWORD"},
            },
        ),
        env=ENV,
    )


def test_topology_names_every_route_as_requests_do(gw):
    topo = httpx.get(_api(gw) + "/topology", headers=ADMIN).json()
    [bind] = topo["binds"]
    assert bind["port"] == gw.port and bind["tls"] is False
    routes = {r["name"]: r for r in bind["listeners"][0]["routes"]}
    assert list(routes) == ["hello", "tools", "keyed", "up"]  # config order
    assert routes["hello"]["kind"] == "direct" and routes["hello"]["paths"] == ["/hello"]
    assert "directResponse" in routes["hello"]["policies"]
    assert routes["tools"]["kind"] == "mcp"
    [target] = routes["tools"]["backends"][0]["targets"]
    assert target["name"] == "math" and target["kind"] == "stdio" and "agentgw_demo.mcp_server" in target["address"]
    assert routes["keyed"]["policies"] == ["apiKey"] and routes["keyed"]["kind"] == "http"
    assert "route-key-123" not in json.dumps(topo)  # names and addresses, no secret
    # the key is the name the requests and the metrics carry
    assert httpx.get(gw.url + "/hello").text == "hi"
    recent = wait_for(lambda: httpx.get(_api(gw) + "/requests", headers=ADMIN).json()["requests"], message="a request")
    assert recent[0]["route"] == routes["hello"]["key"]


def test_targets_health_follows_the_answers(gw, upstream):
    api = _api(gw)

    def state(route_name):
        return next(t for t in httpx.get(api + "/targets", headers=ADMIN).json()["targets"] if t["route"] == route_name)

    assert state("up")["state"] == "idle" and state("up")["requests"] == 0
    for _ in range(2):
        assert httpx.get(gw.url + "/echo").status_code == 200
    up = wait_for(lambda: (s := state("up"))["requests"] == 2 and s, message="two requests")
    assert up["state"] == "healthy" and up["last_status"] == 200 and up["errors"] == 0
    upstream.stop()
    for _ in range(3):
        assert httpx.get(gw.url + "/echo").status_code in (502, 503)
    down = wait_for(lambda: (s := state("up"))["state"] == "failing" and s, message="failing")
    assert down["errors"] == 3 and down["requests"] == 5


def test_whoami_and_basic_credentials(gw):
    api = _api(gw)
    assert httpx.get(api + "/whoami").json() == {"auth": "token+basic", "writes": False, "reads": False}
    assert httpx.get(api + "/whoami", headers=ADMIN).json()["writes"] is True
    assert httpx.get(api + "/whoami", headers={"authorization": BASIC}).json()["writes"] is True
    wrong = "Basic " + base64.b64encode(b"ops:not-the-password").decode()
    r = httpx.get(api + "/whoami", headers={"authorization": wrong})
    assert r.status_code == 401 and "user name or password" in r.json()["error"]
    assert httpx.get(api + "/requests", headers={"authorization": wrong}).status_code == 401
    # a write with Basic credentials, in the header the UI uses
    r = httpx.put(
        api + "/log-level",
        json={"level": "debug"},
        headers={"x-agentgw-admin-authorization": BASIC},
    )
    assert r.status_code == 200 and r.json()["level"] == "debug"


def test_basic_credentials_are_refused_with_unauthenticated_writes(harness, upstream):
    from tests.support.harness import run_cli

    cfg = _config(
        upstream, {"allowUnauthenticatedLoopbackWrites": True, "basicAuth": {"username": "ops", "password": PASSWORD}}
    )
    path = harness.workdir / "both.yaml"
    path.write_text(json.dumps(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "config.admin.allowUnauthenticatedLoopbackWrites" in r.stdout + r.stderr


def test_the_config_file_text_needs_the_credential(gw):
    api = _api(gw)
    assert httpx.get(api + "/config/file").status_code == 401
    r = httpx.get(api + "/config/file", headers=ADMIN)
    assert r.status_code == 200
    doc = r.json()
    assert doc["format"] == "yaml" and doc["text"] == gw.config_path.read_text()
    assert "$AGENTGW_TEST_ADMIN_TOKEN" in doc["text"]  # as written: the reference, not the value
    other = {**ADMIN, "origin": "http://evil.example", "sec-fetch-site": "cross-site"}
    assert httpx.get(api + "/config/file", headers=other).status_code == 403


def test_the_relay_reaches_a_route_as_a_client_would(gw, upstream):
    base = f"{_api(gw)}/relay/{gw.port}"
    assert httpx.get(base + "/echo").status_code == 401  # the admin credential first
    # Authorization is not the admin API's credential on the relay
    assert httpx.get(base + "/echo", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 401
    r = httpx.get(
        base + "/echo/a?b=1",
        headers={
            **ADMIN,
            "cookie": "session=admin-page",
            "x-team": "blue",
            "sec-fetch-site": "same-origin",
            "x-forwarded-for": "203.0.113.9",  # a claim about the client the relay does not vouch for
            "forwarded": "for=203.0.113.9",
            "connection": "x-hop",
            "x-hop": "1",
        },
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/echo/a" and seen["query"] == "b=1"
    assert "203.0.113.9" not in headers.get("x-forwarded-for", "")  # the gateway's own, from 127.0.0.1
    assert headers["x-team"] == "blue" and headers["host"] == f"localhost:{gw.port}"
    for kept_back in ("x-agentgw-admin-authorization", "cookie", "sec-fetch-site", "forwarded", "x-hop"):
        assert kept_back not in headers, kept_back
    # the route's own credential goes in x-agentgw-relay-authorization, sent as Authorization;
    # an Authorization of the caller's own (a browser's cached Basic credential) never goes
    assert httpx.get(base + "/keyed/x", headers=ADMIN).status_code == 401
    leaked = httpx.get(base + "/echo", headers={**ADMIN, "authorization": "Basic dWk6c2VjcmV0"})
    assert "authorization" not in _headers_of(leaked)
    ok = httpx.get(base + "/keyed/x", headers={**ADMIN, "x-agentgw-relay-authorization": "Bearer route-key-123"})
    assert ok.status_code == 200
    assert "x-agentgw-relay-authorization" not in _headers_of(ok)
    # the Host the route sees, when asked for
    r = httpx.get(base + "/echo", headers={**ADMIN, "x-agentgw-relay-host": "agents.example.com"})
    assert dict((k.lower(), v) for k, v in r.json()["headers"])["host"] == "agents.example.com"
    bad = httpx.get(base + "/echo", headers={**ADMIN, "x-agentgw-relay-host": "a b"})
    assert bad.status_code == 400
    # only this gateway's binds
    other = httpx.get(f"{_api(gw)}/relay/{upstream.port}/echo", headers=ADMIN)
    assert other.status_code == 404 and "no bind" in other.json()["error"]
    # a POST body, and a request from another site refused before anything is sent
    r = httpx.post(base + "/echo", headers=ADMIN, content=b'{"x": 1}')
    assert r.json()["body"] == '{"x": 1}'
    evil = httpx.post(base + "/echo", headers={**ADMIN, "origin": "http://evil.example"}, content=b"x")
    assert evil.status_code == 403


def test_the_relay_streams_event_by_event(gw):
    url = f"{_api(gw)}/relay/{gw.port}/sse?n=3&interval=0.4"
    arrivals = []
    with httpx.stream("GET", url, headers=ADMIN, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 3
    assert arrivals[-1] - arrivals[0] >= 0.6  # relayed as they came, not buffered to the end


def test_the_relay_carries_an_mcp_session(gw):
    base = f"{_api(gw)}/relay/{gw.port}/mcp"
    h = {**ADMIN, "accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    r = httpx.post(base, json=init, headers=h, timeout=30)
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    h = {**h, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
    assert (
        httpx.post(base, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h).status_code == 202
    )
    r = httpx.post(base, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=h, timeout=30)
    text = r.text
    body = json.loads(text.split("data: ", 1)[1]) if text.startswith(("event:", "data:")) else r.json()
    assert {"add", "multiply"} <= {t["name"] for t in body["result"]["tools"]}, (
        body
    )  # the math server's (one target: unprefixed)
    assert httpx.delete(base, headers=h).status_code in (200, 204)
