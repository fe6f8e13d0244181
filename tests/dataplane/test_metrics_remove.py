"""``config.metrics.remove``: metric families left out of ``/metrics`` (agentgateway's
meaning: names of metrics to exclude), still counted, so removing a name from the list
brings the family back with its counts."""

from __future__ import annotations

import httpx
import pytest

from agentgw.telemetry.metrics import removed_families
from tests.support.harness import gateway_config, parse_metrics, route


def _names(gw) -> set[str]:
    return {s.name for s in parse_metrics(gw.metrics_text())}


@pytest.mark.parametrize("workers", [None, 2])
def test_removed_metrics_are_not_exposed_and_come_back_on_reload(harness, workers):
    up = harness.upstream("metrics-remove")
    cfg = gateway_config([route("r", [up.host])])
    cfg["config"]["metrics"] = {"remove": ["requests", "agentgw_upstream_connections_total", "agent_request_duration"]}
    gw = harness.gateway(cfg, workers=workers)
    for i in range(3):
        assert httpx.get(f"{gw.url}/echo/{i}", timeout=10).status_code == 200
    names = _names(gw)
    for gone in (
        "agentgw_requests_total",
        "agentgateway_requests_total",  # agentgateway's name for it goes with it
        "agentgw_upstream_connections_total",
        "agent_request_duration_seconds_count",
    ):
        assert gone not in names, gone
    for kept in (
        "agentgw_request_duration_seconds_count",
        "agentgateway_request_duration_seconds_count",
        "agent_requests_total",
        "agentgw_config_reloads_total",
    ):
        assert kept in names, kept

    del cfg["config"]["metrics"]
    gw.reload(cfg)
    assert gw.metric("agentgw_requests_total", route="r") == 3  # counted all along
    assert gw.metric("agentgw_upstream_connections_total") >= 1


def test_names_read_as_agentgateway_reads_them():
    fams = [
        "agentgw_requests_total",
        "agentgw_request_duration_seconds",
        "agentgw_mcp_errors_total",
        "mcp_errors_total",
        "tool_invocations_total",
        "agentgateway_requests_total",
        "agentgateway_request_duration_seconds",
    ]
    both = {"agentgw_requests_total", "agentgateway_requests_total"}
    assert removed_families(fams, ["requests"]) == both
    assert removed_families(fams, ["agentgateway_requests_total"]) == both
    assert removed_families(fams, ["agentgateway_requests"]) == both
    assert removed_families(fams, ["agentgw_requests"]) == {"agentgw_requests_total"}
    assert removed_families(fams, ["request_duration"]) == {
        "agentgw_request_duration_seconds",
        "agentgateway_request_duration_seconds",
    }
    assert removed_families(fams, ["tool_invocations"]) == {"tool_invocations_total"}
    # a family's own name names it only, not an agentgw_ family of the same short name
    assert removed_families(fams, ["mcp_errors_total"]) == {"mcp_errors_total"}
    assert removed_families(fams, ["agentgw_mcp_errors_total"]) == {"agentgw_mcp_errors_total"}
    assert removed_families(fams, ["no_such_metric"]) == set()
