"""Install manifests: kustomize renders, CRDs are structural and in sync, objects validate.

Built-in kinds are checked against small JSON schemas of the fields the API server requires;
custom resources (the seeds' included) against our CRDs' own openAPIV3Schema, with unknown
fields refused — the API server would prune them silently, so a field the translator reads
must be in the schema.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from agentgw.kube import crds
from agentgw.kube.manifests import load_manifests
from agentgw.kube.provision import proxy_objects
from agentgw.kube.translate import translate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
FORBIDDEN = {"$ref", "definitions", "dependencies", "additionalItems", "patternProperties", "id", "$schema"}

META = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": DNS1123, "maxLength": 253}},
}
CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "properties": {
        "name": {"type": "string", "pattern": DNS1123},
        "image": {"type": "string", "minLength": 1},
        "ports": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["containerPort"],
                "properties": {
                    "name": {"type": "string", "maxLength": 15},
                    "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                },
            },
        },
    },
}
POD = {
    "type": "object",
    "required": ["containers"],
    "properties": {"containers": {"type": "array", "minItems": 1, "items": CONTAINER}},
}
LABEL_SEL = {
    "type": "object",
    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
}
BUILTIN = {
    "Namespace": {},
    "ServiceAccount": {},
    "Secret": {
        "properties": {
            "type": {"type": "string"},
            "stringData": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    },
    "ClusterRole": {
        "required": ["rules"],
        "properties": {
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["verbs"],
                    "properties": {"verbs": {"type": "array", "minItems": 1}},
                },
            }
        },
    },
    "ClusterRoleBinding": {
        "required": ["roleRef", "subjects"],
        "properties": {
            "roleRef": {"type": "object", "required": ["apiGroup", "kind", "name"]},
            "subjects": {"type": "array", "items": {"type": "object", "required": ["kind", "name"]}},
        },
    },
    "Deployment": {
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["selector", "template"],
                "properties": {
                    "selector": LABEL_SEL,
                    "template": {"type": "object", "required": ["spec"], "properties": {"spec": POD}},
                },
            }
        },
    },
    "Service": {
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["ports"],
                "properties": {
                    "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
                    "ports": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "name": {"type": "string", "maxLength": 15},
                            },
                        },
                    },
                },
            }
        },
    },
    "HorizontalPodAutoscaler": {
        "required": ["spec"],
        "properties": {"spec": {"type": "object", "required": ["scaleTargetRef", "maxReplicas"]}},
    },
    "PodDisruptionBudget": {"required": ["spec"], "properties": {"spec": {"type": "object", "required": ["selector"]}}},
    "GatewayClass": {
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["controllerName"],
                "properties": {
                    "controllerName": {
                        "type": "string",
                        "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$",
                    }
                },
            }
        },
    },
}


def builtin_schema(kind: str) -> dict:
    s = {"type": "object", "required": ["apiVersion", "kind", "metadata"], "properties": {"metadata": META}}
    extra = BUILTIN[kind]
    s["required"] = s["required"] + extra.get("required", [])
    s["properties"] = {**s["properties"], **extra.get("properties", {})}
    return s


def check_structural(node: dict, path: str = "") -> list[str]:
    errs = [f"{path}: {k} is not allowed in a structural schema" for k in node if k in FORBIDDEN]
    if node.get("uniqueItems"):
        errs.append(f"{path}: uniqueItems: true is not allowed")
    if node.get("x-kubernetes-int-or-string"):
        return errs
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):  # (any JSON value)
        errs.append(f"{path}: type is required")
    if node.get("type") == "object":
        if "properties" in node and isinstance(node.get("additionalProperties"), dict):
            errs.append(f"{path}: properties and additionalProperties are mutually exclusive")
        for k, v in (node.get("properties") or {}).items():
            errs += check_structural(v, f"{path}.{k}")
        if isinstance(node.get("additionalProperties"), dict):
            errs += check_structural(node["additionalProperties"], f"{path}[*]")
    if node.get("type") == "array":
        if "items" not in node:
            errs.append(f"{path}: arrays need items")
        else:
            errs += check_structural(node["items"], f"{path}[]")
    return errs


def to_jsonschema(node: dict) -> dict:
    """openAPIV3Schema → JSON schema; objects refuse fields the API server would prune."""
    if node.get("x-kubernetes-int-or-string"):
        return {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    out = {
        k: v
        for k, v in node.items()
        if not k.startswith("x-kubernetes-") and k not in ("properties", "items", "additionalProperties", "format")
    }
    if "properties" in node:
        out["properties"] = {k: to_jsonschema(v) for k, v in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_jsonschema(node["additionalProperties"])
    if "items" in node:
        out["items"] = to_jsonschema(node["items"])
    return out


def all_crds() -> dict[tuple[str, str], dict]:
    out = {}
    for doc in list(crds.CORE.values()) + list(crds.COMPAT.values()):
        out[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = doc
    return out


def crd_schema(group: str, kind: str) -> dict:
    doc = all_crds()[(group, kind)]
    root = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    s = to_jsonschema(root)
    s["properties"]["metadata"] = META
    return s


def validate(obj: dict) -> None:
    av = obj["apiVersion"]
    group = av.split("/")[0] if "/" in av else ""
    if obj["kind"] == "CustomResourceDefinition":
        v = obj["spec"]["versions"]
        assert obj["metadata"]["name"] == f"{obj['spec']['names']['plural']}.{obj['spec']['group']}"
        assert sum(1 for x in v if x["storage"]) == 1
        for ver in v:
            assert check_structural(ver["schema"]["openAPIV3Schema"]) == []
            assert ver["subresources"] == {"status": {}}
            assert any(c["name"] == "Accepted" for c in ver["additionalPrinterColumns"])
        return
    if (group, obj["kind"]) in all_crds():
        jsonschema.validate(obj, crd_schema(group, obj["kind"]))
        return
    jsonschema.validate(obj, builtin_schema(obj["kind"]))


def test_crd_files_are_generated_and_in_sync():
    for name, text in crds.render().items():
        with open(os.path.join(DEPLOY, "crds", name)) as f:
            assert f.read() == text, f"deploy/crds/{name} is stale: run python -m agentgw.kube.crds deploy/crds"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (apt-get install kubernetes-client)")
@pytest.mark.parametrize("overlay", ["kubernetes", "kubernetes/compat"])
def test_kustomize_renders_and_objects_validate(overlay):
    out = subprocess.run(
        ["kubectl", "kustomize", os.path.join(DEPLOY, overlay)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = sorted({o["kind"] for o in objs})
    assert {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "Deployment",
        "GatewayClass",
        "Namespace",
    } <= set(kinds)
    for o in objs:
        validate(o)
        if o["kind"] in ("GatewayClass", "ClusterRole", "ClusterRoleBinding", "Namespace", "CustomResourceDefinition"):
            assert "namespace" not in o["metadata"], f"cluster-scoped {o['kind']} must not carry a namespace"
        elif o["kind"] in ("Deployment", "ServiceAccount"):
            assert o["metadata"]["namespace"] == "agentgw-system"
    ctl = next(o for o in objs if o["kind"] == "Deployment")
    sec = ctl["spec"]["template"]["spec"]["securityContext"]
    assert sec["runAsNonRoot"] is True
    assert ctl["spec"]["template"]["spec"]["containers"][0]["args"] == ["controller"]
    gc = [o for o in objs if o["kind"] == "GatewayClass"]
    assert all(o["spec"]["controllerName"] == "agentgw.dev/controller" for o in gc)
    if overlay.endswith("compat"):
        assert {o["metadata"]["name"] for o in gc} == {
            "agentgw",
            "agentgateway",
            "enterprise-agentgateway",
            "ack-agent-gateway",
        }
        assert sum(1 for o in objs if o["kind"] == "CustomResourceDefinition") == len(crds.CORE) + len(crds.COMPAT)


@pytest.mark.parametrize("case", sorted(d for d in os.listdir(FIXTURES) if d.startswith("seed")))
def test_seed_custom_resources_validate_against_our_crds(case):
    crs = [
        o
        for o in load_manifests(os.path.join(FIXTURES, case))
        if ((o["apiVersion"].split("/")[0]), o["kind"]) in all_crds()
    ]
    for o in crs:
        validate(o)
    if case in ("seed000_agentcore", "seed002_flux", "seed003_ack_a2a", "seed004_three_listeners"):
        assert crs, "the seed's custom resources were found"


def test_crd_schema_refuses_bad_instances():
    bad = {
        "apiVersion": "agentgateway.dev/v1alpha1",
        "kind": "AgentgatewayBackend",
        "metadata": {"name": "x"},
        "spec": {"aws": {"agentCore": {"agentRuntimeArn": "not-an-arn"}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)
    typo = {
        "apiVersion": "agentgateway.dev/v1alpha1",
        "kind": "AgentgatewayPolicy",
        "metadata": {"name": "x"},
        "spec": {"targetRefs": [{"group": "g", "kind": "k", "name": "n"}], "traffic": {"jwtAuthentification": {}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        validate(typo)


@pytest.mark.parametrize("case", ["seed000_agentcore", "seed002_flux", "seed004_three_listeners", "gwapi_examples"])
def test_provisioned_proxy_objects_validate(case):
    res = translate(load_manifests(os.path.join(FIXTURES, case)), offline=True)
    for g in res.gateways.values():
        objs = proxy_objects(g, owner_uid="1234")
        for o in objs:
            validate(o)
        by_kind = {o["kind"]: o for o in objs}
        assert by_kind["ServiceAccount"]["metadata"]["name"] == g.name
        dep = by_kind["Deployment"]
        assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
        assert "agentgw.dev/config" not in str(dep["spec"]["template"]["metadata"])  # config changes never roll pods
        if case == "seed004_three_listeners":
            assert by_kind["Service"]["spec"]["type"] == "ClusterIP"
            env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["OTEL_TRACES_SAMPLER_ARG"] == "1.0"
            assert [p["port"] for p in by_kind["Service"]["spec"]["ports"]] == [8080, 9090, 9080]


def test_helm_chart_is_consistent():
    chart = os.path.join(DEPLOY, "helm", "agentgw")
    meta = yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))
    values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))
    assert meta["apiVersion"] == "v2" and meta["name"] == "agentgw"
    assert {"image", "controller", "proxy", "metrics", "tracing", "redis"} <= set(values)
    for name in crds.CORE:
        with open(os.path.join(chart, "crds", name)) as a, open(os.path.join(DEPLOY, "crds", name)) as b:
            assert a.read() == b.read()
    assert sorted(os.listdir(os.path.join(chart, "crds"))) == sorted(crds.CORE)
    # the compat CRDs: a template switched on by compat.crds (off by default), kept on uninstall
    assert values["compat"] == {"crds": False}
    text = open(os.path.join(chart, "templates", "compat-crds.yaml")).read()
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body[0] == "{{- if .Values.compat.crds }}" and body[-1] == "{{- end }}"
    assert not any("{{" in line for line in body[1:-1])  # (nothing else for Helm to render)
    docs = [d for d in yaml.safe_load_all("\n".join(body[1:-1])) if d]
    assert [d["metadata"]["name"] for d in docs] == [d["metadata"]["name"] for d in crds.COMPAT.values()]
    for d, want in zip(docs, crds.COMPAT.values(), strict=True):
        assert d["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert d["spec"] == json.loads(json.dumps(want["spec"]))


def test_certificate_rotation_changes_the_config_file_bytes():
    """The proxy reloads when config.yaml's bytes change; a new certificate alone must change them."""
    objs = load_manifests(os.path.join(FIXTURES, "gwapi_examples"))
    before = translate(objs, offline=True).gateways[("infra", "shared-gateway")]
    sec = next(o for o in objs if o["kind"] == "Secret")
    sec["stringData"]["tls.crt"] = sec["stringData"]["tls.crt"].replace("TESTCERT", "ROTATED")
    after = translate(objs, offline=True).gateways[("infra", "shared-gateway")]
    assert before.config == after.config
    cfg = lambda g: next(o for o in proxy_objects(g) if o["kind"] == "Secret")["stringData"]["config.yaml"]  # noqa: E731
    assert cfg(before) != cfg(after)
    assert yaml.safe_load(cfg(before)) == before.config
