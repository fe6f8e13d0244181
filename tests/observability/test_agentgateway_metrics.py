"""agentgateway's metric names beside agentgw's: agentgateway's mcp-telemetry example, run
as its README runs it (the reference MCP server on stdio, the MCP Inspector's calls made
by the MCP SDK client), shows the series its README shows; and the names its dashboards
query for HTTP and LLM traffic are exposed with the labels they group by."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from mcp.client.client import Client

from tests.mcp.conftest import EVERYTHING, LOOPBACK, need_npm, run
from tests.support.harness import free_port, gateway_config, metric_sum, parse_metrics, route

COMPAT = Path(__file__).parents[1] / "compat" / "agentgateway"


def test_mcp_telemetry_example_metrics(harness):
    need_npm(EVERYTHING)
    cfg = yaml.safe_load((COMPAT / "examples/mcp-telemetry/config.yaml").read_text())
    # the reference server from the project's npm cache instead of `npx`; no collector runs
    target = cfg["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["mcp"]["targets"][0]
    assert target["name"] == "everything" and target["stdio"]["cmd"] == "npx"
    target["stdio"] = {
        "cmd": str(EVERYTHING),
        "args": ["stdio"],
        "env": {"NODE_OPTIONS": f"--require {LOOPBACK} --no-warnings"},
    }
    del cfg["frontendPolicies"]["tracing"]
    port = cfg["binds"][0]["port"] = free_port()
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    gw = harness.gateway(cfg)

    async def go():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            for _ in range(3):
                await c.list_tools()
            assert (await c.call_tool("echo", {"message": "hi"})).content[0].text == "Echo: hi"
            await c.call_tool("get-sum", {"a": 1, "b": 2})

    run(go())
    samples = parse_metrics(gw.metrics_text())
    tools = {s.labels["name"]: s.value for s in samples if s.name == "tool_calls_total"}
    assert tools == {"echo": 1, "get-sum": 1}
    assert {s.labels["server"] for s in samples if s.name == "tool_calls_total"} == {"everything"}
    assert metric_sum(samples, "list_calls_total", resource_type="tool") == 3
    posts = metric_sum(samples, "agentgateway_requests_total", gateway=f"bind/{port}", method="POST")
    assert posts is not None and posts >= 6  # initialize, initialized, 3 lists, 2 calls
    assert metric_sum(samples, "agentgateway_requests_total", gateway=f"bind/{port}", method="POST", status="200")
    mcp = metric_sum(
        samples, "agentgateway_mcp_requests_total", method="tools/call", resource_type="tool", server="everything"
    )
    assert mcp == 2
    assert metric_sum(samples, "agentgateway_build_info") == 1
    # the same counts as agentgw's own families
    assert posts == metric_sum(samples, "agentgw_requests_total", method="POST")


@pytest.mark.parametrize("workers", [None, 2])
def test_dashboard_names_for_http(harness, workers):
    """The series agentgateway's Grafana dashboard queries, grouped by its labels (with
    ``--workers``, summed over the workers; the build info stays 1)."""
    up = harness.upstream("metrics-names")
    routes = [route("web", [up.host], prefix="/web")]
    cfg = gateway_config(routes)
    gw = harness.gateway(cfg, workers=workers)
    for i in range(4):
        assert httpx.get(f"{gw.url}/web/{i}", timeout=10).status_code == 200
    samples = parse_metrics(gw.metrics_text())
    bind = str(cfg["binds"][0]["port"])
    assert metric_sum(samples, "agentgateway_requests_total", gateway=f"bind/{bind}", route="web", status="200") == 4
    assert (
        metric_sum(samples, "agentgateway_request_duration_seconds_count", gateway=f"bind/{bind}", route="web") == 4
    )
    buckets = [s for s in samples if s.name == "agentgateway_request_duration_seconds_bucket"]
    assert buckets and {"le", "gateway", "route"} <= set(buckets[0].labels)
    assert metric_sum(samples, "agentgateway_build_info") == 1
    # (the gen_ai names are checked with the LLM metrics, tests/llm/test_providers.py)
