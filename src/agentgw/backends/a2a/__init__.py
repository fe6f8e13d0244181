"""A2A (agent-to-agent) processing on top of the plain HTTP backend.

A2A over HTTP needs no proxy of its own: requests go through
:class:`~agentgw.backends.http.HttpBackendSet` unchanged. What A2A adds lives here and
in :mod:`agentgw.policies.a2a`:

* :mod:`.card` rewrites agent cards (``ctx.body_filter``) so that every address a card
  advertises is the gateway's, as the client reached it;
* :mod:`.rpc` reads the JSON-RPC envelope or the HTTP+JSON path of a request (method,
  task and context ids) and watches the response stream (``ctx.body_observer``) for
  task states, without re-encoding a byte of either;
* :mod:`.grpc` does the same for the gRPC binding: the method from the ``:path``, the
  ids and states from the protobuf messages (read by field number, no descriptors).
"""

from __future__ import annotations


def static_targets(backend) -> list[tuple[int, str, str]]:
    """``(weight, name, "host:port")`` for each target of an ``a2a`` backend."""
    out = []
    for t in backend.targets:
        host = t.static.host
        addr = f"[{host}]:{t.static.port}" if ":" in host and not host.startswith("[") else f"{host}:{t.static.port}"
        out.append((t.weight, t.name or addr, addr))
    return out
