"""What the rate limiters share: descriptor values from CEL, decision metrics, answers.

``globalRateLimit`` (counted in Redis) and ``remoteRateLimit`` (an Envoy rate-limit
service) both describe a request by descriptors — lists of ``(key, CEL expression)``
entries — count their decisions in the same metrics and answer with the same 429 and
503. Access-log fields and span attributes use :class:`DescriptorValues` too, keeping
values typed (``stringify=False``).
"""

from __future__ import annotations

import logging
import math
import time

from ..cel import Expression, _Binder, activation, is_no_value
from ..engine.http import Headers, Reply

log = logging.getLogger("agentgw.ratelimit")


class DescriptorValues:
    """CEL values of a descriptor's entries (compiled once; memoised per input)."""

    __slots__ = ("keys", "exprs", "binder", "memo", "uses_mcp", "uses_llm", "stringify", "structured")

    def __init__(
        self, entries: list[tuple[str, str]], when: str | None = None, stringify: bool = True, structured: bool = False
    ):
        self.stringify = stringify  # False: keep bool/int/float values as they are (logs, spans)
        self.structured = structured  # True: maps and lists are values too (log fields)

        self.keys = tuple(k for k, _ in entries)
        self.exprs = [Expression(v) for _, v in entries]
        if when is not None:  # evaluated first; must be true for the entries to count
            self.exprs.insert(0, Expression(f"({when}) ? true : false"))
        self.binder = _Binder(self.exprs)
        self.memo: dict = {}
        names: set[str] = set()
        for e in self.exprs:
            names.update(e.refs)
        self.uses_mcp = "mcp" in names
        self.uses_llm = "llm" in names

    def evaluate(self, ctx) -> tuple | None:
        """The entry values as strings, or None when the descriptor doesn't apply."""
        return self.binder.memoized(ctx, self.memo, self._evaluate)

    def _evaluate(self, data: dict) -> tuple | None:
        act = activation(data)
        out = []
        for e in self.exprs:
            try:
                r = e.program.eval(act)
                if is_no_value(r):  # a missing key, a type error...: no value
                    return None
                v = r.value()
            except Exception:
                return None
            if isinstance(v, bool):
                v = ("true" if v else "false") if self.stringify else v
            elif isinstance(v, (int, float, str)):
                v = str(v) if self.stringify else v
            elif self.structured and isinstance(v, (dict, list)):
                v = r.plain_value()
            else:  # an error value, a map, a list: no usable value
                return None
            out.append(v)
        if len(out) > len(self.keys):  # the `when` condition
            if out[0] not in ("true", True):
                return None
            out = out[1:]
        return tuple(out)


def limit_reply(limit: int, reset: float, message: str = "rate limit exceeded") -> Reply:
    """429 ``rate_limited`` with ``Retry-After`` and the ``x-ratelimit-*`` headers."""
    r = str(max(1, math.ceil(reset)))
    h = Headers(
        [
            ("retry-after", r),
            ("x-ratelimit-limit", str(limit)),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", r),
        ]
    )
    return Reply.error(429, "rate_limited", message, h)


def unavailable_reply() -> Reply:
    """503 ``rate_limit_unavailable``: ``failClosed`` while the limiter can't answer."""
    return Reply.error(503, "rate_limit_unavailable", "the rate limit service is unavailable")


class LimiterMetrics:
    def __init__(self, services):
        metrics = getattr(services, "metrics", None)
        if metrics is None:
            from ..telemetry.metrics import Metrics

            m = Metrics()
        else:
            m = metrics.m
        self.checks = m.counter(
            "agentgw_ratelimit_checks_total",
            "Global rate limit decisions by limiter (redis, rls) and result "
            "(allowed, limited, failed_open, failed_closed).",
            ("limiter", "result"),
        )
        self.errors = m.counter(
            "agentgw_ratelimit_errors_total", "Failed calls to the rate limit store or service.", ("limiter", "type")
        )
        self._last_log = 0.0

    def failure(self, limiter: str, kind: str, exc: BaseException, mode: str) -> None:
        self.errors.inc((limiter, kind))
        now = time.monotonic()
        if now - self._last_log >= 10.0:
            self._last_log = now
            log.warning(
                "%s rate limiter unavailable (%s: %s); failure mode %s: %s",
                limiter,
                kind,
                str(exc) or "no answer within the timeout",
                mode,
                "allowing requests" if mode == "failOpen" else "refusing requests with 503",
            )
