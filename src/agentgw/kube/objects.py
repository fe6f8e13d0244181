"""What every translation step says about a Kubernetes object, whatever its kind.

The API groups the translator reads, how an object is named and keyed (group, kind,
namespace, name), its generation and age (the oldest policy wins a field), label
selectors, and the two dict helpers the translator, the controller and provisioning share.
Plain functions over object dicts: no index, no status, no I/O.
"""

from __future__ import annotations

import re

GW = "gateway.networking.k8s.io"
AGW = "agentgateway.dev"
ENT = "enterpriseagentgateway.solo.io"
ACK = "agentgateway.alibabacloud.com"
RL = "ratelimit.solo.io"

CLUSTER_SCOPED = {"GatewayClass", "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
#: (group, kind) of the policy objects (agentgateway's and the vendor shapes that map cleanly)
POLICY_KINDS = {(AGW, "AgentgatewayPolicy"), (ENT, "EnterpriseAgentgatewayPolicy"), (ACK, "TrafficPolicy")}
#: (group, kind) of the backend objects a backendRef or a policy can name besides a Service
BACKEND_KINDS = {(AGW, "AgentgatewayBackend"), (ACK, "Backend")}


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
    """The object's key: (group, kind, namespace, name); status and provenance are keyed by it."""
    return (group_of(obj), obj.get("kind", ""), ns_of(obj), meta(obj).get("name", ""))


def display(k: tuple[str, str, str, str]) -> str:
    _group, kind, ns, name = k
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def generation(obj: dict) -> int:
    return int(meta(obj).get("generation") or 1)


def age_key(obj: dict) -> tuple:
    """Oldest first: creationTimestamp, then namespace/name."""
    return (meta(obj).get("creationTimestamp") or "", ns_of(obj), meta(obj).get("name", ""))


def labels_match(labels: dict, sel: dict) -> bool:
    """Whether ``labels`` satisfy a label selector (matchLabels, matchExpressions)."""
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


def safe_name(*parts: str) -> str:
    """``parts`` joined by ``-``, usable as a file name and a config name."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", "-".join(parts))


def deep_merge(a: dict, b: dict) -> dict:
    """``b`` over ``a``: nested dicts are merged, anything else in ``b`` replaces."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out
