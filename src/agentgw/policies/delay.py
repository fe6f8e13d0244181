"""``delay``: latency injected before a request goes to its backend (fault injection).

The duration is a duration string (``2s``: every request), or a CEL expression evaluated
per request that gives a duration (``duration("500ms")``) or a number of milliseconds
(``random() < 0.1 ? 2000 : 0``); a result that is not positive, or not a duration or a
number, injects nothing.

The wait is a timer and one future (:class:`~agentgw.proxy.policy.Deferred`), so a
delayed request on the task-free path stays task-free. It counts against the route's
``timeout.requestTimeout``, which runs from the start of the request: a delay that
would pass that deadline ends at the deadline with 504 ``request_timeout``.
"""

from __future__ import annotations

import asyncio
import datetime
import time

from ..cel import Expression, _Binder, activation, is_no_value
from ..config.durations import parse_duration
from ..engine.http import Reply
from ..proxy.policy import Deferred, Policy


def _set(fut: asyncio.Future) -> None:
    if not fut.done():  # the request may have been cancelled meanwhile
        fut.set_result(None)


class Delay(Policy):
    order = 65

    __slots__ = ("fixed", "expr", "binder", "memo", "request_timeout")

    def __init__(self, source: str, request_timeout: float | None = None):
        """``source``: the ``duration`` as written. Raises ``CelError`` when it is neither a
        duration nor a valid expression."""
        self.request_timeout = request_timeout
        self.fixed: float | None = None
        self.expr: Expression | None = None
        try:
            self.fixed = parse_duration(source)
        except ValueError:
            self.expr = Expression(source)
            self.binder = _Binder([self.expr])
            self.memo: dict = {}

    def seconds(self, ctx) -> float:
        if self.expr is None:
            return self.fixed or 0.0
        return self.binder.memoized(ctx, self.memo, self._evaluate)

    def _evaluate(self, data: dict) -> float:
        try:
            r = self.expr.program.eval(activation(data))  # type: ignore[union-attr]  # set with binder
            if is_no_value(r):
                return 0.0
            v = r.value()
        except Exception:
            return 0.0
        if isinstance(v, datetime.timedelta):
            return v.total_seconds()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return 0.0
        return v / 1000.0

    def on_request(self, ctx):
        delay = self.seconds(ctx)
        if not delay > 0:  # (also NaN)
            return None
        timed_out = False
        if self.request_timeout is not None:
            left = self.request_timeout - (time.perf_counter() - ctx.start)
            if delay >= left:
                delay, timed_out = max(left, 0.0), True
        loop = ctx.bind.services.loop
        fut = loop.create_future()
        loop.call_later(delay, _set, fut)
        if not timed_out:
            return Deferred(fut, _go_on)
        return Deferred(fut, self._timeout_reply)

    def _timeout_reply(self, _fut) -> Reply:
        return Reply.error(504, "request_timeout", f"request timed out after {self.request_timeout:g}s")


def _go_on(_fut) -> None:
    return None
