"""Envoy external processors for the tests, on grpcio (threads), speaking
``envoy.service.ext_proc.v3.ExternalProcessor/Process`` as Envoy's processors do.

``Processor`` acts on what the request asks for in its ``x-test`` header:

* ``headers``: request headers mutated (``x-processed: yes`` set, ``x-remove-me`` removed,
  ``x-added`` appended), response headers too (``x-resp-processed: yes``);
* ``deny``: an ``immediate_response`` 403 with a body and a header;
* ``upper``: the request body upper-cased (a ``body`` mutation in buffered mode, a
  ``streamed_response`` in two chunks in full-duplex mode), and the response body
  wrapped in ``[processed ...]``;
* ``path``: ``:path`` rewritten to ``/rewritten`` and ``:authority`` to ``rewritten.example``;
* ``slow``: no answer to the request headers (the gateway's timeout);
* ``skip-response``: ``mode_override`` turning the response phases off;
* anything else: every phase answered with CONTINUE and nothing changed.

``EndpointPicker`` behaves as the Gateway API inference extension's EPP in its default
full-duplex mode: it waits for the whole request body, reads the JSON ``model``, answers
the request headers with ``x-gateway-destination-endpoint: <ip:port>`` (the endpoint
for that model) and the body as ``streamed_response``, and passes the response through.

Both record every message they receive (``.seen``: phase, headers, body, attributes,
metadata) for the tests to check.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
from google.protobuf import json_format

from agentgw.policies import ext_proc_proto as pb

SERVICE, METHOD = "envoy.service.ext_proc.v3.ExternalProcessor", "Process"


def _headers(hm) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in hm.headers:
        v = h.raw_value.decode() if h.raw_value else h.value
        out[h.key] = f"{out[h.key]},{v}" if h.key in out else v
    return out


def _set(mutation, key: str, value: str, action: int = pb.OVERWRITE_IF_EXISTS_OR_ADD) -> None:
    o = mutation.set_headers.add()
    o.header.key = key
    o.header.raw_value = value.encode()
    o.append_action = action


class _Server:
    def __init__(self):
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handler = grpc.stream_stream_rpc_method_handler(
            self._process,
            request_deserializer=pb.ProcessingRequest.FromString,
            response_serializer=pb.ProcessingResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(0)

    def _record(self, msg) -> dict:
        phase = msg.WhichOneof("request")
        part = getattr(msg, phase)
        entry: dict = {"phase": phase}
        if phase.endswith("headers"):
            entry["headers"] = _headers(part.headers)
            entry["end_of_stream"] = part.end_of_stream
        elif phase.endswith("body"):
            entry["body"] = bytes(part.body)
            entry["end_of_stream"] = part.end_of_stream
        if msg.attributes:
            entry["attributes"] = {k: json_format.MessageToDict(v) for k, v in msg.attributes.items()}
        if msg.HasField("metadata_context"):
            entry["metadata"] = {
                k: json_format.MessageToDict(v) for k, v in msg.metadata_context.filter_metadata.items()
            }
        if msg.HasField("protocol_config"):
            pc = msg.protocol_config
            entry["protocol"] = (pc.request_body_mode, pc.response_body_mode)
        with self.lock:
            self.seen.append(entry)
        return entry

    def _process(self, requests, context):  # pragma: no cover - overridden
        raise NotImplementedError

    def phases(self, since: int = 0) -> list[str]:
        with self.lock:
            return [e["phase"] for e in self.seen[since:]]


class Processor(_Server):
    def _process(self, requests, context):
        test = ""
        duplex_chunks: list[bytes] = []
        proto = (0, 0)
        for msg in requests:
            e = self._record(msg)
            phase = e["phase"]
            proto = e.get("protocol", proto)
            out = pb.ProcessingResponse()
            if phase == "request_headers":
                test = e["headers"].get("x-test", "")
                if test == "slow":
                    time.sleep(30)
                    return
                if test == "deny":
                    ir = out.immediate_response
                    ir.status.code = 403
                    ir.body = b'{"error": "denied by the processor"}'
                    _set(ir.headers, "x-denied", "1")
                    _set(ir.headers, "content-type", "application/json")
                    yield out
                    for _ in requests:  # until the gateway ends the stream (as Envoy's peers do)
                        pass
                    return
                out.request_headers.SetInParent()  # (an answer with nothing changed)
                common = out.request_headers.response
                if test == "headers":
                    _set(common.header_mutation, "x-processed", "yes")
                    _set(common.header_mutation, "x-added", "two", pb.APPEND_IF_EXISTS_OR_ADD)
                    common.header_mutation.remove_headers.append("x-remove-me")
                elif test == "path":
                    _set(common.header_mutation, ":path", "/rewritten?by=processor")
                    _set(common.header_mutation, ":authority", "rewritten.example")
                elif test == "skip-response":
                    mo = out.mode_override
                    mo.request_body_mode = e.get("protocol", (0, 0))[0]
                    mo.response_header_mode = pb.SKIP
                    mo.response_body_mode = pb.NONE
                yield out
            elif phase == "request_body":
                out.request_body.SetInParent()
                common = out.request_body.response
                data = e["body"]
                duplex = proto[0] == pb.FULL_DUPLEX_STREAMED
                new = data.upper() if test == "upper" else data
                if duplex:
                    duplex_chunks.append(data)
                    if not e["end_of_stream"]:
                        continue
                    whole = b"".join(duplex_chunks)
                    new = whole.upper() if test == "upper" else whole
                    half = len(new) // 2
                    for i, chunk in enumerate((new[:half], new[half:])):
                        r = pb.ProcessingResponse()
                        sr = r.request_body.response.body_mutation.streamed_response
                        sr.body = chunk
                        sr.end_of_stream = i == 1
                        yield r
                    continue
                if test == "upper":
                    common.body_mutation.body = new
                yield out
            elif phase == "response_headers":
                out.response_headers.SetInParent()
                if test == "headers":
                    _set(out.response_headers.response.header_mutation, "x-resp-processed", "yes")
                yield out
            elif phase == "response_body":
                out.response_body.SetInParent()
                data = e["body"]
                new = b"[processed " + data + b"]" if test == "upper" else data
                if proto[1] == pb.FULL_DUPLEX_STREAMED:
                    sr = out.response_body.response.body_mutation.streamed_response
                    sr.body = new
                    sr.end_of_stream = True
                elif test == "upper":
                    out.response_body.response.body_mutation.body = new
                yield out
            else:
                getattr(out, phase).SetInParent()  # (trailers: answered with nothing changed)
                yield out


class EndpointPicker(_Server):
    """``models``: model name -> endpoint ``ip:port`` (``*`` for any other model)."""

    def __init__(self, models: dict[str, str]):
        self.models = models
        super().__init__()

    def _process(self, requests, context):
        import json

        body = b""
        for msg in requests:
            e = self._record(msg)
            phase = e["phase"]
            if phase == "request_headers":
                if e["end_of_stream"]:  # no body: pick the default endpoint
                    yield self._pick(b"")
                continue
            if phase == "request_body":
                body += e["body"]
                if not e["end_of_stream"]:
                    continue
                try:
                    model = json.loads(body).get("model", "")
                except ValueError:
                    model = ""
                yield self._pick(model)
                r = pb.ProcessingResponse()
                sr = r.request_body.response.body_mutation.streamed_response
                sr.body = body
                sr.end_of_stream = True
                yield r
                continue
            out = pb.ProcessingResponse()
            if phase == "response_headers":
                out.response_headers.SetInParent()
            elif phase == "response_body":
                sr = out.response_body.response.body_mutation.streamed_response
                sr.body = e["body"]
                sr.end_of_stream = e["end_of_stream"]
            yield out

    def _pick(self, model) -> pb.ProcessingResponse:
        dest = self.models.get(model) or self.models.get("*", "")
        out = pb.ProcessingResponse()
        _set(out.request_headers.response.header_mutation, "x-gateway-destination-endpoint", dest)
        out.dynamic_metadata.update({"envoy.lb": {"x-gateway-destination-endpoint": dest}})
        return out
