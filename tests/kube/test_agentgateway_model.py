"""AgentgatewayModel served: each Gateway's config gets an ``llm`` section (``llm.models``,
``llm.virtualModels``) attached by ``llm.gateways`` to the listeners the models name, and
what the config cannot express refuses the model with the field path."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from agentgw.config import load_config_text
from agentgw.gateways import expand
from agentgw.kube.check import translate_checked
from agentgw.kube.cli import dump_yaml
from agentgw.kube.llm_models import NOT_SERVED
from agentgw.kube.translate import translate
from tests.kube.served import serving, upstream
from tests.support.harness import free_port

GW = "gateway.networking.k8s.io"
AG = "agentgateway.dev"
MODEL_KINDS = [{"kind": "HTTPRoute"}, {"group": AG, "kind": "AgentgatewayModel"}]


def _gateway(listeners: list[dict] | None = None) -> dict:
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "ns"},
        "spec": {
            "gatewayClassName": "x",
            "listeners": listeners
            or [{"name": "llm", "port": 80, "protocol": "HTTP", "allowedRoutes": {"kinds": MODEL_KINDS}}],
        },
    }


def _model(name: str, spec: dict, age: int = 0, parent: dict | None = None) -> dict:
    return {
        "apiVersion": f"{AG}/v1alpha1",
        "kind": "AgentgatewayModel",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": f"2024-01-01T00:00:{age:02d}Z"},
        "spec": {"parentRefs": [parent or {"name": "gw"}], **spec},
    }


def _secret() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "openai", "namespace": "ns"},
        "stringData": {"Authorization": "Bearer sk-test"},
    }


def _accepted(res, name: str) -> list[tuple[str, str, str]]:
    st = res.status[(AG, "AgentgatewayModel", "ns", name)]
    return [(c["type"], c["status"], c["reason"]) for p in st["parents"] for c in p["conditions"]]


def _why(res, name: str) -> tuple[str, str]:
    c = res.status[(AG, "AgentgatewayModel", "ns", name)]["parents"][0]["conditions"][0]
    assert c["type"] == "Accepted" and c["status"] == "False", c
    return c["reason"], c["message"]


def test_concrete_wildcard_internal_and_virtual_models_become_the_llm_section():
    objs = [
        _gateway(),
        _secret(),
        _model(
            "gpt-4o-mini",
            {
                "provider": "OpenAI",
                "visibility": "Internal",
                "baseURL": "https://openai.internal.example/v1",
                "policies": {
                    "auth": {"secretRef": {"name": "openai"}},
                    "transformations": [{"field": "max_tokens", "expression": "256"}],
                    "headers": {
                        "request": {"set": [{"name": "x-team", "value": "a"}]},
                        "response": {"remove": ["x-internal"]},
                    },
                    "tls": {"sni": "openai.example", "insecureSkipVerify": "Hostname"},
                },
            },
            age=1,
        ),
        _model("claude", {"match": {"model": "claude-*"}, "provider": "Anthropic"}, age=2),
        _model(
            "azure",
            {
                "match": {"model": "gpt-4.1"},
                "provider": "Azure",
                "azure": {"resourceName": "r", "resourceType": "Foundry", "apiVersion": "v1"},
            },
            age=3,
        ),
        _model(
            "vertex",
            {"match": {"model": "*-vertex"}, "provider": "VertexAI", "vertexai": {"projectId": "pr", "region": "eu"}},
            age=4,
        ),
        _model("bedrock", {"provider": "Bedrock", "bedrock": {"region": "us-east-1"}}, age=5),
        _model("groq", {"provider": "Groq", "match": {"model": "llama-3"}}, age=6),
        _model(
            "fast",
            {
                "virtualModel": {
                    "weighted": {
                        "targets": [
                            {"modelRef": {"name": "gpt-4o-mini"}, "weight": 3},
                            {"modelRef": {"name": "claude"}, "model": "claude-haiku"},
                        ]
                    }
                }
            },
            age=7,
        ),
        _model(
            "safe",
            {
                "virtualModel": {
                    "failover": {
                        "targets": [
                            {"modelRef": {"name": "gpt-4o-mini"}, "priority": 0},
                            {"modelRef": {"name": "azure"}, "priority": 1},
                        ]
                    }
                }
            },
            age=8,
        ),
        _model(
            "routed",
            {
                "virtualModel": {
                    "conditional": {
                        "targets": [
                            {"modelRef": {"name": "groq"}, "when": "default(llmRequest.max_tokens, 0) < 100"},
                            {"modelRef": {"name": "gpt-4o-mini"}},
                        ]
                    }
                }
            },
            age=9,
        ),
    ]
    res = translate(objs, offline=True)
    assert not res.errors, res.errors
    g = res.gateways[("ns", "gw")]
    assert g.config["llm"] == {
        "gateways": ["llm"],
        "models": [
            {
                "name": "gpt-4o-mini",
                "visibility": "internal",
                "provider": "openAI",
                "params": {"baseUrl": "https://openai.internal.example/v1"},
                "auth": {"key": "sk-test"},
                "transformation": {"max_tokens": "256"},
                "requestHeaders": {"set": {"x-team": "a"}},
                "responseHeaders": {"remove": ["x-internal"]},
                "tls": {"hostname": "openai.example", "insecureHost": True},
            },
            {"name": "claude-*", "provider": "anthropic"},
            {
                "name": "gpt-4.1",
                "provider": "azure",
                "params": {
                    "azureResourceName": "r",
                    "azureResourceType": "foundry",
                    "azureApiVersion": "v1",
                },
            },
            {"name": "*-vertex", "provider": "vertex", "params": {"vertexProject": "pr", "vertexRegion": "eu"}},
            {"name": "bedrock", "provider": "bedrock", "params": {"awsRegion": "us-east-1"}},
            {"name": "llama-3", "provider": "groq"},
        ],
        "virtualModels": [
            {
                "name": "fast",
                "routing": {
                    "weighted": {
                        "targets": [{"model": "gpt-4o-mini", "weight": 3}, {"model": "claude-haiku", "weight": 1}]
                    }
                },
            },
            {
                "name": "safe",
                "routing": {
                    "failover": {
                        "targets": [{"model": "gpt-4o-mini", "priority": 0}, {"model": "gpt-4.1", "priority": 1}]
                    }
                },
            },
            {
                "name": "routed",
                "routing": {
                    "conditional": {
                        "targets": [
                            {"model": "llama-3", "when": "default(llmRequest.max_tokens, 0) < 100"},
                            {"model": "gpt-4o-mini"},
                        ]
                    }
                },
            },
        ],
    }
    # provenance: a refusal by the proxy is pinned on the model it comes from
    assert g.sources["llm.models[0]"] == {(AG, "AgentgatewayModel", "ns", "gpt-4o-mini")}
    assert g.sources["llm.virtualModels[1]"] == {(AG, "AgentgatewayModel", "ns", "safe")}
    for name in ("gpt-4o-mini", "claude", "azure", "vertex", "bedrock", "groq", "fast", "safe", "routed"):
        assert _accepted(res, name) == [("Accepted", "True", "Accepted"), ("ResolvedRefs", "True", "ResolvedRefs")]
    lst = res.status[(GW, "Gateway", "ns", "gw")]["listeners"][0]
    assert {"group": AG, "kind": "AgentgatewayModel"} in lst["supportedKinds"]
    assert lst["attachedRoutes"] == 9
    load_config_text(dump_yaml(g.config))
    checked = translate_checked(objs, offline=True)
    assert ("ns", "gw") in checked.gateways, checked.errors
    assert not checked.errors, checked.errors


def test_what_the_config_cannot_express_refuses_the_model_with_the_field():
    objs = [
        _gateway(),
        _model("base", {"provider": "OpenAI", "match": {"model": "gpt-*"}}, age=1),
        _model(
            "authz",
            {
                "provider": "OpenAI",
                "policies": {"authorization": {"policy": {"matchExpressions": ["true"]}}},
            },
            age=2,
        ),
        _model(
            "final",
            {"provider": "OpenAI", "policies": {"finalTransformations": [{"field": "a", "expression": "1"}]}},
            age=3,
        ),
        _model(
            "guard",
            {"provider": "Bedrock", "bedrock": {"region": "r", "guardrail": {"identifier": "i", "version": "1"}}},
            age=4,
        ),
        _model("noregion", {"provider": "Bedrock", "bedrock": {}}, age=5),
        _model(
            "project",
            {"provider": "Azure", "azure": {"resourceName": "r", "resourceType": "OpenAI", "projectName": "p"}},
            age=5,
        ),
        _model("prefixed", {"provider": "OpenAI", "match": {"model": "openai/*"}}, age=6),
        _model("dup", {"provider": "Anthropic", "match": {"model": "gpt-*"}}, age=7),
        _model(
            "vmissing",
            {"virtualModel": {"weighted": {"targets": [{"modelRef": {"name": "nope"}}]}}},
            age=8,
        ),
        _model(
            "vwild",
            {"virtualModel": {"weighted": {"targets": [{"modelRef": {"name": "base"}}]}}},
            age=9,
        ),
        _model(
            "vrefused",
            {"virtualModel": {"failover": {"targets": [{"modelRef": {"name": "authz"}, "priority": 0}]}}},
            age=10,
        ),
        _model(
            "onroute",
            {"provider": "OpenAI"},
            age=11,
            parent={"group": GW, "kind": "HTTPRoute", "name": "r"},
        ),
    ]
    res = translate(objs, offline=True)
    assert _accepted(res, "base")[0] == ("Accepted", "True", "Accepted")
    assert _why(res, "authz") == (
        "Unsupported",
        "spec.policies.authorization: not supported by agentgw (its model table has no per-model authorization;"
        " put an authorization policy on the Gateway or its listener)",
    )
    assert _why(res, "final")[1].startswith("spec.policies.finalTransformations: not supported by agentgw")
    assert _why(res, "guard") == ("Unsupported", "spec.bedrock.guardrail: not supported by agentgw's model table")
    assert _why(res, "noregion")[1].startswith("spec.bedrock.region: required by agentgw")
    assert _why(res, "project") == ("Unsupported", "spec.azure.projectName: not supported by agentgw's model table")
    assert _why(res, "prefixed")[1].startswith("spec.match.model: 'openai/*': not supported by agentgw")
    assert _why(res, "dup") == (
        "Unsupported",
        "model 'gpt-*' is already served on Gateway ns/gw by AgentgatewayModel ns/base (the oldest one is served)",
    )
    assert _why(res, "vmissing") == (
        "Invalid",
        "spec.virtualModel.weighted.targets[0].modelRef: AgentgatewayModel ns/nope not found",
    )
    assert _accepted(res, "vmissing")[1] == ("ResolvedRefs", "False", "BackendNotFound")
    assert _why(res, "vwild") == (
        "Invalid",
        "spec.virtualModel.weighted.targets[0].model: required, AgentgatewayModel ns/base matches the wildcard 'gpt-*'",
    )
    assert _why(res, "vrefused") == (
        "Invalid",
        "spec.virtualModel.failover.targets[0].modelRef: AgentgatewayModel ns/authz is not served on Gateway ns/gw"
        " (a virtual model picks among the models of its listeners)",
    )
    assert _why(res, "onroute") == ("Unsupported", NOT_SERVED)
    # only what is accepted is in the config
    llm = res.gateways[("ns", "gw")].config["llm"]
    assert [m["name"] for m in llm["models"]] == ["gpt-*"] and "virtualModels" not in llm


def test_models_attach_only_to_listeners_that_list_them_and_one_table_per_gateway():
    listeners = [
        {"name": "web", "port": 80, "protocol": "HTTP"},
        {"name": "llm", "port": 81, "protocol": "HTTP", "allowedRoutes": {"kinds": MODEL_KINDS[1:]}},
        {"name": "llm2", "port": 82, "protocol": "HTTP", "allowedRoutes": {"kinds": MODEL_KINDS}},
    ]
    route = {
        "apiVersion": f"{GW}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": "llm"}], "rules": [{}]},
    }
    res = translate(
        [
            _gateway(listeners),
            route,
            _model("a", {"provider": "OpenAI"}, age=1, parent={"name": "gw", "sectionName": "llm"}),
            _model("b", {"provider": "OpenAI"}, age=2, parent={"name": "gw", "sectionName": "web"}),
            _model("c", {"provider": "OpenAI"}, age=3),  # every listener that takes models: llm and llm2
            _model("d", {"provider": "OpenAI"}, age=4, parent={"name": "gw", "sectionName": "llm", "port": 81}),
        ],
        offline=True,
    )
    assert _why(res, "b") == (
        "NotAllowedByListeners",
        "listener web does not list agentgateway.dev/AgentgatewayModel in allowedRoutes.kinds",
    )
    assert _why(res, "c") == (
        "Unsupported",
        "agentgw serves one model table per Gateway, on the same listeners: Gateway ns/gw serves its models on"
        " listener(s) llm (those of its oldest model), this model attaches to llm, llm2",
    )
    assert _accepted(res, "d")[0] == ("Accepted", "True", "Accepted")
    assert res.gateways[("ns", "gw")].config["llm"]["gateways"] == ["llm"]
    # a listener listing only AgentgatewayModel takes no HTTPRoute
    p = res.status[(GW, "HTTPRoute", "ns", "r")]["parents"][0]["conditions"][0]
    assert (p["status"], p["reason"]) == ("False", "NotAllowedByListeners")
    kinds = {ls["name"]: ls["supportedKinds"] for ls in res.status[(GW, "Gateway", "ns", "gw")]["listeners"]}
    assert kinds["llm"][-1] == {"group": AG, "kind": "AgentgatewayModel"}
    assert {"group": AG, "kind": "AgentgatewayModel"} not in kinds["web"]


def _cfg(text: str):
    return load_config_text(text)


def test_llm_gateways_names_a_classic_bind_listener_unambiguously():
    base = """
binds:
- port: {p1}
  listeners:
  - {{name: web, routes: [{{backends: [{{host: 127.0.0.1:1}}]}}]}}
  - {{name: other, hostname: x.example, routes: []}}
{extra}
llm:
  gateways: [{ref}]
  models: [{{name: m, provider: openAI}}]
"""
    shape = expand(_cfg(base.format(p1=free_port(), extra="", ref="web")))
    assert not shape.errors and shape.llm_listeners == ["binds[0].listeners[0]"]
    # the same name on two bind listeners, or on a named gateway too: ambiguous
    extra = f"- port: {free_port()}\n  listeners:\n  - {{name: web, routes: []}}"
    shape = expand(_cfg(base.format(p1=free_port(), extra=extra, ref="web")))
    assert shape.errors == [
        ("llm.gateways", "reference 'web' is ambiguous: it names binds[0].listeners[0], binds[1].listeners[0]")
    ]
    extra = f"gateways:\n  web: {{port: {free_port()}}}"
    shape = expand(_cfg(base.format(p1=free_port(), extra=extra, ref="web")))
    assert shape.errors == [
        ("llm.gateways", "reference 'web' is ambiguous: it names binds[0].listeners[0], gateways.web")
    ]
    shape = expand(_cfg(base.format(p1=free_port(), extra="", ref="nope")))
    assert shape.errors == [("llm.gateways", "unknown gateway reference 'nope'")]


class _FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat completions upstream that says which model and key it got."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        text = f"model={body.get('model')} auth={self.headers.get('authorization')} path={self.path}"
        out = json.dumps(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


MANIFESTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: local, namespace: demo}}
spec:
  gatewayClassName: agentgw
  infrastructure:
    parametersRef: {{group: agentgateway.dev, kind: AgentgatewayParameters, name: local}}
  listeners:
  - name: http
    port: {gw_port}
    protocol: HTTP
    allowedRoutes:
      kinds: [{{group: agentgateway.dev, kind: AgentgatewayModel}}]
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayParameters
metadata: {{name: local, namespace: demo}}
spec:
  rawConfig:
    config: {{adminAddr: "off", statsAddr: "off", readinessAddr: "off"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: key, namespace: demo}}
stringData: {{Authorization: "Bearer sk-one"}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayModel
metadata: {{name: small, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  match: {{model: "small-*"}}
  provider: OpenAI
  baseURL: http://127.0.0.1:{up_port}/one
  policies:
    auth: {{secretRef: {{name: key}}}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayModel
metadata: {{name: hidden, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  visibility: Internal
  provider: OpenAI
  baseURL: http://127.0.0.1:{up_port}/two
  policies:
    auth: {{key: sk-two}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayModel
metadata: {{name: smart, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  virtualModel:
    weighted:
      targets: [{{modelRef: {{name: hidden}}}}]
"""


@pytest.mark.timeout(60)
def test_translated_models_are_served_by_the_request_model(tmp_path):
    gw_port = free_port()
    f = tmp_path / "m.yaml"
    with upstream(_FakeOpenAI) as up_port:
        f.write_text(MANIFESTS.format(gw_port=gw_port, up_port=up_port))
        with serving(f, gw_port, "/v1/models") as r:
            assert r.status_code == 200, r.text
            assert [m["id"] for m in r.json()["data"]] == ["smart"]  # (wildcards and internal models are not listed)

            def chat(model: str) -> httpx.Response:
                return httpx.post(
                    f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                    timeout=10,
                )

            r = chat("small-1")
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == (
                "model=small-1 auth=Bearer sk-one path=/one/chat/completions"
            )
            r = chat("smart")  # the virtual model, to the internal one
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == (
                "model=hidden auth=Bearer sk-two path=/two/chat/completions"
            )
            assert chat("hidden").status_code == 404  # internal: not callable by name
            assert chat("other").status_code == 404
