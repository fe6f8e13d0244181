"""``accessLog.otlp``: access-log records exported as OTLP log records, to a local
collector stand-in speaking OTLP/HTTP (protobuf) or OTLP/gRPC."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import httpx
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls

from tests.support.harness import free_port, gateway_config, route

from .otlp import GrpcReceiver, _val


class Logs:
    """Log records received, flattened."""

    def __init__(self):
        self.records: list[dict] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def add(self, req: ls.ExportLogsServiceRequest) -> None:
        with self.lock:
            for rl in req.resource_logs:
                res = {kv.key: _val(kv.value) for kv in rl.resource.attributes}
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        self.records.append(
                            {
                                "body": _val(r.body),
                                "severity": r.severity_text,
                                "severity_number": r.severity_number,
                                "attrs": {kv.key: _val(kv.value) for kv in r.attributes},
                                "trace_id": r.trace_id.hex(),
                                "span_id": r.span_id.hex(),
                                "resource": res,
                            }
                        )

    def wait(self, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.records) >= n:
                    return list(self.records)
            time.sleep(0.05)
        raise AssertionError(f"expected {n} log records, got {self.records}")


class HttpLogs(Logs):
    def __init__(self):
        super().__init__()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.paths.append(self.path)
                assert self.headers.get("content-type") == "application/x-protobuf"
                outer.add(ls.ExportLogsServiceRequest.FromString(body))
                out = ls.ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class GrpcLogs(Logs):
    def __init__(self):
        super().__init__()
        self.port = free_port()

        def export(req, _ctx):
            self.add(req)
            return ls.ExportLogsServiceResponse()

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    export,
                    request_deserializer=ls.ExportLogsServiceRequest.FromString,
                    response_serializer=ls.ExportLogsServiceResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self):
        self.server.stop(0).wait(5)


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
