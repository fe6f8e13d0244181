"""AgentgatewayPolicy ``spec.traffic`` fields beyond auth/limits/timeouts, and ``targetSelectors``.

The golden case ``traffic_fields`` holds the full translation; these tests pin the schema
rules, the PreRouting lifting, the refusals and (served for real) what the routes answer.
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from agentgw.kube.policy_attachment import CLOSED_RESPONSE
from agentgw.kube.translate import translate
from tests.kube.served import LOCAL_GATEWAY, serving, upstream
from tests.support.harness import free_port

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))
GW = "gateway.networking.k8s.io"


def _objs(traffic: dict | None = None, *, spec: dict | None = None, route_labels: dict | None = None) -> list[dict]:
    return [
        {
            "apiVersion": f"{GW}/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "x", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"ports": [{"port": 80}]},
        },
        {
            "apiVersion": f"{GW}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns", **({"labels": route_labels} if route_labels else {})},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"name": "main", "backendRefs": [{"name": "s", "port": 80}]}],
            },
        },
        {
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": spec
            if spec is not None
            else {"targetRefs": [{"group": GW, "kind": "HTTPRoute", "name": "r"}], "traffic": traffic},
        },
    ]


def _policy_errors(res) -> str:
    return "\n".join(e for e in res.errors if e.startswith("AgentgatewayPolicy ns/p:"))


def _route(res) -> dict:
    return res.gateways[("ns", "gw")].config["binds"][0]["listeners"][0]["routes"][0]


@pytest.mark.parametrize(
    ("traffic", "needle"),
    [
        (
            {"directResponse": {"status": 200, "conditional": [{"policy": {"status": 503}}]}},
            "spec.traffic.directResponse: conditional cannot be set with any other field",
        ),
        ({"directResponse": {"body": "x"}}, "spec.traffic.directResponse: status is required"),
        (
            {"directResponse": {"conditional": [{"policy": {"body": "x"}}]}},
            "spec.traffic.directResponse.conditional[0].policy: status is required",
        ),
        (
            {"extAuth": {"backendRef": {"name": "s"}}},
            "spec.traffic.extAuth: exactly one of grpc, http must be set",
        ),
        (
            {"extAuth": {"backendRef": {"name": "s"}, "url": "http://a:1", "http": {}}},
            "spec.traffic.extAuth: exactly one of backendRef, url must be set",
        ),
        (
            {"extAuth": {"url": "http://a:1/check", "grpc": {}}},
            "spec.traffic.extAuth: url path is only valid with http",
        ),
        (
            {"extProc": {"url": "http://a:1/x"}},
            "spec.traffic.extProc: url must not include a path",
        ),
        (
            {"rateLimit": {"global": {"url": "http://rl:1", "domain": "d"}}},
            "spec.traffic.rateLimit.global.descriptors: required field is missing",
        ),
        (
            {"transformation": {"request": {"set": [{"name": ":bogus", "value": "1"}]}}},
            "pseudo-headers must be one of :authority, :method, :path, :scheme, or :status",
        ),
        ({"hostRewrite": {"mode": "Sometimes"}}, "spec.traffic.hostRewrite.mode: unsupported value"),
        (
            {"phase": "PreRouting", "timeouts": {"request": "1s"}},
            "spec.traffic: phase PreRouting only supports authorization, transformation",
        ),
    ],
)
def test_schema_rules_refuse_malformed_fields(traffic, needle):
    res = translate(_objs(traffic), offline=True)
    assert needle in _policy_errors(res), res.errors
    # the route the policy would apply to is closed, not served without it
    assert _route(res)["policies"] == {"directResponse": CLOSED_RESPONSE}


def test_target_refs_and_selectors_are_exclusive():
    spec = {
        "targetRefs": [{"group": GW, "kind": "HTTPRoute", "name": "r"}],
        "targetSelectors": [{"group": GW, "kind": "HTTPRoute", "matchLabels": {"a": "b"}}],
        "traffic": {"timeouts": {"request": "2s"}},
    }
    res = translate(_objs(spec=spec), offline=True)
    assert "spec: exactly one of targetRefs, targetSelectors must be set" in _policy_errors(res)


def test_target_selectors_attach_by_label_with_section_name():
    spec = {
        "targetSelectors": [{"group": GW, "kind": "HTTPRoute", "matchLabels": {"team": "a"}, "sectionName": "main"}],
        "traffic": {"timeouts": {"request": "2s"}},
    }
    res = translate(_objs(spec=spec, route_labels={"team": "a", "tier": "web"}), offline=True)
    assert not res.errors, res.errors
    assert _route(res)["policies"] == {"timeout": {"requestTimeout": "2s"}}
    st = res.status[("agentgateway.dev", "AgentgatewayPolicy", "ns", "p")]
    assert [a["ancestorRef"] for a in st["ancestors"]] == [
        {"group": GW, "kind": "HTTPRoute", "name": "r", "namespace": "ns", "sectionName": "main"}
    ]
    # a label that does not match: nothing attached, the policy is still valid
    res = translate(_objs(spec=spec, route_labels={"team": "b"}), offline=True)
    assert not res.errors and "policies" not in _route(res)
    st = res.status[("agentgateway.dev", "AgentgatewayPolicy", "ns", "p")]
    assert st["conditions"][0]["status"] == "True" and st["ancestors"] == []


def test_pre_routing_ext_auth_runs_on_the_listener_and_other_fields_are_refused():
    spec = {
        "targetRefs": [{"group": GW, "kind": "Gateway", "name": "gw"}],
        "traffic": {
            "phase": "PreRouting",
            "extAuth": {"url": "http://authz.example.com:8080/verify", "http": {"allowedRequestHeaders": ["cookie"]}},
        },
    }
    res = translate(_objs(spec=spec), offline=True)
    assert not res.errors, res.errors
    listener = res.gateways[("ns", "gw")].config["binds"][0]["listeners"][0]
    assert listener["policies"] == {
        "extAuthz": {
            "host": "http://authz.example.com:8080",
            "failureMode": "deny",
            "includeRequestHeaders": ["cookie"],
            # the URL's path replaces the request's, as in agentgateway
            "protocol": {"http": {"path": '"/verify"'}},
        }
    }
    assert "policies" not in _route(res)
    spec["traffic"] = {"phase": "PreRouting", "transformation": {"request": {"remove": ["x-a"]}}}
    res = translate(_objs(spec=spec), offline=True)
    assert (
        "spec.traffic.phase: PreRouting policies run on the listener, where agentgw has no transformations"
        in _policy_errors(res)
    )


def test_rate_limit_global_needs_a_service_port_and_refuses_conditional():
    res = translate(
        _objs(
            {
                "rateLimit": {
                    "global": {
                        "backendRef": {"name": "missing"},
                        "domain": "d",
                        "descriptors": [{"entries": [{"name": "k", "expression": "source.address"}]}],
                    }
                }
            }
        ),
        offline=True,
    )
    assert "spec.traffic.rateLimit.global.backendRef: Service ns/missing not found" in _policy_errors(res)
    res = translate(
        _objs({"rateLimit": {"conditional": [{"policy": {"local": [{"requests": 1, "unit": "Seconds"}]}}]}}),
        offline=True,
    )
    assert "spec.traffic.rateLimit.conditional: conditional (first matching condition) policies" in _policy_errors(res)


# -- served -------------------------------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"x-user={self.headers.get('x-user')} x-debug={self.headers.get('x-debug')}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


SERVED = (
    LOCAL_GATEWAY
    + """
apiVersion: v1
kind: Service
metadata: {{name: up, namespace: demo}}
spec: {{type: ExternalName, externalName: 127.0.0.1}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  rules:
  - name: teapot
    matches: [{{path: {{type: PathPrefix, value: /teapot}}}}]
    backendRefs: [{{name: up, port: {up_port}}}]
  - name: maint
    matches: [{{path: {{type: PathPrefix, value: /maint}}}}]
    backendRefs: [{{name: up, port: {up_port}}}]
  - name: app
    matches: [{{path: {{type: PathPrefix, value: /app}}}}]
    backendRefs: [{{name: up, port: {up_port}}}]
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {{name: teapot, namespace: demo}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r, sectionName: teapot}}]
  traffic:
    directResponse:
      status: 418
      body: short and stout
      headers: [{{name: content-type, value: '"text/plain"'}}]
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {{name: maint, namespace: demo}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r, sectionName: maint}}]
  traffic:
    directResponse:
      conditional:
      - condition: 'request.headers["x-maintenance"] == "on"'
        policy: {{status: 503, body: down}}
      - policy: {{status: 200, body: up}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {{name: app, namespace: demo}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r, sectionName: app}}]
  traffic:
    hostRewrite: {{mode: None}}
    delay: {{duration: 1ms}}
    transformation:
      request:
        set: [{{name: x-user, value: '"u-" + request.headers["x-name"]'}}]
        remove: [x-debug]
      response:
        set: [{{name: x-served-by, value: '"agentgw"'}}]
"""
)


@pytest.mark.timeout(60)
def test_served_direct_response_and_transformation(tmp_path):
    gw_port = free_port()
    base = f"http://127.0.0.1:{gw_port}"
    with upstream(_Upstream) as up_port:
        (tmp_path / "m.yaml").write_text(SERVED.format(gw_port=gw_port, up_port=up_port))
        with serving(tmp_path / "m.yaml", gw_port, "/teapot") as r:
            assert (r.status_code, r.text, r.headers["content-type"]) == (418, "short and stout", "text/plain")
            r = httpx.get(base + "/maint", headers={"x-maintenance": "on"}, timeout=2)
            assert (r.status_code, r.text) == (503, "down")
            assert httpx.get(base + "/maint", timeout=2).text == "up"
            r = httpx.get(base + "/app", headers={"x-name": "ann", "x-debug": "1"}, timeout=2)
            assert (r.status_code, r.text) == (200, "x-user=u-ann x-debug=None")
            assert r.headers["x-served-by"] == "agentgw"
