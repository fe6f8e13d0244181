"""Top-level ``policies[]`` (agentgateway ``LocalPolicy``): each attaches one policy to a
route, to the standalone gateway or some of its listeners, or to a named backend.

They are expanded here into the inline ``policies`` of what they target, with
agentgateway's precedence (``store/binds.rs``):

* route phase, on a route: the route's inline policy wins (inline policies are merged
  last, and a later policy of a kind replaces an earlier one); a route-targeted policy
  wins over a listener-targeted one, which wins over a whole-gateway one;
* gateway phase, on a listener: merged into the listener's ``policies``;
* on a backend: the backend's inline policy wins (backend policies are first-set-wins,
  inline first).

The standalone identities are agentgateway's: the gateway is ``default/default``; a
route's namespace is ``default`` unless it sets one; a bind listener is named by its
``name`` (else ``listener<index>``), a named gateway's listener by ``<gateway>`` or
``<gateway>/<listener>``; a top-level backend has the empty namespace.

What cannot be honoured is refused with the policy's path: a target naming nothing,
``listenerSet`` and ``service`` targets, a ``ruleName`` or ``kind`` (standalone routes
have neither, so nothing matches), ``phase: gateway`` on a route or backend, a policy
kind the target cannot carry, two targeted policies of one kind on one target, and
``authorization`` / ``mcpAuthorization`` on a target that already has one
(agentgateway composes those; agentgw does not merge rule sets yet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import models as m

GATEWAY_NAME = GATEWAY_NAMESPACE = ROUTE_NAMESPACE = "default"
#: policy kinds agentgateway composes across levels instead of replacing
_COMPOSED = ("authorization", "mcp_authorization")

Add = Callable[[str, str], None]


def _kind(policy: m.RoutePolicies) -> str:
    return next(k for k in type(policy).model_fields if k in policy.model_fields_set and getattr(policy, k) is not None)


def _alias(model: type[m._Model], name: str) -> str:
    f = model.model_fields[name]
    return f.alias or name


def _set(owner: Any, attr: str, model: type[m._Model], kind: str, value: Any) -> None:
    """Set policy ``kind`` to ``value`` (the targeted policy's own, validated object) in
    ``owner.<attr>`` (a ``model``, created when unset), or in ``owner`` itself (``attr`` "")."""
    cur = getattr(owner, attr) if attr else owner
    if cur is None:
        cur = model()
        setattr(owner, attr, cur)
    setattr(cur, kind, value)
    cur.model_fields_set.add(kind)


class _Route:
    def __init__(self, route: m.Route, idx: int, listeners: list[str]):
        self.route = route
        self.name = route.name or f"route{idx}"
        self.namespace = route.namespace or ROUTE_NAMESPACE
        self.listeners = listeners  # listener references it is served on
        self.filled: dict[str, str] = {}  # kind -> tier that set it


def apply_targeted_policies(cfg: m.LocalConfig, add: Add) -> m.LocalConfig:
    """A copy of ``cfg`` with ``policies[]`` merged into what they target (``cfg`` itself
    when there are none); ``add(path, problem)`` for each that cannot be honoured."""
    if not cfg.policies:
        return cfg
    cfg = cfg.model_copy(deep=True)

    # listeners: reference -> (port, owner of its policies, attr, policies model)
    listeners: dict[str, tuple[int, Any, str, type[m._Model]]] = {}
    routes: list[_Route] = []
    for b in cfg.binds:
        for li, lst in enumerate(b.listeners):
            ref = lst.name or f"listener{li}"
            listeners[ref] = (b.port, lst, "policies", m.GatewayPolicies)
            for ri, r in enumerate(lst.routes or []):
                routes.append(_Route(r, ri, [ref]))
    gw_refs: dict[str, list[str]] = {}
    for gname, g in cfg.gateways.items():
        if not g.listeners:
            listeners[gname] = (g.port, g, "", m.GatewayListenerPolicies)
            gw_refs[gname] = [gname]
        else:
            gw_refs[gname] = []
            for li, gl in enumerate(g.listeners):
                ref = f"{gname}/{gl.name or f'listener{li}'}"
                listeners[ref] = (g.port, gl, "", m.GatewayListenerPolicies)
                gw_refs[gname].append(ref)
                gw_refs[ref] = [ref]
    for ri, ar in enumerate(cfg.routes):
        names = ar.gateways or ["default"]
        attached = [x for n in names for x in gw_refs.get(n, [])]
        routes.append(_Route(ar, ri, attached))
    for group in cfg.route_groups:
        for ri, r in enumerate(group.routes):
            routes.append(_Route(r, ri, []))

    # tiers, most specific first: each fills only what a more specific one left unset
    tiers: list[list[tuple[int, m.TargetedPolicy, str, list[_Route]]]] = [[], [], []]
    for i, tp in enumerate(cfg.policies):
        path = f"policies[{i}]"
        t = tp.target
        kind = _kind(tp.policy)
        kalias = _alias(m.RoutePolicies, kind)
        if t.listener_set is not None:
            add(f"{path}.target.listenerSet", "listenerSet targets are not supported (standalone configs have none)")
        elif t.route is not None:
            rt = t.route
            if tp.phase == "gateway":
                add(f"{path}.phase", "phase gateway is not supported on a route target (it runs before routing)")
                continue
            if rt.rule_name is not None or rt.kind is not None:
                key = "ruleName" if rt.rule_name is not None else "kind"
                add(f"{path}.target.route.{key}", "not supported: standalone routes have no ruleName or kind")
                continue
            hit = [x for x in routes if x.name == rt.name and x.namespace == rt.namespace]
            if not hit:
                add(f"{path}.target", f"names nothing: there is no route {rt.namespace}/{rt.name}")
                continue
            tiers[0].append((i, tp, kind, hit))
        elif t.gateway is not None:
            gt = t.gateway
            if (gt.gateway_name, gt.gateway_namespace) != (GATEWAY_NAME, GATEWAY_NAMESPACE):
                add(
                    f"{path}.target",
                    f"names nothing: the standalone gateway is {GATEWAY_NAMESPACE}/{GATEWAY_NAME}, "
                    f"not {gt.gateway_namespace}/{gt.gateway_name}",
                )
                continue
            if gt.listener_name is not None:
                refs = [gt.listener_name] if gt.listener_name in listeners else []
            elif gt.port is not None:
                refs = [r for r, (port, *_) in listeners.items() if port == gt.port]
            else:
                refs = list(listeners)
            if not refs:
                add(f"{path}.target", "names nothing: no listener has that name or port")
                continue
            if tp.phase == "gateway":
                for ref in refs:
                    _port, owner, attr, model = listeners[ref]
                    if kind not in model.model_fields:
                        add(f"{path}.policy.{kalias}", "not supported at gateway phase (on a listener)")
                        break
                    cur = getattr(owner, attr) if attr else owner
                    if cur is not None and getattr(cur, kind) is not None:
                        add(
                            f"{path}.policy.{kalias}",
                            f"cannot be combined with the {kalias} listener {ref!r} already has",
                        )
                        break
                    _set(owner, attr, model, kind, getattr(tp.policy, kind))
                continue
            if cfg.llm is not None or cfg.mcp is not None or cfg.ui is not None:
                add(f"{path}.target", "route-phase gateway policies are not supported with llm, mcp or ui yet")
                continue
            hit = []
            for rr in routes:
                inside = [x for x in rr.listeners if x in refs]
                if inside and len(inside) != len(rr.listeners):
                    add(
                        f"{path}.target",
                        f"not supported: route {rr.namespace}/{rr.name} is also served on listeners it does not name",
                    )
                    hit = []
                    break
                if inside:
                    hit.append(rr)
            tiers[1 if (gt.listener_name is not None or gt.port is not None) else 2].append((i, tp, kind, hit))
        elif t.backend is not None:
            bt = t.backend
            if bt.service is not None:
                add(f"{path}.target.backend.service", "service targets are not supported (use a named backend)")
                continue
            assert bt.backend is not None
            if tp.phase == "gateway":
                add(f"{path}.phase", "phase gateway is not supported on a backend target")
                continue
            if bt.backend.section is not None:
                add(f"{path}.target.backend.backend.section", "backend sections are not supported yet")
                continue
            nbs = [nb for nb in cfg.backends if nb.name == bt.backend.name and bt.backend.namespace == ""]
            if not nbs:
                add(
                    f"{path}.target",
                    f"names nothing: there is no backend {bt.backend.name!r} in backends[] "
                    "(top-level backends have the empty namespace)",
                )
                continue
            if (
                kind not in m.BackendPolicies.model_fields
                or m.BackendPolicies.model_fields[kind].annotation != m.RoutePolicies.model_fields[kind].annotation
            ):
                add(f"{path}.policy.{kalias}", "not supported on a backend target (not a backend policy)")
                continue
            for nb in nbs:
                if nb.policies is not None and getattr(nb.policies, kind) is not None:
                    if kind in _COMPOSED:
                        add(f"{path}.policy.{kalias}", f"cannot be combined with backend {nb.name!r}'s inline {kalias}")
                    continue  # the inline policy wins
                _set(nb, "policies", m.BackendPolicies, kind, getattr(tp.policy, kind))

    for tier, entries in enumerate(tiers):
        for i, tp, kind, hit in entries:
            kalias = _alias(m.RoutePolicies, kind)
            value = getattr(tp.policy, kind)
            for tr in hit:
                if tr.filled.get(kind) == f"tier{tier}":
                    add(f"policies[{i}].policy.{kalias}", f"cannot be combined with another targeted {kalias} on it")
                    continue
                cur = tr.route.policies
                if cur is not None and getattr(cur, kind) is not None:
                    if kind in _COMPOSED:
                        add(
                            f"policies[{i}].policy.{kalias}",
                            f"cannot be combined with the {kalias} route {tr.namespace}/{tr.name} already has",
                        )
                    continue  # the more specific (or inline) policy wins
                _set(tr.route, "policies", m.RoutePolicies, kind, value)
                tr.filled[kind] = f"tier{tier}"
    return cfg
