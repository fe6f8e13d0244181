"""agentgateway's mcp-multiplex example, run as its README runs it.

The vendored ``examples/mcp-multiplex/config.yaml`` is loaded unchanged except:

* the bind's port 3000 -> a free port;
* the ``time`` target's ``uvx --with "mcp<2" mcp-server-time`` -> a local stand-in with the
  same tools (``get_current_time``, ``convert_time``) on stdio: this module run as
  ``python -m tests.compat.examples.test_mcp_multiplex`` (no network, no ``uvx``);
* the ``everything`` target's ``npx @modelcontextprotocol/server-everything`` -> the
  project-local copy of that npm package, on stdio;
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

README steps checked (the Inspector's calls are made by the official MCP SDK client):

* "when we open the MCP inspector we can see the tools from both ``time`` and
  ``everything``. Because we have multiple tools, each tool is prefixed with the
  ``<name>_``": ``tools/list`` has ``time_*`` and ``everything_*`` tools and nothing
  unprefixed; calls to each prefixed name reach the right server;
* "one failing target fails ``initialize`` for the whole multiplexed backend": with the
  ``time`` command failing to start (as ``mcp-server-time`` does without the SDK pin),
  ``initialize`` fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import EVERYTHING, LOOPBACK, need_npm, run
from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "mcp-multiplex" / "config.yaml"


def _time_server() -> None:
    """Stand-in for ``mcp-server-time``: its two tools, on stdio."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from mcp.server.mcpserver import MCPServer

    server = MCPServer("mcp-time")

    @server.tool()
    def get_current_time(timezone: str) -> str:
        """Get current time in a specific timezone (IANA name)."""
        now = datetime.now(ZoneInfo(timezone))
        return json.dumps({"timezone": timezone, "datetime": now.isoformat(timespec="seconds")})

    @server.tool()
    def convert_time(source_timezone: str, time: str, target_timezone: str) -> str:
        """Convert a HH:MM time of today between timezones."""
        hh, mm = (int(x) for x in time.split(":"))
        src = datetime(2025, 1, 15, hh, mm, tzinfo=ZoneInfo(source_timezone))
        dst = src.astimezone(ZoneInfo(target_timezone))
        return json.dumps({"source": src.isoformat(), "target": dst.isoformat()})

    server.run()


def _config(time_stdio: dict) -> tuple[dict, int]:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    bind = cfg["binds"][0]
    assert bind["port"] == 3000
    port = bind["port"] = free_port()
    targets = bind["listeners"][0]["routes"][0]["backends"][0]["mcp"]["targets"]
    assert [t["name"] for t in targets] == ["time", "everything"]
    assert targets[0]["stdio"] == {"cmd": "uvx", "args": ["--with", "mcp<2", "mcp-server-time"]}
    assert targets[1]["stdio"] == {"cmd": "npx", "args": ["@modelcontextprotocol/server-everything"]}
    targets[0]["stdio"] = time_stdio
    targets[1]["stdio"] = {
        "cmd": str(EVERYTHING),
        "args": ["stdio"],
        "env": {"NODE_OPTIONS": f"--require {LOOPBACK} --no-warnings"},
    }
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg, port


TIME_STANDIN = {"cmd": sys.executable, "args": ["-m", "tests.compat.examples.test_mcp_multiplex"]}


def test_tools_of_both_servers_are_listed_with_their_prefix(harness):
    need_npm(EVERYTHING)
    cfg, port = _config(TIME_STANDIN)
    harness.gateway(cfg)

    async def go():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"time_get_current_time", "time_convert_time"} <= names, names
            assert {"everything_echo", "everything_get-sum"} <= names, names
            assert all(n.startswith(("time_", "everything_")) for n in names), names

            r = await c.call_tool("time_get_current_time", {"timezone": "Europe/Paris"})
            assert not r.is_error, r
            assert json.loads(r.content[0].text)["timezone"] == "Europe/Paris"
            r = await c.call_tool(
                "time_convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
            )
            assert json.loads(r.content[0].text)["target"] == "2025-01-15T21:00:00+09:00"
            r = await c.call_tool("everything_echo", {"message": "multiplexed"})
            assert r.content[0].text == "Echo: multiplexed"
            # the bare names are not served: the prefix says which server
            for bare in ("echo", "get_current_time"):
                with pytest.raises(MCPError, match="unknown name"):
                    await c.call_tool(bare, {"message": "x", "timezone": "UTC"})

    run(go())


def test_one_failing_target_fails_initialize(harness):
    need_npm(EVERYTHING)
    # the time server failing at import, as mcp-server-time does without `--with "mcp<2"`
    broken = {"cmd": sys.executable, "args": ["-c", "raise ImportError('cannot import name McpError')"]}
    cfg, port = _config(broken)
    harness.gateway(cfg)
    r = httpx.post(
        f"http://127.0.0.1:{port}/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        },
        headers={"accept": "application/json, text/event-stream"},
        timeout=30,
    )
    doc = r.json()
    assert "result" not in doc and "mcp-session-id" not in r.headers, doc
    assert doc["error"]["message"].startswith("failed to initialize MCP targets: time:"), doc


if __name__ == "__main__":
    _time_server()
