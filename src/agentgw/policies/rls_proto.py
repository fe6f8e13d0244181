"""The subset of Envoy's ``envoy.service.ratelimit.v3`` messages that ``remoteRateLimit`` speaks.

Declared as descriptors (``proto_flat``: no generated code, no protoc at build time). Field numbers and types follow
envoy/service/ratelimit/v3/rls.proto and
envoy/extensions/common/ratelimit/v3/ratelimit.proto; enums are declared as ``int32``
(same varint on the wire) and nested messages are declared flat (message names are
not on the wire). Fields agentgw neither sends nor reads are left out.

``RateLimitRequest`` / ``RateLimitResponse`` / ``Descriptor`` / ``Entry`` are module
attributes; ``METHOD`` is the gRPC method path. ``OK`` and ``OVER_LIMIT`` are the codes.
"""

from __future__ import annotations

from .proto_flat import build_flat

METHOD = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
UNKNOWN, OK, OVER_LIMIT = 0, 1, 2

_PKG = "agentgw.rls.v3"
# message -> [(field, number, type or message name, repeated?)]
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "Entry": [("key", 1, "string", False), ("value", 2, "string", False)],
    "Descriptor": [("entries", 1, "Entry", True)],
    "RateLimitRequest": [
        ("domain", 1, "string", False),
        ("descriptors", 2, "Descriptor", True),
        ("hits_addend", 3, "uint32", False),
    ],
    "Duration": [("seconds", 1, "int64", False), ("nanos", 2, "int32", False)],
    "RateLimit": [("name", 3, "string", False), ("requests_per_unit", 1, "uint32", False), ("unit", 2, "int32", False)],
    "DescriptorStatus": [
        ("code", 1, "int32", False),
        ("current_limit", 2, "RateLimit", False),
        ("limit_remaining", 3, "uint32", False),
        ("duration_until_reset", 4, "Duration", False),
    ],
    "HeaderValue": [("key", 1, "string", False), ("value", 2, "string", False)],
    "RateLimitResponse": [
        ("overall_code", 1, "int32", False),
        ("statuses", 2, "DescriptorStatus", True),
        ("response_headers_to_add", 3, "HeaderValue", True),
        ("request_headers_to_add", 4, "HeaderValue", True),
    ],
}


_C = build_flat(_PKG, _MESSAGES)
Entry = _C["Entry"]
Descriptor = _C["Descriptor"]
RateLimitRequest = _C["RateLimitRequest"]
RateLimitResponse = _C["RateLimitResponse"]
DescriptorStatus = _C["DescriptorStatus"]
HeaderValue = _C["HeaderValue"]
