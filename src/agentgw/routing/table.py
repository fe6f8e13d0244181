"""Route selection: listener by Host, then the most specific matching route.

Precedence follows the Gateway API: the most specific hostname first (exact, then the
longest wildcard suffix, then routes with no hostname), then within one hostname group
exact path > longest prefix > regex, then a method match, then more header matches,
then more query matches, then file order. Everything is sorted once when the config is
compiled; a request walks the sorted lists and stops at the first match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from ..engine.http import GatewayError

EXACT, PREFIX, REGEX = 0, 1, 2


def _ambiguous(what: str) -> GatewayError:
    """A request a route matches on by a field it repeats: upstreams read the first, the
    last or all of them, so which route's policies apply would depend on the reader."""
    return GatewayError(400, "ambiguous_request", f"{what} and a route matches on it")


class Match:
    """One compiled ``matches[]`` entry of a route."""

    __slots__ = ("route", "kind", "value", "regex", "method", "headers", "query", "order", "_probe")

    def __init__(
        self,
        route: Any,
        *,
        kind: int = PREFIX,
        value: str = "/",
        method: str | None = None,
        headers: Sequence[tuple[str, str | None, re.Pattern | None]] = (),
        query: Sequence[tuple[str, str | None, re.Pattern | None]] = (),
        order: int = 0,
    ):
        self.route = route
        self.kind = kind
        self.value = value
        self.regex = re.compile(value) if kind == REGEX else None
        self.method = method.upper() if method else None
        self.headers = tuple(headers)
        self.query = tuple(query)
        self.order = order
        if kind == PREFIX:
            self._probe = value if value.endswith("/") else value + "/"
        else:
            self._probe = value

    def sort_key(self) -> tuple:
        plen = -len(self.value) if self.kind != REGEX else 0
        return (self.kind, plen, 0 if self.method else 1, -len(self.headers), -len(self.query), self.order)

    def matches(self, method: str, path: str, headers, query: str) -> bool:
        kind = self.kind
        if kind == PREFIX:
            v = self.value
            if v != "/" and path != v and not path.startswith(self._probe):
                return False
        elif kind == EXACT:
            if path != self.value:
                return False
        elif self.regex.fullmatch(path) is None:  # type: ignore[union-attr]  # compiled for REGEX
            return False
        if self.method is not None and method != self.method:
            return False
        for name, exact, rx in self.headers:
            vals = [v for k, v in headers if k == name]
            if not vals:
                return False
            if len(vals) > 1:
                raise _ambiguous(f"header {name!r} is repeated")
            val = vals[0]
            if exact is not None:
                if val != exact:
                    return False
            elif rx.fullmatch(val) is None:  # type: ignore[union-attr]  # a regex where no exact value
                return False
        if self.query:
            params: dict[str, str] = {}
            repeated: set[str] = set()
            for k, v in parse_qsl(query, keep_blank_values=True):
                if k in params:
                    repeated.add(k)
                else:
                    params[k] = v
            for name, exact, rx in self.query:
                got = params.get(name)
                if got is None:
                    return False
                if name in repeated:
                    raise _ambiguous(f"query parameter {name!r} is repeated")
                if exact is not None:
                    if got != exact:
                        return False
                elif rx.fullmatch(got) is None:  # type: ignore[union-attr]  # a regex where no exact value
                    return False
        return True


def _host_only(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1].lower() if end > 0 else host.lower()
    c = host.rfind(":")
    return (host[:c] if c >= 0 else host).lower()


class RouteTable:
    """All routes of one listener, indexed by hostname."""

    def __init__(self, entries: list[tuple[list[str], list[Match]]]):
        """``entries``: per route, its hostnames (empty = any) and its compiled matches."""
        exact: dict[str, list[Match]] = {}
        wild: dict[str, list[Match]] = {}
        anyhost: list[Match] = []
        for hostnames, matches in entries:
            if not hostnames:
                anyhost.extend(matches)
                continue
            for h in hostnames:
                h = h.lower()
                if h.startswith("*."):
                    wild.setdefault(h[1:], []).extend(matches)  # ".example.com"
                elif h == "*":
                    anyhost.extend(matches)
                else:
                    exact.setdefault(h, []).extend(matches)
        for lst in exact.values():
            lst.sort(key=Match.sort_key)
        for lst in wild.values():
            lst.sort(key=Match.sort_key)
        anyhost.sort(key=Match.sort_key)
        self.exact = exact
        self.wild = sorted(wild.items(), key=lambda kv: -len(kv[0]))
        self.anyhost = anyhost
        self.host_routing = bool(exact or wild)

    def match(self, method: str, host: str, path: str, headers, query: str) -> Match | None:
        if self.host_routing:
            h = _host_only(host)
            lst = self.exact.get(h)
            if lst:
                for m in lst:
                    if m.matches(method, path, headers, query):
                        return m
            for suffix, lst in self.wild:
                if h.endswith(suffix) and len(h) > len(suffix):
                    for m in lst:
                        if m.matches(method, path, headers, query):
                            return m
        for m in self.anyhost:
            if m.matches(method, path, headers, query):
                return m
        return None


def hostname_matches(pattern: str | None, host: str) -> bool:
    """Listener hostname check: exact or ``*.suffix`` wildcard; no pattern matches all."""
    if not pattern or pattern == "*":
        return True
    h = _host_only(host)
    p = pattern.lower()
    if p.startswith("*."):
        return h.endswith(p[1:]) and len(h) > len(p) - 1
    return h == p


def listener_specificity(pattern: str | None) -> tuple:
    if not pattern or pattern == "*":
        return (2, 0)
    if pattern.startswith("*."):
        return (1, -len(pattern))
    return (0, -len(pattern))
