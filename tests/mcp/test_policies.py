"""mcpAuthorization, per-tool rate limits, failure modes, headers, DNS-rebinding checks."""

from __future__ import annotations

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.harness import closed_port

from .conftest import demo_stdio, fast_stdio, mcp_config, run
from .flaky_target import flaky  # noqa: F401 (fixture)
from .test_sessions import Raw, _text

AUTHZ = {
    "rules": [
        # the EKS guide's principal → allowedTools, with the identity in x-agent-identity
        'request.headers["x-agent-identity"] == "weather-agent" && mcp.tool.name in ["echo", "execute_code", "get_forecast"]',
        'request.headers["x-agent-identity"] == "admin"',
    ]
}


def test_authorization_filters_lists_and_denies_calls_and_rate_limits_a_tool(harness, servers):
    beta = servers.fast("beta")
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "beta", "mcp": {"host": beta.url}},
                    {"name": "weather", "stdio": demo_stdio("weather")},
                ],
                "toolRateLimits": [
                    {"tools": ["execute_code"], "maxTokens": 3, "tokensPerFill": 3, "fillInterval": "60s"}
                ],
            },
            policies={"mcpAuthorization": AUTHZ},
        )
    )
    url = gw.url + "/mcp"

    async def listed(identity: str) -> set:
        async with Client(url if not identity else url, client_info=None) as c:
            return {t.name for t in (await c.list_tools()).tools}

    c = Raw(url)
    c.init()
    httpx_headers = {"x-agent-identity": "weather-agent"}
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, headers={**c.h(), **httpx_headers})
    names = {t["name"] for t in r.json()["result"]["tools"]}
    assert names == {"beta_echo", "beta_execute_code", "weather_get_forecast"}
    # nobody: nothing listed, calls denied with a JSON-RPC error on HTTP 200
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 10, "method": "tools/list"}, headers=c.h())
    assert r.json()["result"]["tools"] == []
    r = httpx.post(
        url,
        json={
            "jsonrpc": "2.0",
            "id": 11,
            "method": "tools/call",
            "params": {"name": "beta_add", "arguments": {"a": 1, "b": 2}},
        },
        headers={**c.h(), **httpx_headers},
    )
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32003 and "not authorized" in r.json()["error"]["message"]
    # admin sees everything
    r = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 12, "method": "tools/list"}, headers={**c.h(), "x-agent-identity": "admin"}
    )
    assert {"beta_add", "beta_bump", "weather_whoami"} <= {t["name"] for t in r.json()["result"]["tools"]}
    # execute_code: 3 per minute, the 4th is refused
    results = []
    for i in range(4):
        r = httpx.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 20 + i,
                "method": "tools/call",
                "params": {"name": "beta_execute_code", "arguments": {"code": "print(1)"}},
            },
            headers={**c.h(), **httpx_headers},
        )
        results.append(r.json())
    assert [("result" in d) for d in results] == [True, True, True, False]
    assert results[3]["error"]["code"] == -32004
    # echo is not rate limited
    r = httpx.post(
        url,
        json={
            "jsonrpc": "2.0",
            "id": 30,
            "method": "tools/call",
            "params": {"name": "beta_echo", "arguments": {"text": "x"}},
        },
        headers={**c.h(), **httpx_headers},
    )
    assert _text(r.json()) == "beta: x"
    m = gw.metrics_text()
    assert 'agentgw_mcp_requests_total{method="tools/call",status="denied",target="beta",tool="add"} 1.0' in m
    assert 'status="rate_limited",target="beta",tool="execute_code"} 1.0' in m


@pytest.mark.parametrize("mode", ["failOpen", "failClosed"])
def test_a_dead_target(harness, servers, mode):
    beta, gamma = servers.fast("beta"), servers.fast("gamma")
    backend = {
        "failureMode": mode,
        "targets": [
            {"name": "beta", "mcp": {"host": beta.url}},
            {"name": "gamma", "mcp": {"host": gamma.url}},
            {"name": "weather", "stdio": demo_stdio("weather")},
        ],
    }
    gw = harness.gateway(mcp_config(backend))

    async def go():
        async with Client(gw.url + "/mcp") as c:
            assert "gamma_echo" in {t.name for t in (await c.list_tools()).tools}
            gamma.stop()  # a target dies mid-session
            if mode == "failOpen":
                names = {t.name for t in (await c.list_tools()).tools}
                assert "beta_echo" in names and "weather_get_forecast" in names and "gamma_echo" not in names
                assert (await c.call_tool("beta_echo", {"text": "still"})).content[0].text == "beta: still"
                with pytest.raises(MCPError):
                    await c.call_tool("gamma_echo", {"text": "x"})
            else:
                with pytest.raises(MCPError):
                    await c.list_tools()
                # calls to the healthy targets still work
                assert (await c.call_tool("beta_echo", {"text": "still"})).content[0].text == "beta: still"

    run(go())

    # a target that is down at initialize
    backend["targets"][1] = {"name": "gamma", "mcp": {"host": f"http://127.0.0.1:{closed_port()}/mcp"}}
    gw2 = harness.gateway(mcp_config(backend))

    async def init():
        async with Client(gw2.url + "/mcp") as c:
            return {t.name for t in (await c.list_tools()).tools}

    if mode == "failOpen":
        names = run(init())
        assert "beta_echo" in names and "weather_whoami" in names
    else:
        with pytest.raises(Exception):
            run(init())


def test_header_passthrough_static_headers_backend_auth_and_dns_rebinding(harness, servers):
    beta = servers.fast("beta")
    gw = harness.gateway(
        mcp_config(
            {
                "passthroughHeaders": ["x-tenant"],
                "dnsRebindingProtection": True,
                "targets": [
                    {
                        "name": "beta",
                        "mcp": {"host": beta.url},
                        "policies": {
                            "requestHeaderModifier": {"set": {"x-static": "s1"}},
                            "backendAuth": {"key": "sekrit"},
                        },
                    }
                ],
            }
        )
    )
    url = gw.url + "/mcp"
    c = Raw(url)
    c.init()

    def header(name):
        r = httpx.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "header", "arguments": {"name": name}},
            },
            headers={**c.h(), "x-tenant": "acme", "x-private": "no"},
        )
        return _text(r.json())

    assert header("x-tenant") == "acme"
    assert header("x-private") == "<none>"
    assert header("x-static") == "s1"
    assert header("authorization") == "Bearer sekrit"
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={**c.h(), "host": "evil.example"})
    assert r.status_code == 421
    r = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={**c.h(), "origin": "http://evil.example"}
    )
    assert r.status_code == 403
    r = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={**c.h(), "origin": "http://localhost:5173"}
    )
    assert r.status_code == 200 and r.json()["result"] == {}


def test_backend_auth_passthrough_sends_the_client_token_to_that_target_only(harness, servers, flaky):
    """``backendAuth.passthrough`` on one target: that target gets the client's
    Authorization; a target next to it does not (it gets the backend-wide
    ``passthroughHeaders``), nor does a target with its own ``backendAuth.key``, whose
    static headers replace the client's (``requestHeaderModifier.set``)."""
    beta, gamma = servers.fast("beta"), servers.fast("gamma")
    keyed = flaky("keyed")
    gw = harness.gateway(
        mcp_config(
            {
                "passthroughHeaders": ["x-tenant"],
                "targets": [
                    {"name": "beta", "mcp": {"host": beta.url}, "policies": {"backendAuth": {"passthrough": {}}}},
                    {"name": "gamma", "mcp": {"host": gamma.url}},
                    {
                        "name": "keyed",
                        "mcp": {"host": keyed.url},
                        "policies": {
                            "backendAuth": {"key": "sekrit"},
                            "requestHeaderModifier": {"set": {"x-tenant": "fixed"}},
                        },
                    },
                ],
            }
        )
    )

    async def go():
        http = httpx2.AsyncClient(headers={"authorization": "Bearer client-token", "x-tenant": "acme"}, timeout=20)
        async with http, Client(streamable_http_client(gw.url + "/mcp", http_client=http)) as c:

            async def header(target: str, name: str) -> str:
                return (await c.call_tool(f"{target}_header", {"name": name})).content[0].text

            assert await header("beta", "authorization") == "Bearer client-token"
            assert await header("gamma", "authorization") == "<none>"
            assert await header("beta", "x-tenant") == "acme"
            assert await header("gamma", "x-tenant") == "acme"
            await c.call_tool("keyed_flaky", {})

    run(go())
    seen = [
        ([v for k, v in h if k == "authorization"], [v for k, v in h if k == "x-tenant"]) for _, _, h in keyed.requests
    ]
    assert seen and all(s == (["Bearer sekrit"], ["fixed"]) for s in seen), seen


def test_openapi_target_and_legacy_sse_client(harness, upstream):
    schema = {
        "openapi": "3.0.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/echo/items/{id}": {
                "get": {
                    "operationId": "getItem",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "q", "in": "query", "schema": {"type": "string"}},
                    ],
                },
                "post": {
                    "operationId": "putItem",
                    "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                },
            }
        },
    }
    import json

    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {
                        "name": "api",
                        "openapi": {"schema": json.dumps(schema), "host": f"http://127.0.0.1:{upstream.port}"},
                    },
                    {"name": "math", "stdio": demo_stdio("math")},
                ]
            }
        )
    )

    async def go():
        async with Client(gw.url + "/mcp") as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert {"api_getItem", "api_putItem", "math_add"} <= set(tools)
            assert tools["api_getItem"].input_schema["required"] == ["id"]
            r = await c.call_tool("api_getItem", {"id": "42", "q": "x y"})
            echo = json.loads(r.content[0].text)
            assert echo["method"] == "GET" and echo["path"] == "/echo/items/42" and echo["query"] == "q=x+y"
            r = await c.call_tool("api_putItem", {"id": "7", "body": {"a": 1}})
            echo = json.loads(r.content[0].text)
            assert echo["method"] == "POST" and json.loads(echo["body"]) == {"a": 1}

    run(go())

    # the 2024-11-05 HTTP+SSE transport, by hand
    with httpx.Client(timeout=10) as h:
        with h.stream("GET", gw.url + "/sse", headers={"accept": "text/event-stream"}) as s:
            lines = s.iter_lines()
            assert next(lines) == "event: endpoint"
            endpoint = next(lines).split(": ", 1)[1]
            assert endpoint.startswith("/message?sessionId=")
            post = lambda m: h.post(gw.url + endpoint, json=m)  # noqa: E731
            assert (
                post(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2024-11-05",
                            "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"},
                        },
                    }
                ).status_code
                == 202
            )
            got = []
            for line in lines:
                if line.startswith("data: "):
                    got.append(json.loads(line[6:]))
                    if got[-1].get("id") == 1:
                        break
            assert got[-1]["result"]["protocolVersion"] == "2024-11-05"
            post({"jsonrpc": "2.0", "method": "notifications/initialized"})
            post(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "math_multiply", "arguments": {"a": 6, "b": 7}},
                }
            )
            for line in lines:
                if line.startswith("data: "):
                    d = json.loads(line[6:])
                    if d.get("id") == 2:
                        assert d["result"]["content"][0]["text"] == "42"
                        break


def test_request_timeout_bounds_a_streamed_answer(harness, servers):
    """A target that starts its SSE answer and then goes quiet: with a request timeout
    the call ends in a JSON-RPC error when it runs out, and the session and target keep
    working (the target is slow, not gone)."""
    import time

    beta = servers.fast("beta")
    gw = harness.gateway(
        mcp_config(
            {"targets": [{"name": "beta", "mcp": {"host": beta.url}}]}, policies={"timeout": {"requestTimeout": "1s"}}
        )
    )
    c = Raw(gw.url + "/mcp")
    c.init()
    json_only = {**c.h(), "accept": "application/json"}
    t0 = time.monotonic()
    r = httpx.post(
        c.base,
        json={
            "jsonrpc": "2.0",
            "id": 40,
            "method": "tools/call",
            "params": {"name": "stall", "arguments": {"seconds": 30}, "_meta": {"progressToken": "p1"}},
        },
        headers=json_only,
        timeout=20,
    )
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    err = r.json()["error"]
    assert "did not answer within 1s" in err["message"], err
    assert 0.9 < took < 5, took
    assert _text(c.call("echo", {"text": "still here"})) == "beta: still here"
    r = httpx.post(
        c.base,
        json={
            "jsonrpc": "2.0",
            "id": 41,
            "method": "tools/call",
            "params": {"name": "stall", "arguments": {"seconds": 0.1}},
        },
        headers=json_only,
        timeout=20,
    )
    assert r.json()["result"]["content"][0]["text"] == "slept 0.1"
