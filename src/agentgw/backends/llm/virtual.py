"""Virtual models (``llm.virtualModels``): a public model name that routes each request
to one of the ``llm.models`` entries, public or internal.

* ``weighted`` -- one target drawn by weight; the request continues as a request for
  that model (its name in the body, its entry's provider, params and guards).
* ``conditional`` -- the first target whose ``when`` holds (the last may have none: the
  fallback); none holding is a 400 ``virtual_model_no_matching_target``.
* ``failover`` -- the targets in priority groups (lower first, weighted random order
  inside a group); each target's provider is asked in turn, failing over on connect
  errors, timeouts, 429 and 5xx while nothing has reached the client, as for the
  entries of one model name. Each target's provider gets the target's model name
  unless its entry sets ``params.model``.

A target is resolved like a client's model name (exact name first, then the first
wildcard entry that matches), but internal entries count too. The targets are checked
at load: one that no entry can serve is a config error.
"""

from __future__ import annotations

import random

from .conditions import Condition, condition_data


def order_groups(groups: list[list]) -> list:
    """The candidates of priority ``groups``: group by group, each in weighted random
    order (weights above 0)."""
    out: list = []
    for g in groups:
        if len(g) == 1:
            out.append(g[0])
            continue
        pool = [c for c in g if c.weight > 0]
        while pool:
            total = sum(c.weight for c in pool)
            r = random.random() * total
            for i, c in enumerate(pool):
                r -= c.weight
                if r < 0:
                    out.append(pool.pop(i))
                    break
            else:
                out.append(pool.pop())
    return out


class VirtualModel:
    """One compiled virtual model."""

    __slots__ = ("name", "kind", "targets", "weights", "total", "conditions", "groups", "entry")

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        targets: list[str] | None = None,
        weights: list[int] | None = None,
        conditions: list[Condition | None] | None = None,
        groups: list[list] | None = None,
        entry=None,
    ):
        self.name = name
        self.kind = kind  # "weighted", "conditional" or "failover"
        self.targets = targets or []
        self.weights = weights or []
        self.total = sum(self.weights)
        self.conditions = conditions or []
        self.groups = groups or []  # failover: [[Candidate, ...], ...] by priority
        self.entry = entry  # failover: the ModelEntry whose guards apply, if any

    def choose(self, ctx, body: dict, raw: bytes | None) -> str | None:
        """The target model for this request (weighted, conditional), or None."""
        if self.kind == "weighted":
            if len(self.targets) == 1:
                return self.targets[0]
            r = random.random() * self.total
            for t, w in zip(self.targets, self.weights, strict=True):
                r -= w
                if r < 0 and w > 0:
                    return t
            return next(t for t, w in zip(reversed(self.targets), reversed(self.weights), strict=True) if w > 0)
        conds = [c for c in self.conditions if c is not None]
        data = condition_data(conds, ctx, body, raw) if conds and ctx is not None else {}
        for t, c in zip(self.targets, self.conditions, strict=True):
            if c is None or (ctx is not None and c.holds(data)):
                return t
        return None
