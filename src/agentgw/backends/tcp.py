"""``dynamic: {target: <CEL>}`` on a TCP route: the dial target computed per connection.

The expression is compiled with the config and evaluated once per connection, with
``destination`` (``hostname``: the ClientHello's SNI name, ``address``: the address the
client connected to, ``port``: the destination port -- the CONNECT target's through a
tunnel) and ``source`` (``address``, ``port``: the client). It must give a ``host:port``
string; anything else (an error, a missing name, no port) closes the connection, and
nothing is dialled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..cel import CelError, Expression, activation, register_variable
from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.tcp")

# (connections only: an HTTP request has no such variable to read)
register_variable("destination", lambda ctx: {})


def compile_dial_target(
    scope: CompileScope, source: str, path: str
) -> Callable[[str | None, int, Any], tuple[str, int] | None] | None:
    try:
        expr = Expression(source)
    except CelError as exc:
        scope.errors.add(path, str(exc))
        return None

    def target(sni: str | None, dest_port: int, transport: Any) -> tuple[str, int] | None:
        local = transport.get_extra_info("sockname") if transport is not None else None
        peer = transport.get_extra_info("peername") if transport is not None else None
        data = {
            "destination": {
                "hostname": sni or "",
                "address": local[0] if isinstance(local, tuple) else "",
                "port": dest_port,
            },
            "source": {
                "address": peer[0] if isinstance(peer, tuple) else "",
                "port": peer[1] if isinstance(peer, tuple) else 0,
            },
        }
        value = expr.evaluate(activation(data))
        if not isinstance(value, str):
            log.info("tcp: dynamic.target gave %r, not a 'host:port' string: connection closed", value)
            return None
        host, sep, port = value.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            log.info("tcp: dynamic.target gave %r, not 'host:port': connection closed", value)
            return None
        return host, int(port)

    return target
