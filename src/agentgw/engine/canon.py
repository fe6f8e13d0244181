"""The one reading of a request head's authority: Host and absolute-form targets.

A gateway that routes on one reading of a request and forwards another can be walked
past: two Host headers (routing took the first, the upstream the last), a trailing dot
(``admin.test.`` is the same DNS name as ``admin.test`` but not the same string), an
absolute-form target whose authority differs from Host. The engine therefore decides
the authority once, here, refuses what has no single reading, and rewrites the Host
field to the canonical form, so routing, every policy, the logs and the upstream all see
the same value.

Rules (RFC 9112 §3.2, RFC 3986 §3.2.2; stricter than the RFCs where noted):

* exactly one Host field (more than one → 400); none on HTTP/1.1 → 400;
* lowercase; one trailing dot removed; an empty label (``a..b``) refused;
* only reg-name characters or an IPv6 literal; no userinfo (``@``), no percent-encoding
  (stricter: RFC 3986 allows ``%XX`` in a reg-name, no DNS name needs it);
* the port is digits up to 65535; an empty port (``host:``) is dropped;
* absolute-form (``GET http://host/x``): scheme http or https, no userinfo, and a Host
  field, if present, must name the same authority (stricter: RFC 9112 says to ignore
  Host; refusing keeps a proxy or cache in front from reading the other one).
"""

from __future__ import annotations

import re

import httptools

__all__ = ["BadHead", "canonical_host", "known", "split_absolute_form"]


class BadHead(Exception):
    """A request head with no single reading: answered with ``status`` and closed."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


# host (reg-name or IPv6 literal) and optional port, matched on the lowercased value
_AUTHORITY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9\-._~!$&'()*+,;=]*)(?::([0-9]*))?")
# Host values seen, and their canonical forms: a client sends the same few again and again
known: dict[str, str] = {}
_CACHE_MAX = 512


def canonical_host(value: str) -> str:
    """The canonical ``host[:port]`` of a Host value; raises :class:`BadHead`."""
    canon = known.get(value)
    if canon is not None:
        return canon
    m = _AUTHORITY.fullmatch(value.lower())
    if m is None:
        raise BadHead(400, "invalid_host", f"invalid Host {value[:100]!r}")
    host, port = m.group(1), m.group(2)
    if host.endswith("."):
        host = host[:-1]
    if host and (host[0] == "." or ".." in host or host.endswith(".")):
        raise BadHead(400, "invalid_host", f"invalid Host {value[:100]!r}: empty DNS label")
    if port:
        if len(port) > 5 or int(port) > 65535:
            raise BadHead(400, "invalid_host", f"invalid Host {value[:100]!r}: bad port")
        canon = f"{host}:{port}"
    else:
        canon = host
    if len(known) >= _CACHE_MAX:
        known.clear()
    known[value] = canon
    return canon


def split_absolute_form(target: str) -> tuple[str, str]:
    """``(canonical authority, origin-form target)`` of an absolute-form target."""
    try:
        u = httptools.parse_url(target.encode("latin-1"))
    except httptools.HttpParserInvalidURLError:
        raise BadHead(400, "bad_request", "malformed absolute-form request target") from None
    scheme = (u.schema or b"").lower()
    if scheme not in (b"http", b"https"):
        raise BadHead(400, "bad_request", "absolute-form request target must be http or https")
    if u.userinfo:
        raise BadHead(400, "invalid_host", "userinfo is not allowed in the request target")
    if not u.host:
        raise BadHead(400, "invalid_host", "absolute-form request target has no host")
    host = u.host.decode("latin-1")
    if ":" in host:  # an IPv6 literal: httptools returns it without brackets
        host = f"[{host}]"
    authority = canonical_host(f"{host}:{u.port}" if u.port else host)
    path = (u.path or b"/").decode("latin-1")
    if u.query is not None:
        path += "?" + u.query.decode("latin-1")
    return authority, path
