"""agentgateway's mcp-basic example, run as its README runs it.

The vendored ``examples/mcp-basic/config.yaml`` is loaded unchanged except:

* ``mcp.port`` 3000 -> a free port (tests run side by side on one machine);
* the ``everything`` target's ``npx @modelcontextprotocol/server-everything`` -> the
  project-local copy of the same npm package (no network, no ``npx`` download), run on
  stdio as ``npx`` would run it;
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports (the harness waits for
  readiness there).

README steps checked (the MCP Inspector's calls are made by the official MCP SDK client):

* "Agentgateway supports both SSE (served under ``/sse``) and streamable HTTP (served under
  ``/mcp``)": a client connects over each transport;
* "navigate to the tools tab and see the available tools": ``tools/list`` shows the
  ``everything`` server's tools (one target, so the names are not prefixed);
* "try out one of the tools, like echo ... That worked!": ``echo`` answers ``Echo: <msg>``;
* the config's CORS policy (the Inspector runs in a browser): a preflight from another
  origin is answered with the allowed headers, and the session id header is exposed.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml
from mcp.client.client import Client
from mcp.client.sse import sse_client

from tests.mcp.conftest import EVERYTHING, LOOPBACK, need_npm, run
from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "mcp-basic" / "config.yaml"


def _config() -> tuple[dict, int]:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    target = cfg["mcp"]["targets"][0]
    assert target["name"] == "everything"
    assert target["stdio"] == {"cmd": "npx", "args": ["@modelcontextprotocol/server-everything"]}
    target["stdio"] = {
        "cmd": str(EVERYTHING),
        "args": ["stdio"],
        "env": {"NODE_OPTIONS": f"--require {LOOPBACK} --no-warnings"},
    }
    assert cfg["mcp"]["port"] == 3000
    port = cfg["mcp"]["port"] = free_port()
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg, port


def test_mcp_basic_example(harness):
    need_npm(EVERYTHING)
    cfg, port = _config()
    harness.gateway(cfg)
    base = f"http://127.0.0.1:{port}"

    async def use(client: Client) -> None:
        async with client as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            # the everything server's tools, unprefixed behind a single target
            assert {"echo", "get-sum", "get-env"} <= tools, tools
            assert not any(n.startswith("everything") for n in tools), tools
            r = await c.call_tool("echo", {"message": "hello gateway"})
            assert not r.is_error
            assert r.content[0].text == "Echo: hello gateway"
            r = await c.call_tool("get-sum", {"a": 2, "b": 40})
            assert not r.is_error and "42" in r.content[0].text

    # streamable HTTP under /mcp
    run(use(Client(f"{base}/mcp")))
    # SSE under /sse
    run(use(Client(sse_client(f"{base}/sse"))))

    # the Inspector runs in a browser: CORS as configured
    pre = httpx.options(
        f"{base}/mcp",
        headers={
            "origin": "http://localhost:6274",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,mcp-protocol-version,mcp-session-id",
        },
        timeout=10,
    )
    assert pre.status_code == 200, (pre.status_code, pre.text)
    assert pre.headers["access-control-allow-origin"] == "*"
    allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
    assert {"mcp-protocol-version", "content-type", "cache-control", "mcp-session-id"} <= allowed
    init = httpx.post(
        f"{base}/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        },
        headers={"origin": "http://localhost:6274", "accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert init.status_code == 200, init.text
    assert init.headers["access-control-allow-origin"] == "*"
    assert init.headers["access-control-expose-headers"].lower() == "mcp-session-id"
    assert init.headers["mcp-session-id"]
