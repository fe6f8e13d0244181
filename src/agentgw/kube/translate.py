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
Gateway < listener (``sectionName``) < HTTPRoute/GRPCRoute < rule (``sectionName`` = rule
name) < the rule's own filters/timeouts. At one level, the oldest policy (creationTimestamp,
then namespace/name) wins a field. Backend policies: the AgentgatewayBackend's own
``spec.policies`` < policies targeting the backend (or Service).

Accepted means enforced. Every object translated is first validated against its schema
(`agentgw.kube.schema`: unknown or misspelled fields, types, enums, rules); an invalid object
is ``Accepted=False`` (reason ``Invalid``, the message naming each field path) and is not
applied: an invalid Gateway gets no config, an invalid route is not attached, an invalid
backend answers 500 on the routes that use it. A policy that cannot be applied closes what
it targets instead of leaving it unprotected: the routes under its targets answer 500 (a
policy that only configures tracing or access logs is just left out). `agentgw.kube.check`
then runs the proxy's own config validation and compiler on each Gateway's config and
refuses, the same way, the objects a failure comes from (``refused``), using the field
provenance recorded in ``GatewayOutput.sources``.

This module decides which Gateways are ours and runs the steps in order; each step lives
in its own module: `store` (the objects, their schema problems, lookups, ReferenceGrants,
Service hosts), `policy_attachment` (policy targets, status and merging over levels, with
`policies` translating each section), `backends` (AgentgatewayBackend objects), `listeners`
(a Gateway's listeners), `routes` (HTTPRoutes and GRPCRoutes onto listeners), `llm_models`
(AgentgatewayModels onto listeners, as each config's ``llm`` section), `gateways` (GatewayClasses,
each Gateway's config and status), `status` (conditions) and `output` (what comes back).
"""

from __future__ import annotations

import re

from . import CONTROLLER_NAME
from . import policies as P
from .backends import BackendTranslator
from .gateways import GatewayBuilder, accept_gateway_classes
from .listeners import gateway_listeners
from .llm_models import ModelTranslator
from .objects import GW, display, generation, meta, ns_of, okey
from .output import GatewayOutput, Result
from .policy_attachment import PolicyAttachments
from .routes import RouteTranslator
from .status import cond, errors_from_status, problems_message
from .store import ObjectStore

__all__ = ["GatewayOutput", "Result", "Translator", "translate"]


class Translator:
    """One translation of a set of objects (see the module docstring); `run` once."""

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
        self.offline = offline
        #: Gateways (namespace, name) whose config the proxy refuses as a whole -> why
        self.failed_gateways = dict(failed_gateways or {})
        #: our Gateways that are not applied (namespace, name) -> why
        self.bad_gateways: dict[tuple[str, str], str] = {}
        #: ``refused``: objects refused from outside the schema (the proxy's compiler): key -> problems
        self.store = ObjectStore(objects, refused)
        self.res = Result()
        resolver = P.Resolver(self.store.secret, self.store.service_url, self.store.config_map)
        self.policies = PolicyAttachments(self.store, self.res, resolver, controller_name, redis_url)
        self.backends = BackendTranslator(self.store, self.res, resolver, self.policies)
        self.routes = RouteTranslator(self.store, self.res, self.policies, self.backends, controller_name)
        self.models = ModelTranslator(self.store, self.res, resolver, controller_name)
        self.gateways = GatewayBuilder(self.store, self.res, self.policies, self.models)

    def run(self) -> Result:
        """Policies attach before backends and routes are translated (both merge what is
        attached to them); routes attach to listeners before each Gateway's config is built."""
        classes = accept_gateway_classes(self.store, self.res, self.controller_name)
        self.policies.attach_all()
        self.backends.report_status()
        for rg in self.store.all(GW, "ReferenceGrant"):
            for p in self.store.problems(rg):  # a ReferenceGrant has no status: the error is all there is
                self.res.errors.append(f"{display(okey(rg))}: not accepted (grants nothing): {p}")
        gateways = self._our_gateways(classes)
        gw_listeners = {(ns_of(g), meta(g)["name"]): gateway_listeners(self.store, g) for g in gateways}
        self.routes.attach_all(gw_listeners, self.bad_gateways)
        self.models.attach_all(gw_listeners, self.bad_gateways)
        for gw in gateways:
            self.gateways.build(gw, gw_listeners[(ns_of(gw), meta(gw)["name"])])
        self.res.errors.extend(errors_from_status(self.res.status))
        for cm in self.store.all("", "ConfigMap"):
            if any(isinstance(v, str) and re.search(r"^\s*binds:", v, re.M) for v in (cm.get("data") or {}).values()):
                self.res.notes.append(
                    f"{display(okey(cm))}: holds a gateway config file, not Gateway API objects; nothing to translate (mount it and run `agentgw run -f`, or see docs/kubernetes.md for its Gateway API form)"
                )
        return self.res

    def _our_gateways(self, classes: dict[str, str | None]) -> list[dict]:
        """The Gateways of our classes (offline: also of classes not among the objects) that
        can be applied; the others of ours are refused."""
        gateways = []
        for gw in self.store.all(GW, "Gateway"):
            cls = (gw.get("spec") or {}).get("gatewayClassName") or ""
            if cls in classes:
                pass
            elif self.offline and self.store.get(GW, "GatewayClass", "", cls) is None:
                self.res.notes.append(
                    f"{display(okey(gw))}: GatewayClass {cls!r} is not among the manifests; translated as if it named {self.controller_name}"
                )
            else:
                continue
            why = None
            if classes.get(cls):
                why = f"GatewayClass {cls} is not accepted: {classes[cls]}"
            elif self.store.problems(gw):
                why = problems_message(self.store.problems(gw))
            elif (ns_of(gw), meta(gw).get("name", "")) in self.failed_gateways:
                why = self.failed_gateways[(ns_of(gw), meta(gw).get("name", ""))]
            if why is not None:
                self._refuse_gateway(gw, why)
                continue
            gateways.append(gw)
        return gateways

    def _refuse_gateway(self, gw: dict, why: str) -> None:
        """A Gateway that is not applied: no config, no listeners; its routes are told so."""
        ns, name, gen = ns_of(gw), meta(gw)["name"], generation(gw)
        self.bad_gateways[(ns, name)] = why
        self.res.status[okey(gw)] = {
            "conditions": [
                cond("Accepted", False, "Invalid", why, gen),
                cond("Programmed", False, "Invalid", "not accepted", gen),
            ]
        }


def translate(
    objects: list[dict], controller_name: str = CONTROLLER_NAME, offline: bool = False, redis_url: str | None = None
) -> Result:
    """Translate a set of Kubernetes objects; see the module docstring.

    ``redis_url``: where ``globalRateLimit`` keeps its counters; with it, ``RateLimitConfig``
    limits are shared by every proxy replica, without it they are per replica.
    """
    return Translator(objects, controller_name, offline, redis_url).run()
