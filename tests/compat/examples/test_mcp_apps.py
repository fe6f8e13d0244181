"""agentgateway's mcp-apps example, run as its README runs it.

The README's Apps-enabled sample servers (``npx -y @modelcontextprotocol/server-system-monitor
--stdio`` and ``npx -y @modelcontextprotocol/server-map --stdio``, from the ext-apps
repository, fetched by ``npx`` from npm) are stood in by local servers with the same Apps
shape, on stdio: this module run as ``python -m tests.compat.examples.test_mcp_apps
monitor|map``. The system monitor has ``get-system-info`` (``_meta.ui.resourceUri`` its
``ui://system-monitor/mcp-app.html`` dashboard) and the app-only ``poll-system-stats``
(``_meta.ui.visibility: ["app"]``) that the dashboard calls; the map has ``show-map`` and
its ``ui://cesium-map/mcp-app.html``. Both serve their ``ui://`` page with the Apps MIME
type ``text/html;profile=mcp-app``. The reference host (``basic-host``, run from a clone of
ext-apps) is stood in by the official MCP SDK client making the host's calls:
``tools/list``, ``resources/read`` of the tool's ``ui://`` resource, and the app's own
``tools/call`` of ``poll-system-stats`` by the name hardcoded in its HTML.

The vendored ``config.yaml`` and ``config-multiplex.yaml`` are loaded unchanged except:

* ``mcp.port`` 3000 -> a free port;
* each target's ``npx -y @modelcontextprotocol/server-... --stdio`` -> its stand-in;
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

The CORS policy and ``prefixMode: never`` stay as written.

README steps checked:

* single server: "call the ``get-system-info`` tool. The host reads the tool's ``ui://``
  resource through the gateway": ``tools/list`` has the tool with its ``_meta.ui``
  preserved, ``resources/read`` of that URI gives the page; "the app inside the iframe calls
  the ``poll-system-stats`` tool ... with a single target the gateway passes tool names
  through unchanged"; "``poll-system-stats`` is declared with ``_meta.ui.visibility:
  ["app"]``. The gateway forwards it, visibility metadata intact";
* "The config also enables CORS, since the host runs in a browser": a preflight with the
  host's headers (``mcp-method``, ``mcp-name`` ...) is allowed, the session id exposed;
* multiplexing with ``prefixMode: never``: "tool names are exposed unprefixed and the gateway
  routes each call by discovering which target serves the name": both servers' tools,
  unprefixed, each call reaching its server, the dashboard's ``poll-system-stats`` included;
  "``ui://`` URIs keep their scheme, with the target carried in the URI authority
  (``ui://<target>+<rest>``)" and "its ``resourceUri`` rewritten when multiplexing": the
  listed ``resourceUri`` is ``ui://monitor+system-monitor/mcp-app.html`` and reading it gives
  the monitor's page;
* "By default, multiplexing prefixes tool names with their target (``map_``,
  ``monitor_``) ... with prefixed names the dashboard renders but its live updates fail":
  the same two servers without ``prefixMode``: prefixed names, the app's unprefixed call
  refused, the dashboard (the rewritten ``resourceUri``) still readable.

With several targets the pages carry their target in the URI authority
(``ui://monitor+system-monitor/...``), as agentgateway writes them, whatever ``prefixMode``
says of tool names, so a host reads the page a tool names without listing resources.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import run
from tests.support.harness import free_port

HERE = Path(__file__).parents[1] / "agentgateway" / "examples" / "mcp-apps"
SINGLE, MULTIPLEX = HERE / "config.yaml", HERE / "config-multiplex.yaml"
APP_MIME = "text/html;profile=mcp-app"
MONITOR_UI, MAP_UI = "ui://system-monitor/mcp-app.html", "ui://cesium-map/mcp-app.html"
STANDIN = {"monitor": "server-system-monitor", "map": "server-map"}
MONITOR_GW, MAP_GW = "ui://monitor+system-monitor/mcp-app.html", "ui://map+cesium-map/mcp-app.html"


def _standin(kind: str) -> None:
    """Stand-in for the ext-apps sample servers: the Apps shape of their tools and pages."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(f"{kind}-standin")
    if kind == "monitor":

        @server.tool(name="get-system-info", meta={"ui": {"resourceUri": MONITOR_UI}})
        def get_system_info() -> str:
            """System information, shown in the system-monitor dashboard."""
            return json.dumps({"hostname": "standin", "cpus": 4, "server": "monitor"})

        @server.tool(name="poll-system-stats", meta={"ui": {"resourceUri": MONITOR_UI, "visibility": ["app"]}})
        def poll_system_stats() -> str:
            """Live CPU and memory figures, polled by the dashboard."""
            return json.dumps({"cpu": [12.5, 3.0, 7.25, 1.0], "memory": 0.42, "server": "monitor"})

        @server.resource(MONITOR_UI, name="system-monitor", mime_type=APP_MIME)
        def dashboard() -> str:
            return "<!doctype html><title>System Monitor</title><script>callTool('poll-system-stats')</script>"

    else:

        @server.tool(name="show-map", meta={"ui": {"resourceUri": MAP_UI}})
        def show_map(place: str) -> str:
            """Show a place on the globe."""
            return json.dumps({"place": place, "server": "map"})

        @server.resource(MAP_UI, name="cesium-map", mime_type=APP_MIME)
        def globe() -> str:
            return "<!doctype html><title>Map</title>"

    server.run()


def _stdio(kind: str) -> dict:
    return {"cmd": sys.executable, "args": ["-m", "tests.compat.examples.test_mcp_apps", kind]}


def _config(path: Path, targets: list[str]) -> tuple[dict, int]:
    cfg = yaml.safe_load(path.read_text())
    assert [t["name"] for t in cfg["mcp"]["targets"]] == targets
    for t in cfg["mcp"]["targets"]:
        pkg = STANDIN[t["name"]]
        assert t["stdio"] == {"cmd": "npx", "args": ["-y", f"@modelcontextprotocol/{pkg}", "--stdio"]}
        t["stdio"] = _stdio(t["name"])
    assert cfg["mcp"]["port"] == 3000
    port = cfg["mcp"]["port"] = free_port()
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg, port


def _multiplex_config(prefix_mode: bool = True) -> tuple[dict, int]:
    cfg, port = _config(MULTIPLEX, ["map", "monitor"])
    assert cfg["mcp"]["prefixMode"] == "never"
    if not prefix_mode:  # the README's "by default" case
        del cfg["mcp"]["prefixMode"]
    return cfg, port


def _tools(listing) -> dict:
    return {t.name: t for t in listing.tools}


def _ui(tool) -> dict:
    return (tool.meta or {})["ui"]


def test_single_server_apps_metadata_resource_and_app_calls(harness):
    cfg, port = _config(SINGLE, ["monitor"])
    harness.gateway(cfg)

    async def host():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            tools = _tools(await c.list_tools())
            assert set(tools) == {"get-system-info", "poll-system-stats"}  # single target: unchanged
            info, poll = tools["get-system-info"], tools["poll-system-stats"]
            assert _ui(info) == {"resourceUri": MONITOR_UI}
            # the app-only tool is forwarded with its visibility intact (hiding it is the host's job)
            assert _ui(poll) == {"resourceUri": MONITOR_UI, "visibility": ["app"]}
            # the host calls the tool and renders its ui:// resource
            r = await c.call_tool("get-system-info", {})
            assert not r.is_error and json.loads(r.content[0].text)["server"] == "monitor"
            page = await c.read_resource(_ui(info)["resourceUri"])
            (content,) = page.contents
            assert str(content.uri) == MONITOR_UI and content.mime_type == APP_MIME
            assert "<title>System Monitor</title>" in content.text
            # the dashboard's live updates: the app calls poll-system-stats by its own name
            r = await c.call_tool("poll-system-stats", {})
            assert not r.is_error and json.loads(r.content[0].text)["cpu"] == [12.5, 3.0, 7.25, 1.0]

    run(host())

    # the host runs in a browser: CORS as configured
    base = f"http://127.0.0.1:{port}/mcp"
    pre = httpx.options(
        base,
        headers={
            "origin": "http://localhost:8080",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,mcp-protocol-version,mcp-session-id,mcp-method,mcp-name",
        },
        timeout=10,
    )
    assert pre.status_code == 200, (pre.status_code, pre.text)
    assert pre.headers["access-control-allow-origin"] == "*"
    allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
    assert {"mcp-protocol-version", "content-type", "cache-control", "mcp-session-id", "mcp-method", "mcp-name"} <= (
        allowed
    )
    init = httpx.post(
        base,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "h", "version": "1"},
            },
        },
        headers={"origin": "http://localhost:8080", "accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert init.status_code == 200 and init.headers["mcp-session-id"], init.text
    assert init.headers["access-control-allow-origin"] == "*"
    assert init.headers["access-control-expose-headers"].lower() == "mcp-session-id"


def test_multiplex_with_prefix_mode_never_routes_unprefixed_names(harness):
    cfg, port = _multiplex_config()
    harness.gateway(cfg)

    async def host():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            tools = _tools(await c.list_tools())
            # unprefixed names from both targets
            assert set(tools) == {"show-map", "get-system-info", "poll-system-stats"}, set(tools)
            assert _ui(tools["poll-system-stats"])["visibility"] == ["app"]
            r = await c.call_tool("show-map", {"place": "Lisbon"})
            assert json.loads(r.content[0].text) == {"place": "Lisbon", "server": "map"}
            r = await c.call_tool("get-system-info", {})
            assert json.loads(r.content[0].text)["server"] == "monitor"
            # the dashboard's hardcoded call works: the gateway finds the target by name
            r = await c.call_tool("poll-system-stats", {})
            assert not r.is_error and json.loads(r.content[0].text)["server"] == "monitor"
            with pytest.raises(MCPError):
                await c.call_tool("monitor_poll-system-stats", {})
            # each target's pages, named with their target, are read from that target
            listed = {str(r.uri) for r in (await c.list_resources()).resources}
            assert listed == {MONITOR_GW, MAP_GW}, listed
            for uri, title in ((MONITOR_GW, "System Monitor"), (MAP_GW, "Map")):
                page = await c.read_resource(uri)
                assert f"<title>{title}</title>" in page.contents[0].text

    run(host())


def test_multiplexed_ui_uris_carry_the_target_in_their_authority(harness):
    cfg, port = _multiplex_config()
    harness.gateway(cfg)

    async def host():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            tools = _tools(await c.list_tools())
            assert _ui(tools["get-system-info"])["resourceUri"] == MONITOR_GW
            assert _ui(tools["show-map"])["resourceUri"] == MAP_GW
            # the host renders the page the tool names, without listing resources first
            page = await c.read_resource(_ui(tools["get-system-info"])["resourceUri"])
            assert "<title>System Monitor</title>" in page.contents[0].text

    run(host())


def test_default_multiplexing_prefixes_names_and_breaks_the_apps_own_calls(harness):
    cfg, port = _multiplex_config(prefix_mode=False)
    harness.gateway(cfg)

    async def host():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            tools = _tools(await c.list_tools())
            assert set(tools) == {"map_show-map", "monitor_get-system-info", "monitor_poll-system-stats"}
            r = await c.call_tool("monitor_get-system-info", {})
            assert json.loads(r.content[0].text)["server"] == "monitor"
            # the live updates fail: the app calls the name hardcoded in its HTML
            with pytest.raises(MCPError):
                await c.call_tool("poll-system-stats", {})

    run(host())


def test_default_multiplexing_still_renders_the_dashboard(harness):
    cfg, port = _multiplex_config(prefix_mode=False)
    harness.gateway(cfg)

    async def host():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            tools = _tools(await c.list_tools())
            uri = _ui(tools["monitor_get-system-info"])["resourceUri"]
            assert uri == "ui://monitor+system-monitor/mcp-app.html"
            page = await c.read_resource(uri)
            assert "<title>System Monitor</title>" in page.contents[0].text

    run(host())


def test_the_vendored_configs_differ_only_in_targets_and_prefix_mode():
    single, multi = yaml.safe_load(SINGLE.read_text()), yaml.safe_load(MULTIPLEX.read_text())
    assert single["mcp"]["policies"] == multi["mcp"]["policies"]
    m = copy.deepcopy(multi["mcp"])
    assert m.pop("prefixMode") == "never"
    m["targets"] = [t for t in m["targets"] if t["name"] == "monitor"]
    assert m == single["mcp"]


if __name__ == "__main__":
    _standin(sys.argv[1])
