"""Which policies attach where, and what they add up to at each level.

`PolicyAttachments.attach_all` reads every policy object's ``targetRefs`` (and the objects
its ``targetSelectors`` pick by label), translates its sections (`agentgw.kube.policies`)
and writes its status (one ancestor per target). An
accepted policy becomes an `Attachment` at a level — gateway, listener (``sectionName``),
route (an HTTPRoute or GRPCRoute), rule (``sectionName`` = rule name) or backend; a
policy that is not accepted closes its targets instead (`PolicyAttachments.closers`: the
routes under them answer `CLOSED_RESPONSE`). `PolicyAttachments.merge` adds the sections
up over levels, least specific first, the oldest policy winning a field within a level,
and says which policy each merged field comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import policies as P
from .objects import BACKEND_KINDS, GW, POLICY_KINDS, RL, age_key, generation, labels_match, meta, ns_of, okey
from .output import Result
from .status import cond, problems_message
from .store import ObjectStore

#: what a route answers when a policy that applies to it is not accepted
CLOSED_RESPONSE = {
    "body": '{"error":{"type":"policy_not_accepted","message":"a policy that applies to this route is not accepted"}}',
    "status": 500,
    "headers": {"content-type": "application/json"},
}

#: (level, target key, sectionName): where a policy attaches
Level = tuple[str, tuple, str | None]


@dataclass
class Attachment:
    policy: dict
    level: str  # gateway | listener | route | rule | backend
    target: tuple  # (group, kind, ns, name)
    section: str | None
    traffic: dict
    phase: str
    backend: dict
    config: dict
    frontend: dict


class PolicyAttachments:
    def __init__(
        self, store: ObjectStore, res: Result, resolver: P.Resolver, controller_name: str, redis_url: str | None
    ):
        self.store = store
        self.res = res
        self.resolver = resolver
        self.controller_name = controller_name
        self.redis_url = redis_url
        #: accepted policies where they attach, oldest first (once `attach_all` has run)
        self.attachments: list[Attachment] = []
        #: (level, target, section) -> keys of the policies not accepted that target it (closed)
        self.closed: dict[tuple, list[tuple]] = {}

    def attach_all(self) -> None:
        """Every policy object, by kind; its status, and its attachments (then sorted oldest first)."""
        for grp, kind in sorted(POLICY_KINDS):
            for pol in self.store.all(grp, kind):
                self._attach(pol)
        self.attachments.sort(key=lambda a: age_key(a.policy))

    def _attach(self, pol: dict) -> None:
        """One policy: its sections translated, an ancestor status per target, and an
        `Attachment` per target it is accepted on (or, if it enforces anything, a closed target)."""
        ns = ns_of(pol)
        spec = pol.get("spec") or {}
        gen = generation(pol)
        problems: list[str] = list(self.store.problems(pol))
        traffic: dict = {}
        backend: dict = {}
        cfg: dict = {}
        fp: dict = {}
        phase = "PostRouting"
        if not problems:  # sections are read only from a spec that matches its schema
            bad_rlc: list[str] = []

            def rlc(n: str, nm: str) -> dict | None:
                o = self.store.get(RL, "RateLimitConfig", n, nm)
                if o is not None and self.store.problems(o):
                    bad_rlc.extend(f"RateLimitConfig {n}/{nm} is not valid: {x}" for x in self.store.problems(o))
                return o

            traffic, phase, tp = P.traffic(spec.get("traffic") or {}, ns, self.resolver, rlc, redis_url=self.redis_url)
            problems += bad_rlc + tp
            backend, bp = P.backend(spec.get("backend") or {}, ns, self.resolver)
            problems += bp
            cfg, fp, fpp = P.frontend(spec.get("frontend") or {}, ns, self.resolver)
            problems += fpp
        # what it would enforce, were it applied: anything but observability settings
        enforcing = any(k not in ("targetRefs", "targetSelectors", "frontend") for k in spec)
        ancestors: list[dict[str, Any]] = []
        refs = [t for t in spec.get("targetRefs") or [] if isinstance(t, dict)]
        selectors = [t for t in spec.get("targetSelectors") or [] if isinstance(t, dict)]
        if not refs and not selectors:
            problems.append("spec.targetRefs: at least one target is required")
        for i, t in enumerate(refs):  # a missing target fails the policy on all of them
            if self.store.get(t.get("group", ""), t.get("kind", ""), ns, t.get("name", "")) is None:
                problems.append(f"spec.targetRefs[{i}]: {t.get('kind', '')} {ns}/{t.get('name', '')} not found")
        targets = [(f"targetRefs[{i}]", t) for i, t in enumerate(refs)] + self._selected(selectors, ns)
        for where, t in targets:
            tg, tk, tn = t.get("group", ""), t.get("kind", ""), t.get("name", "")
            section = t.get("sectionName")
            level = {
                (GW, "Gateway"): "listener" if section else "gateway",
                (GW, "HTTPRoute"): "rule" if section else "route",
                (GW, "GRPCRoute"): "rule" if section else "route",
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
                        "conditions": [cond("Accepted", False, "Invalid", f"{where}: cannot attach to {tg}/{tk}", gen)],
                    }
                )
                continue
            if self.store.get(tg, tk, ns, tn) is None:
                ancestors.append(
                    {
                        "ancestorRef": aref,
                        "controllerName": self.controller_name,
                        "conditions": [cond("Accepted", False, "TargetNotFound", f"{tk} {ns}/{tn} not found", gen)],
                    }
                )
                continue
            bad = []
            if level != "gateway" and (cfg or fp):
                bad.append(
                    "spec.frontend: only applies to a whole Gateway"
                    + (
                        " (agentgw has no per-listener frontend settings: drop sectionName)"
                        if level == "listener"
                        else ""
                    )
                )
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
                self.attachments.append(Attachment(pol, level, tkey, section, traffic, phase, backend, cfg, fp))
            elif enforcing:
                self.closed.setdefault((level, tkey, section), []).append(okey(pol))
        all_ok = bool(ancestors) and all(a["conditions"][0]["status"] == "True" for a in ancestors) and not problems
        if all_ok:
            top = cond("Accepted", True, "Accepted", "policy accepted", gen)
        elif selectors and not refs and not ancestors and not problems:
            # valid, and attached nowhere until an object with matching labels exists
            top = cond("Accepted", True, "Accepted", "policy accepted; spec.targetSelectors select no object", gen)
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

    def _selected(self, selectors: list[dict], ns: str) -> list[tuple[str, dict]]:
        """``spec.targetSelectors``: the objects of each selector's group/kind in the policy's
        namespace whose labels include ``matchLabels`` (oldest first), as target references
        (with the selector's ``sectionName``); an object two selectors pick is a target once."""
        out: list[tuple[str, dict]] = []
        seen: set[tuple] = set()
        for j, sel in enumerate(selectors):
            grp, kind = sel.get("group", ""), sel.get("kind", "")
            want = {"matchLabels": sel.get("matchLabels") or {}}
            for o in self.store.all(grp, kind):
                if ns_of(o) != ns or not labels_match(meta(o).get("labels") or {}, want):
                    continue
                ref = {"group": grp, "kind": kind, "name": meta(o).get("name", "")}
                if sel.get("sectionName"):
                    ref["sectionName"] = sel["sectionName"]
                k = tuple(sorted(ref.items()))
                if k not in seen:
                    seen.add(k)
                    out.append((f"targetSelectors[{j}]", ref))
        return out

    def merge(self, levels: list[Level], what: str, phase: str | None = None) -> tuple[dict, dict[str, tuple]]:
        """Merge the ``what`` sections (traffic, backend, config, frontend) of the policies attached
        at ``levels`` (least specific first); the oldest policy wins a field within a level.
        Also returns, per merged key, the policy it came from. With ``phase``, only the traffic
        of that phase (PreRouting policies are lifted from Gateway/listener to the listener)."""
        out: dict = {}
        src: dict[str, tuple] = {}
        for level, target, section in levels:
            layer: dict = {}
            lsrc: dict[str, tuple] = {}
            for a in self.attachments:  # oldest first (sorted once, in attach_all)
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

    def closers(self, levels: list[Level]) -> list[tuple]:
        """Policies not accepted that target any of these levels."""
        return [p for lv in levels for p in self.closed.get(lv, [])]
