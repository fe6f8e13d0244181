"""Small HTTP/1.1 vocabulary shared by the server and the upstream client.

Headers are kept as a list of ``(lowercase name, value)`` string pairs: order and
duplicates are preserved (HTTP allows repeated fields such as ``set-cookie``), names are
lowercased once when parsed so every later lookup is a plain string compare, and the
latin-1 codec maps bytes to str one-to-one so nothing is lost on the way through.
"""

from __future__ import annotations

from http import HTTPStatus

import orjson

# Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy; headers named in
# ``Connection`` are removed as well.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


# Pre-encoded status lines: building them is on every response.
_STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {phrase}\r\n".encode("latin-1") for code, phrase in _REASONS.items()
}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} Unknown\r\n".encode("latin-1")
    return line


class Headers(list):
    """An ordered multi-map of ``(name, value)`` pairs with lowercase names.

    A list subclass so iteration and copying run at C speed; the helpers below cover
    what policies need. Names passed to the helpers must already be lowercase.
    """

    __slots__ = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        for k, v in self:
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self if k == name]

    def has(self, name: str) -> bool:
        for k, _ in self:
            if k == name:
                return True
        return False

    def remove(self, name: str) -> None:
        for k, _ in self:  # usually absent (identity headers a client must not send): no copy
            if k == name:
                self[:] = [kv for kv in self if kv[0] != name]
                return

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one value, keeping its position."""
        for i, (k, _) in enumerate(self):
            if k == name:
                self[i] = (name, value)
                # drop later duplicates
                self[i + 1 :] = [kv for kv in self[i + 1 :] if kv[0] != name]
                return
        self.append((name, value))

    def add(self, name: str, value: str) -> None:
        self.append((name, value))

    def copy(self) -> Headers:
        return Headers(self)


class RawHeaderView:
    """Read-only access to a response head's header lines, decoding only what is asked.

    Given to response hooks that declared they don't edit headers, so a relay can pass
    upstream headers through as bytes and still let such hooks look at them. It holds
    the head as received (header lines, each ending in CRLF) and finds a field in it
    with one search, so a hook that reads one header (or none) costs no parse of all.
    """

    __slots__ = ("head", "_low")

    def __init__(self, head: bytes):
        self.head = head
        self._low: bytes | None = None

    def _values(self, name: str):
        low = self._low
        if low is None:
            low = self._low = b"\r\n" + self.head.lower()
        key = b"\r\n" + name.lower().encode("latin-1") + b":"
        head = self.head
        i = low.find(key)
        while i >= 0:
            start = i + len(key) - 2  # in ``head``, which lacks the leading CRLF
            end = head.find(b"\r\n", start)
            yield head[start : end if end >= 0 else len(head)].strip(b" \t").decode("latin-1")
            i = low.find(key, i + len(key))

    def get(self, name: str, default: str | None = None) -> str | None:
        for v in self._values(name):
            return v
        return default

    def get_all(self, name: str) -> list[str]:
        return list(self._values(name))

    def has(self, name: str) -> bool:
        return self.get(name) is not None


def strip_hop_by_hop(headers: Headers, keep_upgrade: bool = False) -> Headers:
    """Return the end-to-end subset of ``headers``.

    ``keep_upgrade`` keeps ``connection: upgrade`` and ``upgrade`` for protocol
    switches (WebSocket), which must reach the upstream.
    """
    extra: set[str] | None = None
    for k, v in headers:
        if k == "connection":
            for token in v.split(","):
                token = token.strip().lower()
                if token:
                    if extra is None:
                        extra = set()
                    extra.add(token)
    out = Headers()
    for kv in headers:
        k = kv[0]
        if k in HOP_BY_HOP or (extra is not None and k in extra):
            if keep_upgrade and k in ("upgrade", "connection"):
                continue  # re-added by the caller in canonical form
            continue
        out.append(kv)
    if keep_upgrade:
        up = headers.get("upgrade")
        if up:
            out.append(("connection", "upgrade"))
            out.append(("upgrade", up))
    return out


def encode_headers(headers) -> bytes:
    """Serialise header pairs as ``name: value\\r\\n`` lines (no final blank line)."""
    return "".join([f"{k}: {v}\r\n" for k, v in headers]).encode("latin-1")


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": kind, "message": message}})


class Reply:
    """A response produced by the gateway itself (policy denial, redirect, error)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Headers | None = None, body: bytes = b""):
        self.status = status
        self.headers = headers if headers is not None else Headers()
        self.body = body

    @classmethod
    def error(cls, status: int, kind: str, message: str, headers: Headers | None = None) -> Reply:
        h = headers if headers is not None else Headers()
        h.append(("content-type", "application/json"))
        return cls(status, h, error_body(kind, message))


class GatewayError(Exception):
    """An error that maps to a gateway-generated response (never a traceback)."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message

    def reply(self) -> Reply:
        return Reply.error(self.status, self.kind, self.message)
