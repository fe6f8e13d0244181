"""The runtime structures a request walks: a bind (one port), its listeners, their routes.

``compile.py`` builds them once per config load from the config models; a request only
reads them. Hot reload swaps the ``BindRuntime`` a server points at, so a request in
flight keeps the snapshot it started with.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..routing.paths import DEFAULT_RULES, PathRules
from ..routing.table import RouteTable, hostname_matches
from .policy import Policy, overrides

if TYPE_CHECKING:
    from ..telemetry.tracing import RequestTracer
    from .backend import Backend
    from .tcp import TcpRoute


def chains(policies: Sequence[Policy]) -> tuple[list[Policy], tuple, tuple, bool]:
    """The policies in chain order, their bound request steps and response hooks (only
    those a policy overrides), and whether any hook edits response headers."""
    ordered = sorted(policies, key=lambda p: p.order)
    hooks = [p for p in ordered if overrides(p, "on_response")]
    return (
        ordered,
        tuple(p.on_request for p in ordered if overrides(p, "on_request")),
        tuple(p.on_response for p in hooks),
        any(p.edits_response_headers for p in hooks),
    )


class Route:
    """A route: its request-policy chain (bound ``on_request`` methods, in order), its
    response hooks and its backend."""

    __slots__ = ("name", "request_chain", "response_chain", "backend", "policies", "listener", "response_edits")

    def __init__(self, name: str, policies: Sequence[Policy], backend: Backend | None, listener: str = ""):
        self.name = name
        self.policies, self.request_chain, self.response_chain, self.response_edits = chains(policies)
        self.backend = backend
        self.listener = listener


class ListenerRuntime:
    """A listener: its route table plus the policies that run before routing."""

    __slots__ = (
        "name",
        "hostname",
        "protocol",
        "routes",
        "tls",
        "request_chain",
        "response_chain",
        "response_edits",
        "path_rules",
        "client_certs",
        "tcp_routes",
    )

    def __init__(
        self,
        name: str,
        hostname: str | None,
        protocol: str,
        routes: RouteTable,
        tls: ssl.SSLContext | None = None,
        policies: Sequence[Policy] = (),
        path_rules: PathRules = DEFAULT_RULES,
        client_certs: bool = False,
        tcp_routes: Sequence[TcpRoute] = (),
    ):
        self.name = name
        # a TCP or TLS listener's routes (proxy/tcp.py); its ``routes`` table is empty
        self.tcp_routes = tuple(tcp_routes)
        self.hostname = hostname
        self.protocol = protocol
        self.routes = routes
        self.tls = tls
        self.path_rules = path_rules  # the listener's path readings (pathNormalization)
        # the listener verifies client certificates (see client_cert_refusal)
        self.client_certs = client_certs
        _, self.request_chain, self.response_chain, self.response_edits = chains(policies)


class BindRuntime:
    """One port: its listeners (most specific hostname first) and shared services."""

    __slots__ = (
        "name",
        "port",
        "listeners",
        "single",
        "services",
        "tracer",
        "trusted_proxies",
        "tcp",
        "sniff",
        "internal",
        "connect",
        "peers",
    )

    def __init__(
        self,
        port: int,
        listeners: list[ListenerRuntime],
        services: Any,
        *,
        tcp_listeners: list[ListenerRuntime] | None = None,
        internal: bool = False,
        connect: bool = False,
    ):
        self.name = str(port)
        self.port = port
        self.listeners = listeners
        # A bind with TCP or TLS listeners: every listener (HTTPS ones too, terminated by
        # SNI), most specific hostname first, for proxy/tcp.py; None for HTTP binds.
        self.tcp = tcp_listeners
        # whether a connection's ClientHello is read first (TLS or HTTPS listeners)
        self.sniff = any(lst.protocol in ("TLS", "HTTPS") for lst in tcp_listeners or ())
        # mode: internal -- no socket; reached by CONNECT tunnels to its port
        self.internal = internal
        # tunnelProtocol: connect -- CONNECT requests open tunnels to the bind of their port
        self.connect = connect
        # every bind of the same config by port (where CONNECT tunnels go)
        self.peers: dict[int, BindRuntime] = {}
        self.single = listeners[0] if len(listeners) == 1 and not listeners[0].hostname else None
        self.services = services  # metrics, access log
        self.tracer: RequestTracer | None = None  # when tracing is configured
        # peers whose X-Forwarded-Proto/-Host are believed (config.trustedProxies)
        self.trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def trusts(self, peer: str) -> bool:
        """Whether ``peer`` (the client's address) is a configured trusted proxy."""
        if not self.trusted_proxies or not peer:
            return False
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)

    def select(self, host: str) -> ListenerRuntime | None:
        for lst in self.listeners:
            if hostname_matches(lst.hostname, host):
                return lst
        return None
