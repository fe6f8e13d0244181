"""``transformations``: request and response headers computed by CEL expressions.

``request`` / ``response``: ``add`` (appended), ``set`` (replacing), ``remove``, in that
order, as agentgateway applies them. Each value is a CEL expression over the request
(``request``, ``jwt``, ``extauthz``, ``source``...); a string result is used as it is,
any other value as JSON. A ``set`` whose expression has no value removes the header, so
a client's own value never stands in for one the gateway failed to compute (an ``add``
without a value adds nothing). Runs after the request header modifier, so it sees what
authentication and ``extAuthz`` left (``extauthz.token``).

``body`` and ``metadata`` are refused at load (not supported yet), as is the
``{conditional: [...]}`` form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..cel import VARIABLES, CelError, Expression, activation, is_no_value
from ..proxy.policy import Policy

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope


class _Edits:
    __slots__ = ("add", "set", "remove")

    def __init__(self, add: list, set_: list, remove: frozenset):
        self.add = add
        self.set = set_
        self.remove = remove

    def apply(self, ctx, headers) -> None:
        for name, expr in self.add:
            v = _value(expr, ctx)
            if v is not None:
                headers.append((name, v))
        for name, expr in self.set:
            v = _value(expr, ctx)
            if v is None:
                headers.remove(name)
            else:
                headers.set(name, v)
        if self.remove:
            headers[:] = [kv for kv in headers if kv[0] not in self.remove]


def _value(expr: Expression, ctx) -> str | None:
    data = {name: VARIABLES[name](ctx) for name in expr.refs}
    res = expr.program.eval(activation(data))
    if is_no_value(res):
        return None
    v: Any = res.value()
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    elif not isinstance(v, str):
        try:
            v = orjson.dumps(v).decode()
        except TypeError:
            v = str(v)
    if any(c in v for c in "\r\n\x00"):
        return None
    return v


class Transformation(Policy):
    order = 72
    NAME = "transformations"

    def __init__(self, request: _Edits | None, response: _Edits | None):
        self.request = request
        self.response = response

    def on_request(self, ctx):
        if self.request is not None:
            self.request.apply(ctx, ctx.req.headers)
        if self.response is not None:
            ctx.add_response_hook(self._on_response)
        return None

    def _on_response(self, ctx, status, headers) -> None:
        assert self.response is not None
        self.response.apply(ctx, headers)


def compile_transformations(scope: CompileScope, t, path: str) -> Transformation | None:
    from ..config import models as m

    err = scope.errors.add
    if not isinstance(t, m.Transformations):
        err(f"{path}.conditional", "conditional transformations are not supported yet")
        return None
    ok = True

    def edits(tr, tpath: str) -> _Edits | None:
        nonlocal ok
        if tr is None:
            return None
        for attr in ("body", "metadata"):
            if getattr(tr, attr):
                err(f"{tpath}.{attr}", "not supported by this agentgw build yet")
                ok = False

        def exprs(items: dict, key: str) -> list:
            nonlocal ok
            out = []
            for name, src in items.items():
                if name.startswith(":"):
                    err(f"{tpath}.{key}.{name}", "pseudo-headers are not supported yet")
                    ok = False
                    continue
                try:
                    out.append((name.lower(), Expression(src)))
                except CelError as exc:
                    err(f"{tpath}.{key}.{name}", f"invalid CEL expression: {exc}")
                    ok = False
            return out

        return _Edits(exprs(tr.add, "add"), exprs(tr.set, "set"), frozenset(h.lower() for h in tr.remove))

    req = edits(t.request, f"{path}.request")
    resp = edits(t.response, f"{path}.response")
    return Transformation(req, resp) if ok else None
