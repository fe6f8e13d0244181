"""AgentgatewayBackend kinds and ``spec.policies`` fields (agentgateway's BackendFull).

The golden case ``backend_fields`` holds the full translation; these tests pin the schema
rules, the auth kinds that need Secrets, the refusals and (served for real) what a request
through the gateway carries.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from agentgw.config import load_config_text
from agentgw.kube.check import translate_checked
from agentgw.kube.cli import dump_yaml
from agentgw.kube.translate import translate
from tests.kube.served import LOCAL_GATEWAY, serving, upstream
from tests.support.harness import free_port

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))
GW = "gateway.networking.k8s.io"
AG = "agentgateway.dev"
KEY = ("agentgateway.dev", "AgentgatewayBackend", "ns", "b")


def _objs(spec: dict, *extra: dict) -> list[dict]:
    return [
        {
            "apiVersion": f"{GW}/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "x", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]},
        },
        {"apiVersion": f"{AG}/v1alpha1", "kind": "AgentgatewayBackend", "metadata": {"name": "b", "namespace": "ns"}}
        | {"spec": spec},
        {
            "apiVersion": f"{GW}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"backendRefs": [{"group": AG, "kind": "AgentgatewayBackend", "name": "b"}]}],
            },
        },
        *extra,
    ]


def _secret(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns"}, "stringData": data}


def _accepted(res) -> dict:
    return res.status[KEY]["conditions"][0]


def _backend(res) -> dict:
    return res.gateways[("ns", "gw")].config["binds"][0]["listeners"][0]["routes"][0]["backends"][0]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"a2a": {"host": "a"}}, "spec.a2a: set host and port, or targets"),
        (
            {"a2a": {"host": "a", "port": 1, "targets": [{"static": {"host": "a", "port": 1}}]}},
            "spec.a2a: set host and port, or targets",
        ),
        ({"static": {"unixPath": "/s", "host": "a", "port": 1}}, "unixPath and host/port are mutually exclusive"),
        ({"static": {"host": "a"}}, "must specify either unixPath or both host and port"),
        ({"static": {"host": "a", "port": 1}, "dynamicForwardProxy": {}}, "exactly one of static, a2a"),
        (
            {"static": {"host": "a", "port": 1}, "policies": {"ai": {"modelAliases": {"a": "b"}}}},
            "AI policies require AI backend",
        ),
        (
            {"static": {"host": "a", "port": 1}, "policies": {"auth": {"key": "k", "passthrough": {}}}},
            "at most one of key, secretRef",
        ),
        (
            {
                "static": {"host": "a", "port": 1},
                "policies": {"auth": {"aws": {}, "location": {"cookie": {"name": "c"}}}},
            },
            "location may only be set for key, secretRef, or passthrough auth",
        ),
        (
            {"static": {"host": "a", "port": 1}, "policies": {"tls": {"insecureSkipVerify": True}}},
            "spec.policies.tls.insecureSkipVerify: must be a string",
        ),
        (
            {"static": {"host": "a", "port": 1}, "policies": {"tls": {"certificateSource": "SPIFFE"}}},
            "spec.policies.tls.certificateSource: SPIFFE is not supported by agentgw",
        ),
        (
            {"static": {"host": "a", "port": 1}, "policies": {"auth": {"gcp": {"type": "IdToken"}}}},
            "spec.policies.auth.gcp: ID tokens are not supported by agentgw",
        ),
        (
            {"static": {"host": "a", "port": 1}, "policies": {"extAuth": {"url": "http://a:1", "grpc": {}}}},
            "spec.policies.extAuth: not supported by agentgw on a backend",
        ),
        (
            {"ai": {"provider": {"openai": {}}}, "policies": {"ai": {"routes": {"/v2/rerank": "Rerank"}}}},
            "spec.policies.ai.routes./v2/rerank: Rerank is not supported by agentgw",
        ),
        (
            {"ai": {"provider": {"openai": {}}}, "policies": {"ai": {"promptGuard": {"request": []}}}},
            "spec.policies.ai.promptGuard: not translated by agentgw's controller yet",
        ),
        (
            {
                "mcp": {"targets": [{"name": "t", "static": {"host": "a", "port": 1}}]},
                "policies": {"mcp": {"guardrails": {}}},
            },
            "spec.policies.mcp.guardrails: not supported by agentgw",
        ),
        (
            {"dynamicForwardProxy": {}, "policies": {"auth": {"key": "k"}}},
            "spec.policies.auth: not supported by agentgw on a dynamicForwardProxy backend",
        ),
        (
            {
                "static": {"host": "a", "port": 1},
                "policies": {"auth": {"secretRef": {"name": "s", "kind": "Vault", "group": "x.io"}}},
            },
            "spec.policies.auth.secretRef: x.io/Vault credentials are not supported by agentgw (only Secrets)",
        ),
    ],
)
def test_backend_is_refused_with_the_field_and_why(spec, needle):
    res = translate(_objs(spec), offline=True)
    c = _accepted(res)
    assert c["status"] == "False" and needle in c["message"], c


def test_auth_kinds_read_their_secrets():
    sec = _secret("aws", accessKey="AK", secretKey="SK", sessionToken="ST")
    res = translate(
        _objs(
            {
                "static": {"host": "a", "port": 1},
                "policies": {"auth": {"aws": {"secretRef": {"name": "aws"}, "region": "eu-west-1"}}},
            },
            sec,
        ),
        offline=True,
    )
    assert _backend(res)["policies"]["backendAuth"] == {
        "aws": {"region": "eu-west-1", "accessKeyId": "AK", "secretAccessKey": "SK", "sessionToken": "ST"}
    }
    res = translate(
        _objs(
            {
                "static": {"host": "a", "port": 1},
                "policies": {"auth": {"aws": {"assumeRole": {"roleArn": "arn:aws:iam::1:role/r", "sessionName": "s"}}}},
            }
        ),
        offline=True,
    )
    assert "spec.policies.auth.aws.assumeRole.sessionName: not supported by agentgw" in _accepted(res)["message"]
    res = translate(
        _objs(
            {"static": {"host": "a", "port": 1}, "policies": {"auth": {"gcp": {"secretRef": {"name": "g"}}}}},
            _secret("g", **{"credentials.json": "{}"}),
        ),
        offline=True,
    )
    assert _backend(res)["policies"]["backendAuth"] == {"gcp": {"credential": "{}"}}
    jwt = {
        "signingKeyRef": {"name": "k"},
        "alg": "ES256",
        "kid": "k1",
        "claims": {"sub": "svc", "scope": ["a"]},
        "ttl": "5m",
        "location": {"header": {"name": "x-jwt"}},
    }
    res = translate(
        _objs(
            {"static": {"host": "a", "port": 1}, "policies": {"auth": {"jwtSign": jwt}}}, _secret("k", signingKey="PEM")
        ),
        offline=True,
    )
    assert _backend(res)["policies"]["backendAuth"] == {
        "jwtSign": {
            "signingKey": "PEM",
            "alg": "ES256",
            "kid": "k1",
            "ttl": "5m",
            "claims": {"sub": "svc", "scope": ["a"]},
            "location": {"header": {"name": "x-jwt"}},
        }
    }
    # every shape loads as agentgw config
    load_config_text(dump_yaml(res.gateways[("ns", "gw")].config))
    res = translate(
        _objs(
            {"static": {"host": "a", "port": 1}, "policies": {"auth": {"jwtSign": {**jwt, "claims": {"exp": 1}}}}},
            _secret("k", signingKey="PEM"),
        ),
        offline=True,
    )
    assert "spec.policies.auth.jwtSign.claims: exp are set by the signer" in _accepted(res)["message"]
    res = translate(
        _objs({"static": {"host": "a", "port": 1}, "policies": {"auth": {"secretRef": {"name": "missing"}}}}),
        offline=True,
    )
    assert "spec.policies.auth.secretRef: Secret ns/missing not found" in _accepted(res)["message"]


def test_a_policy_targeting_a_dynamic_backend_with_auth_is_refused_by_the_proxy_check():
    pol = {
        "apiVersion": f"{AG}/v1alpha1",
        "kind": "AgentgatewayPolicy",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "targetRefs": [{"group": AG, "kind": "AgentgatewayBackend", "name": "b"}],
            "backend": {"auth": {"key": "k"}},
        },
    }
    res = translate_checked(_objs({"dynamicForwardProxy": {}}, pol), offline=True)
    st = res.status[("agentgateway.dev", "AgentgatewayPolicy", "ns", "p")]
    assert st["conditions"][0]["status"] == "False"
    assert "not supported on dynamic backends" in st["conditions"][0]["message"]


# -- served -------------------------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()} | {"path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


SERVED = (
    LOCAL_GATEWAY
    + """
apiVersion: v1
kind: Secret
metadata: {{name: tokens, namespace: demo}}
stringData: {{token: s3cr3t, tenant: acme}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: keyed, namespace: demo}}
spec:
  static: {{host: 127.0.0.1, port: {up_port}}}
  policies:
    auth:
      secretRef: {{name: tokens, key: token}}
      location: {{header: {{name: x-api-key}}}}
      credentials:
      - location: {{queryParameter: {{name: tenant}}}}
        secretRef: {{name: tokens, key: tenant}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: egress, namespace: demo}}
spec:
  dynamicForwardProxy: {{}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: keyed, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  hostnames: [gw.test]
  rules:
  - backendRefs: [{{group: agentgateway.dev, kind: AgentgatewayBackend, name: keyed}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: egress, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  rules:
  - backendRefs: [{{group: agentgateway.dev, kind: AgentgatewayBackend, name: egress}}]
"""
)


@pytest.mark.timeout(60)
def test_served_backend_auth_and_dynamic_forward_proxy(tmp_path):
    gw_port = free_port()
    base = f"http://127.0.0.1:{gw_port}"
    with upstream(_Echo) as up_port:
        (tmp_path / "m.yaml").write_text(SERVED.format(gw_port=gw_port, up_port=up_port))
        with serving(tmp_path / "m.yaml", gw_port, "/x", {"host": "gw.test"}) as r:
            assert r.status_code == 200, r.text
            seen = r.json()
            assert seen["x-api-key"] == "s3cr3t" and seen["path"] == "/x?tenant=acme", seen
            # the dynamic forward proxy sends the request where its Host says
            r = httpx.get(base + "/direct", headers={"host": f"127.0.0.1:{up_port}"}, timeout=2)
            assert r.status_code == 200 and r.json()["path"] == "/direct", r.text
