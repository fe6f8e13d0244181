"""``accessLog.otlp``: access-log records exported as OTLP log records, to a local
collector stand-in speaking OTLP/HTTP (protobuf) or OTLP/gRPC."""

from __future__ import annotations

import time

import httpx

from tests.support.harness import gateway_config, route

from .otlp import GrpcLogs, GrpcReceiver, HttpLogs


def test_access_log_records_over_otlp_http(harness):
    collector = HttpLogs()
    try:
        up = harness.upstream("up")
        cfg = gateway_config([route("api", [up.host])])
        cfg["frontendPolicies"] = {
            "accessLog": {
                "filter": 'request.path != "/healthz"',
                "add": {"user": 'request.headers["x-user"]'},
                "remove": ["bytes_received"],
                "otlp": {"host": f"127.0.0.1:{collector.port}", "protocol": "http"},
            }
        }
        gw = harness.gateway(cfg)
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            assert c.get("/healthz").status_code == 200
            assert c.get("/items?x=1", headers={"x-user": "alice"}).status_code == 200
        [rec] = collector.wait(1)
        time.sleep(0.8)  # a batch after the first would hold /healthz: there is none
        assert len(collector.records) == 1
        assert collector.paths[0] == "/v1/logs"
        assert collector.headers[0]["content-type"] == "application/x-protobuf"
        assert rec["body"] == "request" and rec["severity"] == "INFO" and rec["severity_number"] == 9
        a = rec["attrs"]
        assert a["route"] == "api" and a["path"] == "/items?x=1" and a["method"] == "GET"
        assert a["status"] == 200 and a["backend"] == up.host
        assert a["user"] == "alice"  # the access log's own add / remove apply
        assert "bytes_received" not in a
        assert rec["resource"]["service.name"] == "agentgw"
        # the stdout line is still written
        assert '"path":"/items?x=1"' in gw.stdout_text() or "path=/items?x=1" in gw.stdout_text()
    finally:
        collector.stop()


def test_otlp_filter_and_fields_and_trace_context_over_grpc(harness):
    """agentgateway's mcp-telemetry/logging example: tracing and the access log to one
    collector over gRPC; each record carries its request's trace."""
    logs, spans = GrpcLogs(), GrpcReceiver()
    try:
        up = harness.upstream("up")
        cfg = gateway_config([route("api", [up.host])])
        cfg["frontendPolicies"] = {
            "tracing": {"host": f"127.0.0.1:{spans.port}", "randomSampling": True},
            "accessLog": {
                "add": {"stdout_only": '"yes"'},
                "otlp": {
                    "host": f"127.0.0.1:{logs.port}",
                    "filter": 'request.method == "POST"',
                    "fields": {"add": {"agent": 'request.headers["x-agent"]'}, "remove": ["client"]},
                },
            },
        }
        gw = harness.gateway(cfg)
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            assert c.get("/skip").status_code == 200
            assert c.post("/call", content=b"{}", headers={"x-agent": "a1"}).status_code == 200
        [rec] = logs.wait(1)
        a = rec["attrs"]
        assert a["path"] == "/call" and a["agent"] == "a1"
        assert "client" not in a and "stdout_only" not in a  # otlp.fields replace the log's own
        span_traces = {s["trace_id"] for s in spans.wait(1)}
        assert rec["trace_id"] in span_traces and rec["trace_id"] == a["trace_id"]
        time.sleep(0.8)
        assert len(logs.records) == 1  # the GET was filtered out
        assert "stdout_only" in gw.stdout_text()
    finally:
        logs.stop()
        spans.stop()
