"""The route's ``retry`` on MCP backends, through a real gateway and the MCP Python SDK
client.

The targets here are ``FlakyTarget`` (flaky_target.py): a small streamable-HTTP (and
legacy HTTP+SSE) MCP server in the test process that fails tool calls on purpose -- it
closes the connection without answering, answers 503, or starts an SSE answer and drops
it -- and records every request it receives, so a test can count what reached it and when.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from agentgw.compile import compile_config
from agentgw.config import ConfigError, load_config_text
from tests.support.harness import dump_yaml

from .conftest import demo_stdio, mcp_config, run
from .flaky_target import flaky  # noqa: F401 (fixture)


RETRY = {"attempts": 3, "backoff": "200ms", "codes": [503]}


def _text(r) -> str:
    return r.content[0].text


@pytest.mark.parametrize("mode", ["close", "503"])
def test_a_call_the_target_did_not_take_is_sent_again_with_backoff(harness, flaky, mode):
    """A target that closes the connection without answering (or answers 503) twice, then
    answers: with ``attempts: 3`` the call succeeds on the third send, after the
    backoff (200 ms, then 400 ms); failing three times, the call is a JSON-RPC error
    after exactly three sends. The backend's stdio target (not retried) works alongside."""
    t = flaky()
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "flaky", "mcp": {"host": t.url}},
                    {"name": "weather", "stdio": demo_stdio("weather")},
                ]
            },
            policies={"retry": RETRY},
        )
    )

    async def go():
        async with Client(gw.url + "/mcp") as c:
            assert "flaky_flaky" in {x.name for x in (await c.list_tools()).tools}
            t.plan = [mode, mode]
            t0 = time.monotonic()
            r = await c.call_tool("flaky_flaky", {})
            took = time.monotonic() - t0
            assert not r.is_error and _text(r) == "flaky: answered call 3"
            sends = t.times()
            assert len(sends) == 3
            assert sends[1] - sends[0] >= 0.18 and sends[2] - sends[1] >= 0.38, sends
            assert 0.58 <= took < 10, took

            t.plan = [mode] * 5
            with pytest.raises(MCPError) as err:
                await c.call_tool("flaky_flaky", {})
            why = "answered HTTP 503" if mode == "503" else "closed the connection before responding"
            assert why in str(err.value), err.value
            assert len(t.times()) == 6 and t.plan == [mode] * 2  # three more sends, no fourth
            t.plan = []
            assert _text(await c.call_tool("flaky_flaky", {})) == "flaky: answered call 7"
            assert _text(await c.call_tool("weather_get_forecast", {"city": "Oslo"}))

    run(go())


def test_no_retry_without_the_policy_or_for_other_statuses(harness, flaky):
    t = flaky()
    gw = harness.gateway(mcp_config({"targets": [{"name": "flaky", "mcp": {"host": t.url}}]}))
    gw_502 = harness.gateway(
        mcp_config(
            {"targets": [{"name": "flaky", "mcp": {"host": t.url}}]},
            policies={"retry": {"attempts": 3, "codes": [502]}},
        )
    )

    async def go(url):
        async with Client(url + "/mcp") as c:
            t.plan = ["503"]
            before = t.calls
            with pytest.raises(MCPError, match="answered HTTP 503"):
                await c.call_tool("flaky", {})
            assert t.calls == before + 1

    run(go(gw.url))
    run(go(gw_502.url))


def test_no_retry_once_part_of_an_sse_answer_was_relayed(harness, flaky):
    """The target starts its SSE answer (a progress notification, which reaches the
    client) and then drops the connection: the call is an error, never sent again."""
    t = flaky()
    gw = harness.gateway(
        mcp_config(
            {"targets": [{"name": "flaky", "mcp": {"host": t.url}}]},
            policies={"retry": {"attempts": 5, "backoff": "10ms", "codes": [500, 502, 503]}},
        )
    )

    async def go():
        progress = []

        async def on_progress(p, total, message):
            progress.append((p, total))

        async with Client(gw.url + "/mcp") as c:
            t.plan = ["partial"]
            with pytest.raises(MCPError, match="stream ended without an answer"):
                await c.call_tool("flaky", {}, progress_callback=on_progress)
            assert progress == [(1, 2)]
            await asyncio.sleep(0.3)
            assert t.calls == 1

    run(go())


def test_a_target_that_refuses_connections_at_first_is_reached_on_a_later_attempt(harness, flaky):
    """Connections refused (nothing listens yet): the ``initialize`` is sent again until
    the target is up; it reaches the target once."""
    t = flaky(listen=False)
    gw = harness.gateway(
        mcp_config(
            {"targets": [{"name": "flaky", "mcp": {"host": t.url}}]},
            policies={"retry": {"attempts": 6, "backoff": "200ms"}},
        )
    )

    async def go():
        t.listen(delay=0.5)
        t0 = time.monotonic()
        async with Client(gw.url + "/mcp") as c:
            assert time.monotonic() - t0 >= 0.45
            assert _text(await c.call_tool("flaky", {})) == "flaky: answered call 1"
        assert len(t.times("initialize")) == 1

    run(go())


def test_retry_on_a_legacy_sse_target(harness, flaky):
    """HTTP+SSE: the POST of a message that was not taken (503, or closed unanswered) is
    sent again; its answer comes on the target's stream."""
    t = flaky()
    gw = harness.gateway(
        mcp_config({"targets": [{"name": "flaky", "sse": {"host": t.sse_url}}]}, policies={"retry": RETRY})
    )

    async def go():
        async with Client(gw.url + "/mcp") as c:
            t.plan = ["503", "close"]
            assert _text(await c.call_tool("flaky", {})) == "flaky: answered call 3"
            assert t.calls == 3

    run(go())


# -- what the compiler accepts ------------------------------------------------------------


class _Services:
    pool = None
    on_upstream_error = None


def _compile_errors(backend: dict, retry: dict, tmp_path) -> list[str]:
    cfg = {
        "binds": [
            {
                "port": 18001,
                "listeners": [
                    {
                        "name": "l0",
                        "routes": [{"name": "mcp", "backends": [{"mcp": backend}], "policies": {"retry": retry}}],
                    }
                ],
            }
        ]
    }
    try:
        compile_config(load_config_text(dump_yaml(cfg)), _Services(), str(tmp_path))
    except ConfigError as exc:
        return exc.errors
    return []


def test_retry_is_refused_where_it_could_not_act(tmp_path):
    stdio = {"name": "s", "stdio": {"cmd": "true"}}
    http = {"name": "h", "mcp": {"host": "http://127.0.0.1:9300/mcp"}}
    path = "binds[0].listeners[0].routes[0].policies.retry"
    # only stdio targets: nothing to retry
    errs = _compile_errors({"targets": [stdio]}, {"attempts": 3}, tmp_path)
    assert errs == [
        f"{path}: has no effect: the mcp backend has only stdio targets, and a message written to a "
        "stdio server is never sent again (retries apply to mcp, sse and openapi targets)"
    ]
    # a success status: the target took the call
    errs = _compile_errors({"targets": [http]}, {"attempts": 3, "codes": [503, 200]}, tmp_path)
    assert len(errs) == 1 and errs[0].startswith(f"{path}.codes[1]: 200 is not an error status"), errs
    # mixed: applies to the HTTP targets
    assert _compile_errors({"targets": [stdio, http]}, {"attempts": 3, "codes": [503]}, tmp_path) == []
