"""Outlier detection for LLM model entries (``llm.models[].health``).

Each provider answer (or failure to answer) of an entry with ``health`` is judged: by
``unhealthyExpression`` (CEL over ``response.code`` and ``response.headers``) when set,
else a 5xx answer is unhealthy; no answer at all (connection refused or reset, a
timeout) is always unhealthy. An unhealthy answer evicts the entry for
``eviction.duration`` (or, without one, the answer's ``Retry-After`` seconds, or 3 s
when ``eviction`` is set at all), multiplied by the number of times it was evicted in a
row; with ``eviction.consecutiveFailures: N`` only the N-th unhealthy answer in a row
does. A healthy answer resets both counts.

An evicted entry is left out of a request's candidates while others remain (a failover
chain or a failover virtual model moves on to the next one at once); when every
candidate is evicted they are all tried, in order, as agentgateway's load balancer does.
The state is per entry and per process, and starts afresh on a reload.

``eviction.healthThreshold`` and ``restoreHealth`` work on agentgateway's health score
(a moving average this build does not keep) and are refused at load.
"""

from __future__ import annotations

import time

from .conditions import Condition

DEFAULT_EVICTION = 3.0


class Health:
    __slots__ = ("expr", "duration", "evicts", "consecutive", "failures", "times", "until")

    def __init__(self, expr: Condition | None, duration: float | None, evicts: bool, consecutive: int | None):
        self.expr = expr
        self.duration = duration  # seconds, or None
        self.evicts = evicts  # `eviction` is configured
        self.consecutive = consecutive
        self.failures = 0  # unhealthy answers in a row
        self.times = 0  # evictions in a row
        self.until = 0.0  # monotonic time the current eviction ends

    def observe(self, status: int | None, headers=None) -> None:
        """One answer's head (``status`` None: no answer)."""
        if status is None:
            unhealthy = True
        elif self.expr is not None:
            hdrs = {k: v for k, v in headers} if headers is not None else {}
            unhealthy = self.expr.holds({"response": {"code": status, "headers": hdrs}})
        else:
            unhealthy = status >= 500
        if not unhealthy:
            self.failures = 0
            self.times = 0
            return
        self.failures += 1
        if self.consecutive and self.failures < self.consecutive:
            return
        base = self.duration
        if base is None:
            base = _retry_after(headers)
        if base is None and self.evicts:
            base = DEFAULT_EVICTION
        if base is None:
            return
        self.times += 1
        self.until = time.monotonic() + base * self.times

    def evicted(self, now: float) -> bool:
        return self.until > now


def _retry_after(headers) -> float | None:
    if headers is None:
        return None
    for k, v in headers:
        if k == "retry-after":
            try:
                secs = float(v)
            except ValueError:
                return None  # (an HTTP date: not read)
            return secs if secs > 0 else None
    return None


def prefer_healthy(cands: list) -> list:
    """``cands`` without the evicted ones, unless that leaves none."""
    now = time.monotonic()
    live = [c for c in cands if c.health is None or not c.health.evicted(now)]
    return live if live else cands


def compile_health(c, opaque, path: str) -> Health | None:
    """``health: {unhealthyExpression, eviction: {duration, consecutiveFailures}}``."""
    from ...config.durations import parse_duration

    if opaque is None:
        return None
    if not isinstance(opaque, dict):
        c.errors.add(path, "expected {unhealthyExpression, eviction}")
        return None
    for k in opaque:
        if k not in ("unhealthyExpression", "eviction"):
            c.errors.add(f"{path}.{k}", "unknown field")
    expr = None
    src = opaque.get("unhealthyExpression")
    if src is not None:
        if not isinstance(src, str):
            c.errors.add(f"{path}.unhealthyExpression", "expected a CEL expression")
        elif src.strip():
            try:
                expr = Condition(src)
            except ValueError as exc:
                c.errors.add(f"{path}.unhealthyExpression", f"invalid CEL expression: {exc}")
    ev = opaque.get("eviction")
    duration = consecutive = None
    if ev is not None:
        if not isinstance(ev, dict):
            c.errors.add(f"{path}.eviction", "expected {duration, consecutiveFailures}")
            ev = {}
        for k in ev:
            if k in ("healthThreshold", "restoreHealth"):
                c.errors.add(
                    f"{path}.eviction.{k}", "not supported yet (this build keeps no health score, only eviction)"
                )
            elif k not in ("duration", "consecutiveFailures"):
                c.errors.add(f"{path}.eviction.{k}", "unknown field")
        if ev.get("duration") is not None:
            try:
                duration = float(parse_duration(ev["duration"]))
            except (ValueError, TypeError) as exc:
                c.errors.add(f"{path}.eviction.duration", str(exc))
        n = ev.get("consecutiveFailures")
        if n is not None:
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                c.errors.add(f"{path}.eviction.consecutiveFailures", "expected a whole number of at least 1")
            else:
                consecutive = n
    return Health(expr, duration, ev is not None, consecutive)
