"""HTTPRoutes and GRPCRoutes → the config routes of the listeners they attach to.

`RouteTranslator.attach_all` decides, for each route and each of its Gateway
``parentRefs``, which listeners take it (``sectionName``/``port``, the listener's
``allowedRoutes`` namespaces and kinds, hostname intersection) and writes its parent
statuses. Each rule becomes a config route: its matches (`http_match`, or `grpc_match`:
a gRPC service/method is a path, and every gRPC match is a ``POST`` with a gRPC content
type), filters (`http_filter`, `grpc_filter`), timeouts and retry, its backendRefs (Services, or backend objects via
`agentgw.kube.backends`, across namespaces only with a ReferenceGrant), and the policies
attached above it (`agentgw.kube.policy_attachment`). A route under a policy that is not
accepted answers `CLOSED_RESPONSE` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import policies as P
from .backends import A2A_APP_PROTOCOLS, MCP_APP_PROTOCOLS, BackendTranslator
from .listeners import ROUTE_KINDS, Listener, namespace_allowed
from .llm_models import NOT_SERVED
from .objects import AGW, BACKEND_KINDS, GW, age_key, display, generation, meta, ns_of, okey, safe_name
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


#: the header match every GRPCRoute match has: ``application/grpc``, ``application/grpc+proto``,
#: ``application/grpc;…`` (as the proxy recognises a gRPC call; not ``application/grpc-web``)
GRPC_CONTENT_TYPE = {"name": "content-type", "value": {"regex": "(?i)application/grpc([+;].*)?"}}


def grpc_match(m: dict) -> dict:
    """A GRPCRoute match (``method {type, service, method}``, headers) → a config route match.

    A gRPC call is a ``POST`` to ``/{service}/{method}``: ``Exact`` with both is that exact
    path, with only a service the prefix ``/{service}/``, with only a method the regex
    ``/[^/]+/{method}``; ``RegularExpression`` is the regex ``/(?:{service})/(?:{method})``
    (``[^/]+`` for the one left out). Without a method match, any path (prefix ``/``).
    Every match requires what makes a request a gRPC call: ``POST`` and a gRPC content type
    (`GRPC_CONTENT_TYPE`), so that a GRPCRoute never takes an HTTPRoute's requests."""
    out: dict[str, Any] = {}
    mm = m.get("method") or {}
    svc, meth = mm.get("service") or "", mm.get("method") or ""
    if mm.get("type", "Exact") == "RegularExpression" and (svc or meth):
        out["path"] = {"regex": f"/(?:{svc or '[^/]+'})/(?:{meth or '[^/]+'})"}
    elif svc and meth:
        out["path"] = {"exact": f"/{svc}/{meth}"}
    elif svc:
        out["path"] = {"pathPrefix": f"/{svc}/"}
    elif meth:
        out["path"] = {"regex": f"/[^/]+/{re.escape(meth)}"}
    else:
        out["path"] = {"pathPrefix": "/"}
    out["method"] = "POST"
    headers = [dict(GRPC_CONTENT_TYPE)] + [
        {
            "name": h["name"],
            "value": {"regex": h["value"]} if h.get("type") == "RegularExpression" else {"exact": h.get("value", "")},
        }
        for h in m.get("headers") or []
    ]
    out["headers"] = headers
    return out


#: the filters a GRPCRoute rule (and its backendRefs) may have that agentgw implements
GRPC_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier")

#: a Service port with one of these ``appProtocol`` values speaks HTTP/2 with prior
#: knowledge (KEP-3726's ``kubernetes.io/h2c``, and gRPC): its backends get
#: ``policies.http.version: HTTP2`` unless a policy sets the version (agentgateway's
#: ``port_is_http2``). Compared case-insensitively.
HTTP2_APP_PROTOCOLS = {"kubernetes.io/h2c", "h2c", "http2", "grpc"}


def grpc_filter(f: dict, pols: dict) -> str | None:
    """A GRPCRoute filter → its config policy, set in ``pols``; or why it is not supported."""
    if f.get("type") not in GRPC_FILTERS:
        return f"filter type {f.get('type')} is not supported by agentgw on a GRPCRoute"
    return http_filter(f, pols)


@dataclass
class _Ref:
    """A backendRef resolved: the config backend, or why not (reason, message)."""

    backend: dict | None
    reason: str = ""
    message: str = ""
    #: the route gets ``a2a: {}`` (an A2A Service port or backend)
    a2a: bool = False
    #: path in the backend -> keys of the objects it comes from
    sources: dict[str, set] = field(default_factory=dict)
    #: the Service whose port speaks HTTP/2 (`HTTP2_APP_PROTOCOLS`), if it does
    http2: tuple | None = None


def _refused(reason: str, message: str) -> _Ref:
    return _Ref(None, reason, message)


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
        """Attach every HTTPRoute and GRPCRoute to the listeners of ``gw_listeners`` (the
        Gateways being translated), oldest first; a parent in ``bad_gateways`` (ours, not
        accepted) is told so."""
        routes = [r for kind in ROUTE_KINDS for r in self.store.all(GW, kind)]
        for route in sorted(routes, key=age_key):
            self._route(route, gw_listeners, bad_gateways)

    def _route(self, route: dict, gw_listeners: dict, bad_gateways: dict[tuple[str, str], str]) -> None:
        """One route: its config routes on every listener that takes it, its parent statuses."""
        rns, rname = ns_of(route), meta(route)["name"]
        kind = route.get("kind", "HTTPRoute")
        rkey = okey(route)
        spec = route.get("spec") or {}
        gen = generation(route)
        parents_status = []
        rules_out: list[tuple[list, dict, dict, dict[int, tuple]]] | None = None
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
                        f"{kind} {rns}/{rname}: spec.parentRefs[{pi}]: Gateway {gns}/{gkey[1]} not found"
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
                if kind not in gl.route_kinds:
                    refusals.append(
                        (
                            1,
                            "NotAllowedByListeners",
                            f"listener {gl.name} does not allow {kind}s (allowedRoutes.kinds)",
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
                    for levels, r, rsrc, http2 in rules_out:
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
                            if http2:
                                rr["backends"] = list(rr["backends"])
                                for j, svc_key in http2.items():
                                    b = rr["backends"][j]
                                    bp = b.get("policies") or {}
                                    if "version" not in (bp.get("http") or {}):
                                        # below every policy: one that sets http.version wins
                                        h = {**(bp.get("http") or {}), "version": "HTTP2"}
                                        rr["backends"][j] = {**b, "policies": {**bp, "http": h}}
                                        src[f"backends[{j}].policies.http.version"] = {svc_key}
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

    def _rules(self, route: dict) -> tuple[list[tuple[list, dict, dict, dict[int, tuple]]], dict]:
        """Route rules → [(policy levels, config route, its sources, its HTTP/2 backends)],
        ResolvedRefs condition.

        Sources: path in the config route → keys of the objects it comes from, where that
        is not the route itself (backends and their policies). HTTP/2 backends: index in
        ``backends`` → the Service whose port speaks HTTP/2 (`HTTP2_APP_PROTOCOLS`)."""
        rns, rname = ns_of(route), meta(route)["name"]
        kind = route.get("kind", "HTTPRoute")
        grpc = kind == "GRPCRoute"
        gen = generation(route)
        rkey = okey(route)
        out = []
        failures: list[tuple[str, str]] = []
        # an HTTPRoute's rules default to one (its CRD's default); a GRPCRoute's do not
        rules = (route.get("spec") or {}).get("rules") or ([] if grpc else [{}])
        for ri, rule in enumerate(rules):
            r: dict[str, Any] = {"name": rname, "namespace": rns}
            if rule.get("name"):
                r["ruleName"] = rule["name"]
            elif len(rules) > 1:
                r["ruleName"] = str(ri)
            if grpc:
                # no matches: every gRPC call (a POST, any path)
                r["matches"] = [grpc_match(m) for m in rule.get("matches") or [{}]]
            else:
                matches = [http_match(m) for m in rule.get("matches") or []]
                if matches and matches != [{"path": {"pathPrefix": "/"}}]:
                    r["matches"] = matches
            to_policy = grpc_filter if grpc else http_filter
            pols: dict[str, Any] = {}
            for fi, f in enumerate(rule.get("filters") or []):
                err = to_policy(f, pols)
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
            http2: dict[int, tuple] = {}
            a2a = False
            for bi, ref in enumerate(rule.get("backendRefs") or []):
                got = self._backend_ref(ref, rns, f"spec.rules[{ri}].backendRefs[{bi}]", kind)
                b = got.backend
                if b is None:
                    failures.append((got.reason, got.message))
                    continue
                for p_, objs in got.sources.items():
                    rsrc[f"backends[{len(backends)}]" + (f".{p_}" if p_ else "")] = objs
                for fi, f in enumerate(ref.get("filters") or []):
                    bp: dict[str, Any] = {}
                    err = to_policy(f, bp)
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
                a2a = a2a or got.a2a
                if got.http2 is not None:
                    http2[len(backends)] = got.http2
                backends.append(b)
            if a2a:
                pols.setdefault("a2a", {})
            if backends:
                r["backends"] = backends
            elif rule.get("backendRefs"):
                # Gateway API: 500 for an HTTPRoute, UNAVAILABLE (503) for a GRPCRoute
                pols["directResponse"] = {
                    "body": '{"error":{"type":"backend_not_found","message":"no valid backend for this route"}}',
                    "status": 503 if grpc else 500,
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
            out.append((levels, r, rsrc, http2))
        if failures:
            c = cond("ResolvedRefs", False, failures[0][0], "; ".join(m for _, m in failures), gen)
        else:
            c = cond("ResolvedRefs", True, "ResolvedRefs", "all references resolved", gen)
        return out, c

    def _backend_ref(self, ref: dict, rns: str, path: str, route_kind: str = "HTTPRoute") -> _Ref:
        """A backendRef of a ``route_kind`` route in namespace ``rns`` → its config backend.

        A GRPCRoute's Service backend is always a plain ``service`` (an MCP or A2A
        ``appProtocol`` names an HTTP protocol), and of the backend objects only those that
        relay requests as they are (``static``, ``dynamicForwardProxy``) serve gRPC."""
        g, k = ref.get("group", ""), ref.get("kind", "Service")
        ns = ref.get("namespace") or rns
        name = ref.get("name", "")
        what = f"{path}: {k} {ns}/{name}"
        grpc = route_kind == "GRPCRoute"
        if (g, k) == (AGW, "AgentgatewayModel"):
            return _refused("InvalidKind", f"{path}: {NOT_SERVED}")
        if (g, k) != ("", "Service") and (g, k) not in BACKEND_KINDS:
            return _refused("InvalidKind", f"{path}: unsupported backend kind {g}/{k}")
        if not self.store.granted(GW, route_kind, rns, g, k, ns, name):
            return _refused(
                "RefNotPermitted", f"{what}: reference to namespace {ns} is not permitted by any ReferenceGrant"
            )
        weight = ref.get("weight")
        if (g, k) == ("", "Service"):
            svc = self.store.get("", "Service", ns, name)
            if svc is None:
                return _refused("BackendNotFound", f"{what} not found")
            port = ref.get("port")
            if port is None:
                return _refused("UnsupportedValue", f"{what}: port is required")
            sport = next((p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == port), None)
            if sport is None and (svc.get("spec") or {}).get("type") != "ExternalName":
                return _refused("BackendNotFound", f"{what} has no port {port}")
            closers = self.policies.closers([("backend", ("", "Service", ns, name), None)])
            if closers:
                return _refused(
                    "BackendNotFound",
                    f"{what}: {', '.join(display(c) for c in closers)} targets it and is not accepted",
                )
            ap = (sport or {}).get("appProtocol") or ""
            out: dict[str, Any]
            if ap in MCP_APP_PROTOCOLS and not grpc:
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
            return _Ref(
                out,
                a2a=not grpc and (ap in A2A_APP_PROTOCOLS or bool(bpol.get("a2a") is not None)),
                sources={f"policies.{pk}": {bsrc[pk]} for pk in bpol},
                http2=("", "Service", ns, name) if "service" in out and ap.lower() in HTTP2_APP_PROTOCOLS else None,
            )
        b = self.store.get(g, k, ns, name)
        if b is None:
            return _refused("BackendNotFound", f"{what} not found")
        rb, problems, is_a2a = self.backends.translate(b)
        if rb is None:
            return _refused("BackendNotFound", f"{what} is not accepted: {problems_message(problems)}")
        if grpc and not ({"host", "dynamic"} & set(rb)):
            kind_of = next((x for x in rb if x != "policies"), "")
            return _refused(
                "UnsupportedProtocol",
                f"{what}: a GRPCRoute relays gRPC calls to a static or dynamicForwardProxy backend or a Service,"
                f" not to an {kind_of} backend",
            )
        out = dict(rb)
        if weight is not None:
            out["weight"] = int(weight)
        return _Ref(
            out,
            a2a=not grpc and (is_a2a or "a2a" in (rb.get("policies") or {})),
            sources=self.backends.sources(okey(b)),
        )
