"""A Gateway's listeners, checked: what routes can attach to and what the Gateway serves.

`gateway_listeners` turns ``spec.listeners`` into `Listener` records with their status
conditions: the protocol (HTTP, HTTPS), the route kinds allowed (HTTPRoute, GRPCRoute,
AgentgatewayModel), the HTTPS certificate (a Secret, across namespaces only with a
ReferenceGrant), what the proxy refused of the listener, and conflicts between listeners
on one port. Routes then attach to the listeners
that are ``ok`` (`agentgw.kube.routes`), and the Gateway's config is built from them
(`agentgw.kube.gateways`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import policies as P
from .objects import AGW, GW, generation, labels_match, meta, ns_of, safe_name
from .status import cond, problems_message
from .store import ObjectStore


def listener_key(ns: str, gateway: str, listener: str) -> tuple[str, str, str, str, str]:
    """A Gateway's listener, where the proxy's refusals can be pinned (a bad certificate)."""
    return (GW, "Gateway", ns, gateway, listener)


@dataclass
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str | None
    spec: dict
    conditions: dict = field(default_factory=dict)
    ok: bool = True
    tls: dict | None = None
    attached: int = 0
    routes: list[dict] = field(default_factory=list)
    route_sources: list[dict] = field(default_factory=list)  # per route: relative path -> object keys
    #: ``allowedRoutes.kinds`` lists AgentgatewayModel (the listener serves models)
    models: bool = False
    #: the Gateway API route kinds that may attach (all of `ROUTE_KINDS` when
    #: ``allowedRoutes.kinds`` is empty, else those it lists)
    route_kinds: tuple[str, ...] = ()
    #: what the listener's status says it supports (``supportedKinds``)
    supported_kinds: list[dict] = field(default_factory=list)


MODEL_KIND = "AgentgatewayModel"
#: the Gateway API route kinds agentgw attaches to HTTP and HTTPS listeners
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


def namespace_allowed(store: ObjectStore, gl: Listener, gns: str, rns: str) -> bool:
    """Whether the listener's ``allowedRoutes.namespaces`` admits objects from namespace ``rns``."""
    ns_spec = ((gl.spec.get("allowedRoutes") or {}).get("namespaces")) or {}
    frm = ns_spec.get("from", "Same")
    if frm == "All":
        return True
    if frm == "Same":
        return gns == rns
    if frm == "Selector":
        nsobj = store.get("", "Namespace", "", rns)
        labels = dict(meta(nsobj).get("labels") or {}) if nsobj else {}
        labels.setdefault("kubernetes.io/metadata.name", rns)
        return labels_match(labels, ns_spec.get("selector") or {})
    return False


def gateway_listeners(store: ObjectStore, gw: dict) -> list[Listener]:
    """The Gateway's listeners with their conditions; ``ok`` on those routes can attach to."""
    ns = ns_of(gw)
    gen = generation(gw)
    out: list[Listener] = []
    for spec in (gw.get("spec") or {}).get("listeners") or []:
        lst = Listener(
            spec.get("name", ""), int(spec.get("port", 0)), spec.get("protocol", "HTTP"), spec.get("hostname"), spec
        )
        conds = {
            "Accepted": cond("Accepted", True, "Accepted", "listener accepted", gen),
            "Programmed": cond("Programmed", True, "Programmed", "listener programmed", gen),
            "ResolvedRefs": cond("ResolvedRefs", True, "ResolvedRefs", "all references resolved", gen),
            "Conflicted": cond("Conflicted", False, "NoConflicts", "no conflicts", gen),
        }
        if lst.protocol not in ("HTTP", "HTTPS"):
            conds["Accepted"] = cond(
                "Accepted",
                False,
                "UnsupportedProtocol",
                f"protocol {lst.protocol} is not supported (HTTP, HTTPS)",
                gen,
            )
            conds["Programmed"] = cond("Programmed", False, "Invalid", "listener not accepted", gen)
            lst.ok = False
        kinds = ((spec.get("allowedRoutes") or {}).get("kinds")) or []
        listed = {(k.get("group", GW), k.get("kind")) for k in kinds}
        http = lst.protocol in ("HTTP", "HTTPS")
        # AgentgatewayModel is opt-in, as in agentgateway: only a listener that lists it takes models
        lst.models = http and (AGW, MODEL_KIND) in listed
        lst.route_kinds = tuple(k for k in ROUTE_KINDS if not kinds or (GW, k) in listed) if http else ()
        lst.supported_kinds = [{"group": GW, "kind": k} for k in lst.route_kinds]
        if lst.models:
            lst.supported_kinds.append({"group": AGW, "kind": MODEL_KIND})
        supported = {(GW, k) for k in ROUTE_KINDS} | {(AGW, MODEL_KIND)}
        bad_kinds = [k for k in kinds if (k.get("group", GW), k.get("kind")) not in supported]
        if bad_kinds:
            # Gateway API: the kinds that are not supported are left out of supportedKinds and
            # said in ResolvedRefs; the listener still takes the ones that are
            names = ", ".join(f"{k.get('group', GW)}/{k.get('kind')}" for k in bad_kinds)
            conds["ResolvedRefs"] = cond(
                "ResolvedRefs",
                False,
                "InvalidRouteKinds",
                f"route kinds not supported: {names} (supported: HTTPRoute, GRPCRoute, {AGW}/{MODEL_KIND})",
                gen,
            )
            if len(bad_kinds) == len(kinds):
                conds["Programmed"] = cond("Programmed", False, "Invalid", "no supported route kinds", gen)
                lst.ok = False
        if lst.protocol == "HTTPS" and lst.ok:
            tls = spec.get("tls") or {}
            if tls.get("mode", "Terminate") != "Terminate":
                conds["Accepted"] = cond(
                    "Accepted", False, "UnsupportedValue", "only tls.mode Terminate is supported", gen
                )
                lst.ok = False
            else:
                refs = tls.get("certificateRefs") or []
                err = None
                if not refs:
                    err = ("InvalidCertificateRef", "tls.certificateRefs: required for HTTPS")
                else:
                    ref = refs[0]
                    sns = ref.get("namespace") or ns
                    if ref.get("group", "") != "" or ref.get("kind", "Secret") != "Secret":
                        err = ("InvalidCertificateRef", "certificateRefs[0]: only Secrets are supported")
                    elif not store.granted(GW, "Gateway", ns, "", "Secret", sns, ref.get("name", "")):
                        err = (
                            "RefNotPermitted",
                            f"certificateRefs[0]: Secret {sns}/{ref.get('name')} in another namespace needs a ReferenceGrant",
                        )
                    else:
                        sec = store.secret(sns, ref.get("name", ""))
                        data = P.secret_data(sec) if sec else {}
                        if sec is None or not data.get("tls.crt") or not data.get("tls.key"):
                            err = (
                                "InvalidCertificateRef",
                                f"certificateRefs[0]: Secret {sns}/{ref.get('name')} not found or without tls.crt/tls.key",
                            )
                        else:
                            base = safe_name("tls", sns, ref["name"])
                            lst.tls = {
                                "cert": base + ".crt",
                                "key": base + ".key",
                                "_files": {base + ".crt": data["tls.crt"], base + ".key": data["tls.key"]},
                            }
                if err:
                    conds["ResolvedRefs"] = cond("ResolvedRefs", False, err[0], err[1], gen)
                    conds["Programmed"] = cond("Programmed", False, "Invalid", err[1], gen)
                    lst.ok = False
        refused = store.refused.get(listener_key(ns, meta(gw)["name"], lst.name))
        if refused and lst.ok:
            msg = problems_message(refused)
            if any(".tls" in r.split(":", 1)[0] for r in refused):
                conds["ResolvedRefs"] = cond("ResolvedRefs", False, "InvalidCertificateRef", msg, gen)
            else:
                conds["Accepted"] = cond("Accepted", False, "UnsupportedValue", msg, gen)
            conds["Programmed"] = cond("Programmed", False, "Invalid", msg, gen)
            lst.ok = False
        lst.conditions = conds
        out.append(lst)
    # conflicts: one port must carry one protocol; hostnames on a port must be distinct
    by_port: dict[int, list[Listener]] = {}
    for lst in out:
        by_port.setdefault(lst.port, []).append(lst)
    for port, ls in by_port.items():
        if len({gl.protocol for gl in ls}) > 1:
            for gl in ls:
                gl.conditions["Conflicted"] = cond(
                    "Conflicted", True, "ProtocolConflict", f"port {port} is used with several protocols", gen
                )
                gl.conditions["Programmed"] = cond("Programmed", False, "Invalid", "listener conflicts", gen)
                gl.ok = False
            continue
        seen: dict[str | None, Listener] = {}
        for gl in ls:
            if gl.hostname in seen:
                gl.conditions["Conflicted"] = cond(
                    "Conflicted",
                    True,
                    "HostnameConflict",
                    f"hostname {gl.hostname or '(any)'} on port {port} is used by listener {seen[gl.hostname].name}",
                    gen,
                )
                gl.conditions["Programmed"] = cond("Programmed", False, "Invalid", "listener conflicts", gen)
                gl.ok = False
            else:
                seen[gl.hostname] = gl
    return out
