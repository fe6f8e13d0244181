"""Reading message heads that llhttp has already accepted: one call per message.

A call from llhttp into Python for every header line, then a Python loop to decide which
lines pass through, was the largest per-request cost left in the proxy. These functions
do that work in one call per message, in C when the ``_speedups`` extension was built
(``pip install`` builds it where a compiler is present) and otherwise in the pure-Python
twins below, which give exactly the same answers (the tests hold them to it).

The heads given here are ones llhttp has accepted, so they are well formed: CRLF line
ends, no CR or LF inside a value, no obs-fold, no whitespace before a colon.
"""

from __future__ import annotations

import os
import re

from .http import HOP_BY_HOP

# Trailing whitespace of each NUL-separated header value (see decode_fields_py).
_TRAILING_OWS = re.compile(r"[ \t]+(?=\0|$)")

# Response fields that never pass through as they are: hop-by-hop ones (RFC 9110 §7.6.1)
# and the framing the gateway writes itself.
_DROP = frozenset(name.encode() for name in HOP_BY_HOP) | {b"content-length"}


def _names_other_fields(value: bytes) -> bool:
    """True when a Connection value names a token other than keep-alive or close."""
    for token in value.split(b","):
        t = token.strip(b" \t").lower()
        if t and t != b"keep-alive" and t != b"close":
            return True
    return False


def scan_response_head_py(buf: bytes, start: int) -> tuple[int, bytes, bytes | None, bytes | None, bool]:
    """``buf[start:]`` begins with a complete response head. Returns ``(end, lines, relay,
    content_length, chunked)``: the offset just past its blank line; its header lines,
    each ending in CRLF; those lines without hop-by-hop and framing fields (None when a
    Connection header names further fields, for the caller's general path); the last
    Content-Length value, whitespace removed, or None; whether Transfer-Encoding is there.
    """
    blank = buf.index(b"\r\n\r\n", start)
    first = buf.index(b"\n", start) + 1
    last = blank + 2
    if first > last:
        first = last
    lines = buf[first:last]
    kept = []
    cl = None
    chunked = False
    extra = False
    dropped = False
    for line in lines.split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        n = name.lower()
        if n in _DROP:
            dropped = True
            value = value.strip(b" \t")
            if n == b"content-length":
                cl = value
            elif n == b"transfer-encoding":
                chunked = True
            elif n == b"connection" and _names_other_fields(value):
                extra = True
            continue
        kept.append(line + b"\r\n")
    if extra:
        relay = None
    elif not dropped:
        relay = lines
    else:
        relay = b"".join(kept)
    return blank + 4, lines, relay, cl, chunked


# Request fields the gateway rewrites rather than copies, plus hop-by-hop ones.
_REQ_DROP = HOP_BY_HOP | {
    "host",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
}


def build_request_head_py(
    method: str,
    target: str,
    host: str | None,
    headers,
    client_ip: str,
    scheme: str,
    default_host: str,
    body_len: int,
    chunked: bool,
) -> bytes | None:
    """The upstream request head: request line; Host (``host``, else the client's Host,
    else ``default_host``); the client's fields except hop-by-hop and rewritten ones;
    X-Forwarded-For (the client's values, then ``client_ip``); X-Forwarded-Proto;
    X-Forwarded-Host (the client's Host); then Content-Length (``body_len`` >= 0) or
    chunked framing. None when a Connection header names further fields: the caller's
    general path removes those as well. ``headers``: (lowercase name, value) pairs."""
    orig_host = None
    xff = None
    parts = []
    for k, v in headers:
        if k in _REQ_DROP:
            if k == "host":
                orig_host = v
            elif k == "x-forwarded-for":
                xff = v if xff is None else f"{xff}, {v}"
            elif k == "connection" and _names_other_fields(v.encode("latin-1")):
                return None
            continue
        parts.append(f"{k}: {v}\r\n")
    if host is None:
        host = orig_host or default_host
    parts.append(f"x-forwarded-for: {xff}, {client_ip}\r\n" if xff else f"x-forwarded-for: {client_ip}\r\n")
    parts.append(f"x-forwarded-proto: {scheme}\r\n")
    if orig_host:
        parts.append(f"x-forwarded-host: {orig_host}\r\n")
    if body_len >= 0:
        parts.append(f"content-length: {body_len}\r\n")
    elif chunked:
        parts.append("transfer-encoding: chunked\r\n")
    return f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n{''.join(parts)}\r\n".encode("latin-1")


class FieldSinkPy(list):
    """A list whose call appends ``(name, value)``: llhttp's header callback (the C
    version takes each header line without entering the interpreter)."""

    __slots__ = ()

    def __call__(self, name: bytes, value: bytes) -> None:
        self.append(name)
        self.append(value)


def decode_fields_py(fields: list[bytes]) -> tuple[list[tuple[str, str]], list[str], int]:
    """One head's raw header names and values (alternating, as llhttp gave them) decoded
    at once: returns the (lowercase name, value) string pairs (latin-1; trailing
    whitespace removed from each value, RFC 9110 §5.5 — llhttp already dropped the
    leading), the lowercase names alone, and the head size they account for (each
    "name: value\r\n"). ``fields`` is emptied."""
    n = len(fields) // 2
    if not n:
        fields.clear()
        return [], [], 0
    # llhttp refuses NUL in names and values, so it can separate them here
    nj = b"\0".join(fields[0::2])
    vj = b"\0".join(fields[1::2])
    fields.clear()
    lower = nj.decode("latin-1").lower().split("\0")
    vs = vj.decode("latin-1")
    if " \0" in vs or "\t\0" in vs or vs[-1:] in (" ", "\t"):
        vs = _TRAILING_OWS.sub("", vs)
    return list(zip(lower, vs.split("\0"))), lower, len(nj) + len(vj) + 2 * n + 2


try:
    if os.environ.get("AGENTGW_NO_SPEEDUPS"):
        # the pure-Python versions even where the C ones are built: for debugging, and
        # for the tests that run the gateway as an install without a compiler would
        raise ImportError("AGENTGW_NO_SPEEDUPS is set")
    from ._speedups import FieldSink, build_request_head, decode_fields, scan_response_head
except ImportError:  # built without a compiler: same results, more instructions
    scan_response_head = scan_response_head_py
    build_request_head = build_request_head_py
    decode_fields = decode_fields_py
    FieldSink = FieldSinkPy  # type: ignore[misc, assignment]  # the C type's pure-Python twin
