"""The objects being translated, indexed, and what every step asks of them.

`ObjectStore` answers lookups by (group, kind, namespace, name), lists a kind oldest
first, says why an object cannot be applied (`ObjectStore.problems`: its schema, and what
the proxy refused of it), decides cross-namespace references (ReferenceGrants) and turns
Services into the host names and URLs the config uses. It never writes status.
"""

from __future__ import annotations

from . import schema as SCHEMA
from .objects import AGW, GW, age_key, group_of, meta, ns_of, okey
from .provision import parameters_problems

PARAMETERS = "AgentgatewayParameters"

CLUSTER_DOMAIN = "svc.cluster.local"

#: schema problems of stored objects, by (key, uid, resourceVersion): a version never changes
_VALIDATED: dict[tuple, list[str]] = {}


class ObjectStore:
    def __init__(self, objects: list[dict], refused: dict[tuple, list[str]] | None = None):
        #: objects refused from outside the schema (the proxy's compiler): key -> problems
        self.refused = dict(refused or {})
        self._problems: dict[tuple, list[str]] = {}
        self.by_kind: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        for o in objects:
            if not isinstance(o, dict) or not o.get("kind"):
                continue
            self.by_kind.setdefault((group_of(o), o["kind"]), {})[(ns_of(o), meta(o).get("name", ""))] = o

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
            semantic = parameters_problems(obj.get("spec") or {}) if not found and k[:2] == (AGW, PARAMETERS) else []
            self._problems[k] = list(found) + semantic + list(self.refused.get(k, []))
        return self._problems[k]

    # -- lookups ----------------------------------------------------------------------------
    def get(self, group: str, kind: str, ns: str, name: str) -> dict | None:
        return self.by_kind.get((group, kind), {}).get((ns, name))

    def all(self, group: str, kind: str) -> list[dict]:
        """Every object of a kind, oldest first."""
        return sorted(self.by_kind.get((group, kind), {}).values(), key=age_key)

    def secret(self, ns: str, name: str) -> dict | None:
        return self.get("", "Secret", ns, name)

    def config_map(self, ns: str, name: str) -> dict | None:
        return self.get("", "ConfigMap", ns, name)

    # -- references -------------------------------------------------------------------------
    def granted(
        self, from_group: str, from_kind: str, from_ns: str, to_group: str, to_kind: str, to_ns: str, to_name: str
    ) -> bool:
        """Whether an object may refer to one in another namespace (a valid ReferenceGrant there)."""
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

    # -- Services ---------------------------------------------------------------------------
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

    def service_url(
        self, ref: dict, from_ns: str, from_what: str, from_group: str = AGW, from_kind: str = "AgentgatewayPolicy"
    ) -> tuple[str | None, str | None]:
        """A policy's Service reference → (``http://host:port``, None) or (None, why not)."""
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
