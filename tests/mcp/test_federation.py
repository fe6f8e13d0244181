"""Federation through a real agentgw process, driven by the official MCP Python SDK client."""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from tests.support.harness import metric_sum, parse_metrics

from .conftest import demo_stdio, fast_stdio, mcp_config, run


def test_tools_prompts_resources_across_stdio_and_http_targets(harness, servers):
    beta = servers.fast("beta")
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "alpha", "stdio": fast_stdio("alpha")},
                    {"name": "beta", "mcp": {"host": beta.url}},
                    {"name": "weather", "stdio": demo_stdio("weather")},
                ]
            }
        )
    )

    async def go():
        progress = []

        async def on_progress(p, total, message):
            progress.append((p, total))

        async with Client(gw.url + "/mcp", mode="auto") as c:
            assert c.server_info.name == "agentgw"
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"alpha_echo", "beta_echo", "alpha_add", "weather_get_forecast"} <= names
            assert not any(n.startswith("echo") for n in names)  # every name is prefixed
            r = await c.call_tool("beta_echo", {"text": "hi"})
            assert r.content[0].text == "beta: hi"
            r = await c.call_tool("alpha_echo", {"text": "hi"})
            assert r.content[0].text == "alpha: hi"
            r = await c.call_tool("weather_get_forecast", {"city": "Paris"})
            assert "light rain" in r.content[0].text
            r = await c.call_tool("beta_progress", {"steps": 3}, progress_callback=on_progress)
            assert r.content[0].text == "done 3"
            assert [p for p, _ in progress] == [1, 2, 3]
            progress.clear()
            r = await c.call_tool("alpha_progress", {"steps": 2}, progress_callback=on_progress)
            assert [p for p, _ in progress] == [1, 2]  # from a stdio target too

            prompts = {p.name for p in (await c.list_prompts()).prompts}
            assert {"alpha_greet", "beta_greet"} <= prompts
            g = await c.get_prompt("beta_greet", {"who": "Ada"})
            assert "Hello Ada, from beta" in g.messages[0].content.text

            uris = {str(r.uri) for r in (await c.list_resources()).resources}
            assert {"alpha+data://static", "beta+data://static"} <= uris
            rr = await c.read_resource("beta+data://static")
            assert rr.contents and str(rr.contents[0].uri) == "beta+data://static"
            # the form earlier agentgw versions handed out still routes
            assert (await c.read_resource("agw://beta/data://static")).contents
            assert rr.contents[0].text == "static of beta"
            templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
            assert "alpha+data://{name}/info" in templates
            rr = await c.read_resource("alpha+data://bob/info")
            assert rr.contents[0].text == "info about bob from alpha"

            # MCP Apps: the UI resource keeps ui://, the target goes into its authority,
            # and the tool's _meta names it that way (both the nested and the flat key)
            tool = next(t for t in (await c.list_tools()).tools if t.name == "beta_show_panel")
            meta = tool.meta or {}
            assert meta["ui"]["resourceUri"] == "ui://beta+panel/view.html"
            assert meta["ui/resourceUri"] == "ui://beta+panel/view.html"
            assert "ui://alpha+panel/view.html" in uris
            rr = await c.read_resource(meta["ui"]["resourceUri"])
            assert rr.contents[0].text == "<p>panel of beta</p>"
            assert str(rr.contents[0].uri) == "ui://beta+panel/view.html"

            with pytest.raises(MCPError):
                await c.call_tool("nosuchtarget_echo", {"text": "x"})

    run(go())
    samples = parse_metrics(gw.metrics_text())
    assert (
        metric_sum(samples, "agentgw_mcp_requests_total", method="tools/call", target="beta", tool="echo", status="ok")
        == 1
    )
    assert metric_sum(samples, "agentgw_mcp_tool_call_duration_seconds_count", target="alpha", tool="echo") == 1


def test_elicitation_and_sampling_are_relayed(harness, servers):
    beta = servers.fast("beta")
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "alpha", "stdio": fast_stdio("alpha")},
                    {"name": "beta", "mcp": {"host": beta.url}},
                ]
            }
        )
    )
    asked = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"ok": True})

    async def sample(context, params):
        asked.append(params.messages[0].content.text)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test"
        )

    async def go():
        async with Client(gw.url + "/mcp", elicitation_callback=elicit, sampling_callback=sample) as c:
            for target in ("beta", "alpha"):
                r = await c.call_tool(f"{target}_confirm", {"question": f"sure {target}?"})
                assert r.content[0].text == "accept:True", r
                r = await c.call_tool(f"{target}_ask_llm", {"prompt": f"meaning {target}"})
                assert r.content[0].text == "llm said: forty-two", r

    run(go())
    assert asked == ["sure beta?", "meaning beta", "sure alpha?", "meaning alpha"]


def test_prefix_never_single_target_and_stateless(harness, servers):
    beta = servers.fast("beta")
    gw = harness.gateway(
        mcp_config({"statefulMode": "stateless", "targets": [{"name": "beta", "mcp": {"host": beta.url}}]})
    )

    async def go():
        async with Client(gw.url + "/mcp") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert "echo" in names  # one target: conditional prefixing leaves names alone
            r = await c.call_tool("echo", {"text": "x"})
            assert r.content[0].text == "beta: x"

    run(go())
    import httpx

    r = httpx.post(
        gw.url + "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 200 and "mcp-session-id" not in r.headers
    assert any(t["name"] == "add" for t in r.json()["result"]["tools"])
