"""MCP exchanges through a real gateway are freed by reference counting (see
tests/dataplane/test_refcycles.py for why that matters): tools/call to a streamable-HTTP
and a stdio target, with and without interim progress messages, and list calls."""

from __future__ import annotations

from mcp.client.client import Client

from tests.support.gc_probe import PROBE, cyclic_garbage

from .conftest import fast_stdio, mcp_config, run

CALLS = 40


def test_mcp_calls_leave_no_cyclic_garbage(harness, servers):
    http = servers.fast("web")
    gw = harness.gateway(
        mcp_config(
            {"targets": [{"name": "web", "mcp": {"host": http.url}}, {"name": "local", "stdio": fast_stdio("local")}]}
        ),
        command=PROBE,
    )

    async def calls(n: int) -> None:
        async with Client(gw.url + "/mcp", mode="auto") as c:
            for _ in range(n):
                assert (await c.call_tool("web_echo", {"text": "hi"})).content[0].text == "web: hi"
                assert (await c.call_tool("local_echo", {"text": "hi"})).content[0].text == "local: hi"
                r = await c.call_tool("web_progress", {"steps": 2}, progress_callback=_ignore)
                assert r.content[0].text == "done 2"
                assert "local_echo" in {t.name for t in (await c.list_tools()).tools}

    run(calls(1))  # warm-up: sessions, first-use caches
    cyclic_garbage(gw)
    run(calls(CALLS))
    garbage = cyclic_garbage(gw)
    # One session's set-up and teardown may leave a few objects; a cycle per call would
    # leave thousands (4 * CALLS exchanges of ~20 objects each).
    assert sum(garbage.values()) < CALLS, f"objects left to the cyclic collector: {garbage}"


async def _ignore(progress, total, message) -> None:
    return None
