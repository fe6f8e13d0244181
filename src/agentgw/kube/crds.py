"""The CustomResourceDefinitions agentgw's controller serves, as data.

``deploy/crds/*.yaml`` are generated from here (``python -m agentgw.kube.crds deploy/crds``)
and a test checks they are in sync. Schemas are structural (every node typed; free-form
parts marked ``x-kubernetes-preserve-unknown-fields``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

S = {"type": "string"}
I = {"type": "integer"}
B = {"type": "boolean"}
FREE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}


def obj(props: dict, required: list[str] | None = None, **extra: Any) -> dict:
    o: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        o["required"] = required
    o.update(extra)
    return o


def arr(items: dict, **extra: Any) -> dict:
    return {"type": "array", "items": items, **extra}


def enum(*vals: str) -> dict:
    return {"type": "string", "enum": list(vals)}


PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
LABEL_SELECTOR = obj({
    "matchLabels": STRMAP,
    "matchExpressions": arr(obj({"key": S, "operator": enum("In", "NotIn", "Exists", "DoesNotExist"), "values": arr(S)}, ["key", "operator"])),
})
TARGET_REF = obj({"group": S, "kind": S, "name": S, "sectionName": S}, ["group", "kind", "name"])
SECRET_REF = obj({"name": S, "namespace": S, "key": S}, ["name"])
BACKEND_REF = obj({"group": S, "kind": S, "name": S, "namespace": S, "port": PORT}, ["name"])
CONDITION = obj({
    "type": S, "status": enum("True", "False", "Unknown"), "reason": S, "message": S,
    "observedGeneration": {"type": "integer", "format": "int64"}, "lastTransitionTime": {"type": "string", "format": "date-time"},
}, ["type", "status"])
CONDITIONS = arr(CONDITION, **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"], "maxItems": 8})
STATUS = obj({"conditions": CONDITIONS})
POLICY_STATUS = obj({
    "conditions": CONDITIONS,
    "ancestors": arr(obj({"ancestorRef": FREE, "controllerName": S, "conditions": CONDITIONS}), maxItems=16),
})
MODE = enum("Strict", "Optional", "Permissive")
DURATION = {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"}
AUTHZ = obj({"action": enum("Allow", "Deny", "Require"), "policy": obj({"matchExpressions": arr(S, minItems=1)}, ["matchExpressions"])}, ["policy"])

STATIC = obj({"host": S, "port": PORT}, ["host", "port"])
BACKEND_POLICIES = obj({
    "a2a": FREE,
    "mcp": obj({"authorization": AUTHZ}),
    "tls": obj({"sni": S, "insecureSkipVerify": B, "alpnProtocols": arr(S), "caCertificateRefs": arr(obj({"name": S}, ["name"]))}),
    "auth": obj({"secretRef": SECRET_REF, "key": S, "passthrough": FREE, "aws": obj({"region": S, "serviceName": S})}),
    "http": obj({"requestTimeout": DURATION, "version": S}),
})

TRAFFIC = obj({
    "phase": enum("PreRouting", "PostRouting"),
    "jwtAuthentication": obj({
        "mode": MODE,
        "providers": arr(obj({
            "issuer": S, "audiences": arr(S),
            "jwks": obj({"inline": S, "remote": obj({"url": S, "backendRef": BACKEND_REF, "jwksPath": S}), "secretRef": SECRET_REF, "configMapRef": SECRET_REF}),
        }, ["issuer", "jwks"]), minItems=1),
        "claimToHeaders": arr(obj({"claim": S, "header": S}, ["claim", "header"])),
    }, ["providers"]),
    "apiKeyAuthentication": obj({"mode": MODE, "secretRef": SECRET_REF}, ["secretRef"]),
    "basicAuthentication": obj({"mode": MODE, "realm": S, "users": arr(S), "secretRef": SECRET_REF}),
    "authorization": AUTHZ,
    "rateLimit": obj({"local": arr(obj({"requests": {"type": "integer", "minimum": 1}, "tokens": {"type": "integer", "minimum": 1}, "unit": enum("Seconds", "Minutes", "Hours"), "burst": {"type": "integer", "minimum": 0}}, ["unit"]))}),
    "cors": obj({"allowOrigins": arr(S), "allowMethods": arr(S), "allowHeaders": arr(S), "exposeHeaders": arr(S), "allowCredentials": B, "maxAge": {"x-kubernetes-int-or-string": True}}),
    "timeouts": obj({"request": DURATION, "backendRequest": DURATION}),
    "retry": obj({"attempts": {"type": "integer", "minimum": 0}, "backoff": DURATION, "codes": arr({"type": "integer", "minimum": 400, "maximum": 599})}),
    "headerModifiers": obj({"request": FREE, "response": FREE}),
})
FRONTEND = obj({
    "tracing": obj({"backendRef": BACKEND_REF, "endpoint": S, "protocol": enum("GRPC", "HTTP"), "randomSampling": S, "clientSampling": S, "path": S}),
    "accessLog": obj({"filter": S, "attributes": obj({"add": arr(obj({"name": S, "expression": S}, ["name", "expression"])), "remove": arr(S)})}),
})

OVERLAY = obj({"metadata": obj({"labels": STRMAP, "annotations": STRMAP}), "spec": FREE})

ACCEPTED_COL = {"name": "Accepted", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Accepted")].status'}
AGE_COL = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def crd(group: str, kind: str, plural: str, spec: dict, status: dict, columns: list[dict], short: list[str] | None = None, categories: list[str] | None = None, version: str = "v1alpha1", spec_required: bool = True) -> dict:
    root = obj({"apiVersion": S, "kind": S, "metadata": {"type": "object"}, "spec": spec, "status": status}, ["spec"] if spec_required else None)
    names = {"kind": kind, "listKind": kind + "List", "plural": plural, "singular": kind.lower()}
    if short:
        names["shortNames"] = short
    if categories:
        names["categories"] = categories
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {"app.kubernetes.io/part-of": "agentgw"}},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced",
            "versions": [{
                "name": version, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": root},
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns + [ACCEPTED_COL, AGE_COL],
            }],
        },
    }


ONE_KIND_RULE = {"rule": "[has(self.static), has(self.a2a), has(self.ai), has(self.mcp), has(self.aws)].filter(x, x).size() == 1", "message": "exactly one of static, a2a, ai, mcp, aws must be set"}

AGENTGATEWAY_BACKEND = crd(
    "agentgateway.dev", "AgentgatewayBackend", "agentgatewaybackends",
    obj({
        "static": STATIC,
        "a2a": obj({"targets": arr(obj({"name": S, "weight": {"type": "integer", "minimum": 0}, "static": STATIC}, ["static"]), minItems=1)}, ["targets"]),
        "ai": obj({"provider": FREE, "groups": arr(FREE), "priorityGroups": arr(FREE)}),
        "mcp": obj({
            "targets": arr(obj({
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
                "static": obj({"host": S, "port": PORT, "path": S, "protocol": enum("StreamableHTTP", "SSE")}, ["host", "port"]),
                "selector": obj({"namespaces": LABEL_SELECTOR, "services": LABEL_SELECTOR}),
            }, ["name"]), minItems=1),
            "failureMode": enum("FailClosed", "FailOpen"),
            "prefixMode": enum("Always", "Conditional", "Never"),
            "sessionRouting": enum("Stateful", "Stateless"),
        }, ["targets"]),
        "aws": obj({"agentCore": obj({"agentRuntimeArn": {"type": "string", "pattern": "^arn:aws[a-z-]*:bedrock-agentcore:"}, "qualifier": S}, ["agentRuntimeArn"])}, ["agentCore"]),
        "policies": BACKEND_POLICIES,
    }, **{"x-kubernetes-validations": [ONE_KIND_RULE]}),
    STATUS, [], short=["agbe"], categories=["agentgateway"],
)

AGENTGATEWAY_POLICY = crd(
    "agentgateway.dev", "AgentgatewayPolicy", "agentgatewaypolicies",
    obj({"targetRefs": arr(TARGET_REF, minItems=1, maxItems=16), "frontend": FRONTEND, "traffic": TRAFFIC, "backend": BACKEND_POLICIES}, ["targetRefs"]),
    POLICY_STATUS, [], short=["agpol"], categories=["agentgateway"],
)

AGENTGATEWAY_PARAMETERS = crd(
    "agentgateway.dev", "AgentgatewayParameters", "agentgatewayparameters",
    obj({
        "image": obj({"registry": S, "repository": S, "tag": S, "digest": S, "pullPolicy": enum("Always", "IfNotPresent", "Never")}),
        "env": arr(FREE),
        "resources": FREE,
        "replicas": {"type": "integer", "minimum": 0},
        "logging": obj({"level": S, "format": enum("text", "json")}),
        "rawConfig": FREE,
        "deployment": OVERLAY, "service": OVERLAY, "serviceAccount": OVERLAY,
        "podDisruptionBudget": OVERLAY, "horizontalPodAutoscaler": OVERLAY,
    }),
    STATUS, [], short=["agpar"], categories=["agentgateway"], spec_required=False,
)

# Other vendors' shapes agentgw translates (installed with deploy/kubernetes/compat only).
ENTERPRISE_POLICY = crd(
    "enterpriseagentgateway.solo.io", "EnterpriseAgentgatewayPolicy", "enterpriseagentgatewaypolicies",
    obj({"targetRefs": arr(TARGET_REF, minItems=1, maxItems=16), "frontend": FRONTEND, "backend": BACKEND_POLICIES,
         "traffic": obj({**TRAFFIC["properties"], "entRateLimit": obj({"global": obj({"rateLimitConfigRefs": arr(obj({"name": S, "namespace": S}, ["name"]), minItems=1)}, ["rateLimitConfigRefs"])})})}, ["targetRefs"]),
    POLICY_STATUS, [], categories=["agentgateway"],
)
RATE_LIMIT_CONFIG = crd(
    "ratelimit.solo.io", "RateLimitConfig", "ratelimitconfigs",
    obj({"raw": obj({
        "descriptors": arr(obj({"key": S, "value": S, "rateLimit": obj({"requestsPerUnit": {"type": "integer", "minimum": 0}, "unit": enum("SECOND", "MINUTE", "HOUR", "DAY")}), "descriptors": arr(FREE)}, ["key"])),
        "rateLimits": arr(obj({"actions": arr(FREE), "type": S, "limit": FREE})),
        "setDescriptors": arr(FREE),
    })}),
    STATUS, [],
)
ACK_BACKEND = crd(
    "agentgateway.alibabacloud.com", "Backend", "backends",
    obj({"type": enum("A2A"), "a2a": obj({"targets": arr(obj({"name": S, "static": STATIC}, ["static"]), minItems=1)}, ["targets"])}, ["type"]),
    STATUS, [{"name": "Type", "type": "string", "jsonPath": ".spec.type"}],
)
ACK_TRAFFIC_POLICY = crd(
    "agentgateway.alibabacloud.com", "TrafficPolicy", "trafficpolicies",
    obj({"targetRefs": arr(TARGET_REF, minItems=1, maxItems=16),
         "traffic": obj({"authentication": obj({"apiKeyAuth": obj({"secretRef": SECRET_REF}, ["secretRef"])})})}, ["targetRefs"]),
    POLICY_STATUS, [],
)

CORE = {
    "agentgateway.dev_agentgatewaybackends.yaml": AGENTGATEWAY_BACKEND,
    "agentgateway.dev_agentgatewaypolicies.yaml": AGENTGATEWAY_POLICY,
    "agentgateway.dev_agentgatewayparameters.yaml": AGENTGATEWAY_PARAMETERS,
}
COMPAT = {
    "enterpriseagentgateway.solo.io_enterpriseagentgatewaypolicies.yaml": ENTERPRISE_POLICY,
    "ratelimit.solo.io_ratelimitconfigs.yaml": RATE_LIMIT_CONFIG,
    "agentgateway.alibabacloud.com_backends.yaml": ACK_BACKEND,
    "agentgateway.alibabacloud.com_trafficpolicies.yaml": ACK_TRAFFIC_POLICY,
}


def render() -> dict[str, str]:
    """File name (relative to deploy/crds) → YAML text."""
    import yaml

    from .cli import _Dumper

    out = {}
    for prefix, group in (("", CORE), ("compat/", COMPAT), ("../helm/agentgw/crds/", CORE)):
        for name, doc in group.items():
            out[prefix + name] = "# Generated by `python -m agentgw.kube.crds deploy/crds`; do not edit.\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False)
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "deploy/crds"
    for name, text in render().items():
        path = os.path.join(target, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print(path)
