"""agentgateway's named-gateway shape: ``gateways`` with listeners, ``routes`` attached to
them (``gateway`` or ``gateway/listener``, none: the gateway named ``default``), and the
``llm:`` / ``mcp:`` sections attached with ``llm.gateways`` / ``mcp.gateways``. Each
route answers on the ports of the gateways it names, and only there."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.support.harness import free_port, subprocess_env

from ..mcp.conftest import demo_stdio


def _admin() -> dict:
    return {
        "adminAddr": f"127.0.0.1:{free_port()}",
        "statsAddr": f"127.0.0.1:{free_port()}",
        "readinessAddr": f"127.0.0.1:{free_port()}",
        "logging": {"format": "json"},
    }


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("gateways", nports=4)
    explicit, implicit, alt, multiple = up.hosts
    ports = {"default": free_port(), "alt": free_port(), "with-listeners": free_port()}
    cfg = {
        "config": _admin(),
        # gateway_config.yaml of agentgateway's own tests, with local upstreams
        "gateways": {
            "default": {"port": ports["default"]},
            "alt": {"port": ports["alt"]},
            "with-listeners": {
                "port": ports["with-listeners"],
                "listeners": [{"hostname": "a.example.com", "name": "a"}, {"hostname": "b.example.com"}],
            },
        },
        "routes": [
            {
                "gateways": ["default"],
                "matches": [{"path": {"pathPrefix": "/explicit"}}],
                "backends": [{"host": explicit}],
            },
            {"backends": [{"host": implicit}]},
            {"gateways": "alt", "matches": [{"path": {"pathPrefix": "/alt"}}], "backends": [{"host": alt}]},
            {"gateways": ["alt", "with-listeners/a"], "backends": [{"host": multiple}]},
        ],
    }
    gw = module_harness.gateway(cfg)
    return gw, ports, up


def _served_by(port: int, path: str, host: str | None = None) -> tuple[int, str | None]:
    headers = {"host": host} if host else {}
    r = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
    return r.status_code, r.headers.get("x-upstream-port")


def test_routes_answer_on_the_gateways_they_name(env):
    _, ports, up = env
    explicit, implicit, alt, multiple = (str(p) for p in up.ports)
    # default: the explicit route, and the route without gateways (attached to default)
    assert _served_by(ports["default"], "/explicit/x") == (200, explicit)
    assert _served_by(ports["default"], "/other") == (200, implicit)
    # alt: its own route and the route naming two gateways; nothing of default's
    assert _served_by(ports["alt"], "/alt/1") == (200, alt)
    assert _served_by(ports["alt"], "/explicit/x") == (200, multiple)
    # with-listeners: only listener a carries the route
    assert _served_by(ports["with-listeners"], "/", "a.example.com") == (200, multiple)
    status, served = _served_by(ports["with-listeners"], "/", "b.example.com")
    assert (status, served) == (404, None)


def test_a_host_no_listener_serves_is_refused(env):
    _, ports, _ = env
    r = httpx.get(f"http://127.0.0.1:{ports['with-listeners']}/", headers={"host": "c.example.com"}, timeout=10)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")


def test_llm_and_mcp_attach_to_a_named_gateway(harness):
    """``llm.gateways`` and ``mcp.gateways`` put both sections on one port (modern.yaml):
    the model list from the llm section, MCP at /mcp, a route of its own beside them."""
    up = harness.upstream("beside")
    port = free_port()
    cfg = {
        "config": _admin(),
        "gateways": {"public": {"port": port}},
        "llm": {
            "gateways": ["public"],
            "models": [{"name": "smart", "provider": "openAI", "params": {"model": "gpt"}}],
        },
        "mcp": {"gateways": "public", "targets": [{"name": "math", "stdio": demo_stdio("math")}]},
        "routes": [
            {"gateways": "public", "matches": [{"path": {"pathPrefix": "/echo"}}], "backends": [{"host": up.host}]}
        ],
    }
    harness.gateway(cfg)
    r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["data"]] == ["smart"]
    r = httpx.get(f"http://127.0.0.1:{port}/echo/1", timeout=10)
    assert r.status_code == 200 and r.headers["x-upstream-port"] == str(up.port)
    out = subprocess.run(
        [sys.executable, "-m", "agentgw_demo.mcp_client", "--url", f"http://127.0.0.1:{port}/mcp"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert out.returncode == 0, out.stderr
    assert "add" in out.stdout


def test_the_default_gateway_takes_llm_without_a_port(harness):
    port = free_port()
    cfg = {
        "config": _admin(),
        "gateways": {"default": {"port": port}},
        "llm": {"models": [{"name": "m1", "provider": "openAI", "params": {"model": "gpt"}}]},
    }
    harness.gateway(cfg)
    r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["m1"]


@pytest.mark.parametrize(
    ("doc", "path", "why"),
    [
        (
            {"gateways": {"g": {"port": 1}}, "routes": [{"backends": [{"host": "a:1"}]}]},
            "routes[0].gateways",
            "default",
        ),
        (
            {"gateways": {"g": {"port": 1}}, "routes": [{"gateways": "nope", "backends": [{"host": "a:1"}]}]},
            "routes[0].gateways",
            "unknown gateway reference 'nope'",
        ),
        (
            {"gateways": {"g": {"port": 1, "protocol": "TCP"}}, "routes": [{"gateways": "g", "backends": []}]},
            "routes[0].gateways",
            "has no HTTP listeners",
        ),
        (
            {"gateways": {"g": {"port": 1, "protocol": "HTTPS"}}},
            "gateways.g.protocol",
            "requires tls",
        ),
        (
            {"gateways": {"g": {"port": 1, "protocol": "HTTP", "listeners": [{"name": "x"}]}}},
            "gateways.g",
            "when listeners are configured",
        ),
        (
            {"gateways": {"g": {"port": 1}}, "llm": {"gateways": "g", "port": 4001, "models": []}},
            "llm.gateways",
            "cannot be used with llm.port",
        ),
        (
            {
                "gateways": {"g": {"port": 1}},
                "routes": [{"gateways": "g", "backends": [{"host": "a:1", "weight": -1}]}],
            },
            "routes[0].backends[0].weight",
            "",
        ),
        (
            {
                "gateways": {"g": {"port": 1}},
                "routes": [{"gateways": "g", "policies": {"backendTunnel": {"proxy": {"host": "p:1"}}}, "backends": []}],
            },
            "routes[0].policies.backendTunnel",
            "not supported",
        ),
    ],
)
def test_refusals_name_the_field_as_written(tmp_path, doc, path, why):
    f = tmp_path / "c.yaml"
    import yaml

    f.write_text(yaml.safe_dump(doc))
    r = subprocess.run(
        [sys.executable, "-m", "agentgw", "validate", "-f", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert r.returncode != 0
    assert path in r.stderr and why in r.stderr, r.stderr
    assert "listeners[0].routes" not in r.stderr, r.stderr


def test_gateway_policies_run_before_routing(harness):
    """Policies on a named gateway (here cors and apiKey) apply to every route attached to it."""
    up = harness.upstream("guarded")
    port = free_port()
    cfg = {
        "config": _admin(),
        "gateways": {
            "api": {
                "port": port,
                "cors": {"allowOrigins": ["https://app.example"], "allowMethods": ["GET"], "maxAge": "60s"},
                "apiKey": {"keys": [{"key": "k-123"}], "mode": "strict"},
            }
        },
        "routes": [{"gateways": "api", "backends": [{"host": up.host}]}],
    }
    harness.gateway(cfg)
    base = f"http://127.0.0.1:{port}/echo"
    origin = {"origin": "https://app.example"}
    r = httpx.options(base, headers={**origin, "access-control-request-method": "GET"}, timeout=10)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["access-control-max-age"] == "60"
    r = httpx.get(base, headers=origin, timeout=10)
    assert r.status_code == 401
    r = httpx.get(base, headers={**origin, "authorization": "Bearer k-123"}, timeout=10)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["x-upstream-port"] == str(up.port)
