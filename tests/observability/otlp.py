"""In-test OTLP trace receivers (gRPC and HTTP/protobuf) and a tiny HTTP MCP server."""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts

from tests.support.harness import free_port


class Spans:
    def __init__(self):
        self.spans: list[dict] = []
        self.lock = threading.Lock()

    def add(self, req: ts.ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in req.resource_spans:
                res = {kv.key: _val(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append(
                            {
                                "name": s.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent": s.parent_span_id.hex(),
                                "kind": s.kind,
                                "attrs": {kv.key: _val(kv.value) for kv in s.attributes},
                                "resource": res,
                                "status": s.status.code,
                            }
                        )

    def wait(self, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= n:
                    return list(self.spans)
            time.sleep(0.05)
        raise AssertionError(f"expected {n} spans, got {self.spans}")


def _val(v):
    k = v.WhichOneof("value")
    return getattr(v, k) if k else None


class GrpcReceiver(Spans):
    def __init__(self):
        super().__init__()
        self.port = free_port()

        def export(req, _ctx):
            self.add(req)
            return ts.ExportTraceServiceResponse()

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    export,
                    request_deserializer=ts.ExportTraceServiceRequest.FromString,
                    response_serializer=ts.ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self):
        self.server.stop(0).wait(5)


class HttpReceiver(Spans):
    def __init__(self):
        super().__init__()
        outer = self
        self.paths: list[str] = []
        self.headers: list[dict] = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.paths.append(self.path)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                outer.add(ts.ExportTraceServiceRequest.FromString(body))
                out = ts.ExportTraceServiceResponse().SerializeToString()
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
