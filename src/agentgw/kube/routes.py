"""HTTPRoutes → the config routes of the listeners they attach to.

`RouteTranslator.attach_all` decides, for each HTTPRoute and each of its Gateway
``parentRefs``, which listeners take it (``sectionName``/``port``, the listener's
``allowedRoutes`` namespaces, hostname intersection) and writes its parent statuses. Each
rule becomes a config route: its matches (`http_match`), filters (`http_filter`), timeouts
and retry, its backendRefs (Services, or backend objects via `agentgw.kube.backends`,
across namespaces only with a ReferenceGrant), and the policies attached above it
(`agentgw.kube.policy_attachment`). A route under a policy that is not accepted answers
`CLOSED_RESPONSE` instead.
"""

from __future__ import annotations

from typing import Any

from . import policies as P
from .backends import A2A_APP_PROTOCOLS, MCP_APP_PROTOCOLS, BackendTranslator
from .listeners import Listener, namespace_allowed
from .llm_models import NOT_SERVED
from .objects import AGW, BACKEND_KINDS, GW, display, generation, meta, ns_of, okey, safe_name
from .output import Result
from .policy_attachment import CLOSED_RESPONSE, PolicyAttachments
from .status import cond, problems_message
from .store import ObjectStore


def hostname_match(listener: str | None, route: str) -> str | None:
    """The hostname a route hostname gets on a listener, or None when they don't intersect."""
    if not listener:
        return route
    if listener == route:
        return route
    if listener.startswith("*."):
        suffix = listener[1:]
        if route.startswith("*."):
            return route if route.endswith(suffix) else (listener if listener.endswith(route[1:]) else None)
        return route if route.endswith(suffix) and len(route) > len(suffix) else None
    if route.startswith("*."):
        return listener if listener.endswith(route[1:]) and len(listener) > len(route) - 1 else None
    return None


def http_match(m: dict) -> dict:
    """An HTTPRoute match (path, method, headers, query parameters) → a config route match."""
    out: dict[str, Any] = {}
    path = m.get("path") or {"type": "PathPrefix", "value": "/"}
    typ, val = path.get("type", "PathPrefix"), path.get("value", "/")
    out["path"] = {"Exact": {"exact": val}, "RegularExpression": {"regex": val}}.get(typ, {"pathPrefix": val})
    if m.get("method"):
        out["method"] = m["method"]
    for key, dst in (("headers", "headers"), ("queryParams", "query")):
        items = []
        for h in m.get(key) or []:
            v = {"regex": h["value"]} if h.get("type") == "RegularExpression" else {"exact": h.get("value", "")}
            items.append({"name": h["name"], "value": v})
        if items:
            out[dst] = items
    return out


def http_filter(f: dict, pols: dict) -> str | None:
    """An HTTPRoute filter → its config policy, set in ``pols``; or why it is not supported."""
    typ = f.get("type")
    if typ == "RequestHeaderModifier":
        pols["requestHeaderModifier"] = P.header_modifier(f.get("requestHeaderModifier") or {})
    elif typ == "ResponseHeaderModifier":
        pols["responseHeaderModifier"] = P.header_modifier(f.get("responseHeaderModifier") or {})
    elif typ == "RequestRedirect":
        rd = f.get("requestRedirect") or {}
        out: dict[str, Any] = {}
        if rd.get("scheme"):
            out["scheme"] = rd["scheme"]
        if rd.get("hostname") and rd.get("port"):
            out["authority"] = {"full": f"{rd['hostname']}:{rd['port']}"}
        elif rd.get("hostname"):
            out["authority"] = {"host": rd["hostname"]}
        elif rd.get("port"):
            out["authority"] = {"port": int(rd["port"])}
        p = rd.get("path")
        if p:
            out["path"] = (
                {"full": p.get("replaceFullPath")}
                if p.get("type") == "ReplaceFullPath"
                else {"prefix": p.get("replacePrefixMatch")}
            )
        out["status"] = int(rd.get("statusCode") or 302)
        pols["requestRedirect"] = out
    elif typ == "URLRewrite":
        uw = f.get("urlRewrite") or {}
        out = {}
        if uw.get("hostname"):
            out["authority"] = {"full": uw["hostname"]}
        p = uw.get("path")
        if p:
            out["path"] = (
                {"full": p.get("replaceFullPath")}
                if p.get("type") == "ReplaceFullPath"
                else {"prefix": p.get("replacePrefixMatch")}
            )
        pols["urlRewrite"] = out
    elif typ == "CORS":
        pols["cors"] = P.cors(f.get("cors") or {})
    else:
        return f"filter type {typ} is not supported by agentgw"
    return None


class RouteTranslator:
    def __init__(
        self,
        store: ObjectStore,
        res: Result,
        policies: PolicyAttachments,
        backends: BackendTranslator,
        controller_name: str,
    ):
        self.store = store
        self.res = res
        self.policies = policies
        self.backends = backends
        self.controller_name = controller_name

    def attach_all(
        self, gw_listeners: dict[tuple[str, str], list[Listener]], bad_gateways: dict[tuple[str, str], str]
    ) -> None:
        """Attach every HTTPRoute to the listeners of ``gw_listeners`` (the Gateways being
        translated); a parent in ``bad_gateways`` (ours, not accepted) is told so."""
        for route in self.store.all(GW, "HTTPRoute"):
            self._route(route, gw_listeners, bad_gateways)

    def _route(self, route: dict, gw_listeners: dict, bad_gateways: dict[tuple[str, str], str]) -> None:
        """One HTTPRoute: its config routes on every listener that takes it, its parent statuses."""
        rns, rname = ns_of(route), meta(route)["name"]
        rkey = okey(route)
        spec = route.get("spec") or {}
        gen = generation(route)
        parents_status = []
        rules_out: list[tuple[list, dict, dict]] | None = None
        resolved: dict = {}  # (with rules_out)
        for pi, pref in enumerate(spec.get("parentRefs") or []):
            if not isinstance(pref, dict):
                continue
            pg, pk = pref.get("group", GW), pref.get("kind", "Gateway")
            if (pg, pk) != (GW, "Gateway"):
                continue
            gns = pref.get("namespace") or rns
            gkey = (gns, pref.get("name", ""))
            if gkey not in gw_listeners and gkey not in bad_gateways:
                if self.store.get(GW, "Gateway", *gkey) is None:
                    self.res.errors.append(
                        f"HTTPRoute {rns}/{rname}: spec.parentRefs[{pi}]: Gateway {gns}/{gkey[1]} not found"
                    )
                continue  # another controller's Gateway
            parent_ref = {"group": GW, "kind": "Gateway", "name": gkey[1], "namespace": gns}
            for k in ("sectionName", "port"):
                if pref.get(k) is not None:
                    parent_ref[k] = pref[k]
            if self.store.problems(route):
                conds = [cond("Accepted", False, "Invalid", problems_message(self.store.problems(route)), gen)]
                parents_status.append(
                    {"parentRef": parent_ref, "controllerName": self.controller_name, "conditions": conds}
                )
                continue
            if gkey in bad_gateways:
                conds = [cond("Accepted", False, "NoMatchingParent", f"Gateway {gns}/{gkey[1]} is not accepted", gen)]
                parents_status.append(
                    {"parentRef": parent_ref, "controllerName": self.controller_name, "conditions": conds}
                )
                continue
            candidates = [
                gl
                for gl in gw_listeners[gkey]
                if (pref.get("sectionName") in (None, gl.name)) and (pref.get("port") in (None, gl.port))
            ]
            accepted_on: list[tuple[Listener, list[str]]] = []
            refusals: list[tuple[int, str, str]] = [(9, "NoMatchingParent", "no listener matches sectionName/port")]
            for gl in candidates:
                if not gl.ok:
                    refusals.append((3, "NoMatchingParent", f"listener {gl.name} is not accepted"))
                    continue
                if not gl.http_routes:
                    refusals.append(
                        (
                            1,
                            "NotAllowedByListeners",
                            f"listener {gl.name} does not allow HTTPRoutes (allowedRoutes.kinds)",
                        )
                    )
                    continue
                if not self._allowed(gl, gns, rns):
                    refusals.append(
                        (1, "NotAllowedByListeners", f"listener {gl.name} does not allow routes from namespace {rns}")
                    )
                    continue
                hostnames = spec.get("hostnames") or []
                if hostnames:
                    got = [h for h in (hostname_match(gl.hostname, h) for h in hostnames) if h]
                    if not got:
                        refusals.append(
                            (
                                2,
                                "NoMatchingListenerHostname",
                                f"no hostname of the route matches listener {gl.name} ({gl.hostname})",
                            )
                        )
                        continue
                else:
                    got = []
                accepted_on.append((gl, list(dict.fromkeys(got))))
            if accepted_on:
                if rules_out is None:
                    rules_out, resolved = self._rules(route)
                for gl, hosts in accepted_on:
                    gl.attached += 1
                    for levels, r, rsrc in rules_out:
                        full_levels = [
                            ("gateway", (GW, "Gateway", gns, gkey[1]), None),
                            ("listener", (GW, "Gateway", gns, gkey[1]), gl.name),
                        ] + levels
                        closers = self.policies.closers(full_levels)
                        src: dict[str, set] = {"": {rkey}}
                        if closers:
                            # a policy for this route is not accepted: answer 500 rather than serve without it
                            rr = {k: v for k, v in r.items() if k in ("name", "namespace", "ruleName", "matches")}
                            rr["policies"] = {"directResponse": dict(CLOSED_RESPONSE)}
                            src["policies.directResponse"] = set(closers)
                        else:
                            rr = dict(r)
                            pols, psrc = self.policies.merge(full_levels, "traffic", "PostRouting")
                            pols.update(r.get("policies") or {})
                            for k in pols:
                                src[f"policies.{k}"] = (
                                    rsrc.get(f"policies.{k}", {rkey}) if k in (r.get("policies") or {}) else {psrc[k]}
                                )
                            if pols:
                                rr["policies"] = pols
                            else:
                                rr.pop("policies", None)
                            for p_, objs in rsrc.items():
                                if p_.startswith("backends["):
                                    src[p_] = objs
                            bpols, bsrc = self.policies.merge(full_levels, "backend")
                            if bpols and rr.get("backends"):
                                # backend sections of Gateway/route policies: every backend of the route,
                                # below what targets the backend itself
                                for j, b in enumerate(rr["backends"]):
                                    for k in bpols:
                                        if k not in (b.get("policies") or {}):
                                            src[f"backends[{j}].policies.{k}"] = {bsrc[k]}
                                rr["backends"] = [
                                    {**b, "policies": {**bpols, **(b.get("policies") or {})}} for b in rr["backends"]
                                ]
                        if hosts:
                            rr = {k: v for k, v in rr.items() if k not in ("name", "namespace", "ruleName")}
                            rr = {
                                "name": r["name"],
                                "namespace": r["namespace"],
                                **({"ruleName": r["ruleName"]} if "ruleName" in r else {}),
                                "hostnames": hosts,
                                **rr,
                            }
                        gl.routes.append(rr)
                        gl.route_sources.append(src)
                conds = [cond("Accepted", True, "Accepted", "route accepted", gen), resolved]
            else:
                best = min(refusals)[0]
                reason = next(r for p_, r, _ in refusals if p_ == best)
                msg = "; ".join(m for p_, _, m in refusals if p_ == best)
                conds = [cond("Accepted", False, reason, msg, gen)]
                if rules_out is None:
                    _, resolved_only = self._rules(route)
                    conds.append(resolved_only)
                else:
                    conds.append(resolved)
            parents_status.append(
                {"parentRef": parent_ref, "controllerName": self.controller_name, "conditions": conds}
            )
        if parents_status:
            self.res.status[rkey] = {"parents": parents_status}

    def _allowed(self, gl: Listener, gns: str, rns: str) -> bool:
        """Whether the listener's ``allowedRoutes.namespaces`` admits routes from namespace ``rns``."""
        return namespace_allowed(self.store, gl, gns, rns)

    def _rules(self, route: dict) -> tuple[list[tuple[list, dict, dict]], dict]:
        """HTTPRoute rules → [(policy levels, config route, its sources)], ResolvedRefs condition.

        Sources: path in the config route → keys of the objects it comes from, where that
        is not the HTTPRoute itself (backends and their policies)."""
        rns, rname = ns_of(route), meta(route)["name"]
        gen = generation(route)
        rkey = okey(route)
        out = []
        failures: list[tuple[str, str]] = []
        rules = (route.get("spec") or {}).get("rules") or [{}]
        for ri, rule in enumerate(rules):
            r: dict[str, Any] = {"name": rname, "namespace": rns}
            if rule.get("name"):
                r["ruleName"] = rule["name"]
            elif len(rules) > 1:
                r["ruleName"] = str(ri)
            matches = [http_match(m) for m in rule.get("matches") or []]
            if matches and matches != [{"path": {"pathPrefix": "/"}}]:
                r["matches"] = matches
            pols: dict[str, Any] = {}
            for fi, f in enumerate(rule.get("filters") or []):
                err = http_filter(f, pols)
                if err:
                    failures.append(("UnsupportedValue", f"spec.rules[{ri}].filters[{fi}]: {err}"))
            t = rule.get("timeouts") or {}
            if t:
                to = {}
                if t.get("request") is not None:
                    to["requestTimeout"] = P.duration(t["request"])
                if t.get("backendRequest") is not None:
                    to["backendRequestTimeout"] = P.duration(t["backendRequest"])
                pols["timeout"] = to
            if rule.get("retry"):
                rt = rule["retry"]
                rr: dict[str, Any] = {"attempts": int(rt.get("attempts", 1))}
                if rt.get("backoff"):
                    rr["backoff"] = P.duration(rt["backoff"])
                if rt.get("codes"):
                    rr["codes"] = [int(c) for c in rt["codes"]]
                pols["retry"] = rr
            backends: list[dict] = []
            rsrc: dict[str, set] = {}
            a2a = False
            for bi, ref in enumerate(rule.get("backendRefs") or []):
                b, reason, msg, is_a2a, bsrc = self._backend_ref(ref, rns, f"spec.rules[{ri}].backendRefs[{bi}]")
                if b is None:
                    failures.append((reason, msg))
                    continue
                for p_, objs in bsrc.items():
                    rsrc[f"backends[{len(backends)}]" + (f".{p_}" if p_ else "")] = objs
                for fi, f in enumerate(ref.get("filters") or []):
                    bp: dict[str, Any] = {}
                    err = http_filter(f, bp)
                    if err or set(bp) - {"requestHeaderModifier", "responseHeaderModifier"}:
                        failures.append(
                            (
                                "UnsupportedValue",
                                f"spec.rules[{ri}].backendRefs[{bi}].filters[{fi}]: only header modifiers are supported on a backendRef",
                            )
                        )
                    else:
                        b.setdefault("policies", {}).update(bp)
                        for k in bp:
                            rsrc[f"backends[{len(backends)}].policies.{k}"] = {rkey}
                a2a = a2a or is_a2a
                backends.append(b)
            if a2a:
                pols.setdefault("a2a", {})
            if backends:
                r["backends"] = backends
            elif rule.get("backendRefs"):
                pols["directResponse"] = {
                    "body": '{"error":{"type":"backend_not_found","message":"no valid backend for this route"}}',
                    "status": 500,
                    "headers": {"content-type": "application/json"},
                }
            elif "requestRedirect" not in pols and "directResponse" not in pols:
                pols["directResponse"] = {
                    "body": '{"error":{"type":"no_backend","message":"this route has no backends"}}',
                    "status": 503,
                    "headers": {"content-type": "application/json"},
                }
            if pols:
                r["policies"] = pols
            levels = [("route", rkey, None)]
            if rule.get("name"):
                levels.append(("rule", rkey, rule["name"]))
            out.append((levels, r, rsrc))
        if failures:
            c = cond("ResolvedRefs", False, failures[0][0], "; ".join(m for _, m in failures), gen)
        else:
            c = cond("ResolvedRefs", True, "ResolvedRefs", "all references resolved", gen)
        return out, c

    def _backend_ref(self, ref: dict, rns: str, path: str) -> tuple[dict | None, str, str, bool, dict[str, set]]:
        """A backendRef → (config backend, failure reason, failure message, is_a2a, sources)."""
        g, k = ref.get("group", ""), ref.get("kind", "Service")
        ns = ref.get("namespace") or rns
        name = ref.get("name", "")
        what = f"{path}: {k} {ns}/{name}"
        if (g, k) == (AGW, "AgentgatewayModel"):
            return None, "InvalidKind", f"{path}: {NOT_SERVED}", False, {}
        if (g, k) != ("", "Service") and (g, k) not in BACKEND_KINDS:
            return None, "InvalidKind", f"{path}: unsupported backend kind {g}/{k}", False, {}
        if not self.store.granted(GW, "HTTPRoute", rns, g, k, ns, name):
            return (
                None,
                "RefNotPermitted",
                f"{what}: reference to namespace {ns} is not permitted by any ReferenceGrant",
                False,
                {},
            )
        weight = ref.get("weight")
        if (g, k) == ("", "Service"):
            svc = self.store.get("", "Service", ns, name)
            if svc is None:
                return None, "BackendNotFound", f"{what} not found", False, {}
            port = ref.get("port")
            if port is None:
                return None, "UnsupportedValue", f"{what}: port is required", False, {}
            sport = next((p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == port), None)
            if sport is None and (svc.get("spec") or {}).get("type") != "ExternalName":
                return None, "BackendNotFound", f"{what} has no port {port}", False, {}
            closers = self.policies.closers([("backend", ("", "Service", ns, name), None)])
            if closers:
                return (
                    None,
                    "BackendNotFound",
                    f"{what}: {', '.join(display(c) for c in closers)} targets it and is not accepted",
                    False,
                    {},
                )
            ap = (sport or {}).get("appProtocol") or ""
            out: dict[str, Any]
            if ap in MCP_APP_PROTOCOLS:
                out = {
                    "mcp": {
                        "targets": [
                            {
                                "name": safe_name(name),
                                "mcp": {"host": self.store.service_host(svc), "port": int(port), "path": "/mcp"},
                            }
                        ]
                    }
                }
            else:
                out = {
                    "service": {"name": {"namespace": ns, "hostname": self.store.service_host(svc)}, "port": int(port)}
                }
            bpol, bsrc = self.policies.merge([("backend", ("", "Service", ns, name), None)], "backend")
            if bpol:
                out["policies"] = bpol
            if weight is not None:
                out["weight"] = int(weight)
            return (
                out,
                "",
                "",
                ap in A2A_APP_PROTOCOLS or bool(bpol.get("a2a") is not None),
                {f"policies.{pk}": {bsrc[pk]} for pk in bpol},
            )
        b = self.store.get(g, k, ns, name)
        if b is None:
            return None, "BackendNotFound", f"{what} not found", False, {}
        rb, problems, is_a2a = self.backends.translate(b)
        if rb is None:
            return None, "BackendNotFound", f"{what} is not accepted: {problems_message(problems)}", False, {}
        out = dict(rb)
        if weight is not None:
            out["weight"] = int(weight)
        return (
            out,
            "",
            "",
            is_a2a or "a2a" in (rb.get("policies") or {}),
            self.backends.sources(okey(b)),
        )
