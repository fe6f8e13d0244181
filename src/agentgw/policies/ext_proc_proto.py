"""The messages of Envoy's external processing API (``envoy.service.ext_proc.v3``) that
``extProc`` and ``inferenceRouting`` speak.

Declared as descriptors (``proto_flat``). Field numbers and types follow
envoy/service/ext_proc/v3/external_processor.proto, envoy/config/core/v3/base.proto
(``HeaderValue``, ``HeaderValueOption``, ``HeaderMap``, ``Metadata``) and
envoy/type/v3/http_status.proto. ``ImmediateResponse.body`` is read as bytes (Envoy
changed it from string; the wire is the same).
"""

from __future__ import annotations

from .proto_flat import build_flat

METHOD = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"

# BodySendMode
NONE, STREAMED, BUFFERED, BUFFERED_PARTIAL, FULL_DUPLEX_STREAMED = 0, 1, 2, 3, 4
# ProcessingMode.HeaderSendMode
DEFAULT, SEND, SKIP = 0, 1, 2
# CommonResponse.ResponseStatus
CONTINUE, CONTINUE_AND_REPLACE = 0, 1
# HeaderValueOption.HeaderAppendAction
APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS = 0, 1, 2, 3

_MESSAGES: dict[str, list[tuple]] = {
    "BoolValue": [("value", 1, "bool", False)],
    "Duration": [("seconds", 1, "int64", False), ("nanos", 2, "int32", False)],
    "HeaderValue": [("key", 1, "string", False), ("value", 2, "string", False), ("raw_value", 3, "bytes", False)],
    "HeaderValueOption": [
        ("header", 1, "HeaderValue", False),
        ("append", 2, "BoolValue", False),
        ("append_action", 3, "int32", False),
        ("keep_empty_value", 4, "bool", False),
    ],
    "HeaderMap": [("headers", 1, "HeaderValue", True)],
    "Metadata": [("filter_metadata", 1, "map:Struct", False)],
    "HttpStatus": [("code", 1, "int32", False)],
    "ProtocolConfiguration": [
        ("request_body_mode", 1, "int32", False),
        ("response_body_mode", 2, "int32", False),
        ("send_body_without_waiting_for_header_response", 3, "bool", False),
    ],
    "HttpHeaders": [("headers", 1, "HeaderMap", False), ("end_of_stream", 3, "bool", False)],
    "HttpBody": [("body", 1, "bytes", False), ("end_of_stream", 2, "bool", False)],
    "HttpTrailers": [("trailers", 1, "HeaderMap", False)],
    "ProcessingRequest": [
        ("request_headers", 2, "HttpHeaders", False, "request"),
        ("response_headers", 3, "HttpHeaders", False, "request"),
        ("request_body", 4, "HttpBody", False, "request"),
        ("response_body", 5, "HttpBody", False, "request"),
        ("request_trailers", 6, "HttpTrailers", False, "request"),
        ("response_trailers", 7, "HttpTrailers", False, "request"),
        ("metadata_context", 8, "Metadata", False),
        ("attributes", 9, "map:Struct", False),
        ("observability_mode", 10, "bool", False),
        ("protocol_config", 11, "ProtocolConfiguration", False),
    ],
    "HeaderMutation": [("set_headers", 1, "HeaderValueOption", True), ("remove_headers", 2, "string", True)],
    "StreamedBodyResponse": [("body", 1, "bytes", False), ("end_of_stream", 2, "bool", False)],
    "BodyMutation": [
        ("body", 1, "bytes", False, "mutation"),
        ("clear_body", 2, "bool", False, "mutation"),
        ("streamed_response", 3, "StreamedBodyResponse", False, "mutation"),
    ],
    "CommonResponse": [
        ("status", 1, "int32", False),
        ("header_mutation", 2, "HeaderMutation", False),
        ("body_mutation", 3, "BodyMutation", False),
        ("trailers", 4, "HeaderMap", False),
        ("clear_route_cache", 5, "bool", False),
    ],
    "HeadersResponse": [("response", 1, "CommonResponse", False)],
    "BodyResponse": [("response", 1, "CommonResponse", False)],
    "TrailersResponse": [("header_mutation", 1, "HeaderMutation", False)],
    "GrpcStatus": [("status", 1, "uint32", False)],
    "ImmediateResponse": [
        ("status", 1, "HttpStatus", False),
        ("headers", 2, "HeaderMutation", False),
        ("body", 3, "bytes", False),
        ("grpc_status", 4, "GrpcStatus", False),
        ("details", 5, "string", False),
    ],
    "ProcessingMode": [
        ("request_header_mode", 1, "int32", False),
        ("response_header_mode", 2, "int32", False),
        ("request_body_mode", 3, "int32", False),
        ("response_body_mode", 4, "int32", False),
        ("request_trailer_mode", 5, "int32", False),
        ("response_trailer_mode", 6, "int32", False),
    ],
    "ProcessingResponse": [
        ("request_headers", 1, "HeadersResponse", False, "response"),
        ("response_headers", 2, "HeadersResponse", False, "response"),
        ("request_body", 3, "BodyResponse", False, "response"),
        ("response_body", 4, "BodyResponse", False, "response"),
        ("request_trailers", 5, "TrailersResponse", False, "response"),
        ("response_trailers", 6, "TrailersResponse", False, "response"),
        ("immediate_response", 7, "ImmediateResponse", False, "response"),
        ("dynamic_metadata", 8, "Struct", False),
        ("mode_override", 9, "ProcessingMode", False),
        ("override_message_timeout", 10, "Duration", False),
    ],
}

_C = build_flat("agentgw.ext_proc.v3", _MESSAGES)
ProcessingRequest = _C["ProcessingRequest"]
ProcessingResponse = _C["ProcessingResponse"]
HeaderMutation = _C["HeaderMutation"]
HeaderValueOption = _C["HeaderValueOption"]
