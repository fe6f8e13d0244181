"""TCP and TLS listeners: where a connection goes.

A TCP listener sends every connection to its route's backend. A TLS listener reads the
ClientHello's SNI name without terminating TLS: the listener whose ``hostname`` matches
it, then the route whose ``hostnames`` match it (exact, then the longest ``*.`` suffix,
then a route without hostnames), and the route's backend (a weighted pick) gets the
encrypted bytes as they came. A ``dynamic`` backend dials the SNI name itself, on the
port the client asked for (the listener's, or the CONNECT target's). A name that no
listener or route takes closes the connection: nothing is dialled.

Built once per config load by the compiler; ``resolve`` runs once per connection.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from ..routing.table import hostname_matches


class TcpTarget:
    """A TCP backend: ``host:port``, or ``dynamic`` (the SNI name on the destination port);
    ``tls``: the client context of its ``backendTLS`` (TLS to the backend), with the
    name to send and verify (``backendTLS.hostname``, else the host dialled)."""

    __slots__ = ("host", "port", "dynamic", "label", "tls", "tls_name", "target")

    def __init__(
        self,
        host: str | None,
        port: int | None,
        label: str,
        tls: ssl.SSLContext | None = None,
        tls_name: str | None = None,
    ):
        self.host = host
        self.port = port
        self.dynamic = host is None
        self.label = label
        self.tls = tls
        self.tls_name = tls_name
        # dynamic.target: ``target(sni, dest_port, transport)`` -> (host, port) or None
        self.target: Callable[[str | None, int, Any], tuple[str, int] | None] | None = None

    def address(self, sni: str | None, dest_port: int, transport: Any = None) -> tuple | None:
        """``(host, port)``, or ``(host, port, ssl_context, server_name)`` with backendTLS."""
        if not self.dynamic:
            host, port = self.host or "", self.port or 0
        elif self.target is not None:
            hp = self.target(sni, dest_port, transport)
            if hp is None:
                return None
            host, port = hp
        elif not sni:
            return None  # nothing names the destination
        else:
            host, port = sni, dest_port
        if self.tls is None:
            return (host, port)
        return (host, port, self.tls, self.tls_name or host)


class TcpRoute:
    __slots__ = ("name", "exact", "wild", "any", "targets", "weights")

    def __init__(self, name: str, hostnames: Sequence[str], targets: Sequence[tuple[int, TcpTarget]]):
        self.name = name
        hs = [h.lower() for h in hostnames]
        self.any = not hs or "*" in hs
        self.exact = frozenset(h for h in hs if not h.startswith("*"))
        self.wild = tuple(sorted((h[1:] for h in hs if h.startswith("*.")), key=len, reverse=True))
        self.targets = [t for w, t in targets if w > 0]
        self.weights = [w for w, _ in targets if w > 0]

    def pick(self) -> TcpTarget | None:
        if not self.targets:
            return None
        if len(self.targets) == 1:
            return self.targets[0]
        return random.choices(self.targets, self.weights)[0]


def select_route(routes: Sequence[TcpRoute], sni: str | None) -> TcpRoute | None:
    """The route for ``sni`` (``None``: a TCP listener's connection, no name to match)."""
    if sni is None:
        return next((r for r in routes if r.any), routes[0] if routes else None)
    for r in routes:
        if sni in r.exact:
            return r
    best, best_len = None, -1
    for r in routes:
        for suffix in r.wild:
            if sni.endswith(suffix) and len(sni) > len(suffix) and len(suffix) > best_len:
                best, best_len = r, len(suffix)
    if best is not None:
        return best
    return next((r for r in routes if r.any), None)


def select_listener(listeners: Sequence, sni: str | None):
    """The first listener (most specific hostname first) whose hostname takes ``sni``."""
    for lst in listeners:
        if lst.hostname in (None, "*") or (sni is not None and hostname_matches(lst.hostname, sni)):
            return lst
    return None
