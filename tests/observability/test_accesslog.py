"""Access log fields: ``frontendPolicies.accessLog`` add (CEL) / remove / filter."""

from __future__ import annotations

import json
import time

import httpx

from tests.support.harness import gateway_config, route


def test_access_log_add_remove_filter(harness):
    up = harness.upstream("up")
    cfg = gateway_config([route("api", [up.host])])
    cfg["frontendPolicies"] = {
        "accessLog": {
            "filter": 'request.path != "/healthz"',
            "add": {"user": 'request.headers["x-user"]', "code": "response.code", "agent": "apiKey.name"},
            "remove": ["host", "bytes_received"],
        }
    }
    gw = harness.gateway(cfg)
    with httpx.Client(base_url=gw.url) as c:
        c.get("/healthz")
        c.get("/x", headers={"x-user": "alice"})
        c.get("/y")
    deadline = time.monotonic() + 5
    lines = []
    while time.monotonic() < deadline:
        lines = [json.loads(l) for l in gw.stdout_text().splitlines() if '"msg":"request"' in l]
        if len(lines) >= 2:
            break
        time.sleep(0.05)
    assert [l["path"] for l in lines] == ["/x", "/y"]  # filtered out /healthz
    assert lines[0]["user"] == "alice" and lines[0]["code"] == 200
    assert "user" not in lines[1]  # no value, no field
    assert "agent" not in lines[0]
    assert all("host" not in l and "bytes_received" not in l for l in lines)
    assert all("status" in l and "route" in l for l in lines)
