"""DNS rebinding protection on by default (the MCP spec: servers validate ``Origin``): a
request that reaches an MCP route from a loopback or private address with an ``Origin``
whose host is a DNS name is refused; local and IP-literal origins, requests without
``Origin``, requests through a trusted proxy and ``dnsRebindingProtection: false`` are
not affected."""

from __future__ import annotations

import socket

import httpx
import pytest

from .conftest import fast_stdio, mcp_config

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream"}


def _init(url: str, **headers):
    return httpx.post(url, json=INIT, headers={**ACCEPT, **headers}, timeout=20)


def _own_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # (no packet is sent: it picks the route)
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


def test_default_refuses_foreign_origins_on_loopback(harness):
    gw = harness.gateway(mcp_config({"targets": [{"name": "a", "stdio": fast_stdio("a")}]}))
    url = gw.url + "/mcp"
    assert gw.url.startswith("http://127.0.0.1:")
    r = _init(url, origin="http://evil.example")
    assert r.status_code == 403
    msg = r.json()["error"]["message"]
    assert "http://evil.example" in msg and "allowedOrigins" in msg
    for ok in ("http://localhost:6274", "http://127.0.0.1:5173", "http://[::1]:8080"):
        r = _init(url, origin=ok)
        assert r.status_code == 200, (ok, r.text)
    assert _init(url).status_code == 200  # no Origin: not a browser


def test_default_applies_to_private_addresses_too(harness):
    import ipaddress

    addr = _own_address()
    if addr is None:
        pytest.skip("no non-loopback interface on this machine")
    cfg = mcp_config({"targets": [{"name": "a", "stdio": fast_stdio("a")}]})
    gw = harness.gateway(cfg)
    port = gw.url.rsplit(":", 1)[1]
    try:
        r = _init(f"http://{addr}:{port}/mcp", origin="https://app.example")
    except httpx.ConnectError:
        pytest.skip(f"the gateway does not listen on {addr}")
    if ipaddress.ip_address(addr).is_private:
        assert r.status_code == 403, r.text
        # an IP literal cannot be rebound: a page served from this machine's address is fine
        assert _init(f"http://{addr}:{port}/mcp", origin=f"http://{addr}:8080").status_code == 200
    else:
        assert r.status_code == 200, r.text


def test_a_trusted_proxy_is_not_checked(harness):
    cfg = mcp_config(
        {"targets": [{"name": "a", "stdio": fast_stdio("a")}]}, extra_config={"trustedProxies": ["127.0.0.1/32"]}
    )
    gw = harness.gateway(cfg)
    # the proxy in front answers for its own clients: a public site's app behind it works
    assert _init(gw.url + "/mcp", origin="https://app.example").status_code == 200


def test_turned_off(harness):
    cfg = mcp_config({"targets": [{"name": "a", "stdio": fast_stdio("a")}], "dnsRebindingProtection": False})
    gw = harness.gateway(cfg)
    assert _init(gw.url + "/mcp", origin="http://evil.example").status_code == 200
