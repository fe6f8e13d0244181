"""CEL expressions for policies: compiled once per config load, evaluated per request.

The engine is ``cel-expr-python`` (Google's C++ cel-cpp): expressions are parsed and
type-checked when the config loads, so an undeclared variable or a syntax error is a
config error with the path of the field, never a surprise at request time. The choice
and its measurements are in ``bench/RESULTS.md`` (``bench/cel_engines.py``).

Variables a rule can use (each a map; a variable with nothing behind it is an empty
map, so ``has(jwt.sub)`` is the way to test for an optional identity):

* ``request``   -- ``method``, ``path`` (normalised), ``host``, ``scheme``, ``query``
  (raw), ``headers`` (lowercase names; repeated headers joined with ``", "``)
* ``jwt``       -- the verified token's claims (``jwtAuth``, ``serviceAccountAuth`` via JWKS)
* ``apiKey``    -- the matched key's ``metadata`` plus ``key`` (its id, never the secret)
* ``basicAuth`` -- ``username``
* ``serviceAccount`` -- ``username``, ``namespace``, ``name``, ``uid`` (``serviceAccountAuth``)
* ``source``    -- ``address``, ``port``, ``identity`` (client certificate subject / SAN)
* ``mcp``, ``a2a``, ``llm`` -- filled by those backends (see :func:`register_variable`)

Binding is lazy: a rule set only builds the variables, and for ``request.headers`` /
``jwt`` / ... only the members, its expressions name (found by scanning the source; a
use that isn't a constant member access binds the whole map). Because CEL is
side-effect free and deterministic, a rule set whose inputs are all such members
memoises its decision on the tuple of those values (a bounded dict), so a repeated
request shape costs one tuple build and one dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["VARIABLES", "CelError", "Expression", "RuleSet", "register_variable"]


class CelError(ValueError):
    """An expression that does not parse or type-check."""


_cel: Any = None  # the cel_expr_python module, once loaded
_env: Any = None

#: name -> builder(ctx) -> dict. Backends add theirs with :func:`register_variable`.
VARIABLES: dict[str, Callable[[Any], dict]] = {}


def register_variable(name: str, builder: Callable[[Any], dict]) -> None:
    """Declare a top-level map variable (e.g. ``mcp``) and how to build it from a ``Ctx``.

    Call at import time, before configs are compiled: the CEL environment is built once.
    """
    global _env
    VARIABLES[name] = builder
    _env = None


def _environment():
    global _cel, _env
    if _env is None:
        from cel_expr_python import cel

        _cel = cel
        dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
        from .functions import declarations

        _env = cel.NewEnv(variables={name: dyn_map for name in VARIABLES}, functions=declarations(cel))
    return _env


# -- per-request variable builders --------------------------------------------------------
def _headers_map(req) -> dict:
    out: dict[str, str] = {}
    for k, v in req.headers:
        prev = out.get(k)
        out[k] = v if prev is None else f"{prev}, {v}"
    return out


def _request(ctx) -> dict:
    req = ctx.req
    return {
        "method": req.method,
        "path": ctx.path,
        "host": req.host,
        "scheme": req.scheme,
        "query": req.query,
        "headers": _headers_map(req),
    }


def _request_member(ctx, name: str):
    """One member of ``request`` without building the others."""
    req = ctx.req
    if name == "method":
        return req.method
    if name == "path":
        return ctx.path
    if name == "host":
        return req.host
    if name == "scheme":
        return req.scheme
    if name == "query":
        return req.query
    if name == "headers":
        return _headers_map(req)
    return _MISSING


def _attr(name: str) -> Callable[[Any], dict]:
    def build(ctx) -> dict:
        v = ctx.attrs.get(name)
        return v if isinstance(v, dict) else {}

    return build


def client_identity(tls: dict | None) -> str:
    """The client certificate's identity: a URI SAN (SPIFFE ID) if any, else its subject CN."""
    if not tls:
        return ""
    cert = tls.get("peercert") or {}
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "URI":
            return value
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return ""


def _source(ctx) -> dict:
    req = ctx.req
    return {"address": req.client_addr, "identity": client_identity(req.tls)}


VARIABLES.update(
    {
        "request": _request,
        "jwt": _attr("jwt"),
        "apiKey": _attr("apiKey"),
        "basicAuth": _attr("basicAuth"),
        "serviceAccount": _attr("serviceAccount"),
        "source": _source,
        "mcp": _attr("mcp"),
        "a2a": _attr("a2a"),
        "llm": _attr("llm"),
    }
)

_MISSING = object()


# -- reference scanning -------------------------------------------------------------------
_STRING_LIT = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def _references(src: str) -> dict[str, set | None]:
    """Variables the expression names -> members used (None: the whole map).

    ``jwt.sub`` and ``jwt["sub"]`` are member uses; ``request.headers["x"]`` /
    ``request.headers.x`` a header use (kept as ``headers/x``); anything else that names
    a variable (``"a" in jwt``, ``request.headers.exists(...)``) binds all of it.
    """
    # Hide string literal contents so text inside them can't look like a reference, but
    # keep them for constant index access (``m["k"]``).
    lits: list[str] = []

    def keep(m):
        lits.append(m.group(0))
        return f"\x00{len(lits) - 1}\x00"

    s = _STRING_LIT.sub(keep, src)
    out: dict[str, set | None] = {}
    member = rf"(?:\s*\.\s*({_IDENT})\b(?!\s*\()|\s*\[\s*\x00(\d+)\x00\s*\])"
    for name in VARIABLES:
        for m in re.finditer(rf"(?<![\w.]){re.escape(name)}(?!\w)", s):
            rest = s[m.end() :]
            mm = re.match(member, rest)
            if mm is None:
                out[name] = None
                break
            key = mm.group(1) if mm.group(1) is not None else _unquote(lits[int(mm.group(2))])
            if key is None:
                out[name] = None
                break
            if name == "request" and key == "headers":
                rest2 = rest[mm.end() :]
                hm = re.match(member, rest2)
                if hm is None:
                    key = "headers"
                else:
                    h = hm.group(1) if hm.group(1) is not None else _unquote(lits[int(hm.group(2))])
                    if h is None:
                        key = "headers"
                    else:
                        key = "headers/" + h
            cur = out.get(name, set())
            if cur is None:
                break
            cur.add(key)
            out[name] = cur
    return out


def _unquote(lit: str) -> str | None:
    if lit.startswith(("'''", '"""')):
        body = lit[3:-3]
    else:
        body = lit[1:-1]
    if "\\" in body:
        return None  # escapes: don't guess, bind the whole map
    return body


def activation(data: dict):
    """An engine activation over ``data`` (variable name → value)."""
    return _environment().Activation(data, arena=_cel.Arena())


def is_no_value(result) -> bool:
    """An evaluation result that carries no usable value (error, unknown, null)."""
    return result.type() in (_cel.Type.ERROR, _cel.Type.UNKNOWN, _cel.Type.NULL)


_VOLATILE = re.compile(r"(?<![\w.])(?:random|uuid)\s*\(")


class Expression:
    """One compiled expression."""

    __slots__ = ("source", "program", "refs", "volatile")

    def __init__(self, source: str):
        env = _environment()
        try:
            self.program = env.compile(source)
        except Exception as exc:  # the engine raises RuntimeError with the checker's message
            msg = str(exc).replace("INVALID_ARGUMENT: ", "").replace(" [INVALID_ARGUMENT]", "").strip()
            raise CelError(msg) from None
        self.source = source
        self.refs = _references(source)
        # calls a function whose value changes between calls (random()): never memoised
        self.volatile = _VOLATILE.search(_STRING_LIT.sub("", source)) is not None

    def evaluate(self, activation) -> Any:
        """The value; an evaluation error (no such key, bad type...) comes back as a
        non-bool object, which every rule kind treats as "not true"."""
        return self.program.eval(activation).value()


_REQUEST_GETTERS: dict[str, Callable[[Any], Any]] = {
    "method": lambda ctx: ctx.req.method,
    "path": lambda ctx: ctx.path,
    "host": lambda ctx: ctx.req.host,
    "scheme": lambda ctx: ctx.req.scheme,
    "query": lambda ctx: ctx.req.query,
}


def _request_key(plain: tuple, hdrs) -> Callable[[Any], tuple] | None:
    """A memo key read straight off the request, for expressions that use only request
    members and named headers (the usual ``authorization`` rules): no intermediate maps
    and no sorting on the per-request path. Two requests with equal keys bind equal
    data: the members, and each named header's joined value or None when absent."""
    if any(p not in _REQUEST_GETTERS for p in plain):
        return None
    getters = tuple(_REQUEST_GETTERS[p] for p in plain)
    names = sorted(hdrs)
    if not names:
        return lambda ctx: tuple([g(ctx) for g in getters])
    index = {n: i for i, n in enumerate(names)}
    count = len(names)

    def key(ctx) -> tuple:
        hv: list = [None] * count
        for k, v in ctx.req.headers:
            i = index.get(k)
            if i is not None:
                prev = hv[i]
                hv[i] = v if prev is None else f"{prev}, {v}"
        return (*[g(ctx) for g in getters], *hv)

    return key


class _Binder:
    """Builds the activation data for a set of expressions, and its memo key."""

    __slots__ = ("plan", "memoizable", "fast_key")

    def __init__(self, exprs: list[Expression]):
        refs: dict[str, set | None] = {}
        for e in exprs:
            for name, members in e.refs.items():
                if name in refs and refs[name] is None:
                    continue
                if members is None:
                    refs[name] = None
                    continue
                have = refs.get(name)
                if have is None:  # (absent: a None entry was skipped above)
                    have = refs[name] = set()
                have.update(members)
        plan: list[tuple[str, tuple[str, ...] | None, frozenset[str] | tuple[()] | None]] = []
        memo = not any(e.volatile for e in exprs)
        for name in sorted(refs):
            members = refs[name]
            if members is None:
                memo = False
                plan.append((name, None, None))
                continue
            whole_headers = "headers" in members
            hdrs = sorted(m[8:] for m in members if m.startswith("headers/"))
            plain = sorted(m for m in members if not m.startswith("headers/") and m != "headers")
            if whole_headers:
                memo = False
            plan.append((name, tuple(plain), None if whole_headers else frozenset(hdrs) if hdrs else ()))
        self.plan = tuple(plan)
        self.memoizable = memo
        self.fast_key = None
        if memo and len(plan) == 1:
            only, only_plain, only_hdrs = plan[0]
            if only == "request" and only_plain is not None:  # (memoizable: it is)
                self.fast_key = _request_key(only_plain, only_hdrs)

    def values(self, ctx) -> list:
        """The inputs the rules read, in plan order (cheap: no maps are built)."""
        vals: list = []
        append = vals.append
        for name, plain, hdrs in self.plan:
            if plain is None:
                append(VARIABLES[name](ctx))
                continue
            if name == "request":
                for p in plain:
                    append(_request_member(ctx, p) if p != "headers" else _MISSING)
                if hdrs is None:
                    append(_headers_map(ctx.req))
                elif hdrs:
                    h: dict[str, str] = {}
                    for k, v in ctx.req.headers:
                        if k in hdrs:
                            prev = h.get(k)
                            h[k] = v if prev is None else f"{prev}, {v}"
                    append(h)
                continue
            full = VARIABLES[name](ctx)
            get = full.get
            for p in plain:
                append(get(p, _MISSING))
        return vals

    def key(self, vals: list):
        """A hashable memo key for ``vals``, or None."""
        out = []
        for v in vals:
            t = type(v)
            if t is dict:
                out.append(tuple(sorted(v.items())))
            elif t is list:
                out.append(("\x00list",) + tuple(v))
            else:
                out.append(v)
        key = tuple(out)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def data(self, vals: list) -> dict:
        data: dict[str, Any] = {}
        i = 0
        for name, plain, hdrs in self.plan:
            if plain is None:
                data[name] = vals[i]
                i += 1
                continue
            m: dict[str, Any] = {}
            for p in plain:
                v = vals[i]
                i += 1
                if v is not _MISSING:
                    m[p] = v
            if name == "request":
                if hdrs is None or hdrs:
                    m["headers"] = vals[i]
                    i += 1
                elif "headers" in plain:
                    m["headers"] = {}
            data[name] = m
        return data

    def memoized(self, ctx, memo: dict, compute):
        """``compute(data)`` for the values ``ctx`` gives the expressions, remembered in
        ``memo`` (bounded) by those values when they are hashable."""
        fast_key = self.fast_key
        vals = None
        key: tuple | None
        if fast_key is not None:  # key straight off the request; values only on a miss
            key = fast_key(ctx)
        else:
            vals = self.values(ctx)
            key = self.key(vals) if self.memoizable else None
        if key is not None:
            hit = memo.get(key, _MISSING)
            if hit is not _MISSING:
                return hit
        if vals is None:
            vals = self.values(ctx)
        result = compute(self.data(vals))
        if key is not None:
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            memo[key] = result
        return result


_MEMO_MAX = 4096


class RuleSet:
    """``allow`` / ``deny`` / ``require`` rules, decided together.

    Decision: a matching ``deny`` rule denies (an erroring one too: deny rules fail
    closed); every ``require`` rule must be true (error = false); if there are ``allow``
    rules, at least one must be true (error = false). Returns ``None`` when allowed,
    else a short description of the check that failed.
    """

    __slots__ = ("allow", "deny", "require", "binder", "memo")

    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = (), require: Sequence[str] = ()):
        self.allow = [Expression(s) for s in allow]
        self.deny = [Expression(s) for s in deny]
        self.require = [Expression(s) for s in require]
        self.binder = _Binder(self.allow + self.deny + self.require)
        self.memo: dict = {}

    def decide(self, ctx) -> str | None:
        return self.binder.memoized(ctx, self.memo, self._decide)

    def _decide(self, data: dict) -> str | None:
        act = activation(data)
        for i, e in enumerate(self.deny):
            if e.evaluate(act) is not False:  # true, an error, or not a bool: fail closed
                return f"deny rule {i} matched"
        for i, e in enumerate(self.require):
            if e.evaluate(act) is not True:
                return f"require rule {i} not satisfied"
        if self.allow:
            for e in self.allow:
                if e.evaluate(act) is True:
                    return None
            return "no allow rule matched"
        return None
