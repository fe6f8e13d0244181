"""In-test OTLP receivers (traces and logs; gRPC and HTTP/protobuf) and a tiny HTTP MCP server."""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts

from tests.support.harness import free_port


def _val(v):
    k = v.WhichOneof("value")
    return getattr(v, k) if k else None


def _span(res: dict, s) -> dict:
    return {
        "name": s.name,
        "trace_id": s.trace_id.hex(),
        "span_id": s.span_id.hex(),
        "parent": s.parent_span_id.hex(),
        "kind": s.kind,
        "attrs": {kv.key: _val(kv.value) for kv in s.attributes},
        "resource": res,
        "status": s.status.code,
    }


def _log_record(res: dict, r) -> dict:
    return {
        "body": _val(r.body),
        "severity": r.severity_text,
        "severity_number": r.severity_number,
        "attrs": {kv.key: _val(kv.value) for kv in r.attributes},
        "trace_id": r.trace_id.hex(),
        "span_id": r.span_id.hex(),
        "resource": res,
    }


class Signal:
    """What differs between OTLP traces and logs for a receiver."""

    def __init__(self, service: str, request, response, resources: str, scopes: str, items: str, flatten):
        self.service, self.request, self.response = service, request, response
        self.resources, self.scopes, self.items, self.flatten = resources, scopes, items, flatten


TRACES = Signal(
    "opentelemetry.proto.collector.trace.v1.TraceService",
    ts.ExportTraceServiceRequest,
    ts.ExportTraceServiceResponse,
    "resource_spans",
    "scope_spans",
    "spans",
    _span,
)
LOGS = Signal(
    "opentelemetry.proto.collector.logs.v1.LogsService",
    ls.ExportLogsServiceRequest,
    ls.ExportLogsServiceResponse,
    "resource_logs",
    "scope_logs",
    "log_records",
    _log_record,
)


class Received:
    """What an OTLP receiver got, flattened (``items``), with the HTTP paths and headers."""

    signal = TRACES

    def __init__(self):
        self.items: list[dict] = []
        self.paths: list[str] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()

    @property
    def spans(self) -> list[dict]:
        return self.items

    @property
    def records(self) -> list[dict]:
        return self.items

    def add(self, req) -> None:
        sig = self.signal
        with self.lock:
            for rs in getattr(req, sig.resources):
                res = {kv.key: _val(kv.value) for kv in rs.resource.attributes}
                for ss in getattr(rs, sig.scopes):
                    for item in getattr(ss, sig.items):
                        self.items.append(sig.flatten(res, item))

    def wait(self, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.items) >= n:
                    return list(self.items)
            time.sleep(0.05)
        raise AssertionError(f"expected {n} {self.signal.items}, got {self.items}")


class GrpcReceiver(Received):
    """OTLP/gRPC on a port of its own."""

    def __init__(self):
        super().__init__()
        self.port = free_port()
        sig = self.signal

        def export(req, _ctx):
            self.add(req)
            return sig.response()

        handler = grpc.method_handlers_generic_handler(
            sig.service,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    export,
                    request_deserializer=sig.request.FromString,
                    response_serializer=sig.response.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self):
        self.server.stop(0).wait(5)


class HttpReceiver(Received):
    """OTLP/HTTP with protobuf bodies on a port of its own."""

    def __init__(self):
        super().__init__()
        outer = self
        sig = self.signal

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.paths.append(self.path)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                outer.add(sig.request.FromString(body))
                out = sig.response().SerializeToString()
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


class GrpcLogs(GrpcReceiver):
    signal = LOGS


class HttpLogs(HttpReceiver):
    signal = LOGS


class TinyMcpServer:
    """Streamable-HTTP MCP with one ``echo`` tool; remembers each call's ``traceparent``."""

    def __init__(self):
        outer = self
        self.seen: list[tuple[str, str | None]] = []

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                msg = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                outer.seen.append((msg.get("method"), self.headers.get("traceparent")))
                if "id" not in msg:
                    self.send_response(202)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                m = msg["method"]
                if m == "initialize":
                    res = {
                        "protocolVersion": msg["params"]["protocolVersion"],
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "tiny", "version": "1"},
                    }
                elif m == "tools/list":
                    res = {"tools": [{"name": "echo", "description": "echo", "inputSchema": {"type": "object"}}]}
                elif m == "tools/call":
                    res = {"content": [{"type": "text", "text": json.dumps(msg["params"].get("arguments"))}]}
                else:
                    res = {}
                doc = {"jsonrpc": "2.0", "id": msg["id"], "result": res}
                if m == "tools/call" and msg["params"].get("name") != "echo":
                    doc = {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32602, "message": "unknown tool"}}
                out = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_DELETE(self):
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
