"""gRPC over the gateway: recognising a call, its deadline, and answering in its terms.

A gRPC call is an HTTP/2 POST whose content type is ``application/grpc`` (or
``application/grpc+proto`` and the like); its outcome travels in trailers
(``grpc-status``, ``grpc-message``), not in the HTTP status, which is 200 whenever the
server answered at all. So an answer the gateway makes itself (a refused credential, a
rate limit, an unreachable upstream) goes to a gRPC client as a *trailers-only*
response: one HEADERS frame with ``:status 200``, ``content-type: application/grpc``
and the gRPC status that says what happened, as gRPC's own proxies answer. An HTTP
error body would reach the client's application as an opaque "bad HTTP status".

``grpc-web`` (``application/grpc-web*``) is a different wire format for browsers over
HTTP/1.1 and is not handled here.
"""

from __future__ import annotations

from urllib.parse import quote

from .http import Headers

# gRPC status codes (grpc/doc/statuscodes.md)
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

#: the gRPC status for a gateway-made HTTP status: what the gateway decided, said as
#: gRPC says it (timeouts are DEADLINE_EXCEEDED, limits RESOURCE_EXHAUSTED, a route
#: that does not exist UNIMPLEMENTED, as for an unknown method)
_FROM_HTTP = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: UNIMPLEMENTED,
    405: UNIMPLEMENTED,
    408: DEADLINE_EXCEEDED,
    409: FAILED_PRECONDITION,
    411: INVALID_ARGUMENT,
    412: FAILED_PRECONDITION,
    413: RESOURCE_EXHAUSTED,
    414: INVALID_ARGUMENT,
    415: INVALID_ARGUMENT,
    421: UNAVAILABLE,
    422: INVALID_ARGUMENT,
    429: RESOURCE_EXHAUSTED,
    431: RESOURCE_EXHAUSTED,
    499: CANCELLED,
    500: INTERNAL,
    501: UNIMPLEMENTED,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: DEADLINE_EXCEEDED,
}


def status_for_http(status: int) -> int:
    """The gRPC status code for an HTTP status the gateway answers with."""
    code = _FROM_HTTP.get(status)
    if code is not None:
        return code
    if 200 <= status < 300:
        return OK
    return UNKNOWN


def is_grpc(headers) -> bool:
    """Whether a request's content type is gRPC's (and not grpc-web's)."""
    ct = headers.get("content-type")
    return ct is not None and ct[:16].lower() == "application/grpc" and ct[16:17] in ("", "+", ";")


def is_grpc_call(req) -> bool:
    """Whether a request is a gRPC call: over HTTP/2 with gRPC's content type. What the
    backends send to HTTP/2, ``Ctx.respond`` answers with gRPC statuses and the ``a2a``
    policy reads as protobuf; a gRPC content type over HTTP/1.1 is no gRPC call."""
    return req.http_version == "2" and is_grpc(req.headers)


def wants_trailers(req) -> bool:
    """Whether the client accepts trailer fields (``TE: trailers``, which gRPC clients send)."""
    for v in req.headers.get_all("te"):
        for token in v.split(","):
            if token.strip().lower().partition(";")[0].strip() == "trailers":
                return True
    return False


_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str | None) -> float | None:
    """A ``grpc-timeout`` value (1 to 8 digits and a unit, e.g. ``250m``) in seconds;
    None when absent or malformed (gRPC servers ignore a malformed one as well)."""
    if not value:
        return None
    value = value.strip()
    digits, unit = value[:-1], value[-1:]
    if not (1 <= len(digits) <= 8) or not digits.isdigit() or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]


def format_timeout(seconds: float) -> str:
    """Seconds as a ``grpc-timeout`` value (milliseconds, rounded up; at least 1m)."""
    ms = max(1, int(-(-seconds * 1000 // 1)))
    if ms < 100_000_000:
        return f"{ms}m"
    return f"{min(99_999_999, int(seconds))}S"


def trailers_only(status: int, message: str, headers: Headers | None = None) -> Headers:
    """The head of a trailers-only gRPC answer to a gateway-made HTTP ``status`` (the
    reply's own headers kept, except its content type and length)."""
    out = Headers()
    if headers:
        for k, v in headers:
            if k not in ("content-type", "content-length", "grpc-status", "grpc-message"):
                out.append((k, v))
    out.append(("content-type", "application/grpc"))
    out.append(("grpc-status", str(status_for_http(status))))
    if message:
        # grpc-message is percent-encoded UTF-8 (gRPC's PROTOCOL-HTTP2.md)
        out.append(("grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")))
    return out
