"""The CEL ``backend`` variable in access-log fields (agentgateway's traffic-a2a example
logs ``add: {backend: backend}``)."""

from __future__ import annotations

import json
import time

import httpx

from tests.support.harness import gateway_config, route


def _lines(gw, n: int) -> list[dict]:
    deadline = time.monotonic() + 5
    lines: list[dict] = []
    while time.monotonic() < deadline:
        lines = [json.loads(l) for l in gw.stdout_text().splitlines() if '"msg":"request"' in l]
        if len(lines) >= n:
            break
        time.sleep(0.05)
    return lines


def test_backend_is_logged_as_an_object_and_by_member(harness):
    up = harness.upstream("up")
    cfg = gateway_config(
        [
            route("agent", [up.host], prefix="/agent", policies={"a2a": {}}),
            route("plain", [up.host], prefix="/plain"),
            route("direct", [], prefix="/direct", policies={"directResponse": {"body": "x", "status": 200}}),
        ]
    )
    cfg["frontendPolicies"] = {"accessLog": {"add": {"backend": "backend", "bname": "backend.name"}}}
    gw = harness.gateway(cfg)
    call = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {"role": "user"}}}
    with httpx.Client(base_url=gw.url) as c:
        assert c.get("/plain").status_code == 200
        assert c.post("/agent", json=call).status_code == 200
        assert c.get("/direct").status_code == 200
    plain, agent, direct = _lines(gw, 3)
    assert plain["backend"] == {"name": up.host, "type": "static", "protocol": "http"}
    assert plain["bname"] == up.host
    assert agent["backend"] == {"name": up.host, "type": "static", "protocol": "a2a"}
    assert "bname" not in direct  # no backend: no value, no field
