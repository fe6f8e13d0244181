"""Caps on stdio MCP processes: per target, and per client of a target.

A stdio target runs one process per client session, so without a bound anyone who may
reach the route could have the gateway fork until the host runs out of memory. A
:class:`ProcessGate` (one per target, kept by the process-wide ``Registry`` so that its
counts survive config reloads) counts the target's live processes, in all and per client.
A session takes a :class:`Slot` from the gate of each of its stdio targets — all of them
or none — before any process starts; a slot is given back once its process has been
reaped, or when the process never started.

The client is the authenticated principal when a policy of the route put one in
``ctx.attrs["principal"]`` (jwtAuth ``sub``, apiKey name, basicAuth user, service
account), else the client's IP address.
"""

from __future__ import annotations

import logging

from .jsonrpc import TOO_MANY_SESSIONS, RpcError

log = logging.getLogger("agentgw.mcp")


def client_key(ctx) -> tuple:
    """Who a request counts against: ``("principal", name)`` or ``("ip", address)``."""
    p = ctx.attrs.get("principal")
    if isinstance(p, str) and p:
        return ("principal", p)
    return ("ip", ctx.req.client_addr or "")


class ProcessGate:
    """Live processes of one stdio target: in all, and per client."""

    __slots__ = ("name", "total", "clients", "gauge")

    def __init__(self, name: str, gauge=None):
        self.name = name  # the target's name, for messages and the metric label
        self.total = 0
        self.clients: dict[tuple, int] = {}
        self.gauge = gauge  # agentgw_mcp_stdio_processes{target}, or None

    def refusal(self, client: tuple | None, max_total: int, max_per_client: int) -> RpcError | None:
        if client is not None and self.clients.get(client, 0) >= max_per_client:
            return RpcError(
                TOO_MANY_SESSIONS,
                f"too many MCP sessions for this client: target {self.name!r} allows {max_per_client} per client; "
                "end a session (DELETE) or wait for an idle one to expire",
                {"target": self.name, "limit": "maxProcessesPerClient", "max": max_per_client},
            )
        if self.total >= max_total:
            return RpcError(
                TOO_MANY_SESSIONS,
                f"too many MCP sessions for target {self.name!r}: all {max_total} of its processes are in use; retry later",
                {"target": self.name, "limit": "maxProcesses", "max": max_total},
            )
        return None

    def take(self, client: tuple | None) -> Slot:
        self.total += 1
        if client is not None:
            self.clients[client] = self.clients.get(client, 0) + 1
        if self.gauge is not None:
            self.gauge.inc((self.name,))
        return Slot(self, client)


class Slot:
    """One process's place in its gate; ``release`` is idempotent."""

    __slots__ = ("gate", "client")

    def __init__(self, gate: ProcessGate, client: tuple | None):
        self.gate: ProcessGate | None = gate
        self.client = client

    def release(self) -> None:
        g = self.gate
        if g is None:
            return
        self.gate = None
        g.total -= 1
        c = self.client
        if c is not None:
            n = g.clients.get(c, 0) - 1
            if n > 0:
                g.clients[c] = n
            else:
                g.clients.pop(c, None)
        if g.gauge is not None:
            g.gauge.inc((g.name,), -1)


def reserve(specs, client: tuple | None) -> dict[str, Slot]:
    """A slot for every gated (stdio) target of ``specs``, all or none: raises the
    :class:`RpcError` of the first cap that is reached, having taken nothing."""
    gated = [s for s in specs if s.gate is not None]
    for spec in gated:
        err = spec.gate.refusal(client, spec.max_processes, spec.max_processes_per_client)
        if err is not None:
            who = f"{client[0]} {client[1]}" if client is not None else "shared session"
            log.info("MCP target %s: refused a session for %s (%s)", spec.name, who, err.data["limit"])
            raise err
    return {spec.name: spec.gate.take(client) for spec in gated}
