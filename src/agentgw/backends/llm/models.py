"""The model table: which providers may serve the model a request names.

The compiler builds it (candidates, model entries, the ``ai`` policy) and the request flow
only looks it up, so it lives apart from both: an ``ai`` backend's priority groups of
providers (weighted random order inside a group), or the ``llm:`` shorthand's table of
model names (exact, ``prefix*``, ``*suffix``, ``*``; optionally only for requests with
matching headers), after the policy's model aliases.
"""

from __future__ import annotations

from ...engine.http import GatewayError
from .health import prefer_healthy
from .ir import TranslationError
from .virtual import VirtualModel, order_groups


class Candidate:
    """One provider a request may go to, with its per-model settings."""

    __slots__ = (
        "provider",
        "model",
        "strip_prefix",
        "defaults",
        "overrides",
        "req_headers",
        "resp_headers",
        "weight",
        "health",
    )

    def __init__(
        self,
        provider,
        model=None,
        strip_prefix="",
        defaults=None,
        overrides=None,
        req_headers=None,
        resp_headers=None,
        weight=1,
        health=None,
    ):
        self.provider = provider
        self.model = model
        self.strip_prefix = strip_prefix
        self.defaults = defaults
        self.overrides = overrides
        self.req_headers = req_headers
        self.resp_headers = resp_headers
        self.weight = weight
        self.health = health  # health.Health: outlier detection, or None

    def model_for(self, requested: str | None) -> str:
        if self.model:
            return self.model
        m = requested or ""
        if self.strip_prefix and m.startswith(self.strip_prefix):
            return m[len(self.strip_prefix) :]
        return m


class ModelEntry:
    __slots__ = ("name", "candidate", "guards_req", "guards_resp", "header_matches", "internal")

    def __init__(
        self, name: str, candidate: Candidate, guards_req=(), guards_resp=(), header_matches=(), internal=False
    ):
        self.name = name
        self.candidate = candidate
        self.guards_req = list(guards_req)
        self.guards_resp = list(guards_resp)
        self.header_matches = header_matches  # list of [(name, exact, regex)] (any of them)
        self.internal = internal  # visibility: internal (only a virtual model's target)

    def matches(self, model: str) -> bool:
        n = self.name
        if n == "*":
            return True
        if n.startswith("*"):
            return model.endswith(n[1:])
        if n.endswith("*"):
            return model.startswith(n[:-1])
        return model == n

    def headers_match(self, headers) -> bool:
        if not self.header_matches:
            return True
        for group in self.header_matches:
            ok = True
            for name, exact, rx in group:
                v = headers.get(name)
                if v is None or (exact is not None and v != exact) or (rx is not None and not rx.fullmatch(v)):
                    ok = False
                    break
            if ok:
                return True
        return False


class AiPolicy:
    """The compiled ``ai`` policy (route or backend level)."""

    def __init__(
        self,
        *,
        request_guards=(),
        response_guards=(),
        defaults=None,
        overrides=None,
        prepend=(),
        append=(),
        aliases=None,
        routes=None,
    ):
        self.request_guards = list(request_guards)
        self.response_guards = list(response_guards)
        self.defaults = defaults or None
        self.overrides = overrides or None
        self.prepend = list(prepend)
        self.append = list(append)
        self.aliases = aliases or {}
        self.routes = routes or None  # [(path suffix or "*", kind)]


EMPTY_POLICY = AiPolicy()


class ModelTable:
    """The candidates of one backend: its priority groups (``ai`` backends) or its model
    table (the ``llm:`` shorthand) with its virtual models (see ``virtual.py``), looked up
    after the ``ai`` policy's aliases. Internal entries are only a virtual model's targets."""

    __slots__ = ("groups", "entries", "aliases", "exact", "virtual", "health")

    def __init__(
        self,
        groups: list[list[Candidate]],
        entries: list[ModelEntry] | None,
        aliases: dict,
        virtual: dict[str, VirtualModel] | None = None,
    ):
        self.groups = groups  # [[Candidate, ...], ...] priority groups (ai backends)
        self.entries = entries  # model table (llm shorthand) or None
        self.aliases = aliases
        self.virtual = virtual or None  # name -> VirtualModel
        # some entry does outlier detection: evicted candidates are left out (see health.py)
        self.health = entries is not None and any(e.candidate.health is not None for e in entries)
        # the model table's plain public names, when no entry matches on headers:
        # name -> (candidates in table order, first entry), as ``candidates`` finds them
        self.exact: dict[str, tuple[list[Candidate], ModelEntry]] | None = None
        if entries is not None and not any(e.header_matches for e in entries):
            self.exact = {}
            public = [e for e in entries if not e.internal]
            for e in public:
                if e.name not in self.exact:
                    same = [x for x in public if x.name == e.name]
                    self.exact[e.name] = ([x.candidate for x in same], same[0])

    def names(self) -> list[tuple[str, str]]:
        """The models to list on ``/v1/models``: (name, owner)."""
        out: list[tuple[str, str]] = []
        seen = set()
        if self.entries is not None:
            for e in self.entries:
                if "*" not in e.name and not e.internal and e.name not in seen:
                    seen.add(e.name)
                    out.append((e.name, e.candidate.provider.system))
            for name in self.virtual or ():
                if name not in seen:
                    seen.add(name)
                    out.append((name, "agentgw"))
        else:
            for g in self.groups:
                for c in g:
                    if c.model and c.model not in seen:
                        seen.add(c.model)
                        out.append((c.model, c.provider.system))
        for alias in self.aliases:
            if alias not in seen and "*" not in alias:
                seen.add(alias)
                out.append((alias, "agentgw"))
        return out

    def candidates(
        self, model: str | None, headers, internal: bool = False
    ) -> tuple[list[Candidate], ModelEntry | None]:
        """The candidates for ``model`` (``internal``: a virtual model's target, which
        internal entries may serve too)."""
        if self.entries is None:
            # weighted random order inside a priority group (weights >0), then the next group
            return order_groups(self.groups), None
        if not model:
            return [], None
        exact = self.exact
        if exact is not None and not internal:  # no entry matches on headers: a named model is one lookup
            hit = exact.get(model)
            if hit is not None:
                return hit
        entries = [e for e in self.entries if (internal or not e.internal) and e.headers_match(headers)]
        named = [e for e in entries if e.name == model]
        if named:
            return [e.candidate for e in named], named[0]
        for e in entries:
            if "*" in e.name and e.matches(model):
                same = [x for x in entries if x.name == e.name]
                return [x.candidate for x in same], e
        return [], None

    def resolve(
        self, body: dict, headers, ctx=None, raw: bytes | None = None
    ) -> tuple[list[Candidate], ModelEntry | None, bool]:
        """The candidate providers for ``body``'s model (aliases applied, in the body too;
        a virtual model's choice too); True as the third item when that changed the body.
        ``ctx`` and ``raw`` (the body as received) are what conditional virtual models
        read; without ``ctx`` none of their conditions holds."""
        aliases = self.aliases
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise TranslationError("model must be a string")
        dirty = False
        alias = aliases.get(model) if model else None
        if alias is None and model and aliases:
            for k, v in aliases.items():
                if "*" in k and (
                    (k.endswith("*") and model.startswith(k[:-1])) or (k.startswith("*") and model.endswith(k[1:]))
                ):
                    alias = v
                    break
        if alias is not None:
            model = alias
            body["model"] = model
            dirty = True
        virtual = self.virtual
        if virtual is not None and model in virtual:
            cands, entry, chose = self._virtual(virtual[model], body, headers, ctx, raw)
            return (prefer_healthy(cands) if self.health else cands), entry, dirty or chose
        cands, entry = self.candidates(model, headers)
        if self.health and len(cands) > 1:
            cands = prefer_healthy(cands)
        if not cands:
            if self.entries is not None and not model:
                raise TranslationError("model: field required")
            raise GatewayError(404, "model_not_found", f"model {model!r} is not served by this gateway")
        return cands, entry, dirty

    def _virtual(
        self, v: VirtualModel, body: dict, headers, ctx, raw
    ) -> tuple[list[Candidate], ModelEntry | None, bool]:
        if v.kind == "failover":
            return order_groups(v.groups), v.entry, False
        target = v.choose(ctx, body, raw)
        if target is None:
            raise GatewayError(
                400, "virtual_model_no_matching_target", f"virtual model {v.name!r}: no conditional target matched"
            )
        body["model"] = target
        cands, entry = self.candidates(target, headers, internal=True)
        if not cands:  # (targets are checked at load: only header matches can leave none)
            raise GatewayError(
                404,
                "virtual_model_target_not_found",
                f"virtual model {v.name!r} chose {target!r}, which no model entry serves for this request",
            )
        return cands, entry, True
