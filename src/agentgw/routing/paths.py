"""The one reading of a request path: what routing, every policy and the upstream see.

Policies are chosen by path, so any path the gateway and its upstream could read as two
different resources is a way past them. ``canonical_path`` turns the path of a request
into one canonical form, which is matched, shown to every policy, CEL rule, log line and
metric, and forwarded; where no single form exists it refuses the request (400):

* percent-encoding (RFC 3986 §6.2.2): an escape of a character that may stand in a path
  segment as it is (unreserved, sub-delims except ``;``, ``:``, ``@``) is decoded, so
  ``/%61dmin`` and ``/adm%69n`` are ``/admin``; the other escapes stay, upper-cased;
  a ``%`` not followed by two hex digits, and ``%00``, are refused; a character that
  may not stand raw in a path (``"``, ``<``, ``|``, ...) is percent-encoded;
* dot segments are removed (``/public/../admin`` is ``/admin``) and repeated slashes
  merged (``//admin``), after decoding (``/%2e%2e/admin`` too);
* encoded separators: ``%2F`` and ``%5C``, and a raw ``\\`` (which IIS and some
  frameworks read as ``/``) are, per listener (``encodedSlashes``), refused (the
  default), decoded into ``/`` before matching and forwarded so, or kept as data;
* path parameters: ``/admin;x=1`` is ``/admin`` to Tomcat, Jetty, Spring and others,
  and ``/public/..;/admin`` is ``/admin`` to them. Per listener (``pathParameters``):
  stripped from every segment before anything else (the default, so the gateway and
  such upstreams read the same path, and the parameters are not forwarded), refused,
  or kept as ordinary characters (for upstreams that read ``;`` as data);
* fragments (``#``) never reach here: the engine refuses them.

The query string is not rewritten.
"""

from __future__ import annotations

import re

from ..engine.http import GatewayError

REJECT, DECODE, KEEP, STRIP = "reject", "decode", "keep", "strip"

# A path that is already canonical in the common case: only characters that stand raw,
# no escapes, no separators to decode or parameters to strip. Dot segments and repeated
# slashes are checked apart.
_PLAIN = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,=:@/]*")
#: ``plain_path(p) is not None and "//" not in p and "/." not in p``: ``p`` is canonical
#: under any rules (the request path's common case, checked inline on the hot path)
plain_path = _PLAIN.fullmatch
# what the slow path rewrites: an escape (or a lone %), or a character that may not
# stand raw in a path segment (``;`` and ``/`` may)
_REWRITE = re.compile(r"%([0-9A-Fa-f]{2})?|[^A-Za-z0-9\-._~!$&'()*+,=:@/;]")
# escapes decoded: characters a path segment may hold as they are (RFC 3986 pchar),
# except ``;`` (a parameter delimiter to some upstreams) and ``%`` (decoding it would
# create new escapes)
_DECODED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@")


def _bad(message: str) -> GatewayError:
    return GatewayError(400, "invalid_path", message)


class PathRules:
    """One listener's choices for the cases with more than one reading."""

    __slots__ = ("encoded_slashes", "path_parameters")

    def __init__(self, encoded_slashes: str = REJECT, path_parameters: str = STRIP):
        self.encoded_slashes = encoded_slashes
        self.path_parameters = path_parameters


DEFAULT_RULES = PathRules()


def canonical_path(path: str, rules: PathRules = DEFAULT_RULES) -> str:
    """The canonical form of an origin-form request path (no query); raises a 400
    :class:`GatewayError` for a path with no single reading (see the module doc)."""
    if plain_path(path) is not None and "//" not in path and "/." not in path:
        return path  # the common case: one regex scan and two substring scans
    if not path:
        return "/"
    if "\\" in path:
        mode = rules.encoded_slashes
        if mode == REJECT:
            raise _bad("a backslash in the path is refused (it is a separator to some servers)")
        if mode == DECODE:
            path = path.replace("\\", "/")
    if ";" in path:
        mode = rules.path_parameters
        if mode == REJECT:
            raise _bad("path parameters (;) are refused on this listener")
        if mode == STRIP:
            path = "/".join([seg.partition(";")[0] for seg in path.split("/")])
    slashes = rules.encoded_slashes

    def rewrite(m: re.Match) -> str:
        hx = m.group(1)
        if hx is None:
            c = m.group(0)
            if c == "%":
                raise _bad("a '%' in the path is not followed by two hex digits")
            return f"%{ord(c):02X}"  # a character that may not stand raw (llhttp: ASCII)
        code = int(hx, 16)
        if code in _DECODED:
            return chr(code)
        if code == 0x2F or code == 0x5C:
            if slashes == REJECT:
                raise _bad("an encoded '/' or '\\' (%2F, %5C) in the path is refused on this listener")
            if slashes == DECODE:
                return "/"
        elif code == 0:
            raise _bad("an encoded NUL (%00) in the path is refused")
        return "%" + hx.upper()

    path = _REWRITE.sub(rewrite, path)
    if path[:1] != "/":
        path = "/" + path
    if "//" not in path and "/." not in path:
        return path
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


def normalize_path(path: str) -> str:
    """``canonical_path`` with the default rules (kept for callers outside a listener)."""
    return canonical_path(path)
