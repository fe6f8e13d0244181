"""A proxied request must be freed by reference counting, not by the cyclic collector.

The gateway runs gen-0 collections rarely (see ``runner.tune_gc``), so an object cycle
per request piles up until one collection frees tens of thousands of objects at once,
stalling every connection of the process for tens of milliseconds (an A2A route once
did this: its response observer and the request context held each other, and its p99
latency under load was 30-65 ms against 4 ms for a plain route). The gateway runs under
``tests.support.gc_probe``, which reports what only the collector could free.
"""

from __future__ import annotations

import json

import pytest

from tests.support.gc_probe import PROBE, cyclic_garbage
from tests.support.harness import RawHTTP, build_request, gateway_config, route


@pytest.fixture(scope="module")
def gw(module_harness):
    up = module_harness.upstream("cycles")
    a2a = {"a2a": {}}
    cfg = gateway_config(
        [
            route("plain", [up.host], prefix="/plain"),
            route("sse", [up.host], prefix="/sse"),
            route(
                "policies",
                [up.host],
                prefix="/pol",
                policies={
                    "requestHeaderModifier": {"add": {"x-a": "1"}},
                    "responseHeaderModifier": {"set": {"x-b": "2"}},
                    "localRateLimit": [{"maxTokens": 1_000_000, "tokensPerFill": 1_000_000, "fillInterval": "1s"}],
                },
            ),
            route("agent", [up.host], prefix="/agent/", policies=a2a),
            route(
                "agent-sse",
                [up.host],
                prefix="/agent-sse",
                policies={**a2a, "urlRewrite": {"path": {"prefix": "/sse"}}},
            ),
            route(
                "agent-cut",
                [up.host],
                prefix="/agent-cut",
                policies={**a2a, "urlRewrite": {"path": {"prefix": "/die"}}},
            ),
        ]
    )
    return module_harness.gateway(cfg, command=PROBE)


SEND = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": "r1",
        "method": "message/send",
        "params": {"message": {"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "hi"}]}},
    }
).encode()
STREAM = SEND.replace(b"message/send", b"message/stream")

# kind: (method, path, body)
KINDS = {
    "plain": ("GET", "/plain/x", b""),
    "policies": ("POST", "/pol/x", b'{"a": 1}'),
    "streamed response": ("GET", "/sse?n=3&interval=0", b""),
    "a2a message/send": ("POST", "/agent/", SEND),
    "a2a agent card": ("GET", "/agent/.well-known/agent-card.json", b""),
    "a2a message/stream": ("POST", "/agent-sse?n=3&interval=0", STREAM),
}


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json")] if body else []


@pytest.mark.parametrize("kind", list(KINDS))
def test_requests_leave_no_cyclic_garbage(gw, kind):
    method, path, body = KINDS[kind]
    n = 120
    with RawHTTP(gw.port) as s:  # warm up: first-use caches are not per-request garbage
        r = s.request(method, path, headers=_headers(body), body=body)
        assert r.status == 200
        if kind.startswith("streamed") or kind.endswith("stream"):
            assert r.header("content-type", "").startswith("text/event-stream")
            assert r.body.count(b"data: ") == 3  # the upstream's events, not an echo
    cyclic_garbage(gw)
    with RawHTTP(gw.port) as s:  # keep-alive
        for _ in range(n // 2):
            assert s.request(method, path, headers=_headers(body), body=body).status == 200
    for _ in range(n // 2):  # a connection per request
        with RawHTTP(gw.port) as s:
            headers = [*_headers(body), ("Connection", "close")]
            assert s.request(method, path, headers=headers, body=body).status == 200
    garbage = cyclic_garbage(gw)
    # a cycle per request would leave at least ~10 objects per request
    assert sum(garbage.values()) < n // 4, f"{kind}: objects left to the cyclic collector: {garbage}"


def test_a2a_responses_cut_by_the_upstream_leave_no_cyclic_garbage(gw):
    """The response observer never sees the end of these bodies: it must not be what
    keeps the exchange alive."""
    n = 16
    req = build_request("POST", "/agent-cut", headers=_headers(STREAM), body=STREAM)
    cyclic_garbage(gw)
    for _ in range(n):
        with RawHTTP(gw.port) as s:
            s.send(req)
            got = s.read_until_close()
            assert got.startswith(b"HTTP/1.1 200") and len(got) < 100_000  # cut short
    garbage = cyclic_garbage(gw)
    assert sum(garbage.values()) < n // 2, f"objects left to the cyclic collector: {garbage}"


@pytest.fixture(scope="module")
def grpc_gw(module_harness):
    from tests.support.grpc_servers import GrpcServer

    srv = GrpcServer(module_harness.workdir / "grpc-cycles")
    up = module_harness.upstream("cycles-h2")
    cfg = gateway_config(
        [
            route("grpc", [srv.host], prefix="/test.Echo/"),
            route("plain", [up.host], prefix="/plain"),
        ]
    )
    try:
        yield module_harness.gateway(cfg, command=PROBE)
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", ["h2c request", "grpc unary", "grpc server stream"])
def test_http2_streams_leave_no_cyclic_garbage(grpc_gw, kind):
    """HTTP/2 streams (client side, and the upstream HTTP/2 stream of a gRPC call) are
    freed by reference counting too."""
    import grpc
    import httpx

    n = 120
    if kind == "h2c request":
        with httpx.Client(http1=False, http2=True) as c:
            url = f"http://127.0.0.1:{grpc_gw.port}/plain/x"
            assert c.get(url).status_code == 200
            cyclic_garbage(grpc_gw)
            for _ in range(n):
                assert c.get(url).status_code == 200
    else:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_gw.port}") as ch:
            if kind == "grpc unary":
                call = ch.unary_unary("/test.Echo/Unary")
                assert call(b"hi", timeout=10)
                cyclic_garbage(grpc_gw)
                for _ in range(n):
                    assert call(b"hi", timeout=10)
            else:
                call = ch.unary_stream("/test.Echo/ServerStream")
                assert len(list(call(b"3", timeout=10))) == 3
                cyclic_garbage(grpc_gw)
                for _ in range(n):
                    assert len(list(call(b"3", timeout=10))) == 3
    garbage = cyclic_garbage(grpc_gw)
    # the h2 library's connection object holds itself (its frame dispatch table of bound
    # methods): one such graph per connection closed meanwhile, ~50 objects, never per
    # request
    per_request = {"Request", "RequestBody", "H2Exchange", "H2UpstreamStream", "Headers", "Ctx"}
    assert not per_request & set(garbage), f"{kind}: objects left to the cyclic collector: {garbage}"
    assert sum(garbage.values()) < n, f"{kind}: objects left to the cyclic collector: {garbage}"
