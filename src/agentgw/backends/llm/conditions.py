"""The ``when`` conditions of conditional virtual models: CEL over the LLM request.

Compiled once per config load, in an environment of their own: the gateway's request
variables (``request``, ``jwt``, ``apiKey``, ``source``...; see ``agentgw.cel``) plus

* ``llmRequest`` -- the client's request body as parsed JSON (``llmRequest.max_tokens``,
  ``llmRequest.metadata.cost_tier``);
* ``response`` -- ``code`` and ``headers`` of a provider's answer, for
  ``health.unhealthyExpression`` only (``health.py``);
* ``request.body`` -- that body's bytes, and ``json(bytes or string)`` to parse it
  (``json(request.body).route == "code"``);
* ``default(expr, fallback)`` -- ``expr``, or ``fallback`` when a key on its path is
  missing or its value is null. ``expr`` must end in field or constant-key selections
  (``default(llmRequest.metadata.cost_tier, "")``); it is rewritten at load into CEL's
  optional selections, so a missing key never reaches evaluation as an error.

A condition that fails to evaluate (a missing key outside ``default``, a type mismatch)
is not true: the next target is tried, as agentgateway does.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ... import cel as gw_cel
from ...cel import CelError

_env: Any = None
_cel: Any = None
#: variables of these conditions beyond the gateway's: the LLM request, and the provider's
#: answer (``response.code``, ``response.headers``) for ``health.unhealthyExpression``
_OWN = ("llmRequest", "response")

_STRING = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT = re.compile(r"(?<![\w.])default\s*\(")
_SELECT_TAIL = re.compile(r"(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(\x00\d+\x00)\s*\])\s*$")


def _json(v):
    if isinstance(v, bytes | bytearray | str):
        return orjson.loads(v)
    raise ValueError("json() takes bytes or a string")


def _environment():
    global _env, _cel
    if _env is None:
        from cel_expr_python import cel

        _cel = cel
        dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
        names = {*gw_cel.VARIABLES, *_OWN}
        json_fn = cel.FunctionDecl(
            "json",
            [
                cel.Overload("llm_json_bytes", cel.Type.DYN, [cel.Type.BYTES], impl=_json),
                cel.Overload("llm_json_string", cel.Type.DYN, [cel.Type.STRING], impl=_json),
            ],
        )
        _env = cel.NewEnv(
            config=cel.NewEnvConfigFromYaml("extensions:\n- name: optional\n"),
            variables={n: dyn_map for n in names},
            functions=[json_fn],
        )
    return _env


def _split_args(s: str, start: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose ``(`` is at ``start - 1``, and the index
    just past its ``)`` (string literals are already masked)."""
    depth, args, cur = 0, [], start
    for i in range(start, len(s)):
        ch = s[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                args.append(s[cur:i])
                return args, i + 1
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(s[cur:i])
            cur = i + 1
    raise CelError("default(...): unbalanced parentheses")


def _optional(expr: str) -> str:
    """``a.b["c"]`` → ``a.?b[?"c"]`` (the selections of its tail made optional)."""
    e = expr.strip()
    tail: list[str] = []
    while True:
        m = _SELECT_TAIL.search(e)
        if m is None or m.start() == 0:
            break
        tail.append(f".?{m.group(1)}" if m.group(1) else f"[?{m.group(2)}]")
        e = e[: m.start()].rstrip()
    if not tail:
        raise CelError(
            f"default({expr.strip()}, ...): the first argument must select a field or key (like llmRequest.a.b)"
        )
    return e + "".join(reversed(tail))


def _rewrite_defaults(s: str) -> str:
    """Every ``default(E, D)`` (innermost first) as optional selections (masked source)."""
    while True:
        found = None
        for m in _DEFAULT.finditer(s):
            found = m  # the last one: it has no default(...) after its start
        if found is None:
            return s
        args, end = _split_args(s, found.end())
        if len(args) != 2:
            raise CelError("default() takes two arguments: default(expression, fallback)")
        opt, fallback = _optional(args[0]), args[1].strip()
        s = s[: found.start()] + f"({opt}.hasValue() && {opt}.value() != null ? {opt}.value() : ({fallback}))" + s[end:]


def translate(source: str) -> str:
    """agentgateway's ``default()`` in terms this CEL engine has."""
    lits: list[str] = []

    def keep(m):
        lits.append(m.group(0))
        return f"\x00{len(lits) - 1}\x00"

    masked = _rewrite_defaults(_STRING.sub(keep, source))
    return re.sub(r"\x00(\d+)\x00", lambda m: lits[int(m.group(1))], masked)


class Condition:
    """One compiled ``when``."""

    __slots__ = ("source", "program", "names")

    def __init__(self, source: str):
        env = _environment()
        try:
            self.program = env.compile(translate(source))
        except CelError:
            raise
        except Exception as exc:  # the engine raises RuntimeError with the checker's message
            msg = str(exc).replace("INVALID_ARGUMENT: ", "").replace(" [INVALID_ARGUMENT]", "").strip()
            raise CelError(msg) from None
        self.source = source
        bare = _STRING.sub('""', source)
        used = set(_IDENT.findall(bare))
        self.names = tuple(n for n in (*gw_cel.VARIABLES, *_OWN) if n in used)

    def holds(self, data: dict) -> bool:
        act = _env.Activation(data, arena=_cel.Arena())
        try:
            return self.program.eval(act).value() is True
        except Exception:  # an evaluation the engine could not finish: not true
            return False


def condition_data(conds: list[Condition], ctx, body: dict, raw: bytes | None) -> dict:
    """The variables ``conds`` read, for this request."""
    data: dict[str, Any] = {}
    for c in conds:
        for n in c.names:
            if n in data:
                continue
            if n == "llmRequest":
                data[n] = body
            elif n == "request":
                r = dict(gw_cel.VARIABLES["request"](ctx))
                r["body"] = raw if raw is not None else orjson.dumps(body)
                data[n] = r
            elif n in gw_cel.VARIABLES:
                data[n] = gw_cel.VARIABLES[n](ctx)
    return data
