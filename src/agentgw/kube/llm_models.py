"""AgentgatewayModel objects → the ``llm`` section of each Gateway's config.

agentgateway serves a concrete model (``provider``) or a virtual model (``virtualModel``
over other AgentgatewayModels) on the listeners its ``parentRefs`` name — listeners that
list ``agentgateway.dev/AgentgatewayModel`` in ``allowedRoutes.kinds`` — or on an
HTTPRoute rule whose backend is the AgentgatewayModel ``*``.

agentgw serves them with its own model routing, the config's ``llm`` section: each
Gateway's config gets ``llm.models`` (the concrete models, oldest first) and
``llm.virtualModels``, attached with ``llm.gateways`` to the Gateway's listeners by name
(a classic ``binds`` listener reference, `agentgw.gateways`). A concrete model becomes one
``llm.models`` entry: ``match.model`` (else ``metadata.name``) is its name, wildcards
included; ``provider`` the provider (`PROVIDERS`); ``azure``, ``vertexai``, ``bedrock``
and ``baseURL`` its ``params``; ``visibility: Internal`` ``visibility: internal``;
``policies.transformations`` ``transformation``, ``auth`` ``auth``, ``tls`` ``tls``,
``headers`` ``requestHeaders``/``responseHeaders``. A virtual model becomes an
``llm.virtualModels`` entry whose targets are the names its ``modelRef`` models are served
under (``target.model`` when set).

What the config cannot express refuses the model (``Accepted=False``, reason
``Unsupported`` with the field path; ``Invalid`` for the schema), never leaves it out
silently: ``policies.authorization`` and ``finalTransformations``, Bedrock guardrails and
a Bedrock model without a region, ``azure.projectName``, a
``prefix/*`` match (agentgw's table would remove the prefix before the request goes out),
an HTTPRoute or ListenerSet parent. One Gateway's config has one model table, served on
every listener it attaches to: a model attached to other listeners of that Gateway than
the oldest model there, or whose name is already served there, is refused on that
Gateway; a virtual model whose targets are not served beside it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import policies as P
from .listeners import MODEL_KIND, Listener, namespace_allowed
from .objects import AGW, GW, age_key, generation, meta, ns_of, okey
from .output import Result
from .status import cond, problems_message
from .store import ObjectStore

KIND = MODEL_KIND
#: what an HTTPRoute rule routing to the AgentgatewayModel ``*`` (or a model with an
#: HTTPRoute parent) is told
NOT_SERVED = (
    'an HTTPRoute rule routing to the AgentgatewayModel "*" is not supported by agentgw yet (its model table'
    " attaches to whole listeners, not to a route rule): attach the AgentgatewayModels to the Gateway and list"
    " agentgateway.dev/AgentgatewayModel in the listener's allowedRoutes.kinds"
)
#: AgentgatewayModel ``spec.provider`` → the ``llm.models`` provider name
PROVIDERS = {
    "OpenAI": "openAI",
    "Azure": "azure",
    "Anthropic": "anthropic",
    "Gemini": "gemini",
    "VertexAI": "vertex",
    "Bedrock": "bedrock",
    "Cohere": "cohere",
    "Ollama": "ollama",
    "Baseten": "baseten",
    "Cerebras": "cerebras",
    "Deepinfra": "deepinfra",
    "Deepseek": "deepseek",
    "Groq": "groq",
    "Huggingface": "huggingface",
    "Mistral": "mistral",
    "Openrouter": "openrouter",
    "TogetherAI": "togetherai",
    "XAI": "xai",
    "Fireworks": "fireworks",
}
_VIRTUAL_KINDS = ("weighted", "failover", "conditional")


def effective_name(mo: dict) -> str:
    """The model name clients request: ``match.model``, else ``metadata.name``."""
    m = ((mo.get("spec") or {}).get("match") or {}).get("model")
    return str(m) if m else str(meta(mo).get("name", ""))


@dataclass
class _Parent:
    ref: dict  # the status parentRef
    gkey: tuple[str, str] | None  # the Gateway (ours and accepted) it resolves to
    listeners: list[Listener] = field(default_factory=list)
    refusal: tuple[str, str] | None = None  # (reason, message)


@dataclass
class _Model:
    obj: dict
    entry: dict | None = None  # the llm.models / llm.virtualModels entry
    files: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    parents: list[_Parent] = field(default_factory=list)
    #: Gateway -> the listener names it is served on there (accepted) or why not
    served: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    refused: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    @property
    def virtual(self) -> bool:
        return "virtualModel" in (self.obj.get("spec") or {})


class ModelTranslator:
    """Every AgentgatewayModel: its entry, the Gateways it is served on, its status."""

    def __init__(self, store: ObjectStore, res: Result, resolver: P.Resolver, controller_name: str):
        self.store = store
        self.res = res
        self.resolver = resolver
        self.controller_name = controller_name
        self.models: dict[tuple, _Model] = {}
        #: Gateway -> the listener names its model table is served on
        self.tables: dict[tuple[str, str], list[str]] = {}

    # -- attachment ---------------------------------------------------------------------
    def attach_all(self, gw_listeners: dict[tuple[str, str], list[Listener]], bad_gateways: dict) -> None:
        """Translate every model, resolve its parents, and decide each Gateway's table."""
        objs = sorted(self.store.all(AGW, KIND), key=age_key)
        for mo in objs:
            md = _Model(mo)
            self.models[okey(mo)] = md
            schema = self.store.problems(mo)
            if schema:
                md.problems.append(("Invalid", problems_message(schema)))
            else:
                self._translate(md)
            md.parents = self._parents(mo, gw_listeners, bad_gateways)
        # concrete models first: a Gateway's table is what they make it; then virtual ones over them
        for virtual in (False, True):
            for mo in objs:
                md = self.models[okey(mo)]
                if md.virtual == virtual:
                    self._place(md)
        self._report()

    def _parents(self, mo: dict, gw_listeners: dict, bad_gateways: dict) -> list[_Parent]:
        ns = ns_of(mo)
        out: list[_Parent] = []
        for pi, pr in enumerate((mo.get("spec") or {}).get("parentRefs") or []):
            if not isinstance(pr, dict):
                continue
            group, kind = pr.get("group", GW), pr.get("kind", "Gateway")
            gns, gname = pr.get("namespace") or ns, pr.get("name", "")
            ref = {"group": group, "kind": kind, "namespace": gns, "name": gname}
            for k in ("sectionName", "port"):
                if pr.get(k) is not None:
                    ref[k] = pr[k]
            if (group, kind) != (GW, "Gateway"):
                why = (
                    NOT_SERVED
                    if (group, kind) == (GW, "HTTPRoute")
                    else f"spec.parentRefs[{pi}]: a {kind} parent is not supported by agentgw (only a Gateway)"
                )
                out.append(_Parent(ref, None, refusal=("Unsupported", why)))
                continue
            gkey = (gns, gname)
            if gkey not in gw_listeners and gkey not in bad_gateways:
                if self.store.get(GW, "Gateway", gns, gname) is None:
                    out.append(_Parent(ref, None, refusal=("NoMatchingParent", f"Gateway {gns}/{gname} not found")))
                continue  # another controller's Gateway
            if gkey in bad_gateways:
                out.append(_Parent(ref, None, refusal=("NoMatchingParent", f"Gateway {gns}/{gname} is not accepted")))
                continue
            candidates = [
                gl
                for gl in gw_listeners[gkey]
                if pr.get("sectionName") in (None, gl.name) and pr.get("port") in (None, gl.port)
            ]
            refusals: list[tuple[int, str, str]] = [(9, "NoMatchingParent", "no listener matches sectionName/port")]
            found = []
            for gl in candidates:
                if not gl.ok:
                    refusals.append((3, "NoMatchingParent", f"listener {gl.name} is not accepted"))
                elif not gl.models:
                    refusals.append(
                        (
                            1,
                            "NotAllowedByListeners",
                            f"listener {gl.name} does not list agentgateway.dev/AgentgatewayModel in allowedRoutes.kinds",
                        )
                    )
                elif not namespace_allowed(self.store, gl, gns, ns):
                    refusals.append(
                        (2, "NotAllowedByListeners", f"listener {gl.name} does not allow routes from namespace {ns}")
                    )
                else:
                    found.append(gl)
            if found:
                out.append(_Parent(ref, gkey, found))
            else:
                best = min(refusals)[0]
                reason = next(r for p_, r, _ in refusals if p_ == best)
                msg = "; ".join(m for p_, _, m in refusals if p_ == best)
                out.append(_Parent(ref, None, refusal=(reason, msg)))
        return out

    def _place(self, md: _Model) -> None:
        """Put the model in the table of each Gateway it attaches to, or say why not."""
        by_gw: dict[tuple[str, str], list[str]] = {}
        for p in md.parents:
            if p.gkey is not None:
                names = by_gw.setdefault(p.gkey, [])
                names.extend(gl.name for gl in p.listeners if gl.name not in names)
        name = effective_name(md.obj)
        for gkey, names in by_gw.items():
            if md.problems or md.entry is None:
                continue
            table = self.tables.get(gkey)
            if table is not None and sorted(table) != sorted(names):
                md.refused[gkey] = (
                    "Unsupported",
                    f"agentgw serves one model table per Gateway, on the same listeners: Gateway {gkey[0]}/{gkey[1]}"
                    f" serves its models on listener(s) {', '.join(table)} (those of its oldest model), this model"
                    f" attaches to {', '.join(names)}",
                )
                continue
            clash = next(
                (o for o in self.models.values() if gkey in o.served and effective_name(o.obj) == name and o is not md),
                None,
            )
            if clash is not None:
                md.refused[gkey] = (
                    "Unsupported",
                    f"model {name!r} is already served on Gateway {gkey[0]}/{gkey[1]} by AgentgatewayModel"
                    f" {ns_of(clash.obj)}/{meta(clash.obj)['name']} (the oldest one is served)",
                )
                continue
            if md.virtual:
                missing = self._missing_targets(md, gkey)
                if missing:
                    md.refused[gkey] = ("Invalid", missing)
                    continue
            if table is None:
                self.tables[gkey] = list(names)
            md.served[gkey] = names

    def _missing_targets(self, md: _Model, gkey: tuple[str, str]) -> str | None:
        ns = ns_of(md.obj)
        vm = (md.obj.get("spec") or {}).get("virtualModel") or {}
        for kind in _VIRTUAL_KINDS:
            for ti, t in enumerate((vm.get(kind) or {}).get("targets") or []):
                ref = str((t.get("modelRef") or {}).get("name", ""))
                target = self.models.get((AGW, KIND, ns, ref))
                if target is not None and gkey not in target.served:
                    return (
                        f"spec.virtualModel.{kind}.targets[{ti}].modelRef: AgentgatewayModel {ns}/{ref} is not served"
                        f" on Gateway {gkey[0]}/{gkey[1]} (a virtual model picks among the models of its listeners)"
                    )
        return None

    # -- translation --------------------------------------------------------------------
    def _translate(self, md: _Model) -> None:
        spec = md.obj.get("spec") or {}
        if "virtualModel" in spec:
            md.entry = self._virtual(md, spec)
        elif spec.get("provider"):
            md.entry = self._concrete(md, spec)
        else:
            md.problems.append(("Invalid", "spec: exactly one of provider, virtualModel must be set"))

    def _concrete(self, md: _Model, spec: dict) -> dict | None:
        ns = ns_of(md.obj)
        bad: list[str] = []
        name = effective_name(md.obj)
        if name.endswith("/*") and name != "/*":
            bad.append(
                f"spec.match.model: {name!r}: not supported by agentgw (its model table removes the {name[:-1]!r}"
                " prefix from the model before the request goes out; agentgateway sends it unchanged)"
            )
        provider = PROVIDERS.get(str(spec["provider"]))
        if provider is None:
            bad.append(f"spec.provider: {spec['provider']} is not supported by agentgw")
        entry: dict[str, Any] = {"name": name}
        if spec.get("visibility") == "Internal":
            entry["visibility"] = "internal"
        entry["provider"] = provider
        params: dict[str, Any] = {}
        az = spec.get("azure")
        if az:
            params["azureResourceName"] = str(az.get("resourceName", ""))
            params["azureResourceType"] = "foundry" if az.get("resourceType") == "Foundry" else "openAI"
            if az.get("apiVersion"):
                params["azureApiVersion"] = str(az["apiVersion"])
            if az.get("projectName"):
                bad.append("spec.azure.projectName: not supported by agentgw's model table")
        vx = spec.get("vertexai")
        if vx:
            params["vertexProject"] = str(vx.get("projectId", ""))
            if vx.get("region"):
                params["vertexRegion"] = str(vx["region"])
        br = spec.get("bedrock")
        if br is not None:
            if br.get("region"):
                params["awsRegion"] = str(br["region"])
            else:
                bad.append(
                    "spec.bedrock.region: required by agentgw (it does not take the region from the environment)"
                )
            if br.get("guardrail") is not None:
                bad.append("spec.bedrock.guardrail: not supported by agentgw's model table")
        if spec.get("baseURL"):
            params["baseUrl"] = str(spec["baseURL"])
        if params:
            entry["params"] = params
        pol = spec.get("policies") or {}
        problems: list[str] = []
        for key, val in pol.items():
            p = f"spec.policies.{key}"
            val = val or {}
            if key == "transformations":
                entry["transformation"] = {str(f["field"]): str(f["expression"]) for f in val}
            elif key == "auth":
                auth = P._backend_auth(val, ns, self.resolver, p, problems)
                if auth is not None:
                    entry["auth"] = auth
            elif key == "tls":
                tls = P._backend_tls(val, ns, self.resolver, p, problems)
                for k, v in list(tls.items()):
                    if isinstance(v, tuple):  # ("file", name, content): written beside the config
                        _, fname, content = v
                        md.files[fname] = content
                        tls[k] = fname
                entry["tls"] = tls
            elif key == "headers":
                for side, dst in (("request", "requestHeaders"), ("response", "responseHeaders")):
                    if val.get(side):
                        entry[dst] = P.header_modifier(val[side])
            elif key == "authorization":
                bad.append(
                    f"{p}: not supported by agentgw (its model table has no per-model authorization; put an"
                    " authorization policy on the Gateway or its listener)"
                )
            elif key == "finalTransformations":
                bad.append(
                    f"{p}: not supported by agentgw (its transformations apply to the request before it is"
                    " converted to the provider's format only)"
                )
            else:
                bad.append(f"{p}: not supported by agentgw")
        md.problems += [("Unsupported", b) for b in bad] + [("Invalid", p) for p in problems]
        return entry

    def _virtual(self, md: _Model, spec: dict) -> dict | None:
        ns = ns_of(md.obj)
        vm = spec.get("virtualModel") or {}
        kinds = [k for k in _VIRTUAL_KINDS if k in vm]
        if len(kinds) != 1:
            md.problems.append(("Invalid", "spec.virtualModel: exactly one of weighted, failover, conditional"))
            return None
        kind = kinds[0]
        targets = []
        for ti, t in enumerate((vm[kind] or {}).get("targets") or []):
            tp = f"spec.virtualModel.{kind}.targets[{ti}]"
            ref = str((t.get("modelRef") or {}).get("name", ""))
            target = self.store.get(AGW, KIND, ns, ref)
            if target is None:
                md.problems.append(("BackendNotFound", f"{tp}.modelRef: AgentgatewayModel {ns}/{ref} not found"))
                continue
            if "virtualModel" in (target.get("spec") or {}):
                md.problems.append(
                    ("Invalid", f"{tp}.modelRef: AgentgatewayModel {ns}/{ref} is a virtual model, not a concrete one")
                )
                continue
            if t.get("model"):
                name = str(t["model"])
            else:
                name = effective_name(target)
                if "*" in name:
                    md.problems.append(
                        (
                            "Invalid",
                            f"{tp}.model: required, AgentgatewayModel {ns}/{ref} matches the wildcard {name!r}",
                        )
                    )
                    continue
            out: dict[str, Any] = {"model": name}
            if kind == "weighted":
                out["weight"] = int(t.get("weight") or 1)
            elif kind == "failover":
                out["priority"] = int(t.get("priority") or 0)
            elif t.get("when") is not None:
                out["when"] = str(t["when"])
            targets.append(out)
        return {"name": effective_name(md.obj), "routing": {kind: {"targets": targets}}}

    # -- output -------------------------------------------------------------------------
    def llm_section(self, gkey: tuple[str, str]) -> tuple[dict | None, dict[str, set], dict[str, str]]:
        """The Gateway's ``llm`` section (None without models), the provenance of its parts,
        and the files it names (backend TLS material)."""
        listeners = self.tables.get(gkey)
        if not listeners:
            return None, {}, {}
        models: list[dict] = []
        virtual: list[dict] = []
        files: dict[str, str] = {}
        sources: dict[str, set] = {}
        for k, md in self.models.items():
            if gkey not in md.served or md.entry is None:
                continue
            if md.virtual:
                sources[f"llm.virtualModels[{len(virtual)}]"] = {k}
                virtual.append(md.entry)
            else:
                sources[f"llm.models[{len(models)}]"] = {k}
                models.append(md.entry)
                files.update(md.files)
        llm: dict[str, Any] = {"gateways": list(listeners), "models": models}
        if virtual:
            llm["virtualModels"] = virtual
        return llm, sources, files

    def attached(self, gkey: tuple[str, str], listener: str) -> int:
        """How many models are served on the listener."""
        return sum(1 for md in self.models.values() if listener in md.served.get(gkey, []))

    def _report(self) -> None:
        for k, md in self.models.items():
            gen = generation(md.obj)
            ref_problem = next((m for r, m in md.problems if r == "BackendNotFound"), None)
            resolved = (
                cond("ResolvedRefs", False, "BackendNotFound", ref_problem, gen)
                if ref_problem
                else cond("ResolvedRefs", True, "ResolvedRefs", "all references resolved", gen)
            )
            parents = []
            for p in md.parents:
                if md.problems:  # the object's own problems first, then the parent's
                    reason = "Invalid" if any(r != "Unsupported" for r, _ in md.problems) else "Unsupported"
                    accepted = cond("Accepted", False, reason, problems_message([m for _, m in md.problems]), gen)
                elif p.refusal is not None:
                    accepted = cond("Accepted", False, p.refusal[0], p.refusal[1], gen)
                elif p.gkey in md.refused:
                    accepted = cond("Accepted", False, *md.refused[p.gkey], gen)
                else:
                    names = md.served.get(p.gkey, []) if p.gkey else []
                    accepted = cond("Accepted", True, "Accepted", f"served on listener(s) {', '.join(names)}", gen)
                parents.append(
                    {"parentRef": p.ref, "controllerName": self.controller_name, "conditions": [accepted, resolved]}
                )
            if not parents and (md.obj.get("spec") or {}).get("parentRefs"):
                continue  # only other controllers' Gateways
            if not parents:  # (the schema requires one; an object read without validation may have none)
                why = problems_message([m for _, m in md.problems]) or "spec.parentRefs: required"
                self.res.errors.append(f"{KIND} {k[2]}/{k[3]}: not accepted: {why}")
            self.res.status[k] = {"parents": parents}
