"""The reconcile loop: watch → translate → check → provision proxies → write status.

Every watched kind is listed (in pages) and then watched from the list's resourceVersion; a
watch the server ends is resumed from the last version it delivered, one that expires
(410 Gone) or fails is listed again. Any change marks the world dirty; the reconciler
then translates the whole cached world (it is small: Gateway API objects, not Pods), puts
every Gateway's config through the proxy's own validation and compiler
(`agentgw.kube.check`: objects the proxy would refuse are ``Accepted=False`` and left out),
and converges the cluster on the result:

* per Gateway: ServiceAccount, config Secret, Deployment, Service (+ HPA, PDB) from
  `provision.proxy_objects`, created when missing and patched when they differ (the
  ServiceAccount only gains labels and owner: annotations users add, such as IRSA's
  ``eks.amazonaws.com/role-arn``, stay);
* writes ask the API server for strict field validation, so a field of a parameters
  overlay the Deployment or Service schema does not have is refused rather than dropped;
  the refusal is reported on the Gateway (``Programmed=False``) and its parameters;
* status on every object the translator reports on, written through the ``/status``
  subresource with the cached ``resourceVersion``; a 409 re-reads the object and retries.
  ``lastTransitionTime`` only moves when a condition's status changes; other controllers'
  entries in ``status.parents`` / ``status.ancestors`` are kept.

A Gateway is ``Programmed`` once its Deployment has an available replica.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as _dt
import hashlib
import json
import logging
from typing import Any

from . import CONTROLLER_NAME
from .check import translate_checked
from .client import ApiError, KubeClient, Resource, WatchExpired
from .objects import GW, deep_merge
from .output import GatewayOutput
from .provision import DEFAULT_IMAGE, GATEWAY_LABEL, proxy_objects
from .status import cond

log = logging.getLogger("agentgw.controller")

R = {
    "GatewayClass": Resource(GW, "v1", "gatewayclasses", "GatewayClass", namespaced=False),
    "Gateway": Resource(GW, "v1", "gateways", "Gateway"),
    "HTTPRoute": Resource(GW, "v1", "httproutes", "HTTPRoute"),
    "GRPCRoute": Resource(GW, "v1", "grpcroutes", "GRPCRoute"),
    "ReferenceGrant": Resource(GW, "v1beta1", "referencegrants", "ReferenceGrant"),
    "Namespace": Resource("", "v1", "namespaces", "Namespace", namespaced=False),
    "Service": Resource("", "v1", "services", "Service"),
    "Secret": Resource("", "v1", "secrets", "Secret"),
    "ConfigMap": Resource("", "v1", "configmaps", "ConfigMap"),
    "ServiceAccount": Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    "Deployment": Resource("apps", "v1", "deployments", "Deployment"),
    "HorizontalPodAutoscaler": Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    "PodDisruptionBudget": Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    "AgentgatewayBackend": Resource("agentgateway.dev", "v1alpha1", "agentgatewaybackends", "AgentgatewayBackend"),
    "AgentgatewayPolicy": Resource("agentgateway.dev", "v1alpha1", "agentgatewaypolicies", "AgentgatewayPolicy"),
    "AgentgatewayParameters": Resource(
        "agentgateway.dev", "v1alpha1", "agentgatewayparameters", "AgentgatewayParameters"
    ),
    "AgentgatewayModel": Resource("agentgateway.dev", "v1alpha1", "agentgatewaymodels", "AgentgatewayModel"),
    "EnterpriseAgentgatewayPolicy": Resource(
        "enterpriseagentgateway.solo.io", "v1alpha1", "enterpriseagentgatewaypolicies", "EnterpriseAgentgatewayPolicy"
    ),
    "RateLimitConfig": Resource("ratelimit.solo.io", "v1alpha1", "ratelimitconfigs", "RateLimitConfig"),
    "Backend": Resource("agentgateway.alibabacloud.com", "v1alpha1", "backends", "Backend"),
    "TrafficPolicy": Resource("agentgateway.alibabacloud.com", "v1alpha1", "trafficpolicies", "TrafficPolicy"),
}
WATCHED = [
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "GRPCRoute",
    "ReferenceGrant",
    "Namespace",
    "Service",
    "Secret",
    "ConfigMap",
    "AgentgatewayBackend",
    "AgentgatewayPolicy",
    "AgentgatewayParameters",
    "AgentgatewayModel",
    "EnterpriseAgentgatewayPolicy",
    "RateLimitConfig",
    "Backend",
    "TrafficPolicy",
    "Deployment",
]
#: kinds whose CRD may be missing (AgentgatewayModel: a cluster installed before agentgw shipped
#: it; GRPCRoute: Gateway API CRDs older than v1.1, where it is not in the standard channel)
OPTIONAL = {
    "EnterpriseAgentgatewayPolicy",
    "RateLimitConfig",
    "Backend",
    "TrafficPolicy",
    "ReferenceGrant",
    "AgentgatewayModel",
    "GRPCRoute",
}
#: optional kinds the controller may also be forbidden to read (RBAC from before agentgw
#: watched them): not seeing them only means serving fewer routes, never fewer policies
FORBIDDEN_OK = {"GRPCRoute"}
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=agentgw"
HASH_ANNOTATION = "agentgw.dev/desired-hash"


def _by_kind(group: str, kind: str) -> Resource | None:
    for r in R.values():
        if r.kind == kind and r.group == group:
            return r
    return None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _strip_times(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_times(x) for k, x in v.items() if k != "lastTransitionTime"}
    if isinstance(v, list):
        return [_strip_times(x) for x in v]
    return v


def _stamp(new_conds: list[dict], old_conds: list[dict] | None, now: str) -> list[dict]:
    old = {c.get("type"): c for c in old_conds or []}
    out = []
    for c in new_conds:
        o = old.get(c["type"])
        t = o.get("lastTransitionTime") if o and o.get("status") == c["status"] and o.get("lastTransitionTime") else now
        out.append({**c, "lastTransitionTime": t})
    return out


def _desired_hash(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


class Controller:
    def __init__(
        self,
        client: KubeClient,
        controller_name: str = CONTROLLER_NAME,
        namespace: str | None = None,
        image: str = DEFAULT_IMAGE,
        debounce: float = 0.2,
        proxy_defaults: dict | None = None,
        proxy_env: list | None = None,
        default_tracing: dict | None = None,
        redis_url: str | None = None,
    ):
        self.client = client
        self.redis_url = redis_url
        self.proxy_defaults = proxy_defaults or {}
        self.proxy_env = proxy_env or []
        self.default_tracing = default_tracing
        self.controller_name = controller_name
        self.namespace = namespace
        self.image = image
        self.debounce = debounce
        self.cache: dict[str, dict[tuple[str, str], dict]] = {k: {} for k in WATCHED}
        self.synced: set[str] = set()
        self.dirty = asyncio.Event()
        self.reconciles = 0
        self.conflicts = 0
        self.relists = 0
        self.last_error: str | None = None
        self._logged: set[str] = set()
        self._tasks: list[asyncio.Task] = []

    # -- watching ---------------------------------------------------------------------------
    def _key(self, obj: dict) -> tuple[str, str]:
        m = obj.get("metadata") or {}
        return (m.get("namespace") or "", m.get("name", ""))

    async def _watch_kind(self, kind: str) -> None:
        res = R[kind]
        ns = self.namespace if res.namespaced else None
        selector = MANAGED_SELECTOR if kind == "Deployment" else None
        backoff = 0.2
        while True:
            try:
                items, rv = await self.client.list(res, ns, selector)
                self.cache[kind] = {self._key(o): o for o in items}
                self.synced.add(kind)
                self.dirty.set()
                backoff = 0.2
                while True:
                    async for typ, obj in self.client.watch(res, rv, ns, selector):
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if typ == "BOOKMARK":
                            continue
                        if typ == "DELETED":
                            self.cache[kind].pop(self._key(obj), None)
                        else:
                            self.cache[kind][self._key(obj)] = obj
                        self.dirty.set()
            except WatchExpired:
                self.relists += 1
                log.info("watch of %s expired; listing again", kind)
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.status == 404 and kind in OPTIONAL:
                    log.info("%s is not served by this cluster (CRD not installed); not watching it", kind)
                    self.synced.add(kind)
                    self.dirty.set()
                    await asyncio.sleep(60)
                    continue
                if exc.status == 403 and kind in FORBIDDEN_OK:
                    log.warning(
                        "not permitted to list %s (RBAC: grant list/watch on it, and update on its status);"
                        " its routes are not served",
                        kind,
                    )
                    self.synced.add(kind)
                    self.dirty.set()
                    await asyncio.sleep(60)
                    continue
                log.warning("watch of %s failed: %s", kind, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            except (TimeoutError, OSError, ValueError, Exception) as exc:
                log.warning("watch of %s failed: %s", kind, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    # -- reconcile --------------------------------------------------------------------------
    def objects(self) -> list[dict]:
        return [o for k in WATCHED if k != "Deployment" for o in self.cache[k].values()]

    def _prepare(self, g: GatewayOutput) -> None:
        """The controller's defaults on a Gateway's output (checked with it before it ships)."""
        params = deep_merge(self.proxy_defaults, g.parameters or {})
        if self.proxy_env:
            params["env"] = list(self.proxy_env) + list((g.parameters or {}).get("env") or [])
        g.parameters = params or None
        if self.default_tracing and "tracing" not in g.config.get("config", {}):
            g.config.setdefault("config", {})["tracing"] = dict(self.default_tracing)

    async def reconcile(self) -> None:
        res = translate_checked(
            self.objects(), controller_name=self.controller_name, redis_url=self.redis_url, prepare=self._prepare
        )
        self.reconciles += 1
        deployments = self.cache["Deployment"]
        for (ns, name), g in sorted(res.gateways.items()):
            gw = self.cache["Gateway"].get((ns, name))
            if gw is None:
                continue
            uid = (gw.get("metadata") or {}).get("uid")
            gen = int((gw.get("metadata") or {}).get("generation") or 1)
            st = res.status.get((GW, "Gateway", ns, name))
            try:
                for obj in proxy_objects(g, self.image, uid):
                    await self._apply(obj)
            except ApiError as exc:
                if exc.status not in (400, 422):
                    raise
                # the API server refuses what the parameters make of the proxy's objects
                msg = f"the API server refuses the proxy's objects: {exc.message or exc}"
                log.warning("Gateway %s/%s: %s", ns, name, msg)
                if st is not None:
                    st["conditions"] = [
                        c if c["type"] != "Programmed" else cond("Programmed", False, "Invalid", msg, gen)
                        for c in st["conditions"]
                    ]
                for pkey in g.parameter_objects:
                    pst = res.status.get(pkey)
                    if pst is not None:
                        pst["conditions"] = [
                            cond("Accepted", False, "Invalid", msg, c.get("observedGeneration", 1))
                            if c["type"] == "Accepted"
                            else c
                            for c in pst["conditions"]
                        ]
                continue
            dep = deployments.get((ns, name))
            avail = int(((dep or {}).get("status") or {}).get("availableReplicas") or 0)
            if st is not None and avail < 1:
                st["conditions"] = [
                    c
                    if c["type"] != "Programmed"
                    else cond("Programmed", False, "Pending", "waiting for a ready proxy pod", gen)
                    for c in st["conditions"]
                ]
        for key, status in sorted(res.status.items()):
            await self._write_status(key, status)
        # what has no status to carry it (a ReferenceGrant) is logged, once
        quiet = {e for e in res.errors if e.startswith("ReferenceGrant ")}
        for e in sorted(quiet - self._logged):
            log.warning("%s", e)
        self._logged = quiet

    async def _apply(self, desired: dict) -> None:
        res = _by_kind(desired["apiVersion"].split("/")[0] if "/" in desired["apiVersion"] else "", desired["kind"])
        if res is None:  # (proxy_objects makes only kinds in R)
            raise ValueError(f"no API resource for {desired['apiVersion']} {desired['kind']}")
        md = desired["metadata"]
        h = _desired_hash(desired)
        desired = copy.deepcopy(desired)
        desired["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = h
        try:
            current = await self.client.get(res, md["namespace"], md["name"])
        except ApiError as exc:
            if exc.status != 404:
                raise
            try:
                await self.client.create(res, desired)
                log.info("created %s %s/%s", desired["kind"], md["namespace"], md["name"])
            except ApiError as exc2:
                if exc2.status != 409:
                    raise
                self.dirty.set()  # created meanwhile: converge on the next pass
            return
        if ((current.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION) == h:
            return
        if desired["kind"] == "ServiceAccount":
            # never replace a ServiceAccount: users annotate it (IRSA); add ours, keep theirs
            patch = {
                "metadata": {
                    "labels": desired["metadata"].get("labels") or {},
                    "annotations": desired["metadata"]["annotations"],
                    "ownerReferences": desired["metadata"].get("ownerReferences"),
                }
            }
            await self.client.merge_patch(res, md["namespace"], md["name"], patch)
            return
        if desired["kind"] == "Secret":
            for attempt in range(3):
                desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                try:
                    await self.client.replace(res, desired)
                    log.info("updated config of Gateway %s/%s", md["namespace"], md["labels"].get(GATEWAY_LABEL))
                    return
                except ApiError as exc:
                    if exc.status != 409 or attempt == 2:
                        raise
                    self.conflicts += 1
                    current = await self.client.get(res, md["namespace"], md["name"])
        await self.client.merge_patch(
            res,
            md["namespace"],
            md["name"],
            {
                "metadata": {
                    "labels": desired["metadata"].get("labels"),
                    "annotations": desired["metadata"]["annotations"],
                    "ownerReferences": desired["metadata"].get("ownerReferences"),
                },
                "spec": desired["spec"],
            },
        )
        log.info("updated %s %s/%s", desired["kind"], md["namespace"], md["name"])

    def _merge_foreign(self, new: dict, old: dict) -> dict:
        """Keep other controllers' entries in status.parents / status.ancestors."""
        out = dict(new)
        for key in ("parents", "ancestors"):
            if key in new or key in old:
                theirs = [e for e in old.get(key) or [] if e.get("controllerName") != self.controller_name]
                out[key] = theirs + list(new.get(key) or [])
        for k, v in old.items():
            if k not in out and k not in ("conditions", "listeners", "addresses"):
                out[k] = v
        return out

    def _with_times(self, new: dict, old: dict, now: str) -> dict:
        out = copy.deepcopy(new)
        if "conditions" in out:
            out["conditions"] = _stamp(out["conditions"], old.get("conditions"), now)
        for lst in out.get("listeners") or []:
            o: dict = next((x for x in old.get("listeners") or [] if x.get("name") == lst["name"]), {})
            lst["conditions"] = _stamp(lst["conditions"], o.get("conditions"), now)
        for key, ref in (("parents", "parentRef"), ("ancestors", "ancestorRef")):
            for e in out.get(key) or []:
                if e.get("controllerName") != self.controller_name:
                    continue
                o = next(
                    (
                        x
                        for x in old.get(key) or []
                        if x.get(ref) == e[ref] and x.get("controllerName") == self.controller_name
                    ),
                    {},
                )
                e["conditions"] = _stamp(e["conditions"], o.get("conditions"), now)
        return out

    async def _write_status(self, key: tuple[str, str, str, str], status: dict) -> None:
        group, kind, ns, name = key
        res = _by_kind(group, kind)
        if res is None:
            return
        kind_cache = self.cache.get(res.kind)
        cached = kind_cache.get((ns, name)) if kind_cache is not None else None
        for _attempt in range(4):
            if cached is None:
                try:
                    cached = await self.client.get(res, ns or None, name)
                except ApiError as exc:
                    if exc.status == 404:
                        return
                    raise
            old = cached.get("status") or {}
            merged = self._merge_foreign(status, old)
            if _strip_times(merged) == _strip_times(old):
                return
            body: dict[str, Any] = {
                "apiVersion": res.api_version,
                "kind": res.kind,
                "metadata": {"name": name, "resourceVersion": cached["metadata"]["resourceVersion"]},
                "status": self._with_times(merged, old, _now()),
            }
            if ns:
                body["metadata"]["namespace"] = ns
            try:
                updated = await self.client.replace_status(res, body)
                if res.kind in self.cache:
                    self.cache[res.kind][(ns, name)] = {**updated, "apiVersion": res.api_version, "kind": res.kind}
                return
            except ApiError as exc:
                if exc.status == 404:
                    return
                if exc.status != 409:
                    raise
                self.conflicts += 1
                log.info("conflict writing status of %s %s/%s; reading it again", kind, ns, name)
                cached = None
        raise ApiError(409, "Conflict", f"status of {kind} {ns}/{name}: still conflicting after retries")

    async def run(self) -> None:
        self._tasks = [asyncio.get_running_loop().create_task(self._watch_kind(k)) for k in WATCHED]
        try:
            while True:
                await self.dirty.wait()
                await asyncio.sleep(self.debounce)
                if len(self.synced) < len(WATCHED):
                    continue  # wait for every initial list before writing anything
                self.dirty.clear()
                try:
                    await self.reconcile()
                    self.last_error = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.last_error = str(exc)
                    log.warning("reconcile failed (will retry): %s", exc)
                    await asyncio.sleep(1.0)
                    self.dirty.set()
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def settings_from_environment() -> dict:
    """Helm-provided defaults: AGENTGW_PROXY_DEFAULTS (JSON parameters), AGENTGW_PROXY_ENV (JSON env list),
    AGENTGW_REDIS_URL (RateLimitConfig limits become Redis-backed ``globalRateLimit``),
    AGENTGW_TRACING_ENDPOINT / AGENTGW_TRACING_PROTOCOL (tracing for Gateways without a tracing policy)."""
    import os

    out: dict[str, Any] = {
        "proxy_defaults": json.loads(os.environ.get("AGENTGW_PROXY_DEFAULTS") or "{}"),
        "proxy_env": json.loads(os.environ.get("AGENTGW_PROXY_ENV") or "[]"),
    }
    if os.environ.get("AGENTGW_REDIS_URL"):
        out["redis_url"] = os.environ["AGENTGW_REDIS_URL"]
    if os.environ.get("AGENTGW_TRACING_ENDPOINT"):
        out["default_tracing"] = {
            "otlpEndpoint": os.environ["AGENTGW_TRACING_ENDPOINT"],
            "otlpProtocol": os.environ.get("AGENTGW_TRACING_PROTOCOL", "grpc"),
        }
    return out


async def run_controller(
    controller_name: str = CONTROLLER_NAME,
    namespace: str | None = None,
    image: str = DEFAULT_IMAGE,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> int:
    """Run until cancelled; `KubeConfigError` when there is no cluster to talk to."""
    client = await KubeClient.connect(kubeconfig, context)
    log.info(
        "agentgw controller %s starting (namespace: %s; cluster: %s)",
        controller_name,
        namespace or "all",
        client.source,
    )
    try:
        await Controller(client, controller_name, namespace, image, **settings_from_environment()).run()
    finally:
        await client.close()
    return 0
