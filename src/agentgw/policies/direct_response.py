"""``directResponse``: answer with a fixed status and body, never calling a backend."""

from __future__ import annotations

from ..cel import Expression, _Binder, activation
from ..engine.http import Headers, Reply
from ..proxy.policy import Policy


class DirectResponse(Policy):
    order = 60

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict | None = None):
        self.status = status
        self.body = body
        self.headers = [(k.lower(), str(v)) for k, v in (headers or {}).items()]
        if not any(k == "content-type" for k, _ in self.headers) and body:
            self.headers.append(("content-type", "text/plain"))

    def on_request(self, ctx):
        return Reply(self.status, Headers(self.headers), self.body)


class ConditionalDirectResponse(Policy):
    """``directResponse: {conditional: [...]}``: the first entry whose ``condition`` is true
    (an entry without one always is) answers; when none is, the request goes on to the
    backend. A condition that errors is not true."""

    order = 60

    def __init__(self, entries: list[tuple[Expression | None, DirectResponse]]):
        self.entries = entries
        self.binder = _Binder([e for e, _ in self.entries if e is not None])
        self.memo: dict = {}

    def on_request(self, ctx):
        i = self.binder.memoized(ctx, self.memo, self._pick)
        if i is None:
            return None
        return self.entries[i][1].on_request(ctx)

    def _pick(self, data: dict) -> int | None:
        act = activation(data)
        for i, (expr, _) in enumerate(self.entries):
            if expr is None or expr.evaluate(act) is True:
                return i
        return None
