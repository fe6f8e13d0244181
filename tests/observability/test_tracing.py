"""OpenTelemetry tracing: spans received by an in-test OTLP collector, parent links intact."""

from __future__ import annotations

import httpx
import pytest

from tests.observability.otlp import GrpcReceiver, HttpReceiver, TinyMcpServer
from tests.support.harness import free_port, gateway_config, route

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def http_receiver():
    r = HttpReceiver()
    yield r
    r.stop()


@pytest.fixture
def grpc_receiver():
    r = GrpcReceiver()
    yield r
    r.stop()


def test_http_route_traceparent_in_and_out(harness, http_receiver):
    up = harness.upstream("up")
    cfg = gateway_config(
        [route("echo", [up.host])],
        extra_config={
            "tracing": {
                "otlpEndpoint": f"http://127.0.0.1:{http_receiver.port}",
                "otlpProtocol": "http",
                "headers": {"x-tenant": "t1"},
                "fields": {"add": {"caller": 'request.headers["x-caller"]'}},
            }
        },
    )
    gw = harness.gateway(cfg)
    with httpx.Client(base_url=gw.url) as c:
        # no traceparent and randomSampling defaults to false: nothing is traced or added
        r0 = c.get("/echo/plain")
        assert not any(k.lower() == "traceparent" for k, _ in r0.json()["headers"])
        r = c.get("/echo/x", headers={"traceparent": f"00-{TRACE}-{PARENT}-01", "x-caller": "agent-7"})
    assert r.status_code == 200
    sent = dict((k.lower(), v) for k, v in r.json()["headers"])["traceparent"]
    _, tid, upstream_parent, flags = sent.split("-")
    assert tid == TRACE and flags == "01" and upstream_parent != PARENT
    spans = http_receiver.wait(2)
    assert http_receiver.paths[0] == "/v1/traces"
    assert http_receiver.headers[0].get("x-tenant") == "t1"
    server = next(s for s in spans if s["kind"] == 2)  # SPAN_KIND_SERVER
    client = next(s for s in spans if s["kind"] == 3)  # SPAN_KIND_CLIENT
    assert server["trace_id"] == client["trace_id"] == TRACE
    assert server["parent"] == PARENT
    assert client["parent"] == server["span_id"]
    assert client["span_id"] == upstream_parent  # the upstream's parent is the gateway's client span
    a = server["attrs"]
    assert a["http.request.method"] == "GET" and a["http.route"] == "echo"
    assert a["http.response.status_code"] == 200 and a["url.path"] == "/echo/x"
    assert a["caller"] == "agent-7"
    assert server["resource"]["service.name"] == "agentgw"
    assert len(spans) == 2  # the untraced request produced none


def test_mcp_tool_call_spans_and_target_parent(harness, grpc_receiver):
    target = TinyMcpServer()
    try:
        port = free_port()
        cfg = gateway_config([], port=port)
        cfg["binds"][0]["listeners"][0]["routes"] = [
            {
                "name": "mcp",
                "backends": [
                    {"mcp": {"targets": [{"name": "tiny", "mcp": {"host": f"http://127.0.0.1:{target.port}/mcp"}}]}}
                ],
            }
        ]
        cfg["frontendPolicies"] = {
            "tracing": {"host": f"127.0.0.1:{grpc_receiver.port}", "protocol": "grpc", "randomSampling": True}
        }
        gw = harness.gateway(cfg)
        h = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        with httpx.Client(base_url=gw.url, headers=h, timeout=10) as c:
            r = c.post(
                "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"},
                    },
                },
            )
            assert r.status_code == 200, r.text
            sid = r.headers["mcp-session-id"]
            c.post(
                "/mcp", headers={"mcp-session-id": sid}, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
            )
            r = c.post(
                "/mcp",
                headers={"mcp-session-id": sid, "traceparent": f"00-{TRACE}-{PARENT}-01"},
                json={
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"a": 1}},
                },
            )
            assert r.status_code == 200 and "error" not in r.text, r.text
        spans = grpc_receiver.wait(6)
        call = [s for s in spans if s["name"] == "tools/call echo"]
        assert len(call) == 1, [s["name"] for s in spans]
        call = call[0]
        assert call["trace_id"] == TRACE
        assert call["attrs"]["mcp.tool.name"] == "echo" and call["attrs"]["mcp.tool.target"] == "tiny"
        assert call["attrs"]["gen_ai.tool.name"] == "echo"
        server = next(s for s in spans if s["span_id"] == call["parent"])
        assert server["parent"] == PARENT and server["kind"] == 2
        tp = [t for m, t in target.seen if m == "tools/call"]
        assert tp and tp[-1] == f"00-{TRACE}-{call['span_id']}-01"  # the target's parent is the gateway span
    finally:
        target.stop()


def test_a2a_span(harness, http_receiver):
    up = harness.upstream("up")
    cfg = gateway_config(
        [route("helper", [up.host], prefix="/agents/helper", policies={"a2a": {}})],
        extra_config={
            "tracing": {
                "otlpEndpoint": f"http://127.0.0.1:{http_receiver.port}",
                "otlpProtocol": "http",
                "randomSampling": "1.0",
            }
        },
    )
    gw = harness.gateway(cfg)
    r = httpx.post(
        f"{gw.url}/agents/helper", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "task-42"}}
    )
    assert r.status_code == 200
    spans = http_receiver.wait(2)
    a2a = next(s for s in spans if s["name"].startswith("a2a "))
    assert a2a["name"] == "a2a tasks/get" and a2a["attrs"]["a2a.method"] == "tasks/get"
    assert a2a["attrs"]["a2a.task.id"] == "task-42"
    server = next(s for s in spans if s["kind"] == 2)
    assert a2a["parent"] == server["span_id"] and server["parent"] == ""  # a new trace (random sampling)
