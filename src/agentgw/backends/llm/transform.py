"""``transformation`` on an LLM model: request-body fields computed from CEL.

Each entry is ``field: expression``. The expressions are compiled when the config loads
and evaluated per request against the request body as the client sent it (the CEL
variable ``llmRequest``; the other request variables — ``request``, ``jwt``, ``apiKey``,
... — are there too). Each top-level field is then set to its expression's value, or
removed when the expression has no value (a missing key, an error), as agentgateway does.
A transformation wins over the model's ``overrides`` for the fields it sets; ``defaults``
fill what is still unset afterwards. It runs before the request is translated for the
provider, so it sees and writes the client's API shape::

    transformation:
      model: llmRequest.model.stripPrefix("anthropic/")
      max_tokens: 'has(llmRequest.max_tokens) ? llmRequest.max_tokens : 1024'
"""

from __future__ import annotations

from typing import Any

from ...cel import CelError, Expression, _Binder, activation, is_no_value, register_variable

ATTR = "llm_request"


def _llm_request(ctx) -> dict:
    v = ctx.attrs.get(ATTR)
    return v if isinstance(v, dict) else {}


register_variable("llmRequest", _llm_request)


class Transformation:
    __slots__ = ("fields", "binder", "keys")

    def __init__(self, fields: list[tuple[str, Expression]]):
        self.fields = fields
        self.keys = frozenset(k for k, _ in fields)
        self.binder = _Binder([e for _, e in fields])

    def apply(self, ctx, body: dict) -> dict:
        """A copy of ``body`` with the fields set (or removed)."""
        if ctx is not None:
            ctx.attrs[ATTR] = body
            b = self.binder
            data = b.data(b.values(ctx))
        else:
            data = {"llmRequest": body}
        act = activation(data)
        out = dict(body)
        for key, e in self.fields:
            v: Any = None
            try:
                r = e.program.eval(act)
                if not is_no_value(r):
                    v = r.plain_value()
            except Exception:
                v = None
            if v is None:
                out.pop(key, None)
            else:
                out[key] = v
        return out

    def without(self, overrides: dict | None) -> dict | None:
        """``overrides`` less the fields this transformation sets (it wins over them)."""
        if not overrides:
            return overrides
        return {k: v for k, v in overrides.items() if k not in self.keys} or None


def compile_transformation(c, spec: dict | None, path: str) -> Transformation | None:
    if not spec:
        return None
    fields = []
    for key, src in spec.items():
        try:
            fields.append((str(key), Expression(str(src))))
        except CelError as exc:
            c.errors.add(f"{path}.{key}", str(exc))
    return Transformation(fields) if fields else None
