"""Gateway API + agentgateway CRDs → agentgw config, status and errors. Pure: no I/O.

``translate(objects)`` takes every relevant Kubernetes object as a dict and returns, for
each Gateway this controller owns, the agentgw config (a dict in the standalone schema,
accepted by `agentgw.config.load_config_text`) plus the files the config refers to (TLS
material), and for every object the status it should carry. The controller writes both;
``agentgw k8s translate`` prints them.

Ownership: a Gateway is ours when its GatewayClass names our ``controllerName``. Offline
(``offline=True``) a Gateway whose GatewayClass is not among the objects is treated as
ours too, so vendor manifests (``gatewayClassName: enterprise-agentgateway``) translate
as they are.

Policy precedence (most specific wins, field by field — ``jwtAuth``, ``localRateLimit``…):
Gateway < listener (``sectionName``) < HTTPRoute < rule (``sectionName`` = rule name) <
the rule's own filters/timeouts. At one level, the oldest policy (creationTimestamp, then
namespace/name) wins a field. Backend policies: the AgentgatewayBackend's own
``spec.policies`` < policies targeting the backend (or Service).

Accepted means enforced. Every object translated is first validated against its schema
(`agentgw.kube.schema`: unknown or misspelled fields, types, enums, rules); an invalid object
is ``Accepted=False`` (reason ``Invalid``, the message naming each field path) and is not
applied: an invalid Gateway gets no config, an invalid HTTPRoute is not attached, an invalid
backend answers 500 on the routes that use it. A policy that cannot be applied closes what
it targets instead of leaving it unprotected: the routes under its targets answer 500 (a
policy that only configures tracing or access logs is just left out). `agentgw.kube.check`
then runs the proxy's own config validation and compiler on each Gateway's config and
refuses, the same way, the objects a failure comes from (``refused``), using the field
provenance recorded in ``GatewayOutput.sources``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import CONTROLLER_NAME
from . import policies as P
from . import schema as SCHEMA

GW = "gateway.networking.k8s.io"
AGW = "agentgateway.dev"
ENT = "enterpriseagentgateway.solo.io"
ACK = "agentgateway.alibabacloud.com"
RL = "ratelimit.solo.io"

CLUSTER_SCOPED = {"GatewayClass", "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
A2A_APP_PROTOCOLS = {"kgateway.dev/a2a", "agentgateway.dev/a2a", "a2a"}
MCP_APP_PROTOCOLS = {"kgateway.dev/mcp", "agentgateway.dev/mcp", "mcp"}
POLICY_KINDS = {(AGW, "AgentgatewayPolicy"), (ENT, "EnterpriseAgentgatewayPolicy"), (ACK, "TrafficPolicy")}
BACKEND_KINDS = {(AGW, "AgentgatewayBackend"), (ACK, "Backend")}
SUPPORTED_ROUTE_KINDS = [{"group": GW, "kind": "HTTPRoute"}]
CLUSTER_DOMAIN = "svc.cluster.local"
#: what a route answers when a policy that applies to it is not accepted
CLOSED_RESPONSE = {
    "body": '{"error":{"type":"policy_not_accepted","message":"a policy that applies to this route is not accepted"}}',
    "status": 500,
    "headers": {"content-type": "application/json"},
}
MAX_PROBLEMS = 10


def problems_message(problems: list[str]) -> str:
    ps = list(dict.fromkeys(problems))
    if len(ps) > MAX_PROBLEMS:
        return "; ".join(ps[:MAX_PROBLEMS]) + f"; and {len(ps) - MAX_PROBLEMS} more"
    return "; ".join(ps)


def group_of(obj: dict) -> str:
    av = obj.get("apiVersion", "")
    return av.split("/")[0] if "/" in av else ""


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def ns_of(obj: dict) -> str:
    if obj.get("kind") in CLUSTER_SCOPED:
        return ""
    return meta(obj).get("namespace") or "default"


def okey(obj: dict) -> tuple[str, str, str, str]:
    return (group_of(obj), obj.get("kind", ""), ns_of(obj), meta(obj).get("name", ""))


def listener_key(ns: str, gateway: str, listener: str) -> tuple[str, str, str, str, str]:
    """A Gateway's listener, where the proxy's refusals can be pinned (a bad certificate)."""
    return (GW, "Gateway", ns, gateway, listener)


def cond(type_: str, ok: bool, reason: str, message: str, gen: int) -> dict:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
    }


def _gen(obj: dict) -> int:
    return int(meta(obj).get("generation") or 1)


def _age_key(obj: dict) -> tuple:
    return (meta(obj).get("creationTimestamp") or "", ns_of(obj), meta(obj).get("name", ""))


def display(k: tuple[str, str, str, str]) -> str:
    _group, kind, ns, name = k
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


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


def _file_name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", "-".join(parts))


@dataclass
class GatewayOutput:
    namespace: str
    name: str
    config: dict
    files: dict[str, str] = field(default_factory=dict)
    parameters: dict | None = None
    listeners: list[dict] = field(default_factory=list)  # {name, port, protocol}
    gateway: dict = field(default_factory=dict)
    #: config path ("binds[0].listeners[1].routes[2].policies.jwtAuth") -> keys of the objects it comes from
    sources: dict[str, set] = field(default_factory=dict)
    #: the AgentgatewayParameters objects merged into ``parameters``
    parameter_objects: list[tuple] = field(default_factory=list)

    def digest(self) -> str:
        import json

        h = hashlib.sha256(json.dumps([self.config, self.files], sort_keys=True).encode())
        return h.hexdigest()[:16]


@dataclass
class Result:
    gateways: dict[tuple[str, str], GatewayOutput] = field(default_factory=dict)
    status: dict[tuple[str, str, str, str], dict] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Listener:
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
    prerouting: dict = field(default_factory=dict)


@dataclass
class _Attachment:
    policy: dict
    level: str  # gateway | listener | route | rule | backend
    target: tuple  # (group, kind, ns, name)
    section: str | None
    traffic: dict
    phase: str
    backend: dict
    config: dict
    frontend: dict


#: schema problems of stored objects, by (key, uid, resourceVersion): a version never changes
_VALIDATED: dict[tuple, list[str]] = {}


class Translator:
    def __init__(
        self,
        objects: list[dict],
        controller_name: str = CONTROLLER_NAME,
        offline: bool = False,
        redis_url: str | None = None,
        refused: dict[tuple, list[str]] | None = None,
        failed_gateways: dict[tuple[str, str], str] | None = None,
    ):
        self.controller_name = controller_name
        self.redis_url = redis_url
        self.offline = offline
        #: objects refused from outside the schema (the proxy's compiler): key -> problems
        self.refused = dict(refused or {})
        #: Gateways (namespace, name) whose config the proxy refuses as a whole -> why
        self.failed_gateways = dict(failed_gateways or {})
        self._problems: dict[tuple, list[str]] = {}
        #: (level, target, section) -> keys of the policies not accepted that target it (closed)
        self.closed: dict[tuple, list[tuple]] = {}
        self.bad_gateways: dict[tuple[str, str], str] = {}
        self.by_kind: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        for o in objects:
            if not isinstance(o, dict) or not o.get("kind"):
                continue
            self.by_kind.setdefault((group_of(o), o["kind"]), {})[(ns_of(o), meta(o).get("name", ""))] = o
        self.res = Result()
        self.resolver = P.Resolver(self._secret, self._service_url, self._config_map)
        self.attachments: list[_Attachment] = []

    # -- validation -------------------------------------------------------------------------
    def problems(self, obj: dict) -> list[str]:
        """Why ``obj`` cannot be applied as written: its schema, the fields ``kubectl apply``
        sent that the API server dropped, and what the proxy refused of it."""
        k = okey(obj)
        if k not in self._problems:
            md = meta(obj)
            ck = (k, md["uid"], md["resourceVersion"]) if md.get("resourceVersion") and md.get("uid") else None
            found = _VALIDATED.get(ck) if ck else None
            if found is None:
                found = SCHEMA.validate(obj) + SCHEMA.validate_last_applied(obj)
                if ck:
                    if len(_VALIDATED) > 8192:
                        _VALIDATED.clear()
                    _VALIDATED[ck] = found
            self._problems[k] = list(found) + list(self.refused.get(k, []))
        return self._problems[k]

    # -- lookups ----------------------------------------------------------------------------
    def get(self, group: str, kind: str, ns: str, name: str) -> dict | None:
        return self.by_kind.get((group, kind), {}).get((ns, name))

    def all(self, group: str, kind: str) -> list[dict]:
        return sorted(self.by_kind.get((group, kind), {}).values(), key=_age_key)

    def _secret(self, ns: str, name: str) -> dict | None:
        return self.get("", "Secret", ns, name)

    def _config_map(self, ns: str, name: str) -> dict | None:
        return self.get("", "ConfigMap", ns, name)

    def granted(
        self, from_group: str, from_kind: str, from_ns: str, to_group: str, to_kind: str, to_ns: str, to_name: str
    ) -> bool:
        if from_ns == to_ns:
            return True
        for rg in self.all(GW, "ReferenceGrant"):
            if ns_of(rg) != to_ns or self.problems(rg):
                continue  # an invalid grant grants nothing
            spec = rg.get("spec") or {}
            if not any(
                f.get("group", "") == from_group and f.get("kind") == from_kind and f.get("namespace") == from_ns
                for f in spec.get("from") or []
            ):
                continue
            for t in spec.get("to") or []:
                if (
                    t.get("group", "") == to_group
                    and t.get("kind") == to_kind
                    and (not t.get("name") or t.get("name") == to_name)
                ):
                    return True
        return False

    def service_host(self, svc: dict) -> str:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" and spec.get("externalName"):
            return spec["externalName"]
        return f"{meta(svc)['name']}.{ns_of(svc)}.{CLUSTER_DOMAIN}"

    def expand_host(self, host: str, ns: str) -> str:
        """A bare Service name in the object's namespace becomes that Service's cluster DNS name."""
        if "." not in host and ":" not in host and self.get("", "Service", ns, host) is not None:
            return f"{host}.{ns}.{CLUSTER_DOMAIN}"
        return host

    def _service_url(
        self, ref: dict, from_ns: str, from_what: str, from_group: str = AGW, from_kind: str = "AgentgatewayPolicy"
    ) -> tuple[str | None, str | None]:
        ns = ref.get("namespace") or from_ns
        name = ref.get("name", "")
        kind = ref.get("kind", "Service")
        if ref.get("group", "") != "" or kind != "Service":
            return None, f"unsupported kind {ref.get('group', '')}/{kind} (only Service)"
        if not self.granted(from_group, from_kind, from_ns, "", "Service", ns, name):
            return None, f"reference to Service {ns}/{name} is not permitted by any ReferenceGrant in namespace {ns}"
        svc = self.get("", "Service", ns, name)
        if svc is None:
            return None, f"Service {ns}/{name} not found"
        port = ref.get("port")
        if port is None:
            ports = (svc.get("spec") or {}).get("ports") or []
            if len(ports) != 1:
                return None, f"port is required (Service {ns}/{name} has {len(ports)} ports)"
            port = ports[0]["port"]
        return f"http://{self.service_host(svc)}:{port}", None

    # -- entry ------------------------------------------------------------------------------
    def run(self) -> Result:
        classes = self._gateway_classes()
        self._policies()
        self.attachments.sort(key=lambda a: _age_key(a.policy))
        self._backends_status()
        for rg in self.all(GW, "ReferenceGrant"):
            for p in self.problems(rg):  # a ReferenceGrant has no status: the error is all there is
                self.res.errors.append(f"{display(okey(rg))}: not accepted (grants nothing): {p}")
        gateways = []
        for gw in self.all(GW, "Gateway"):
            cls = (gw.get("spec") or {}).get("gatewayClassName") or ""
            if cls in classes:
                pass
            elif self.offline and self.get(GW, "GatewayClass", "", cls) is None:
                self.res.notes.append(
                    f"{display(okey(gw))}: GatewayClass {cls!r} is not among the manifests; translated as if it named {self.controller_name}"
                )
            else:
                continue
            why = None
            if classes.get(cls):
                why = f"GatewayClass {cls} is not accepted: {classes[cls]}"
            elif self.problems(gw):
                why = problems_message(self.problems(gw))
            elif (ns_of(gw), meta(gw).get("name", "")) in self.failed_gateways:
                why = self.failed_gateways[(ns_of(gw), meta(gw).get("name", ""))]
            if why is not None:
                self._refuse_gateway(gw, why)
                continue
            gateways.append(gw)
        gw_listeners = {(ns_of(g), meta(g)["name"]): self._listeners(g) for g in gateways}
        self._routes(gw_listeners)
        for gw in gateways:
            self._gateway(gw, gw_listeners[(ns_of(gw), meta(gw)["name"])])
        self._errors_from_status()
        for cm in self.all("", "ConfigMap"):
            if any(isinstance(v, str) and re.search(r"^\s*binds:", v, re.M) for v in (cm.get("data") or {}).values()):
                self.res.notes.append(
                    f"{display(okey(cm))}: holds a gateway config file, not Gateway API objects; nothing to translate (mount it and run `agentgw run -f`, or see docs/kubernetes.md for its Gateway API form)"
                )
        return self.res

    def _refuse_gateway(self, gw: dict, why: str) -> None:
        """A Gateway that is not applied: no config, no listeners; its routes are told so."""
        ns, name, gen = ns_of(gw), meta(gw)["name"], _gen(gw)
        self.bad_gateways[(ns, name)] = why
        self.res.status[okey(gw)] = {
            "conditions": [
                cond("Accepted", False, "Invalid", why, gen),
                cond("Programmed", False, "Invalid", "not accepted", gen),
            ]
        }

    # -- GatewayClass -----------------------------------------------------------------------
    def _gateway_classes(self) -> dict[str, str | None]:
        """Our GatewayClasses -> None when accepted, else why not."""
        ours: dict[str, str | None] = {}
        for gc in self.all(GW, "GatewayClass"):
            spec = gc.get("spec") or {}
            if spec.get("controllerName") != self.controller_name:
                continue
            name = meta(gc)["name"]
            ok, reason, msg = True, "Accepted", f"handled by {self.controller_name}"
            pref = spec.get("parametersRef")
            probs = self.problems(gc)
            if probs:
                ok, reason, msg = False, "Invalid", problems_message(probs)
            elif pref:
                params = self.get(AGW, "AgentgatewayParameters", pref.get("namespace") or "", pref.get("name", ""))
                if pref.get("group") != AGW or pref.get("kind") != "AgentgatewayParameters":
                    ok, reason, msg = False, "InvalidParameters", f"parametersRef must be {AGW}/AgentgatewayParameters"
                elif params is None:
                    ok, reason, msg = (
                        False,
                        "InvalidParameters",
                        f"AgentgatewayParameters {pref.get('namespace')}/{pref.get('name')} not found",
                    )
                elif self.problems(params):
                    ok, reason, msg = (
                        False,
                        "InvalidParameters",
                        f"AgentgatewayParameters {pref.get('namespace')}/{pref.get('name')} is not accepted: {problems_message(self.problems(params))}",
                    )
            # a class whose parameters are at fault still handles its Gateways (they report the
            # parameters problem themselves); an invalid class does not
            ours[name] = msg if not ok and reason == "Invalid" else None
            self.res.status[okey(gc)] = {"conditions": [cond("Accepted", ok, reason, msg, _gen(gc))]}
        return ours

    # -- policies ---------------------------------------------------------------------------
    def _policies(self) -> None:
        for grp, kind in sorted(POLICY_KINDS):
            for pol in self.all(grp, kind):
                self._policy(pol)

    def _policy(self, pol: dict) -> None:
        ns = ns_of(pol)
        spec = pol.get("spec") or {}
        gen = _gen(pol)
        problems: list[str] = list(self.problems(pol))
        traffic: dict = {}
        backend: dict = {}
        cfg: dict = {}
        fp: dict = {}
        phase = "PostRouting"
        if not problems:  # sections are read only from a spec that matches its schema
            bad_rlc: list[str] = []

            def rlc(n: str, nm: str) -> dict | None:
                o = self.get(RL, "RateLimitConfig", n, nm)
                if o is not None and self.problems(o):
                    bad_rlc.extend(f"RateLimitConfig {n}/{nm} is not valid: {x}" for x in self.problems(o))
                return o

            traffic, phase, tp = P.traffic(spec.get("traffic") or {}, ns, self.resolver, rlc, redis_url=self.redis_url)
            problems += bad_rlc + tp
            backend, bp = P.backend(spec.get("backend") or {}, ns, self.resolver)
            problems += bp
            cfg, fp, fpp = P.frontend(spec.get("frontend") or {}, ns, self.resolver)
            problems += fpp
        # what it would enforce, were it applied: anything but observability settings
        enforcing = any(k not in ("targetRefs", "frontend") for k in spec)
        ancestors: list[dict[str, Any]] = []
        targets = [t for t in spec.get("targetRefs") or [] if isinstance(t, dict)]
        if not targets:
            problems.append("spec.targetRefs: at least one target is required")
        for i, t in enumerate(targets):  # a missing target fails the policy on all of them
            if self.get(t.get("group", ""), t.get("kind", ""), ns, t.get("name", "")) is None:
                problems.append(f"spec.targetRefs[{i}]: {t.get('kind', '')} {ns}/{t.get('name', '')} not found")
        for i, t in enumerate(targets):
            tg, tk, tn = t.get("group", ""), t.get("kind", ""), t.get("name", "")
            section = t.get("sectionName")
            level = {
                (GW, "Gateway"): "listener" if section else "gateway",
                (GW, "HTTPRoute"): "rule" if section else "route",
            }.get((tg, tk))
            if (tg, tk) in BACKEND_KINDS or (tg, tk) == ("", "Service"):
                level = "backend"
            tkey = (tg, tk, ns, tn)
            aref = {"group": tg, "kind": tk, "name": tn, "namespace": ns}
            if section:
                aref["sectionName"] = section
            if level is None:
                ancestors.append(
                    {
                        "ancestorRef": aref,
                        "controllerName": self.controller_name,
                        "conditions": [
                            cond("Accepted", False, "Invalid", f"targetRefs[{i}]: cannot attach to {tg}/{tk}", gen)
                        ],
                    }
                )
                continue
            if self.get(tg, tk, ns, tn) is None:
                ancestors.append(
                    {
                        "ancestorRef": aref,
                        "controllerName": self.controller_name,
                        "conditions": [cond("Accepted", False, "TargetNotFound", f"{tk} {ns}/{tn} not found", gen)],
                    }
                )
                continue
            bad = []
            if level not in ("gateway", "listener") and (cfg or fp):
                bad.append("spec.frontend: only applies to a Gateway")
            if level == "backend" and traffic:
                bad.append("spec.traffic: does not apply to a backend")
            ok = not problems and not bad
            reason = (
                "Accepted" if ok else ("RefNotPermitted" if any("not permitted" in p for p in problems) else "Invalid")
            )
            msg = "attached" if ok else problems_message(problems + bad)
            ancestors.append(
                {
                    "ancestorRef": aref,
                    "controllerName": self.controller_name,
                    "conditions": [cond("Accepted", ok, reason, msg, gen)],
                }
            )
            if ok:
                self.attachments.append(_Attachment(pol, level, tkey, section, traffic, phase, backend, cfg, fp))
            elif enforcing:
                self.closed.setdefault((level, tkey, section), []).append(okey(pol))
        all_ok = bool(ancestors) and all(a["conditions"][0]["status"] == "True" for a in ancestors) and not problems
        if all_ok:
            top = cond("Accepted", True, "Accepted", "policy accepted", gen)
        else:
            reasons = [a["conditions"][0]["reason"] for a in ancestors if a["conditions"][0]["status"] != "True"]
            reason = (
                reasons[0]
                if reasons
                else ("RefNotPermitted" if any("not permitted" in p for p in problems) else "Invalid")
            )
            msgs = problems or [
                a["conditions"][0]["message"] for a in ancestors if a["conditions"][0]["status"] != "True"
            ]
            top = cond("Accepted", False, reason, problems_message(msgs), gen)
        self.res.status[okey(pol)] = {"conditions": [top], "ancestors": ancestors}

    def _merged(self, levels: list[tuple[str, tuple, str | None]], what: str, phase: str | None = None) -> dict:
        return self._merged_src(levels, what, phase)[0]

    def _merged_src(
        self, levels: list[tuple[str, tuple, str | None]], what: str, phase: str | None = None
    ) -> tuple[dict, dict[str, tuple]]:
        """Merge policy sections over levels (least specific first); oldest policy wins within a level.
        Also returns, per merged key, the policy it came from."""
        out: dict = {}
        src: dict[str, tuple] = {}
        for level, target, section in levels:
            layer: dict = {}
            lsrc: dict[str, tuple] = {}
            for a in self.attachments:  # oldest first (sorted once, in run)
                if a.level != level or a.target != target or a.section != section:
                    continue
                if (
                    phase is not None
                    and a.phase != phase
                    and (phase == "PreRouting" or level in ("gateway", "listener"))
                ):
                    continue  # PreRouting only lifts Gateway/listener policies to the listener
                for k, v in getattr(a, what).items():
                    if k not in layer:
                        layer[k] = v
                        lsrc[k] = okey(a.policy)
            out.update(layer)
            src.update(lsrc)
        return out, src

    def _closers(self, levels: list[tuple[str, tuple, str | None]]) -> list[tuple]:
        """Policies not accepted that target any of these levels."""
        return [p for lv in levels for p in self.closed.get(lv, [])]

    # -- backends (status only; translation happens per reference) ---------------------------
    def _backends_status(self) -> None:
        self._backend_cache: dict[tuple, tuple[dict | None, list[str], bool]] = {}
        for grp, kind in sorted(BACKEND_KINDS):
            for b in self.all(grp, kind):
                _rb, problems, _a2a = self.backend_object(b)
                gen = _gen(b)
                if problems:
                    c = cond("Accepted", False, "Invalid", "; ".join(problems), gen)
                else:
                    c = cond("Accepted", True, "Accepted", "backend accepted", gen)
                self.res.status[okey(b)] = {"conditions": [c]}

    def backend_object(self, b: dict) -> tuple[dict | None, list[str], bool]:
        """An AgentgatewayBackend / ACK Backend → (route backend dict, problems, is_a2a)."""
        k = okey(b)
        if k in getattr(self, "_backend_cache", {}):
            return self._backend_cache[k]
        if not hasattr(self, "_backend_src"):
            self._backend_src: dict[tuple, dict[str, set]] = {}
        ns = ns_of(b)
        name = meta(b).get("name", "")
        spec = dict(b.get("spec") or {})
        problems: list[str] = list(self.problems(b))
        closers = self._closers([("backend", k, None)])
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
            kinds = [x for x in ("static", "a2a", "ai", "mcp", "aws") if x in spec]
            extra = [x for x in spec if x not in ("static", "a2a", "ai", "mcp", "aws")]
            for x in extra:
                problems.append(f"spec.{x}: not supported by agentgw")
            if len(kinds) != 1:
                problems.append(
                    f"spec: exactly one of static, a2a, ai, mcp, aws must be set (got: {', '.join(kinds) or 'none'})"
                )
            else:
                kind = kinds[0]
                val = spec[kind] or {}
                if kind == "static":
                    if not val.get("host") or not val.get("port"):
                        problems.append("spec.static: host and port are required")
                    else:
                        out = {"host": f"{self.expand_host(str(val['host']), ns)}:{int(val['port'])}"}
                elif kind == "a2a":
                    out, a2a = {"a2a": self._a2a_targets(val, ns, "spec.a2a", problems)}, True
                elif kind == "mcp":
                    out = {"mcp": self._mcp(val, ns, problems)}
                elif kind == "ai":
                    out = {"ai": self._ai(val, name, problems)}
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
        bpol, bp = P.backend(pol_spec, ns, self.resolver, "spec.policies")
        problems += bp
        src: dict[str, set] = {"": {k}}
        if out is not None:
            attached, asrc = self._merged_src([("backend", okey(b), None)], "backend")
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
            entry: dict[str, Any] = {"static": {"host": self.expand_host(str(st["host"]), ns), "port": int(st["port"])}}
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
                    "host": self.expand_host(str(st["host"]), ns),
                    "port": int(st["port"]),
                    "path": str(st.get("path") or ("/sse" if kind == "sse" else "/mcp")),
                }
                targets.append({"name": tname, kind: host_spec})
            elif "selector" in t:
                sel = t["selector"] or {}
                svc_sel = sel.get("services") or sel.get("service") or {}
                nss = self._selected_namespaces(sel.get("namespaces"), ns)
                found = 0
                for svc in self.all("", "Service"):
                    if ns_of(svc) not in nss or not _labels_match(meta(svc).get("labels") or {}, svc_sel):
                        continue
                    for port in (svc.get("spec") or {}).get("ports") or []:
                        ap = port.get("appProtocol") or ""
                        if ap not in MCP_APP_PROTOCOLS and len((svc.get("spec") or {}).get("ports") or []) != 1:
                            continue
                        found += 1
                        targets.append(
                            {
                                "name": _file_name(meta(svc)["name"])
                                if ns_of(svc) == ns
                                else _file_name(ns_of(svc), meta(svc)["name"]),
                                "mcp": {"host": self.service_host(svc), "port": int(port["port"]), "path": "/mcp"},
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

    _PROVIDERS: ClassVar[dict[str, str]] = {
        "openai": "openAI",
        "anthropic": "anthropic",
        "gemini": "gemini",
        "vertexai": "vertex",
        "bedrock": "bedrock",
        "azureopenai": "azureOpenAI",
    }

    def _ai_provider(self, p: dict, name: str, path: str, problems: list[str]) -> dict:
        kinds = [k for k in p if k in self._PROVIDERS]
        if len(kinds) != 1:
            problems.append(f"{path}: exactly one provider ({', '.join(self._PROVIDERS)}) must be set")
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
        out: dict[str, Any] = {"name": str(p.get("name") or name), "provider": {self._PROVIDERS[kinds[0]]: keep}}
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
                for n in self.all("", "Namespace")
                if _labels_match({"kubernetes.io/metadata.name": meta(n)["name"], **(meta(n).get("labels") or {})}, sel)
            }
        return {own}

    # -- listeners --------------------------------------------------------------------------
    def _listeners(self, gw: dict) -> list[_Listener]:
        ns = ns_of(gw)
        gen = _gen(gw)
        out: list[_Listener] = []
        for spec in (gw.get("spec") or {}).get("listeners") or []:
            lst = _Listener(
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
            bad_kinds = [k for k in kinds if (k.get("group", GW), k.get("kind")) != (GW, "HTTPRoute")]
            if bad_kinds and len(bad_kinds) == len(kinds):
                conds["ResolvedRefs"] = cond(
                    "ResolvedRefs", False, "InvalidRouteKinds", "only HTTPRoute is supported", gen
                )
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
                        elif not self.granted(GW, "Gateway", ns, "", "Secret", sns, ref.get("name", "")):
                            err = (
                                "RefNotPermitted",
                                f"certificateRefs[0]: Secret {sns}/{ref.get('name')} in another namespace needs a ReferenceGrant",
                            )
                        else:
                            sec = self._secret(sns, ref.get("name", ""))
                            data = P.secret_data(sec) if sec else {}
                            if sec is None or not data.get("tls.crt") or not data.get("tls.key"):
                                err = (
                                    "InvalidCertificateRef",
                                    f"certificateRefs[0]: Secret {sns}/{ref.get('name')} not found or without tls.crt/tls.key",
                                )
                            else:
                                base = _file_name("tls", sns, ref["name"])
                                lst.tls = {
                                    "cert": base + ".crt",
                                    "key": base + ".key",
                                    "_files": {base + ".crt": data["tls.crt"], base + ".key": data["tls.key"]},
                                }
                    if err:
                        conds["ResolvedRefs"] = cond("ResolvedRefs", False, err[0], err[1], gen)
                        conds["Programmed"] = cond("Programmed", False, "Invalid", err[1], gen)
                        lst.ok = False
            refused = self.refused.get(listener_key(ns, meta(gw)["name"], lst.name))
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
        by_port: dict[int, list[_Listener]] = {}
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
            seen: dict[str | None, _Listener] = {}
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

    # -- routes -----------------------------------------------------------------------------
    def _routes(self, gw_listeners: dict[tuple[str, str], list[_Listener]]) -> None:
        for route in self.all(GW, "HTTPRoute"):
            self._route(route, gw_listeners)

    def _route(self, route: dict, gw_listeners: dict) -> None:
        rns, rname = ns_of(route), meta(route)["name"]
        rkey = okey(route)
        spec = route.get("spec") or {}
        gen = _gen(route)
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
            if gkey not in gw_listeners and gkey not in self.bad_gateways:
                if self.get(GW, "Gateway", *gkey) is None:
                    self.res.errors.append(
                        f"HTTPRoute {rns}/{rname}: spec.parentRefs[{pi}]: Gateway {gns}/{gkey[1]} not found"
                    )
                continue  # another controller's Gateway
            parent_ref = {"group": GW, "kind": "Gateway", "name": gkey[1], "namespace": gns}
            for k in ("sectionName", "port"):
                if pref.get(k) is not None:
                    parent_ref[k] = pref[k]
            if self.problems(route):
                conds = [cond("Accepted", False, "Invalid", problems_message(self.problems(route)), gen)]
                parents_status.append(
                    {"parentRef": parent_ref, "controllerName": self.controller_name, "conditions": conds}
                )
                continue
            if gkey in self.bad_gateways:
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
            accepted_on: list[tuple[_Listener, list[str]]] = []
            refusals: list[tuple[int, str, str]] = [(9, "NoMatchingParent", "no listener matches sectionName/port")]
            for gl in candidates:
                if not gl.ok:
                    refusals.append((3, "NoMatchingParent", f"listener {gl.name} is not accepted"))
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
                        closers = self._closers(full_levels)
                        src: dict[str, set] = {"": {rkey}}
                        if closers:
                            # a policy for this route is not accepted: answer 500 rather than serve without it
                            rr = {k: v for k, v in r.items() if k in ("name", "namespace", "ruleName", "matches")}
                            rr["policies"] = {"directResponse": dict(CLOSED_RESPONSE)}
                            src["policies.directResponse"] = set(closers)
                        else:
                            rr = dict(r)
                            pols, psrc = self._merged_src(full_levels, "traffic", "PostRouting")
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
                            bpols, bsrc = self._merged_src(full_levels, "backend")
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

    def _allowed(self, gl: _Listener, gns: str, rns: str) -> bool:
        ns_spec = ((gl.spec.get("allowedRoutes") or {}).get("namespaces")) or {}
        frm = ns_spec.get("from", "Same")
        if frm == "All":
            return True
        if frm == "Same":
            return gns == rns
        if frm == "Selector":
            nsobj = self.get("", "Namespace", "", rns)
            labels = dict(meta(nsobj).get("labels") or {}) if nsobj else {}
            labels.setdefault("kubernetes.io/metadata.name", rns)
            return _labels_match(labels, ns_spec.get("selector") or {})
        return False

    def _rules(self, route: dict) -> tuple[list[tuple[list, dict, dict]], dict]:
        """HTTPRoute rules → [(policy levels, config route, its sources)], ResolvedRefs condition.

        Sources: path in the config route → keys of the objects it comes from, where that
        is not the HTTPRoute itself (backends and their policies)."""
        rns, rname = ns_of(route), meta(route)["name"]
        gen = _gen(route)
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
            matches = [self._match(m) for m in rule.get("matches") or []]
            if matches and matches != [{"path": {"pathPrefix": "/"}}]:
                r["matches"] = matches
            pols: dict[str, Any] = {}
            for fi, f in enumerate(rule.get("filters") or []):
                err = self._filter(f, pols)
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
                    err = self._filter(f, bp)
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

    def _match(self, m: dict) -> dict:
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

    def _filter(self, f: dict, pols: dict) -> str | None:
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

    def _backend_ref(self, ref: dict, rns: str, path: str) -> tuple[dict | None, str, str, bool, dict[str, set]]:
        """A backendRef → (config backend, failure reason, failure message, is_a2a, sources)."""
        g, k = ref.get("group", ""), ref.get("kind", "Service")
        ns = ref.get("namespace") or rns
        name = ref.get("name", "")
        what = f"{path}: {k} {ns}/{name}"
        if (g, k) != ("", "Service") and (g, k) not in BACKEND_KINDS:
            return None, "InvalidKind", f"{path}: unsupported backend kind {g}/{k}", False, {}
        if not self.granted(GW, "HTTPRoute", rns, g, k, ns, name):
            return (
                None,
                "RefNotPermitted",
                f"{what}: reference to namespace {ns} is not permitted by any ReferenceGrant",
                False,
                {},
            )
        weight = ref.get("weight")
        if (g, k) == ("", "Service"):
            svc = self.get("", "Service", ns, name)
            if svc is None:
                return None, "BackendNotFound", f"{what} not found", False, {}
            port = ref.get("port")
            if port is None:
                return None, "UnsupportedValue", f"{what}: port is required", False, {}
            sport = next((p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == port), None)
            if sport is None and (svc.get("spec") or {}).get("type") != "ExternalName":
                return None, "BackendNotFound", f"{what} has no port {port}", False, {}
            closers = self._closers([("backend", ("", "Service", ns, name), None)])
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
                                "name": _file_name(name),
                                "mcp": {"host": self.service_host(svc), "port": int(port), "path": "/mcp"},
                            }
                        ]
                    }
                }
            else:
                out = {"service": {"name": {"namespace": ns, "hostname": self.service_host(svc)}, "port": int(port)}}
            bpol, bsrc = self._merged_src([("backend", ("", "Service", ns, name), None)], "backend")
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
        b = self.get(g, k, ns, name)
        if b is None:
            return None, "BackendNotFound", f"{what} not found", False, {}
        rb, problems, is_a2a = self.backend_object(b)
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
            dict(self._backend_src.get(okey(b), {"": {okey(b)}})),
        )

    # -- Gateway ----------------------------------------------------------------------------
    def _gateway(self, gw: dict, listeners: list[_Listener]) -> None:
        ns, name = ns_of(gw), meta(gw)["name"]
        gen = _gen(gw)
        spec = gw.get("spec") or {}
        gkey = (GW, "Gateway", ns, name)
        # parameters: GatewayClass parametersRef, overridden by the Gateway's infrastructure.parametersRef
        params = None
        param_err = None
        param_objs: list[tuple] = []
        gc = self.get(GW, "GatewayClass", "", spec.get("gatewayClassName", ""))
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
            p = self.get(AGW, "AgentgatewayParameters", pns, pr.get("name", ""))
            if p is None:
                param_err = f"AgentgatewayParameters {pns}/{pr.get('name')} not found"
                continue
            if self.problems(p):
                msg = problems_message(self.problems(p))
                param_err = f"AgentgatewayParameters {pns}/{pr.get('name')} is not accepted: {msg}"
                self.res.status[okey(p)] = {"conditions": [cond("Accepted", False, "Invalid", msg, _gen(p))]}
                continue
            params = _deep_merge(params or {}, p.get("spec") or {})
            param_objs.append(okey(p))
            self.res.status[okey(p)] = {
                "conditions": [cond("Accepted", True, "Accepted", "parameters accepted", _gen(p))]
            }
        config: dict[str, Any] = {"config": {"namespace": ns, "gateway": name}}
        sources: dict[str, set] = {"": {gkey}}
        files: dict[str, str] = {}
        logging = (params or {}).get("logging") or {}
        if logging:
            config["config"]["logging"] = {k: logging[k] for k in ("level", "format") if k in logging}
            sources["config.logging"] = set(param_objs)
        fcfg, fsrc = self._merged_src([("gateway", gkey, None)], "config")
        config["config"].update(fcfg)
        for k in fcfg:
            sources[f"config.{k}"] = {fsrc[k]}
        ffp, ffsrc = self._merged_src([("gateway", gkey, None)], "frontend")
        binds: dict[int, list[tuple[dict, _Listener, dict]]] = {}
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
            pre, presrc = self._merged_src(
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
        if ffp:
            config["frontendPolicies"] = ffp
            for k in ffp:
                sources[f"frontendPolicies.{k}"] = {ffsrc[k]}
        # the config loader substitutes $VAR in strings: generated values are literal
        config = _escape(json.loads(json.dumps(config)))
        files = {k: v for k, v in files.items()}
        raw = (params or {}).get("rawConfig")
        if raw:
            config = _deep_merge(config, raw)
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
            lstatus.append(
                {
                    "name": gl.name,
                    "supportedKinds": SUPPORTED_ROUTE_KINDS if gl.protocol in ("HTTP", "HTTPS") else [],
                    "attachedRoutes": gl.attached,
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

    def _files_in_route(self, r: dict, files: dict) -> dict:
        """Replace ConfigMap CA placeholders in backendTLS by file names."""
        for b in r.get("backends") or []:
            t = (b.get("policies") or {}).get("backendTLS")
            if t and isinstance(t.get("root"), tuple):
                _, cns, cname = t["root"]
                fname = _file_name("ca", cns, cname) + ".crt"
                cm = self._config_map(cns, cname)
                assert cm is not None  # (a placeholder is made only for a ConfigMap that exists)
                files[fname] = cm["data"]["ca.crt"]
                t["root"] = fname
        return r

    def _addresses(self, gw: dict) -> list[dict]:
        svc = self.get("", "Service", ns_of(gw), meta(gw)["name"])
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

    def _errors_from_status(self) -> None:
        for k, st in sorted(self.res.status.items()):
            for c in st.get("conditions") or []:
                if (
                    c["type"] in ("Accepted", "ResolvedRefs", "Programmed")
                    and c["status"] == "False"
                    and c["type"] != "Programmed"
                ):
                    self.res.errors.append(f"{display(k)}: {c['type']}={c['reason']}: {c['message']}")
            for gl in st.get("listeners") or []:
                for c in gl["conditions"]:
                    bad = (c["type"] == "Conflicted" and c["status"] == "True") or (
                        c["type"] in ("Accepted", "ResolvedRefs") and c["status"] == "False"
                    )
                    if bad:
                        self.res.errors.append(
                            f"{display(k)}: listener {gl['name']}: {c['type']}={c['reason']}: {c['message']}"
                        )
            for p in st.get("parents") or []:
                for c in p["conditions"]:
                    if c["status"] == "False":
                        self.res.errors.append(
                            f"{display(k)}: parent {p['parentRef']['namespace']}/{p['parentRef']['name']}: {c['type']}={c['reason']}: {c['message']}"
                        )


def _labels_match(labels: dict, sel: dict) -> bool:
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def _raw_sources(raw: Any, path: str, sources: dict[str, set], objs: set) -> None:
    """What ``rawConfig`` sets comes from the parameters (what it replaces no longer comes from elsewhere)."""
    if not isinstance(raw, dict):
        for p in [p for p in sources if p == path or p.startswith(path + ".") or p.startswith(path + "[")]:
            del sources[p]
        sources[path] = set(objs)
        return
    for k, v in raw.items():
        _raw_sources(v, f"{path}.{k}" if path else str(k), sources, objs)


def blame(path: str, sources: dict[str, set]) -> set | None:
    """The objects a config path comes from: those of its longest recorded prefix."""
    best = None
    for p in sources:
        if p == path or path.startswith(p + ".") or path.startswith(p + "[") or p == "":
            if best is None or len(p) > len(best):
                best = p
    return sources.get(best) if best is not None else None


def _escape(v: Any) -> Any:
    if isinstance(v, str):
        return v.replace("$", "$$")
    if isinstance(v, list):
        return [_escape(x) for x in v]
    if isinstance(v, dict):
        return {k: _escape(x) for k, x in v.items()}
    return v


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def translate(
    objects: list[dict], controller_name: str = CONTROLLER_NAME, offline: bool = False, redis_url: str | None = None
) -> Result:
    """Translate a set of Kubernetes objects; see the module docstring.

    ``redis_url``: where ``globalRateLimit`` keeps its counters; with it, ``RateLimitConfig``
    limits are shared by every proxy replica, without it they are per replica.
    """
    return Translator(objects, controller_name, offline, redis_url).run()
