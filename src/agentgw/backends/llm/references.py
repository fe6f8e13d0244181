"""The ``llm:`` section's model table beyond one entry at a time: named providers that
models reference (``llm.providers``), and virtual models (``llm.virtualModels``).

``each_model`` gives the compiler each ``llm.models`` entry as it is to be compiled: a
model with ``provider: {reference: <name>}`` takes that provider's ``provider`` and
``params`` (its own ``params.model`` wins), and the provider's ``defaults`` for what it
does not set itself (``defaults``, ``overrides`` and ``transformation`` maps merged key
by key, the model's keys winning). A problem found in a value the model took from a
provider is reported at the provider's path, where the value is written.

``compile_virtual`` builds the virtual models over the compiled entries.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from ...config import models as m
from .conditions import Condition
from .models import Candidate, ModelEntry
from .virtual import VirtualModel

if TYPE_CHECKING:
    from ...proxy.scope import CompileScope

_MAPS = ("defaults", "overrides", "transformation")
_KEYS = {
    "defaults": "defaults",
    "overrides": "overrides",
    "transformation": "transformation",
    "request_headers": "requestHeaders",
    "response_headers": "responseHeaders",
    "tls": "tls",
    "auth": "auth",
    "health": "health",
    "backend_tunnel": "backendTunnel",
    "prompt_caching": "promptCaching",
}


class _Relocated:
    """An error sink that reports problems under ``llm.models[i].<key>`` at the path of
    the provider the value came from."""

    def __init__(self, sink, moves: list[tuple[str, str]]):
        self.sink = sink
        self.moves = moves  # (model path prefix, provider path prefix), longest first

    def add(self, path: str, msg: str) -> None:
        for old, new in self.moves:
            if path == old or path.startswith((old + ".", old + "[")):
                path = new + path[len(old) :]
                break
        self.sink.add(path, msg)


def _resolve(c: CompileScope, llm: m.LlmConfig, i: int, mdl: m.LlmModel):
    """``mdl`` with its provider reference applied, and the path moves for its errors."""
    ref = mdl.provider
    if not isinstance(ref, m.ProviderReference):
        return mdl, []
    path = f"llm.models[{i}]"
    j, prov = next(((j, p) for j, p in enumerate(llm.providers) if p.name == ref.reference), (None, None))
    if prov is None:
        known = ", ".join(repr(p.name) for p in llm.providers) or "none"
        c.errors.add(
            f"{path}.provider.reference", f"no provider named {ref.reference!r} in llm.providers (defined: {known})"
        )
        return None, []
    ppath = f"llm.providers[{j}]"
    params = prov.params
    if mdl.params.model is not None:
        params = params.model_copy(update={"model": mdl.params.model})
    update: dict = {"provider": prov.provider, "params": params}
    moves = [(f"{path}.provider", f"{ppath}.provider")]
    moves += [(f"{path}.params.{k}", f"{ppath}.params.{k}") for k in _param_keys(prov.params) if k != "model"]
    if mdl.params.model is None:
        moves.append((f"{path}.params.model", f"{ppath}.params.model"))
    moves.append((f"{path}.params", f"{ppath}.params"))  # (provider-level params problems)
    d = prov.defaults
    if d is not None:
        for attr in d.model_fields_set:
            val = getattr(d, attr)
            if val is None:
                continue
            key = _KEYS[attr]
            if attr not in m.LlmModel.model_fields:
                c.errors.add(f"{ppath}.defaults.{key}", "not supported by this agentgw build yet")
                continue
            val = _as_model_field(c, attr, val, f"{ppath}.defaults.{key}")
            if val is None:
                continue
            own = getattr(mdl, attr)
            if attr in _MAPS:
                if own:
                    update[attr] = {**val, **own}  # the model's keys win
                    moves += [(f"{path}.{key}.{k}", f"{ppath}.defaults.{key}.{k}") for k in val if k not in own]
                else:
                    update[attr] = val
                    moves.append((f"{path}.{key}", f"{ppath}.defaults.{key}"))
            elif own is None:
                update[attr] = val
                moves.append((f"{path}.{key}", f"{ppath}.defaults.{key}"))
    moves.sort(key=lambda mv: -len(mv[0]))
    return mdl.model_copy(update=update), moves


def _as_model_field(c: CompileScope, attr: str, val, path: str):
    """A provider default as the model's field of that name holds it (a field the
    provider's schema keeps loose and the model's types), or None if it is not valid."""
    want = m.LlmModel.model_fields[attr].annotation
    if want == m.LlmProviderDefaults.model_fields[attr].annotation:
        return val
    try:
        return TypeAdapter(want).validate_python(val)
    except ValidationError as exc:
        for e in exc.errors():
            where = ".".join(str(x) for x in e["loc"])
            c.errors.add(f"{path}.{where}" if where else path, e["msg"])
        return None


def _param_keys(params: m.LlmParams) -> list[str]:
    fields = m.LlmParams.model_fields
    return [fields[a].alias or a for a in params.model_fields_set]


def each_model(c: CompileScope, llm: m.LlmConfig) -> Iterator[tuple[int, m.LlmModel]]:
    """``(index, model)`` for each ``llm.models`` entry to compile, references applied.
    While the caller compiles one, problems in what it took from a provider are reported
    at that provider's path."""
    sink = c.errors
    try:
        for i, mdl in enumerate(llm.models):
            eff, moves = _resolve(c, llm, i, mdl)
            if eff is None:
                continue
            if moves:
                c.errors = _Relocated(sink, moves)
            yield i, eff
            c.errors = sink
    finally:
        c.errors = sink


def compile_virtual(c: CompileScope, llm: m.LlmConfig, entries: list[ModelEntry]) -> dict[str, VirtualModel] | None:
    """``llm.virtualModels`` over the compiled ``entries`` (in ``llm.models`` order)."""
    if not llm.virtual_models:
        return None
    out: dict[str, VirtualModel] = {}
    for i, vm in enumerate(llm.virtual_models):
        path = f"llm.virtualModels[{i}]"
        r = vm.routing
        kind = "weighted" if r.weighted is not None else "conditional" if r.conditional is not None else "failover"
        tpath = f"{path}.routing.{kind}.targets"
        names: list[str] = [
            t.model
            for t in (
                r.weighted.targets
                if r.weighted is not None
                else r.conditional.targets
                if r.conditional is not None
                else r.failover.targets
                if r.failover is not None
                else []
            )
        ]
        found: list[ModelEntry] = []
        for j, name in enumerate(names):
            entry = _target_entry(entries, name)
            if entry is None:
                c.errors.add(f"{tpath}[{j}].model", f"{name!r} matches no llm.models entry")
            else:
                found.append(entry)
        if len(found) < len(names):
            continue
        if r.weighted is not None:
            wts = r.weighted.targets
            out[vm.name] = VirtualModel(vm.name, kind, targets=[t.model for t in wts], weights=[t.weight for t in wts])
        elif r.conditional is not None:
            conds: list[Condition | None] = []
            for j, ct in enumerate(r.conditional.targets):
                if ct.when is None:
                    conds.append(None)
                    continue
                try:
                    conds.append(Condition(ct.when))
                except ValueError as exc:
                    c.errors.add(f"{tpath}[{j}].when", f"invalid CEL expression: {exc}")
                    conds.append(None)
            out[vm.name] = VirtualModel(
                vm.name, kind, targets=[t.model for t in r.conditional.targets], conditions=conds
            )
        elif r.failover is not None:
            out[vm.name] = _failover(c, vm.name, r.failover.targets, found, entries, tpath)
    return out


def _target_entry(entries: list[ModelEntry], target: str) -> ModelEntry | None:
    """The entry a target resolves to, as a client's model name would (exact name first,
    then the first matching wildcard), internal entries included."""
    for e in entries:
        if e.name == target:
            return e
    for e in entries:
        if "*" in e.name and e.matches(target):
            return e
    return None


def _failover(c: CompileScope, name: str, targets, found: list[ModelEntry], entries, tpath: str) -> VirtualModel:
    by_priority: dict[int, list[Candidate]] = {}
    guarded = None
    for j, (t, e) in enumerate(zip(targets, found, strict=True)):
        if (e.guards_req or e.guards_resp) and guarded is None:
            guarded = j
        if e.header_matches:
            c.errors.add(
                f"{tpath}[{j}].model",
                f"{t.model!r} resolves to an entry with `matches`: a failover target must not depend on headers",
            )
        # every entry of that name, as for a client asking for it (a failover chain of its own)
        same = [x for x in entries if x.name == e.name]
        for x in same:
            cand = copy.copy(x.candidate)  # the entry's settings, with the target's model
            cand.model = x.candidate.model_for(t.model)
            cand.weight = 1
            by_priority.setdefault(t.priority, []).append(cand)
    if guarded is not None:
        c.errors.add(
            f"{tpath}[{guarded}].model",
            "a failover target whose model has guardrails is not supported yet (the guardrails of the "
            "target that answers would have to be chosen per attempt)",
        )
    groups = [by_priority[p] for p in sorted(by_priority)]
    return VirtualModel(name, "failover", groups=groups)
