"""Request-path normalisation, so matching and authorization see what the upstream sees.

Policies are chosen by path, so ``//admin``, ``/public/../admin``, ``/./admin`` and
``/%61dmin`` must all be treated as ``/admin`` — and the normalised path is what is
forwarded, so the upstream can't be handed a different resource than the one the
gateway authorised. This follows RFC 3986 §6.2.2: decode percent-encoded *unreserved*
characters, upper-case the remaining escapes, remove dot segments; plus merging repeated
slashes, as Envoy's ``merge_slashes`` does. Encoded slashes (``%2F``) stay encoded: they
are data, not separators.
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def _pct(m: re.Match) -> str:
    code = int(m.group(1), 16)
    if code in _UNRESERVED:
        return chr(code)
    return "%" + m.group(1).upper()


def normalize_path(path: str) -> str:
    """Return the canonical form of an origin-form request path (no query)."""
    if not path:
        return "/"
    if "%" not in path and "/." not in path and "//" not in path and path[0] == "/":
        return path  # the common case costs three substring scans
    if "%" in path:
        path = _PCT.sub(_pct, path)
    if path[0] != "/":
        path = "/" + path
    out: list[str] = []
    segments = path.split("/")
    last = len(segments) - 1
    for i, seg in enumerate(segments[1:], start=1):
        if seg == "" and i != last:
            continue  # merge slashes
        if seg == ".":
            if i == last:
                out.append("")
            continue
        if seg == "..":
            if out:
                out.pop()
            if i == last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)
