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
from tests.support.harness import RawHTTP, gateway_config, route

REQUESTS = 120  # per kind of request; a cycle per request would leave >= this many objects


@pytest.fixture(scope="module")
def gw(module_harness):
    up = module_harness.upstream("cycles")
    cfg = gateway_config(
        [
            route("plain", [up.host], prefix="/plain"),
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
            route("agent", [up.host], prefix="/agent", policies={"a2a": {}}),
        ]
    )
    return module_harness.gateway(cfg, command=PROBE)


SEND = json.dumps(
    {"jsonrpc": "2.0", "id": "r1", "method": "message/send",
     "params": {"message": {"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "hi"}]}}}
).encode()

KINDS = {
    "plain": ("GET", "/plain/x", b""),
    "policies": ("POST", "/pol/x", b'{"a": 1}'),
    "a2a message/send": ("POST", "/agent/", SEND),
    "a2a agent card": ("GET", "/agent/.well-known/agent-card.json", b""),
    "streamed response": ("GET", "/plain/sse?n=3&interval=0", b""),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_requests_leave_no_cyclic_garbage(gw, kind):
    method, path, body = KINDS[kind]
    headers = [("Content-Type", "application/json")] if body else []
    with RawHTTP(gw.port) as s:  # warm up: first-use caches are not per-request garbage
        assert s.request(method, path, headers=headers, body=body).status == 200
    cyclic_garbage(gw)
    with RawHTTP(gw.port) as s:  # keep-alive
        for _ in range(REQUESTS // 2):
            assert s.request(method, path, headers=headers, body=body).status == 200
    for _ in range(REQUESTS // 2):  # a connection per request
        with RawHTTP(gw.port) as s:
            assert s.request(method, path, headers=[*headers, ("Connection", "close")], body=body).status == 200
    garbage = cyclic_garbage(gw)
    assert sum(garbage.values()) < REQUESTS // 4, f"{kind}: objects left to the cyclic collector: {garbage}"
