"""Interop: @modelcontextprotocol/server-everything as targets, the MCP Inspector CLI as client."""

from __future__ import annotations

import json
import subprocess

import mcp_types as types
from mcp.client.client import Client

from tests.support.harness import REPO_ROOT

from .conftest import INSPECTOR, demo_stdio, everything_stdio, fast_stdio, mcp_config, need_npm, node_env, run


def test_server_everything_over_stdio_and_streamable_http(harness, servers):
    ev = servers.everything()
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "evs", "stdio": everything_stdio()},
                    {"name": "evh", "mcp": {"host": ev.url}},
                ]
            }
        )
    )
    sampled = []

    async def sample(context, params):
        sampled.append(params.messages[0].content.text)
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="ok"), model="m")

    async def go():
        progress = []

        async def on_progress(p, total, message):
            progress.append(p)

        async with Client(gw.url + "/mcp", sampling_callback=sample) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            for t in ("evs", "evh"):
                assert f"{t}_echo" in names and f"{t}_get-sum" in names
                r = await c.call_tool(f"{t}_echo", {"message": "hi"})
                assert "hi" in r.content[0].text
                r = await c.call_tool(f"{t}_get-sum", {"a": 2, "b": 3})
                assert "5" in r.content[0].text
                progress.clear()
                r = await c.call_tool(
                    f"{t}_trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
                )
                assert len(progress) == 3, progress
                r = await c.call_tool(f"{t}_trigger-sampling-request", {"prompt": f"from {t}", "maxTokens": 5})
                assert not r.is_error
            assert any("from evs" in s for s in sampled) and any("from evh" in s for s in sampled)
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            assert any(p.startswith("evs_") for p in prompts) and any(p.startswith("evh_") for p in prompts)
            res = (await c.list_resources()).resources
            assert res and all(str(r.uri).startswith(("evs+", "evh+")) for r in res)
            rr = await c.read_resource(str(res[0].uri))
            assert rr.contents

    run(go(), timeout=55)


def _inspector(url: str, *args: str) -> dict:
    need_npm(INSPECTOR)
    p = subprocess.run(
        [str(INSPECTOR), "--cli", url, "--transport", "http", *args],
        capture_output=True,
        text=True,
        timeout=40,
        env=node_env(),
        cwd=str(REPO_ROOT),
    )
    assert p.returncode == 0, p.stderr[-2000:] + p.stdout[-2000:]
    return json.loads(p.stdout)


def test_inspector_cli_through_the_gateway(harness, servers):
    beta = servers.fast("beta")
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "beta", "mcp": {"host": beta.url}},
                    {"name": "alpha", "stdio": fast_stdio("alpha")},
                    {"name": "weather", "stdio": demo_stdio("weather")},
                ]
            }
        )
    )
    url = gw.url + "/mcp"
    tools = {t["name"] for t in _inspector(url, "--method", "tools/list")["tools"]}
    assert {"beta_echo", "alpha_echo", "weather_get_forecast"} <= tools
    out = _inspector(url, "--method", "tools/call", "--tool-name", "alpha_add", "--tool-arg", "a=20", "b=22")
    assert out["content"][0]["text"] == "42"
    out = _inspector(url, "--method", "resources/read", "--uri", "beta+data://static")
    assert out["contents"][0]["text"] == "static of beta"
    prompts = {p["name"] for p in _inspector(url, "--method", "prompts/list")["prompts"]}
    assert {"alpha_greet", "beta_greet"} <= prompts
