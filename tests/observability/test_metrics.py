"""Metrics: the agentgw_* families and the EKS guide's names, merged across --workers,
valid for promtool, scraped by a real Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import httpx
import pytest

from tests.observability.otlp import TinyMcpServer
from tests.support.harness import free_port, gateway_config, metric_sum, parse_metrics, route, terminate

REPO = Path(__file__).resolve().parents[2]
EKS_FAMILIES = (
    "agent_requests_total",
    "agent_request_duration_seconds",
    "tool_invocations_total",
    "tool_invocation_duration_seconds",
    "mcp_errors_total",
    "a2a_calls_total",
)


@pytest.fixture(scope="module")
def mcp_target():
    t = TinyMcpServer()
    yield t
    t.stop()


def _config(up, mcp_port: int) -> dict:
    keys = {
        "apiKey": {
            "mode": "strict",
            "keys": [
                {"key": "secret-a", "metadata": {"name": "agent-a"}},
                {"key": "secret-b", "metadata": {"name": "agent-b"}},
            ],
        }
    }
    cfg = gateway_config(
        [
            route("api", [up.host], prefix="/api", policies=keys),
            route("agent", [up.host], prefix="/agents/helper", policies={"a2a": {}}),
            {
                "name": "mcp",
                "matches": [{"path": {"pathPrefix": "/mcp"}}],
                "backends": [
                    {"mcp": {"targets": [{"name": "tiny", "mcp": {"host": f"http://127.0.0.1:{mcp_port}/mcp"}}]}}
                ],
            },
        ]
    )
    return cfg


def _traffic(gw) -> None:
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for _ in range(5):
            assert c.get("/api/x", headers={"authorization": "Bearer secret-a"}).status_code == 200
        for _ in range(3):
            assert c.get("/api/x", headers={"authorization": "Bearer secret-b"}).status_code == 200
        assert c.get("/api/x").status_code == 401
        r = c.post(
            "/agents/helper",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {"message": {"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "hi"}]}},
            },
        )
        assert r.status_code == 200
        r = c.post(
            "/mcp",
            headers=h,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
        )
        sid = r.headers["mcp-session-id"]
        h["mcp-session-id"] = sid
        c.post("/mcp", headers=h, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i in range(2):
            r = c.post(
                "/mcp",
                headers=h,
                json={
                    "jsonrpc": "2.0",
                    "id": 10 + i,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"i": i}},
                },
            )
            assert r.status_code == 200 and '"error"' not in r.text, r.text
        r = c.post(
            "/mcp",
            headers=h,
            json={"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
        )
        assert r.status_code == 200


def _check_families(text: str) -> None:
    for fam in EKS_FAMILIES:
        assert f"# HELP {fam} " in text, fam
    m = parse_metrics(text)
    assert metric_sum(m, "agent_requests_total", agent_identity="agent-a") == 5
    assert metric_sum(m, "agent_requests_total", agent_identity="agent-b") == 3
    assert metric_sum(m, "agent_request_duration_seconds_count", agent_identity="agent-a") == 5
    assert metric_sum(m, "tool_invocations_total", tool_name="echo", status="ok") == 2
    assert metric_sum(m, "tool_invocation_duration_seconds_count", tool_name="echo", target="tiny") == 2
    assert (metric_sum(m, "mcp_errors_total") or 0) >= 1  # the unknown tool
    assert metric_sum(m, "a2a_calls_total", method="message/send") == 1
    # the agentgw_* families are unchanged by the identity dimension
    assert metric_sum(m, "agentgw_requests_total", route="api", status="200") == 8
    assert metric_sum(m, "agentgw_request_duration_seconds_count", route="api") == 9


def test_eks_families_with_workers_and_promtool(harness, mcp_target):
    up = harness.upstream("up")
    gw = harness.gateway(_config(up, mcp_target.port), workers=2)
    _traffic(gw)
    text = gw.metrics_text()
    _check_families(text)
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (scripts/install-test-deps.sh installs it)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    r = subprocess.run(
        ["promtool", "check", "rules", str(REPO / "deploy/prometheus/agentgw-alerts.yaml")],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0, (r.stdout + r.stderr).decode()


def _query(port: int, q: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


def test_prometheus_scrapes_the_gateway(harness, mcp_target, tmp_path):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (scripts/install-test-deps.sh installs it)")
    up = harness.upstream("up")
    gw = harness.gateway(_config(up, mcp_target.port))
    _traffic(gw)
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{REPO / 'deploy/prometheus/agentgw-alerts.yaml'}]\n"
        "scrape_configs:\n"
        f"- job_name: agentgw\n  static_configs: [{{targets: ['127.0.0.1:{gw.stats_addr[1]}']}}]\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")
    p = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 45
        result = []
        while time.monotonic() < deadline:
            try:
                result = _query(port, 'sum by (agent_identity) (agent_requests_total{agent_identity="agent-a"})')
            except OSError:
                result = []
            if result:
                break
            time.sleep(0.5)
        assert result, (tmp_path / "prometheus.log").read_text()[-3000:]
        assert float(result[0]["value"][1]) == 5
        assert _query(port, 'up{job="agentgw"}')[0]["value"][1] == "1"
        assert float(_query(port, 'sum(tool_invocations_total{tool_name="echo"})')[0]["value"][1]) == 2
        assert float(_query(port, "sum(a2a_calls_total)")[0]["value"][1]) == 1
        # every query of the Grafana dashboard is valid PromQL, and the request panels have data
        dash = json.loads((REPO / "deploy/grafana/agentgw.json").read_text())
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        assert len(exprs) >= 15
        for e in exprs:
            e = e.replace("$job", ".*").replace("$__rate_interval", "1m")
            _query(port, e)  # raises (HTTP 400) on a bad expression
        assert _query(port, 'sum by (agent_identity) (agent_requests_total{job=~".*"})')
    finally:
        terminate(p, timeout=10)
        log.close()
