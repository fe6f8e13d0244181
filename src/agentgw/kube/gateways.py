"""Our GatewayClasses, and each Gateway's config, files and status.

`accept_gateway_classes` says which GatewayClasses name this controller and whether they
are accepted. `GatewayBuilder.build` assembles the config of one accepted Gateway from its
checked listeners (`agentgw.kube.listeners`) and the routes attached to them
(`agentgw.kube.routes`): binds per port, the ``llm`` section of the AgentgatewayModels
served on them (`agentgw.kube.llm_models`), PreRouting and frontend policies, the
AgentgatewayParameters (GatewayClass, then the Gateway's own) with their ``rawConfig``,
the TLS and CA files the config names, the provenance of every part (for
`agentgw.kube.check`), and the Gateway's status with its listeners and addresses.
"""

from __future__ import annotations

import json
from typing import Any

from .listeners import Listener, listener_key
from .llm_models import ModelTranslator
from .objects import AGW, GW, deep_merge, generation, meta, ns_of, okey, safe_name
from .output import GatewayOutput, Result
from .policy_attachment import PolicyAttachments
from .provision import shutdown_config
from .status import cond, problems_message
from .store import ObjectStore


def accept_gateway_classes(store: ObjectStore, res: Result, controller_name: str) -> dict[str, str | None]:
    """Our GatewayClasses -> None when accepted, else why not."""
    ours: dict[str, str | None] = {}
    for gc in store.all(GW, "GatewayClass"):
        spec = gc.get("spec") or {}
        if spec.get("controllerName") != controller_name:
            continue
        name = meta(gc)["name"]
        ok, reason, msg = True, "Accepted", f"handled by {controller_name}"
        pref = spec.get("parametersRef")
        probs = store.problems(gc)
        if probs:
            ok, reason, msg = False, "Invalid", problems_message(probs)
        elif pref:
            params = store.get(AGW, "AgentgatewayParameters", pref.get("namespace") or "", pref.get("name", ""))
            if pref.get("group") != AGW or pref.get("kind") != "AgentgatewayParameters":
                ok, reason, msg = False, "InvalidParameters", f"parametersRef must be {AGW}/AgentgatewayParameters"
            elif params is None:
                ok, reason, msg = (
                    False,
                    "InvalidParameters",
                    f"AgentgatewayParameters {pref.get('namespace')}/{pref.get('name')} not found",
                )
            elif store.problems(params):
                ok, reason, msg = (
                    False,
                    "InvalidParameters",
                    f"AgentgatewayParameters {pref.get('namespace')}/{pref.get('name')} is not accepted: {problems_message(store.problems(params))}",
                )
        # a class whose parameters are at fault still handles its Gateways (they report the
        # parameters problem themselves); an invalid class does not
        ours[name] = msg if not ok and reason == "Invalid" else None
        res.status[okey(gc)] = {"conditions": [cond("Accepted", ok, reason, msg, generation(gc))]}
    return ours


class GatewayBuilder:
    def __init__(
        self, store: ObjectStore, res: Result, policies: PolicyAttachments, models: ModelTranslator | None = None
    ):
        self.store = store
        self.res = res
        self.policies = policies
        self.models = models

    def build(self, gw: dict, listeners: list[Listener]) -> None:
        """The Gateway's config (in `Result.gateways` unless its parameters are at fault) and status."""
        ns, name = ns_of(gw), meta(gw)["name"]
        gen = generation(gw)
        gkey = (GW, "Gateway", ns, name)
        params, param_err, param_objs = self._parameters(gw)
        config: dict[str, Any] = {"config": {"namespace": ns, "gateway": name}}
        sources: dict[str, set] = {"": {gkey}}
        files: dict[str, str] = {}
        logging = (params or {}).get("logging") or {}
        if logging:
            config["config"]["logging"] = {k: logging[k] for k in ("level", "format") if k in logging}
            sources["config.logging"] = set(param_objs)
        for k, v in shutdown_config(params or {}).items():
            config["config"][k] = v
            sources[f"config.{k}"] = set(param_objs)
        fcfg, fsrc = self.policies.merge([("gateway", gkey, None)], "config")
        config["config"].update(fcfg)
        for k in fcfg:
            sources[f"config.{k}"] = {fsrc[k]}
        ffp, ffsrc = self.policies.merge([("gateway", gkey, None)], "frontend")
        binds: dict[int, list[tuple[dict, Listener, dict]]] = {}
        for gl in listeners:
            if not gl.ok:
                continue
            ld: dict[str, Any] = {"name": gl.name, "namespace": ns, "gatewayName": name}
            if gl.hostname:
                ld["hostname"] = gl.hostname
            ld["protocol"] = gl.protocol
            if gl.tls:
                ld["tls"] = {"cert": gl.tls["cert"], "key": gl.tls["key"]}
                files.update(gl.tls["_files"])
            pre, presrc = self.policies.merge(
                [("gateway", gkey, None), ("listener", gkey, gl.name)], "traffic", "PreRouting"
            )
            if pre:
                ld["policies"] = pre
            ld["routes"] = [self._files_in_route(r, files) for r in gl.routes]
            binds.setdefault(gl.port, []).append((ld, gl, presrc))
        config["binds"] = [{"port": p, "listeners": [ld for ld, _, _ in ls]} for p, ls in sorted(binds.items())]
        for bi, (_, ls) in enumerate(sorted(binds.items())):
            for li, (ld, gl, presrc) in enumerate(ls):
                lp = f"binds[{bi}].listeners[{li}]"
                sources[lp] = {listener_key(ns, name, gl.name)}
                for k in ld.get("policies") or {}:
                    sources[f"{lp}.policies.{k}"] = {presrc[k]}
                for ri, rsrc in enumerate(gl.route_sources):
                    for rel, objs in rsrc.items():
                        sources[f"{lp}.routes[{ri}]" + (f".{rel}" if rel else "")] = set(objs)
        if self.models is not None:
            llm, lsrc, lfiles = self.models.llm_section((ns, name))
            if llm is not None:
                config["llm"] = llm
                sources["llm"] = {gkey}
                sources.update(lsrc)
                files.update(lfiles)
        if ffp:
            config["frontendPolicies"] = ffp
            for k in ffp:
                sources[f"frontendPolicies.{k}"] = {ffsrc[k]}
        # the config loader substitutes $VAR in strings: generated values are literal
        config = _escape(json.loads(json.dumps(config)))
        files = {k: v for k, v in files.items()}
        raw = (params or {}).get("rawConfig")
        if raw:
            config = deep_merge(config, raw)
            _raw_sources(raw, "", sources, set(param_objs))
        # status
        gconds = [cond("Accepted", True, "Accepted", "gateway accepted", gen)]
        if param_err:
            gconds = [cond("Accepted", False, "InvalidParameters", param_err, gen)]
        ok_listeners = [gl for gl in listeners if gl.ok]
        if param_err:
            gconds.append(cond("Programmed", False, "Invalid", param_err, gen))
        elif not ok_listeners:
            gconds[0] = cond("Accepted", False, "ListenersNotValid", "no listener is valid", gen)
            gconds.append(cond("Programmed", False, "Invalid", "no listener is valid", gen))
        else:
            gconds.append(cond("Programmed", True, "Programmed", "config generated for the proxy", gen))
        lstatus = []
        for gl in listeners:
            models = self.models.attached((ns, name), gl.name) if self.models is not None else 0
            lstatus.append(
                {
                    "name": gl.name,
                    "supportedKinds": list(gl.supported_kinds),
                    "attachedRoutes": gl.attached + models,
                    "conditions": [gl.conditions[t] for t in ("Accepted", "Programmed", "ResolvedRefs", "Conflicted")],
                }
            )
        status = {"conditions": gconds, "listeners": lstatus}
        addrs = self._addresses(gw)
        if addrs:
            status["addresses"] = addrs
        self.res.status[gkey] = status
        if param_err:
            return
        self.res.gateways[(ns, name)] = GatewayOutput(
            ns,
            name,
            config,
            files,
            params,
            [{"name": gl.name, "port": gl.port, "protocol": gl.protocol} for gl in listeners if gl.ok],
            gw,
            sources,
            param_objs,
        )

    def _parameters(self, gw: dict) -> tuple[dict | None, str | None, list[tuple]]:
        """The Gateway's AgentgatewayParameters: GatewayClass parametersRef, overridden by the
        Gateway's infrastructure.parametersRef → (merged spec, what is wrong, the objects merged).
        Writes the status of each AgentgatewayParameters it reads."""
        ns = ns_of(gw)
        spec = gw.get("spec") or {}
        params = None
        param_err = None
        param_objs: list[tuple] = []
        gc = self.store.get(GW, "GatewayClass", "", spec.get("gatewayClassName", ""))
        refs = []
        if gc is not None and (gc.get("spec") or {}).get("parametersRef"):
            pr = gc["spec"]["parametersRef"]
            refs.append((pr.get("namespace") or "", pr))
        ipr = (spec.get("infrastructure") or {}).get("parametersRef")
        if ipr:
            refs.append((ns, ipr))
        for pns, pr in refs:
            if pr.get("group") != AGW or pr.get("kind") != "AgentgatewayParameters":
                param_err = f"parametersRef must be {AGW}/AgentgatewayParameters"
                continue
            p = self.store.get(AGW, "AgentgatewayParameters", pns, pr.get("name", ""))
            if p is None:
                param_err = f"AgentgatewayParameters {pns}/{pr.get('name')} not found"
                continue
            if self.store.problems(p):
                msg = problems_message(self.store.problems(p))
                param_err = f"AgentgatewayParameters {pns}/{pr.get('name')} is not accepted: {msg}"
                self.res.status[okey(p)] = {"conditions": [cond("Accepted", False, "Invalid", msg, generation(p))]}
                continue
            params = deep_merge(params or {}, p.get("spec") or {})
            param_objs.append(okey(p))
            self.res.status[okey(p)] = {
                "conditions": [cond("Accepted", True, "Accepted", "parameters accepted", generation(p))]
            }
        return params, param_err, param_objs

    def _files_in_route(self, r: dict, files: dict) -> dict:
        """Replace the certificate placeholders in backendTLS (``("file", name, content)``) by
        file names (in copies: a translated backend is shared by every route that uses it)."""
        backends = []
        for b in r.get("backends") or []:
            t = (b.get("policies") or {}).get("backendTLS")
            if t and any(isinstance(v, tuple) for v in t.values()):
                t = dict(t)
                for k, v in t.items():
                    if isinstance(v, tuple):
                        _, fname, content = v
                        fname = safe_name(fname)
                        files[fname] = content
                        t[k] = fname
                b = {**b, "policies": {**b["policies"], "backendTLS": t}}
            backends.append(b)
        return {**r, "backends": backends} if "backends" in r else r

    def _addresses(self, gw: dict) -> list[dict]:
        """The Gateway's status addresses: its Service's load balancer, else its cluster IP."""
        svc = self.store.get("", "Service", ns_of(gw), meta(gw)["name"])
        if svc is None:
            return []
        out = []
        for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ing.get("ip"):
                out.append({"type": "IPAddress", "value": ing["ip"]})
            elif ing.get("hostname"):
                out.append({"type": "Hostname", "value": ing["hostname"]})
        if not out and (svc.get("spec") or {}).get("clusterIP") not in (None, "", "None"):
            out.append({"type": "IPAddress", "value": svc["spec"]["clusterIP"]})
        return out


def _raw_sources(raw: Any, path: str, sources: dict[str, set], objs: set) -> None:
    """What ``rawConfig`` sets comes from the parameters (what it replaces no longer comes from elsewhere)."""
    if not isinstance(raw, dict):
        for p in [p for p in sources if p == path or p.startswith(path + ".") or p.startswith(path + "[")]:
            del sources[p]
        sources[path] = set(objs)
        return
    for k, v in raw.items():
        _raw_sources(v, f"{path}.{k}" if path else str(k), sources, objs)


def _escape(v: Any) -> Any:
    """Every ``$`` doubled: the config loader would substitute ``$VAR`` in a generated value."""
    if isinstance(v, str):
        return v.replace("$", "$$")
    if isinstance(v, list):
        return [_escape(x) for x in v]
    if isinstance(v, dict):
        return {k: _escape(x) for k, x in v.items()}
    return v
