"""The objects that run one Gateway's proxy: ServiceAccount, config Secret, Deployment, Service (+ HPA, PDB).

All are named after the Gateway (the config Secret is ``<gateway>-agentgw-config``), carry
``gateway.networking.k8s.io/gateway-name: <gateway>`` and are owned by the Gateway, so
deleting the Gateway deletes them. The proxy reads ``/etc/agentgw/config.yaml`` from the
mounted Secret and hot-reloads it when the kubelet updates the volume: config changes never
restart pods. Image or parameter changes roll the Deployment with ``maxUnavailable: 0``, a
readiness probe and a pre-stop delay, so in-flight requests finish on the old pods.
"""

from __future__ import annotations

import re
from typing import Any

from .cli import dump_yaml
from .objects import deep_merge
from .output import GatewayOutput

GATEWAY_LABEL = "gateway.networking.k8s.io/gateway-name"
MANAGED_BY = {"app.kubernetes.io/managed-by": "agentgw", "app.kubernetes.io/name": "agentgw-proxy"}
CONFIG_DIR = "/etc/agentgw"
DEFAULT_IMAGE = "ghcr.io/agentgw/agentgw:0.1.0"


def _files_digest(files: dict[str, str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for k in sorted(files):
        h.update(k.encode() + b"\0" + files[k].encode() + b"\0")
    return h.hexdigest()[:16]


def config_secret_name(gw_name: str) -> str:
    return f"{gw_name}-agentgw-config"


def _port_name(name: str, used: set[str]) -> str:
    n = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:15] or "port"
    base, i = n, 1
    while n in used:
        i += 1
        n = f"{base[:13]}-{i}"
    used.add(n)
    return n


def _image(params: dict, default: str) -> str:
    img = params.get("image") or {}
    if not img:
        return default
    repo = img.get("repository") or default.rsplit(":", 1)[0].split("/", 1)[-1]
    if img.get("registry"):
        repo = f"{img['registry'].rstrip('/')}/{repo}"
    elif "/" not in repo:
        repo = default.rsplit(":", 1)[0].rsplit("/", 1)[0] + "/" + repo
    if img.get("digest"):  # the digest pins the image; a tag given with it stays in the reference
        return f"{repo}:{img['tag']}@{img['digest']}" if img.get("tag") else f"{repo}@{img['digest']}"
    return f"{repo}:{img.get('tag') or default.rsplit(':', 1)[-1]}"


def parameters_problems(spec: dict) -> list[str]:
    """The AgentgatewayParameters fields agentgw cannot act on, each with why (the
    parameters are then not accepted, and neither are the Gateways that use them)."""
    out = []
    if (spec.get("workload") or {}).get("kind") == "DaemonSet":
        out.append("spec.workload.kind: DaemonSet is not supported by agentgw (it provisions a Deployment)")
    if spec.get("daemonSet") is not None:
        out.append("spec.daemonSet: not supported by agentgw (it provisions a Deployment, not a DaemonSet)")
    if spec.get("istio") is not None:
        out.append("spec.istio: not supported by agentgw (it has no Istio mesh integration: no mTLS to mesh pods)")
    if spec.get("spiffe") is not None:
        out.append("spec.spiffe: not supported by agentgw (it has no SPIFFE Workload API client)")
    if spec.get("modelCatalog") is not None:
        out.append("spec.modelCatalog: not supported by agentgw (it reads no model catalog)")
    return out


def shutdown_config(params: dict) -> dict:
    """``shutdown {min, max}`` (seconds) → the proxy's drain settings: new connections are
    still accepted for ``min``, and the whole drain ends by ``max`` (the pod's grace period)."""
    sd = params.get("shutdown") or {}
    if not sd:
        return {}
    lo, hi = int(sd.get("min", 0)), int(sd.get("max", 0))
    return {"connectionMinTerminationDeadline": f"{lo}s", "connectionTerminationDeadline": f"{max(hi - lo, 0)}s"}


def _overlay(base: dict, params: dict, key: str) -> dict:
    ov = params.get(key) or {}
    if not ov:
        return base
    out = dict(base)
    md = ov.get("metadata") or {}
    if md:
        out["metadata"] = deep_merge(
            base.get("metadata") or {}, {k: v for k, v in md.items() if k in ("labels", "annotations")}
        )
    if ov.get("spec"):
        out["spec"] = deep_merge(base.get("spec") or {}, ov["spec"])
    return out


def proxy_objects(g: GatewayOutput, image: str = DEFAULT_IMAGE, owner_uid: str | None = None) -> list[dict]:
    ns, name = g.namespace, g.name
    params = g.parameters or {}
    labels = {GATEWAY_LABEL: name, **MANAGED_BY}
    gw_labels = ((g.gateway.get("spec") or {}).get("infrastructure") or {}).get("labels") or {}
    gw_annotations = ((g.gateway.get("spec") or {}).get("infrastructure") or {}).get("annotations") or {}
    common_md: dict[str, Any] = {"namespace": ns, "labels": {**gw_labels, **labels}}
    if gw_annotations:
        common_md["annotations"] = dict(gw_annotations)
    if owner_uid:
        common_md["ownerReferences"] = [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "name": name,
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]

    def md(n: str) -> dict:
        return {
            "name": n,
            **{
                k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in common_md.items()
            },
        }

    # The header names the referenced files' digest, so that a certificate-only change also
    # changes config.yaml's bytes and the proxy reloads (it compares the config file's digest).
    header = (
        f"# agentgw config for Gateway {ns}/{name}; generated by the controller\n# files: {_files_digest(g.files)}\n"
    )
    data = {"config.yaml": header + dump_yaml(g.config), **g.files}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": md(config_secret_name(name)),
        "type": "Opaque",
        "stringData": data,
    }
    sa = _overlay({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": md(name)}, params, "serviceAccount")

    used: set[str] = set()
    ports = [(_port_name(gl["name"], used), gl["port"]) for gl in g.listeners]
    container_ports = [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports]
    container_ports += [
        {"name": "metrics", "containerPort": 15020, "protocol": "TCP"},
        {"name": "readiness", "containerPort": 15021, "protocol": "TCP"},
    ]
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "AGENTGW_GATEWAY", "value": f"{ns}/{name}"},
    ] + list(params.get("env") or [])
    container: dict[str, Any] = {
        "name": "agentgw",
        "image": _image(params, image),
        "args": ["run", "-f", f"{CONFIG_DIR}/config.yaml"],
        "ports": container_ports,
        "env": env,
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "periodSeconds": 10,
            "failureThreshold": 6,
            "initialDelaySeconds": 10,
        },
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if (params.get("image") or {}).get("pullPolicy"):
        container["imagePullPolicy"] = params["image"]["pullPolicy"]
    if params.get("resources"):
        container["resources"] = params["resources"]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": name,
        "terminationGracePeriodSeconds": int((params.get("shutdown") or {}).get("max", 60)),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        },
        "containers": [container],
        "volumes": [
            {"name": "config", "secret": {"secretName": config_secret_name(name)}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    dep_spec: dict[str, Any] = {
        "selector": {"matchLabels": {GATEWAY_LABEL: name}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {
                "labels": {**gw_labels, **labels},
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "15020"},
            },
            "spec": pod_spec,
        },
    }
    hpa_set = bool(params.get("horizontalPodAutoscaler"))
    if not hpa_set:
        dep_spec["replicas"] = int(params.get("replicas", 1))
    deployment = _overlay(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": md(name), "spec": dep_spec}, params, "deployment"
    )
    if hpa_set:
        deployment["spec"].pop("replicas", None)  # the HPA owns the replica count
    service = _overlay(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": md(name),
            "spec": {
                "type": "LoadBalancer",
                "selector": {GATEWAY_LABEL: name},
                "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in ports],
            },
        },
        params,
        "service",
    )
    out = [sa, secret, deployment, service]
    if hpa_set:
        hpa = _overlay(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": md(name),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": 1,
                    "maxReplicas": 3,
                },
            },
            params,
            "horizontalPodAutoscaler",
        )
        out.append(hpa)
    if params.get("podDisruptionBudget"):
        pdb = _overlay(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": md(name),
                "spec": {"selector": {"matchLabels": {GATEWAY_LABEL: name}}},
            },
            params,
            "podDisruptionBudget",
        )
        if "minAvailable" not in pdb["spec"] and "maxUnavailable" not in pdb["spec"]:
            pdb["spec"]["minAvailable"] = 1
        out.append(pdb)
    return out
