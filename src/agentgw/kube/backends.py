"""AgentgatewayBackend (and ACK Backend) objects → config route backends.

`BackendTranslator.translate` turns one backend object — static host, A2A, MCP (static
targets or a Service selector), AI providers, AWS AgentCore — into the backend a config
route carries, with its own ``spec.policies`` under the policies that target it, and the
problems that keep it from being accepted. Results are cached per object, since every
backendRef that names a backend asks again; `BackendTranslator.report_status` writes each
backend's status once.
"""

from __future__ import annotations

from typing import Any

from . import policies as P
from .objects import ACK, BACKEND_KINDS, display, generation, group_of, labels_match, meta, ns_of, okey, safe_name
from .output import Result
from .policy_attachment import PolicyAttachments
from .status import cond
from .store import ObjectStore

#: a Service port with one of these appProtocols is an A2A / MCP backend
A2A_APP_PROTOCOLS = {"kgateway.dev/a2a", "agentgateway.dev/a2a", "a2a"}
MCP_APP_PROTOCOLS = {"kgateway.dev/mcp", "agentgateway.dev/mcp", "mcp"}
#: ``spec`` fields of an AgentgatewayBackend that name its kind (exactly one is set)
KINDS = ("static", "a2a", "ai", "mcp", "dynamicForwardProxy", "aws")
#: ``spec.ai`` provider field -> config provider name
AI_PROVIDERS = {
    "openai": "openAI",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertexai": "vertex",
    "bedrock": "bedrock",
    "azureopenai": "azureOpenAI",
}


class BackendTranslator:
    def __init__(self, store: ObjectStore, res: Result, resolver: P.Resolver, policies: PolicyAttachments):
        self.store = store
        self.res = res
        self.resolver = resolver
        self.policies = policies
        self._backend_cache: dict[tuple, tuple[dict | None, list[str], bool]] = {}
        #: per backend translated: path in its config backend -> keys of the objects it comes from
        self._backend_src: dict[tuple, dict[str, set]] = {}

    def sources(self, key: tuple) -> dict[str, set]:
        """Where the parts of a translated backend come from (the backend, its policies)."""
        return dict(self._backend_src.get(key, {"": {key}}))

    def report_status(self) -> None:
        """Every backend object's status (whether or not a route uses it)."""
        for grp, kind in sorted(BACKEND_KINDS):
            for b in self.store.all(grp, kind):
                _rb, problems, _a2a = self.translate(b)
                gen = generation(b)
                if problems:
                    c = cond("Accepted", False, "Invalid", "; ".join(problems), gen)
                else:
                    c = cond("Accepted", True, "Accepted", "backend accepted", gen)
                self.res.status[okey(b)] = {"conditions": [c]}

    def translate(self, b: dict) -> tuple[dict | None, list[str], bool]:
        """An AgentgatewayBackend / ACK Backend → (route backend dict, problems, is_a2a)."""
        k = okey(b)
        if k in self._backend_cache:
            return self._backend_cache[k]
        ns = ns_of(b)
        name = meta(b).get("name", "")
        spec = dict(b.get("spec") or {})
        problems: list[str] = list(self.store.problems(b))
        closers = self.policies.closers([("backend", k, None)])
        a2a = False
        out: dict[str, Any] | None = None
        if problems or closers:
            problems += [f"{display(c)} targets it and is not accepted" for c in closers]
            r: tuple[dict | None, list[str], bool] = (None, problems, False)
            self._backend_cache[k] = r
            return r
        if group_of(b) == ACK:
            typ = str(spec.pop("type", "")).upper()
            if typ == "A2A":
                out, a2a = {"a2a": self._a2a_targets(spec.get("a2a") or {}, ns, "spec.a2a", problems)}, True
            else:
                problems.append(f"spec.type: {typ or 'missing'}: only A2A is supported by agentgw")
            pol_spec: dict = {}
        else:
            pol_spec = spec.pop("policies", None) or {}
            kinds = [x for x in KINDS if x in spec]
            extra = [x for x in spec if x not in KINDS]
            for x in extra:
                problems.append(f"spec.{x}: not supported by agentgw")
            if len(kinds) != 1:
                problems.append(
                    f"spec: exactly one of {', '.join(KINDS)} must be set (got: {', '.join(kinds) or 'none'})"
                )
            else:
                kind = kinds[0]
                val = spec[kind] or {}
                if kind == "static":
                    if val.get("unixPath") is not None:
                        problems.append(
                            "spec.static.unixPath: not supported by agentgw (it has no Unix domain socket backends;"
                            " give the backend a TCP host and port)"
                        )
                    elif not val.get("host") or not val.get("port"):
                        problems.append("spec.static: host and port are required")
                    else:
                        out = {"host": f"{self.store.expand_host(str(val['host']), ns)}:{int(val['port'])}"}
                elif kind == "a2a":
                    if "targets" not in val:  # agentgateway's shape: one agent at host:port
                        if not val.get("host") or not val.get("port"):
                            problems.append("spec.a2a: host and port (or targets) are required")
                        else:
                            val = {"targets": [{"static": {"host": val["host"], "port": val["port"]}}]}
                    out, a2a = {"a2a": self._a2a_targets(val, ns, "spec.a2a", problems)}, True
                elif kind == "mcp":
                    out = {"mcp": self._mcp(val, ns, problems)}
                elif kind == "ai":
                    out = {"ai": self._ai(val, name, problems)}
                elif kind == "dynamicForwardProxy":
                    # the request's own authority (agentgw's ``dynamic`` route backend)
                    out = {"dynamic": {}}
                    for x in val:
                        problems.append(f"spec.dynamicForwardProxy.{x}: not supported by agentgw")
                elif kind == "aws":
                    ac = val.get("agentCore")
                    if not ac or not ac.get("agentRuntimeArn"):
                        problems.append("spec.aws.agentCore.agentRuntimeArn: required")
                    else:
                        agent_core = {"agentRuntimeArn": str(ac["agentRuntimeArn"])}
                        if ac.get("qualifier"):
                            agent_core["qualifier"] = str(ac["qualifier"])
                        out = {"aws": {"agentCore": agent_core}}
                    for x in val:
                        if x != "agentCore":
                            problems.append(f"spec.aws.{x}: not supported by agentgw")
                if kind == "dynamicForwardProxy" and isinstance(pol_spec, dict):
                    auth = pol_spec.get("auth")
                    if auth:
                        problems.append(
                            "spec.policies.auth: not supported by agentgw on a dynamicForwardProxy backend"
                            " (it adds no backend credentials to requests sent wherever their Host names)"
                        )
        bpol, bp = P.backend(pol_spec, ns, self.resolver, "spec.policies")
        problems += bp
        src: dict[str, set] = {"": {k}}
        if out is not None:
            attached, asrc = self.policies.merge([("backend", okey(b), None)], "backend")
            merged = {**bpol, **attached}
            if merged:
                out["policies"] = merged
            for pk in merged:
                src[f"policies.{pk}"] = {asrc[pk]} if pk in asrc else {k}
        if problems:
            out = None
        r = (out, problems, a2a)
        self._backend_cache[k] = r
        self._backend_src[k] = src
        return r

    def _a2a_targets(self, spec: dict, ns: str, path: str, problems: list[str]) -> dict:
        targets = []
        for i, t in enumerate(spec.get("targets") or []):
            st = t.get("static") or {}
            if not st.get("host") or not st.get("port"):
                problems.append(f"{path}.targets[{i}].static: host and port are required")
                continue
            entry: dict[str, Any] = {
                "static": {"host": self.store.expand_host(str(st["host"]), ns), "port": int(st["port"])}
            }
            if t.get("name"):
                entry = {"name": str(t["name"]), **entry}
            if t.get("weight") is not None:
                entry["weight"] = int(t["weight"])
            targets.append(entry)
        if not targets and not problems:
            problems.append(f"{path}.targets: at least one target is required")
        return {"targets": targets}

    def _mcp(self, spec: dict, ns: str, problems: list[str]) -> dict:
        targets = []
        for i, t in enumerate(spec.get("targets") or []):
            p = f"spec.mcp.targets[{i}]"
            tname = str(t.get("name") or f"target{i}")
            if "static" in t:
                st = t["static"] or {}
                if not st.get("host") or not st.get("port"):
                    problems.append(f"{p}.static: host and port are required")
                    continue
                proto = str(st.get("protocol") or "StreamableHTTP")
                kind = {"streamablehttp": "mcp", "sse": "sse"}.get(proto.lower())
                if kind is None:
                    problems.append(f"{p}.static.protocol: must be StreamableHTTP or SSE")
                    continue
                host_spec = {
                    "host": self.store.expand_host(str(st["host"]), ns),
                    "port": int(st["port"]),
                    "path": str(st.get("path") or ("/sse" if kind == "sse" else "/mcp")),
                }
                targets.append({"name": tname, kind: host_spec})
            elif "selector" in t:
                sel = t["selector"] or {}
                svc_sel = sel.get("services") or sel.get("service") or {}
                nss = self._selected_namespaces(sel.get("namespaces"), ns)
                found = 0
                for svc in self.store.all("", "Service"):
                    if ns_of(svc) not in nss or not labels_match(meta(svc).get("labels") or {}, svc_sel):
                        continue
                    for port in (svc.get("spec") or {}).get("ports") or []:
                        ap = port.get("appProtocol") or ""
                        if ap not in MCP_APP_PROTOCOLS and len((svc.get("spec") or {}).get("ports") or []) != 1:
                            continue
                        found += 1
                        targets.append(
                            {
                                "name": safe_name(meta(svc)["name"])
                                if ns_of(svc) == ns
                                else safe_name(ns_of(svc), meta(svc)["name"]),
                                "mcp": {
                                    "host": self.store.service_host(svc),
                                    "port": int(port["port"]),
                                    "path": "/mcp",
                                },
                            }
                        )
                if not found:
                    problems.append(f"{p}.selector: selects no Service")
            else:
                problems.append(f"{p}: needs static or selector")
        out: dict[str, Any] = {"targets": targets}
        if not targets and not problems:
            problems.append("spec.mcp.targets: at least one target is required")
        sr = spec.get("sessionRouting")
        if sr is not None:
            m = {"stateful": "stateful", "stateless": "stateless"}.get(str(sr).lower())
            if m is None:
                problems.append("spec.mcp.sessionRouting: must be Stateful or Stateless")
            else:
                out["statefulMode"] = m
        if spec.get("prefixMode") is not None:
            m = {"always": "always", "conditional": "conditional", "never": "never"}.get(
                str(spec["prefixMode"]).lower()
            )
            if m is None:
                problems.append("spec.mcp.prefixMode: must be Always, Conditional or Never")
            else:
                out["prefixMode"] = m
        if spec.get("failureMode") is not None:
            m = {"failclosed": "failClosed", "failopen": "failOpen"}.get(str(spec["failureMode"]).lower())
            if m is None:
                problems.append("spec.mcp.failureMode: must be FailClosed or FailOpen")
            else:
                out["failureMode"] = m
        for x in spec:
            if x not in ("targets", "sessionRouting", "prefixMode", "failureMode"):
                problems.append(f"spec.mcp.{x}: not supported by agentgw")
        return out

    def _ai_provider(self, p: dict, name: str, path: str, problems: list[str]) -> dict:
        kinds = [k for k in p if k in AI_PROVIDERS]
        if len(kinds) != 1:
            problems.append(f"{path}: exactly one provider ({', '.join(AI_PROVIDERS)}) must be set")
            return {}
        settings = p[kinds[0]] or {}
        keep = {
            k: settings[k]
            for k in ("model", "region", "projectId", "apiVersion", "resourceName")
            if settings.get(k) is not None
        }
        for k in settings:
            if k not in keep and k not in ("model", "region", "projectId", "apiVersion", "resourceName"):
                problems.append(f"{path}.{kinds[0]}.{k}: not supported by agentgw")
        out: dict[str, Any] = {"name": str(p.get("name") or name), "provider": {AI_PROVIDERS[kinds[0]]: keep}}
        if p.get("host"):
            out["hostOverride"] = f"{p['host']}:{int(p.get('port') or 443)}"
        if p.get("path"):
            out["pathOverride"] = str(p["path"])
        return out

    def _ai(self, spec: dict, name: str, problems: list[str]) -> dict:
        groups = spec.get("groups") or spec.get("priorityGroups")
        if groups:
            return {
                "groups": [
                    {
                        "providers": [
                            self._ai_provider(p, f"{name}-{gi}-{pi}", f"spec.ai.groups[{gi}].providers[{pi}]", problems)
                            for pi, p in enumerate(g.get("providers") or [])
                        ]
                    }
                    for gi, g in enumerate(groups)
                ]
            }
        if "provider" not in spec:
            problems.append("spec.ai: needs provider or groups")
            return {}
        return self._ai_provider(spec["provider"] or {}, name, "spec.ai.provider", problems)

    def _selected_namespaces(self, sel: Any, own: str) -> set[str]:
        if not sel:
            return {own}
        if isinstance(sel, dict) and (sel.get("matchLabels") or sel.get("matchExpressions")):
            return {
                meta(n)["name"]
                for n in self.store.all("", "Namespace")
                if labels_match({"kubernetes.io/metadata.name": meta(n)["name"], **(meta(n).get("labels") or {})}, sel)
            }
        return {own}
