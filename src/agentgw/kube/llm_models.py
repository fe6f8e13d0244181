"""AgentgatewayModel objects: read, validated, and refused with the reason.

agentgateway serves a concrete model (``provider``) or a virtual model (``virtualModel``
over other AgentgatewayModels) on the listeners of the Gateways its ``parentRefs`` name,
or on an HTTPRoute rule whose backend is the AgentgatewayModel ``*``. agentgw's own model
routing is the config's ``llm`` section (``llm.models`` / ``llm.virtualModels``), which is
served on a port of its own or on *named* gateways of the config file; the controller
translates a Gateway into ``binds``, which ``llm`` cannot attach to. Until it can, every
AgentgatewayModel is ``Accepted=False`` on each parent, saying so (never accepted and
left unserved), and an HTTPRoute whose rule names one gets ``ResolvedRefs=False``.
"""

from __future__ import annotations

from .objects import AGW, GW, generation, ns_of, okey
from .output import Result
from .status import cond, problems_message
from .store import ObjectStore

KIND = "AgentgatewayModel"
#: why an AgentgatewayModel is not served (also what a backendRef to one is told)
NOT_SERVED = (
    "AgentgatewayModel is not supported by agentgw yet: its model routing (the config's llm section) is"
    " served on a port or a named gateway of its own, not on the listeners of a Gateway the controller"
    " translates; route to an AgentgatewayBackend with spec.ai instead"
)


def report_models(store: ObjectStore, res: Result, controller_name: str) -> None:
    """The status of every AgentgatewayModel: each parent, ``Accepted=False`` with why."""
    for mo in store.all(AGW, KIND):
        ns, gen = ns_of(mo), generation(mo)
        problems = store.problems(mo)
        reason, msg = ("Invalid", problems_message(problems)) if problems else ("Unsupported", NOT_SERVED)
        parents = []
        for pr in (mo.get("spec") or {}).get("parentRefs") or []:
            if not isinstance(pr, dict):
                continue
            ref = {
                "group": pr.get("group", GW),
                "kind": pr.get("kind", "Gateway"),
                "namespace": pr.get("namespace") or ns,
                "name": pr.get("name", ""),
            }
            if pr.get("sectionName"):
                ref["sectionName"] = pr["sectionName"]
            parents.append(
                {
                    "parentRef": ref,
                    "controllerName": controller_name,
                    "conditions": [cond("Accepted", False, reason, msg, gen)],
                }
            )
        if not parents:  # (the schema requires one; an object read without validation may have none)
            res.errors.append(f"{KIND} {ns}/{okey(mo)[3]}: not accepted: {msg}")
        res.status[okey(mo)] = {"parents": parents}
