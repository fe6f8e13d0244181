"""What a translation hands back: each Gateway's config (`GatewayOutput`), every object's
status, errors and notes (`Result`), and `blame`, which reads a config path's provenance
back to the objects it comes from (how `agentgw.kube.check` pins a refusal on one object).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass
class GatewayOutput:
    namespace: str
    name: str
    config: dict
    files: dict[str, str] = field(default_factory=dict)
    parameters: dict | None = None
    listeners: list[dict] = field(default_factory=list)  # {name, port, protocol}
    gateway: dict = field(default_factory=dict)
    #: config path ("binds[0].listeners[1].routes[2].policies.jwtAuth") -> keys of the objects it comes from
    sources: dict[str, set] = field(default_factory=dict)
    #: the AgentgatewayParameters objects merged into ``parameters``
    parameter_objects: list[tuple] = field(default_factory=list)

    def digest(self) -> str:
        h = hashlib.sha256(json.dumps([self.config, self.files], sort_keys=True).encode())
        return h.hexdigest()[:16]


@dataclass
class Result:
    gateways: dict[tuple[str, str], GatewayOutput] = field(default_factory=dict)
    status: dict[tuple[str, str, str, str], dict] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def blame(path: str, sources: dict[str, set]) -> set | None:
    """The objects a config path comes from: those of its longest recorded prefix."""
    best = None
    for p in sources:
        if p == path or path.startswith(p + ".") or path.startswith(p + "[") or p == "":
            if best is None or len(p) > len(best):
                best = p
    return sources.get(best) if best is not None else None
