"""JSON-RPC 2.0 vocabulary for the MCP gateway: message kinds, errors, SSE framing."""

from __future__ import annotations

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Implementation-defined server errors (-32000..-32099).
UPSTREAM_ERROR = -32001
SESSION_EXPIRED = -32002
FORBIDDEN = -32003
RATE_LIMITED = -32004
TOO_MANY_SESSIONS = -32005  # a stdio process cap (stdioLimits) is reached

#: Handshake-era protocol revisions the gateway negotiates, oldest first.
SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

dumps = orjson.dumps
loads = orjson.loads


class RpcError(Exception):
    """A JSON-RPC error to send back as ``{"error": {...}}``."""

    def __init__(self, code: int, message: str, data=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict:
        e = {"code": self.code, "message": self.message}
        if self.data is not None:
            e["data"] = self.data
        return e


def is_request(msg: dict) -> bool:
    return "method" in msg and "id" in msg


def is_notification(msg: dict) -> bool:
    return "method" in msg and "id" not in msg


def is_response(msg: dict) -> bool:
    return "method" not in msg and ("result" in msg or "error" in msg)


def result(id_, res) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "result": res}


def error(id_, code: int, message: str, data=None) -> dict:
    e = {"code": code, "message": message}
    if data is not None:
        e["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": e}


def version_rank(v: str) -> int:
    try:
        return SUPPORTED_VERSIONS.index(v)
    except ValueError:
        return -1


def sse_event(msg, event: str = "message", id_: str | None = None) -> bytes:
    data = msg if isinstance(msg, (bytes, bytearray)) else dumps(msg)
    head = b"event: " + event.encode() + b"\n"
    if id_ is not None:
        head += b"id: " + id_.encode() + b"\n"
    return head + b"data: " + bytes(data) + b"\n\n"


class SseParser:
    """Incremental text/event-stream parser: feed bytes, get (event, data, id) tuples."""

    __slots__ = ("buf", "event", "data", "id")

    def __init__(self):
        self.buf = b""
        self.event = ""
        self.data: list[bytes] = []
        self.id = None

    def feed(self, chunk: bytes) -> list[tuple[str, bytes, str | None]]:
        out = []
        buf = self.buf + chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = buf[:nl]
            buf = buf[nl + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self.data or self.event:
                    out.append((self.event or "message", b"\n".join(self.data), self.id))
                self.event, self.data = "", []
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self.data.append(value)
            elif name == b"event":
                self.event = value.decode("utf-8", "replace")
            elif name == b"id":
                self.id = value.decode("utf-8", "replace")
        self.buf = buf
        return out
