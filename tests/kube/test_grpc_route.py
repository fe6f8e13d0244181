"""GRPCRoute: attachment and status as HTTPRoute's, method matches as paths, filters,
backendRefs (ReferenceGrants, weights, backend objects), policies attached to it, listener
``allowedRoutes.kinds``, the HTTP/2 ``appProtocol`` of Service ports, and a real gRPC
client and server through a gateway serving the translated manifests.
"""

from __future__ import annotations

import asyncio
import copy
from concurrent import futures
from http.server import BaseHTTPRequestHandler

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from agentgw.compile import compile_config
from agentgw.config import load_config_text
from agentgw.kube.check import translate_checked
from agentgw.kube.cli import dump_yaml
from agentgw.kube.client import Resource
from agentgw.kube.controller import Controller
from agentgw.kube.policy_attachment import CLOSED_RESPONSE
from agentgw.kube.routes import GRPC_CONTENT_TYPE
from agentgw.kube.translate import translate
from tests.kube.served import LOCAL_GATEWAY, serving, upstream
from tests.kube.waiting import eventually
from tests.support.harness import free_port

from .fakeapi import FakeApi

GW = "gateway.networking.k8s.io"
AGW = "agentgateway.dev"
NS = "ns"
pytestmark = pytest.mark.timeout(60)


# -- objects ------------------------------------------------------------------------------------
def gateway(listeners=None, name="gw"):
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "gatewayClassName": "agentgw",
            "listeners": listeners or [{"name": "http", "port": 8080, "protocol": "HTTP"}],
        },
    }


def gateway_class():
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "agentgw"},
        "spec": {"controllerName": "agentgw.dev/controller"},
    }


def service(name="grpc", ns=NS, **port):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"port": 50051, **port}]},
    }


def grpc_route(name="g", rules=None, ts="2026-01-01T00:00:00Z", **spec):
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": ts},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": rules if rules is not None else [{"backendRefs": [{"name": "grpc", "port": 50051}]}],
            **spec,
        },
    }


def http_route(name="h", **spec):
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}], **spec},
    }


def policy(name="p", target=None, **spec):
    return {
        "apiVersion": f"{AGW}/v1alpha1",
        "kind": "AgentgatewayPolicy",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"targetRefs": [target or {"group": GW, "kind": "GRPCRoute", "name": "g"}], **spec},
    }


def world(*extra):
    return [gateway_class(), gateway(), service(), service("web", port=80), *extra]


def routes(res, gw="gw", listener=0):
    return res.gateways[(NS, gw)].config["binds"][0]["listeners"][listener]["routes"]


def parent(res, name="g", kind="GRPCRoute", i=0):
    st = res.status[(GW, kind, NS, name)]["parents"][i]
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in st["conditions"]}


def gm(path: dict, *headers: dict) -> dict:
    """A config match of a GRPCRoute: a POST with a gRPC content type (and ``headers``)."""
    return {"path": path, "method": "POST", "headers": [GRPC_CONTENT_TYPE, *headers]}


def listener_status(res, gw="gw"):
    return {ls["name"]: ls for ls in res.status[(GW, "Gateway", NS, gw)]["listeners"]}


class _NoServices:
    pool = None
    on_upstream_error = None


def compiles(res, tmp_path, gw="gw"):
    compile_config(load_config_text(dump_yaml(res.gateways[(NS, gw)].config)), _NoServices(), str(tmp_path))


# -- attachment and status ----------------------------------------------------------------------
def test_grpc_route_attaches_like_an_httproute_with_its_parent_status(tmp_path):
    res = translate(world(grpc_route(), http_route()))
    assert not res.errors, res.errors
    assert parent(res) == {
        "Accepted": ("True", "Accepted", "route accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs", "all references resolved"),
    }
    st = res.status[(GW, "GRPCRoute", NS, "g")]["parents"][0]
    assert st["parentRef"] == {"group": GW, "kind": "Gateway", "name": "gw", "namespace": NS}
    assert st["controllerName"] == "agentgw.dev/controller"
    ls = listener_status(res)["http"]
    assert ls["attachedRoutes"] == 2
    assert ls["supportedKinds"] == [{"group": GW, "kind": "HTTPRoute"}, {"group": GW, "kind": "GRPCRoute"}]
    grpc_r = next(r for r in routes(res) if r["name"] == "g")
    # HTTPRoute's naming: the route's name and namespace; an unnamed single rule has no ruleName
    assert grpc_r == {
        "name": "g",
        "namespace": NS,
        "matches": [gm({"pathPrefix": "/"})],
        "backends": [{"service": {"name": {"namespace": NS, "hostname": "grpc.ns.svc.cluster.local"}, "port": 50051}}],
    }
    compiles(res, tmp_path)


def test_grpc_route_hostnames_section_name_and_port_follow_httproute():
    listeners = [
        {"name": "a", "port": 8080, "protocol": "HTTP", "hostname": "*.example.com"},
        {"name": "b", "port": 8081, "protocol": "HTTP", "hostname": "other.test"},
    ]
    g = grpc_route(hostnames=["api.example.com", "api.other.net"])
    g["spec"]["parentRefs"] = [{"name": "gw", "sectionName": "a"}, {"name": "gw", "port": 8081}]
    res = translate([gateway_class(), gateway(listeners), service(), g])
    assert parent(res, i=0)["Accepted"][:2] == ("True", "Accepted")
    assert parent(res, i=1)["Accepted"] == (
        "False",
        "NoMatchingListenerHostname",
        "no hostname of the route matches listener b (other.test)",
    )
    cfg = res.gateways[(NS, "gw")].config
    assert cfg["binds"][0]["listeners"][0]["routes"][0]["hostnames"] == ["api.example.com"]
    assert cfg["binds"][1]["listeners"][0]["routes"] == []
    # a Gateway that does not exist is reported, as for an HTTPRoute
    g2 = grpc_route("g2")
    g2["spec"]["parentRefs"] = [{"name": "nope"}]
    res = translate([gateway_class(), gateway(), service(), g2])
    assert "GRPCRoute ns/g2: spec.parentRefs[0]: Gateway ns/nope not found" in res.errors


def test_grpc_route_from_another_namespace_needs_the_listener_to_allow_it():
    g = grpc_route()
    g["metadata"]["namespace"] = "apps"
    g["spec"]["parentRefs"] = [{"name": "gw", "namespace": NS}]
    svc = service(ns="apps")
    res = translate([gateway_class(), gateway(), svc, g])
    st = res.status[(GW, "GRPCRoute", "apps", "g")]["parents"][0]["conditions"][0]
    assert (st["status"], st["reason"]) == ("False", "NotAllowedByListeners")
    listeners = [{"name": "http", "port": 8080, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]
    res = translate([gateway_class(), gateway(listeners), svc, g])
    st = res.status[(GW, "GRPCRoute", "apps", "g")]["parents"][0]["conditions"][0]
    assert (st["status"], st["reason"]) == ("True", "Accepted")
    assert routes(res)[0]["namespace"] == "apps"


def test_listener_allowed_route_kinds():
    def listeners(*kinds):
        return [
            {
                "name": "http",
                "port": 8080,
                "protocol": "HTTP",
                "allowedRoutes": {
                    "kinds": [
                        {"kind": k} if "/" not in k else dict(zip(("group", "kind"), k.split("/"))) for k in kinds
                    ]
                },
            }
        ]

    objs = [service(), service("web", port=80), grpc_route(), http_route()]
    # GRPCRoute only: HTTPRoutes are not allowed
    res = translate([gateway_class(), gateway(listeners("GRPCRoute")), *objs])
    assert parent(res)["Accepted"][:2] == ("True", "Accepted")
    assert parent(res, "h", "HTTPRoute")["Accepted"] == (
        "False",
        "NotAllowedByListeners",
        "listener http does not allow HTTPRoutes (allowedRoutes.kinds)",
    )
    ls = listener_status(res)["http"]
    assert ls["supportedKinds"] == [{"group": GW, "kind": "GRPCRoute"}] and ls["attachedRoutes"] == 1
    assert [r["name"] for r in routes(res)] == ["g"]
    # HTTPRoute only: GRPCRoutes are not allowed
    res = translate([gateway_class(), gateway(listeners("HTTPRoute")), *objs])
    assert parent(res)["Accepted"] == (
        "False",
        "NotAllowedByListeners",
        "listener http does not allow GRPCRoutes (allowedRoutes.kinds)",
    )
    assert listener_status(res)["http"]["supportedKinds"] == [{"group": GW, "kind": "HTTPRoute"}]
    # a kind agentgw does not support next to one it does: left out of supportedKinds and
    # said in ResolvedRefs (Gateway API); the listener still takes the supported kind
    res = translate([gateway_class(), gateway(listeners("GRPCRoute", "TCPRoute")), *objs])
    ls = listener_status(res)["http"]
    assert ls["supportedKinds"] == [{"group": GW, "kind": "GRPCRoute"}]
    rr = next(c for c in ls["conditions"] if c["type"] == "ResolvedRefs")
    assert (rr["status"], rr["reason"]) == ("False", "InvalidRouteKinds")
    assert f"{GW}/TCPRoute" in rr["message"]
    assert parent(res)["Accepted"][:2] == ("True", "Accepted")
    # only kinds agentgw does not support: no supported kinds, the listener takes nothing
    res = translate([gateway_class(), gateway(listeners("TCPRoute")), *objs])
    ls = listener_status(res)["http"]
    assert ls["supportedKinds"] == [] and ls["attachedRoutes"] == 0
    assert parent(res)["Accepted"][:2] == ("False", "NoMatchingParent")
    # no kinds listed: both route kinds; a TCP listener supports none
    res = translate(
        [
            gateway_class(),
            gateway(
                [{"name": "http", "port": 8080, "protocol": "HTTP"}, {"name": "tcp", "port": 9000, "protocol": "TCP"}]
            ),
            *objs,
        ]
    )
    ls = listener_status(res)
    assert ls["http"]["supportedKinds"] == [{"group": GW, "kind": "HTTPRoute"}, {"group": GW, "kind": "GRPCRoute"}]
    assert ls["tcp"]["supportedKinds"] == []
    # the schema admits GRPCRoute in allowedRoutes.kinds
    from agentgw.kube import schema

    assert schema.validate(gateway(listeners("GRPCRoute", "HTTPRoute", f"{AGW}/AgentgatewayModel"))) == []


# -- matches ------------------------------------------------------------------------------------
SVC = "grpc.health.v1.Health"
MATCHES = [
    ({"method": {"service": SVC, "method": "Check"}}, {"path": {"exact": f"/{SVC}/Check"}}),
    ({"method": {"type": "Exact", "service": SVC}}, {"path": {"pathPrefix": f"/{SVC}/"}}),
    ({"method": {"method": "Check"}}, {"path": {"regex": "/[^/]+/Check"}}),
    (
        {"method": {"type": "RegularExpression", "service": "grpc\\.health\\..*", "method": "Check|Watch"}},
        {"path": {"regex": "/(?:grpc\\.health\\..*)/(?:Check|Watch)"}},
    ),
    ({"method": {"type": "RegularExpression", "service": "a\\.B"}}, {"path": {"regex": "/(?:a\\.B)/(?:[^/]+)"}}),
    ({"method": {"type": "RegularExpression", "method": "Get.*"}}, {"path": {"regex": "/(?:[^/]+)/(?:Get.*)"}}),
    (
        {
            "headers": [
                {"name": "x-tenant", "value": "a"},
                {"type": "RegularExpression", "name": "x-v", "value": "v[12]"},
            ]
        },
        {
            "path": {"pathPrefix": "/"},
            "headers": [
                {"name": "x-tenant", "value": {"exact": "a"}},
                {"name": "x-v", "value": {"regex": "v[12]"}},
            ],
        },
    ),
    (
        {"method": {"service": SVC}, "headers": [{"name": "x-tenant", "value": "a"}]},
        {"path": {"pathPrefix": f"/{SVC}/"}, "headers": [{"name": "x-tenant", "value": {"exact": "a"}}]},
    ),
    ({}, {"path": {"pathPrefix": "/"}}),
]


@pytest.mark.parametrize(("match", "want"), MATCHES, ids=[str(i) for i in range(len(MATCHES))])
def test_method_and_header_matches_become_path_matches_of_grpc_calls(match, want, tmp_path):
    g = grpc_route(rules=[{"matches": [match], "backendRefs": [{"name": "grpc", "port": 50051}]}])
    res = translate(world(g))
    assert not res.errors, res.errors
    assert routes(res)[0]["matches"] == [gm(want["path"], *want.get("headers", []))]
    compiles(res, tmp_path)


def test_matches_of_a_rule_are_alternatives_and_no_matches_match_every_call():
    g = grpc_route(
        rules=[
            {
                "name": "two",
                "matches": [{"method": {"service": "a.A", "method": "M"}}, {"method": {"service": "b.B"}}],
                "backendRefs": [{"name": "grpc", "port": 50051}],
            },
            {"name": "rest", "backendRefs": [{"name": "grpc", "port": 50051}]},
        ]
    )
    res = translate(world(g))
    got = {r["ruleName"]: r["matches"] for r in routes(res)}
    assert got == {
        "two": [gm({"exact": "/a.A/M"}), gm({"pathPrefix": "/b.B/"})],
        "rest": [gm({"pathPrefix": "/"})],
    }


def test_rules_without_a_name_are_numbered_as_httproute_rules_are():
    g = grpc_route(rules=[{"backendRefs": [{"name": "grpc", "port": 50051}]}] * 2)
    res = translate(world(g))
    assert [(r["name"], r.get("ruleName")) for r in routes(res)] == [("g", "0"), ("g", "1")]
    # a GRPCRoute without rules attaches and routes nothing
    res = translate(world(grpc_route(rules=[])))
    assert parent(res)["Accepted"][:2] == ("True", "Accepted") and routes(res) == []


def test_method_match_syntax_is_checked():
    from agentgw.kube import schema

    def problems(method):
        return schema.validate(grpc_route(rules=[{"matches": [{"method": method}]}]))

    assert problems({"service": "a.b.C", "method": "Do_1"}) == []
    assert problems({"type": "RegularExpression", "service": "a/.*"}) == []
    assert problems({}) == ["spec.rules[0].matches[0].method: one or both of service and method must be set"]
    assert problems({"service": "a/b"})[0].startswith(
        "spec.rules[0].matches[0].method: an Exact service must be a protobuf service name"
    )
    assert problems({"method": "a.b"})[0].startswith(
        "spec.rules[0].matches[0].method: an Exact method must be a protobuf method name"
    )
    assert problems({"type": "Prefix", "service": "a"})[0].startswith(
        "spec.rules[0].matches[0].method.type: unsupported value 'Prefix'"
    )


# -- filters ------------------------------------------------------------------------------------
def test_header_modifier_filters_on_the_rule_and_on_a_backend_ref(tmp_path):
    rule = {
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}], "remove": ["x-debug"]},
            },
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "x-gw", "value": "agentgw"}]},
            },
        ],
        "backendRefs": [{"name": "grpc", "port": 50051}],
    }
    res = translate(world(grpc_route(rules=[rule])))
    assert not res.errors, res.errors
    r = routes(res)[0]
    assert r["policies"] == {
        "requestHeaderModifier": {"set": {"x-env": "prod"}, "remove": ["x-debug"]},
        "responseHeaderModifier": {"add": {"x-gw": "agentgw"}},
    }
    compiles(res, tmp_path)
    # on a backendRef they become the backend's policies, as for an HTTPRoute; the proxy
    # does not apply them to Service backends yet, so its check refuses the route
    rule["backendRefs"][0]["filters"] = [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-b", "value": "1"}]}}
    ]
    res = translate(world(grpc_route(rules=[rule])))
    assert routes(res)[0]["backends"][0]["policies"] == {"requestHeaderModifier": {"add": {"x-b": "1"}}}
    res = translate_checked(world(grpc_route(rules=[rule])), offline=True)
    acc = parent(res)["Accepted"]
    assert (
        acc[:2] == ("False", "Invalid") and "policies.requestHeaderModifier: not supported for host backends" in acc[2]
    )


@pytest.mark.parametrize(
    ("filters", "needle"),
    [
        (
            [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "grpc", "port": 50051}}}],
            "spec.rules[0].filters[0].type: unsupported value 'RequestMirror': not supported by agentgw",
        ),
        (
            [{"type": "ExtensionRef", "extensionRef": {"group": "x.io", "kind": "F", "name": "f"}}],
            "spec.rules[0].filters[0].extensionRef: not supported by agentgw (ExtensionRef filters are not supported)",
        ),
        (
            [{"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}}],
            "spec.rules[0].filters[0].type: unsupported value 'URLRewrite' (supported: 'ResponseHeaderModifier', 'RequestHeaderModifier', 'RequestMirror', 'ExtensionRef')",
        ),
    ],
)
def test_unsupported_filters_refuse_the_route_with_the_field(filters, needle):
    res = translate(world(grpc_route(rules=[{"filters": filters, "backendRefs": [{"name": "grpc", "port": 50051}]}])))
    acc = parent(res)["Accepted"]
    assert acc[:2] == ("False", "Invalid") and needle in acc[2], acc
    assert routes(res) == []  # not attached
    assert any(e.startswith("GRPCRoute ns/g: parent ns/gw: Accepted=Invalid: ") for e in res.errors)
    # a backendRef's RequestMirror too
    rule = {"backendRefs": [{"name": "grpc", "port": 50051, "filters": filters}]}
    acc = parent(translate(world(grpc_route(rules=[rule]))))["Accepted"]
    assert acc[:2] == ("False", "Invalid") and "spec.rules[0].backendRefs[0].filters[0]" in acc[2]


def test_fields_grpcroute_does_not_have_or_agentgw_does_not_implement_are_refused():
    for rule, needle in (
        ({"timeouts": {"request": "1s"}}, "spec.rules[0].timeouts: unknown field (not supported by agentgw)"),
        (
            {"sessionPersistence": {"sessionName": "s"}},
            "spec.rules[0].sessionPersistence: not supported by agentgw (session persistence is not supported)",
        ),
    ):
        g = grpc_route(rules=[{"backendRefs": [{"name": "grpc", "port": 50051}], **rule}])
        acc = parent(translate(world(g)))["Accepted"]
        assert acc[:2] == ("False", "Invalid") and needle in acc[2], acc
    # served as gateway.networking.k8s.io/v1 only
    g = grpc_route()
    g["apiVersion"] = f"{GW}/v1alpha2"
    assert "is not served for GRPCRoute" in parent(translate(world(g)))["Accepted"][2]


# -- backendRefs --------------------------------------------------------------------------------
def test_cross_namespace_backend_needs_a_reference_grant_from_grpc_routes():
    g = grpc_route(rules=[{"backendRefs": [{"name": "grpc", "namespace": "other", "port": 50051}]}])
    objs = world(g, service(ns="other"))
    res = translate(objs)
    rr = parent(res)["ResolvedRefs"]
    assert rr[:2] == ("False", "RefNotPermitted")
    assert "Service other/grpc: reference to namespace other is not permitted by any ReferenceGrant" in rr[2]
    # every backend invalid: the rule answers UNAVAILABLE (503 becomes gRPC status 14)
    r = routes(res)[0]
    assert "backends" not in r and r["policies"]["directResponse"]["status"] == 503

    def grant(kind):
        return {
            "apiVersion": f"{GW}/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": f"from-{kind.lower()}", "namespace": "other"},
            "spec": {"from": [{"group": GW, "kind": kind, "namespace": NS}], "to": [{"group": "", "kind": "Service"}]},
        }

    # a grant to HTTPRoutes grants nothing to a GRPCRoute
    assert parent(translate([*objs, grant("HTTPRoute")]))["ResolvedRefs"][1] == "RefNotPermitted"
    res = translate([*objs, grant("GRPCRoute")])
    assert parent(res)["ResolvedRefs"][:2] == ("True", "ResolvedRefs")
    assert routes(res)[0]["backends"] == [
        {"service": {"name": {"namespace": "other", "hostname": "grpc.other.svc.cluster.local"}, "port": 50051}}
    ]


def test_weights_and_broken_backends():
    g = grpc_route(
        rules=[
            {
                "backendRefs": [
                    {"name": "grpc", "port": 50051, "weight": 3},
                    {"name": "grpc2", "port": 50051, "weight": 1},
                    {"name": "missing", "port": 50051},
                    {"name": "grpc", "port": 9999},
                    {"group": "example.com", "kind": "Widget", "name": "w"},
                ]
            }
        ]
    )
    res = translate(world(g, service("grpc2")))
    r = routes(res)[0]
    assert [(b["service"]["name"]["hostname"], b["weight"]) for b in r["backends"]] == [
        ("grpc.ns.svc.cluster.local", 3),
        ("grpc2.ns.svc.cluster.local", 1),
    ]
    rr = parent(res)["ResolvedRefs"]
    assert rr[:2] == ("False", "BackendNotFound")
    for needle in (
        "backendRefs[2]: Service ns/missing not found",
        "backendRefs[3]: Service ns/grpc has no port 9999",
        "backendRefs[4]: unsupported backend kind example.com/Widget",
    ):
        assert needle in rr[2]
    # a rule without backendRefs answers 503 (UNAVAILABLE), as an HTTPRoute rule does
    res = translate(world(grpc_route(rules=[{"matches": [{"method": {"service": "a.A"}}]}])))
    assert routes(res)[0]["policies"]["directResponse"]["status"] == 503


def test_backend_objects_a_grpc_route_can_use():
    static = {
        "apiVersion": f"{AGW}/v1alpha1",
        "kind": "AgentgatewayBackend",
        "metadata": {"name": "static", "namespace": NS},
        "spec": {"static": {"host": "10.0.0.7", "port": 50051}},
    }
    mcp = {
        "apiVersion": f"{AGW}/v1alpha1",
        "kind": "AgentgatewayBackend",
        "metadata": {"name": "mcp", "namespace": NS},
        "spec": {"mcp": {"targets": [{"name": "t", "static": {"host": "10.0.0.8", "port": 3000}}]}},
    }
    g = grpc_route(
        rules=[
            {"name": "s", "backendRefs": [{"group": AGW, "kind": "AgentgatewayBackend", "name": "static"}]},
            {"name": "m", "backendRefs": [{"group": AGW, "kind": "AgentgatewayBackend", "name": "mcp"}]},
        ]
    )
    res = translate(world(g, static, mcp))
    by_rule = {r["ruleName"]: r for r in routes(res)}
    assert by_rule["s"]["backends"] == [{"host": "10.0.0.7:50051"}]
    assert by_rule["m"]["policies"]["directResponse"]["status"] == 503
    rr = parent(res)["ResolvedRefs"]
    assert rr[:2] == ("False", "UnsupportedProtocol")
    assert (
        "AgentgatewayBackend ns/mcp: a GRPCRoute relays gRPC calls to a static or dynamicForwardProxy backend" in rr[2]
    )
    # an MCP or A2A appProtocol on a Service port names an HTTP protocol: a GRPCRoute's
    # backend is the plain Service (and no a2a policy)
    objs = [gateway_class(), gateway(), service(appProtocol="kgateway.dev/mcp"), grpc_route()]
    r = routes(translate(objs))[0]
    assert list(r["backends"][0]) == ["service"] and "policies" not in r
    objs = [gateway_class(), gateway(), service(appProtocol="kgateway.dev/a2a"), grpc_route()]
    r = routes(translate(objs))[0]
    assert list(r["backends"][0]) == ["service"] and "policies" not in r


# -- policies -----------------------------------------------------------------------------------
def test_policies_attach_to_a_grpc_route_and_its_rules(tmp_path):
    g = grpc_route(
        rules=[
            {
                "name": "check",
                "matches": [{"method": {"service": "a.A", "method": "Check"}}],
                "backendRefs": [{"name": "grpc", "port": 50051}],
            },
            {"name": "rest", "backendRefs": [{"name": "grpc", "port": 50051}]},
        ]
    )
    route_pol = policy(
        "route", traffic={"timeouts": {"request": "3s"}, "rateLimit": {"local": [{"requests": 5, "unit": "Minutes"}]}}
    )
    rule_pol = policy(
        "rule",
        target={"group": GW, "kind": "GRPCRoute", "name": "g", "sectionName": "check"},
        traffic={"timeouts": {"request": "1s"}},
        backend={"http": {"requestTimeout": "500ms"}},
    )
    res = translate(world(g, route_pol, rule_pol))
    assert not res.errors, res.errors
    by_rule = {r["ruleName"]: r for r in routes(res)}
    assert by_rule["check"]["policies"]["timeout"] == {"requestTimeout": "1s"}
    assert by_rule["rest"]["policies"]["timeout"] == {"requestTimeout": "3s"}
    assert by_rule["check"]["policies"]["localRateLimit"] == by_rule["rest"]["policies"]["localRateLimit"]
    assert by_rule["check"]["backends"][0]["policies"] == {"http": {"requestTimeout": "500ms"}}
    assert "policies" not in by_rule["rest"]["backends"][0]
    for name, ref in (("route", {"name": "g"}), ("rule", {"name": "g", "sectionName": "check"})):
        st = res.status[(AGW, "AgentgatewayPolicy", NS, name)]
        assert st["conditions"][0]["status"] == "True"
        assert st["ancestors"][0]["ancestorRef"] == {"group": GW, "kind": "GRPCRoute", "namespace": NS, **ref}
    compiles(res, tmp_path)
    # a policy that is not accepted closes the GRPCRoute it targets (it answers 500: INTERNAL)
    bad = policy(
        "bad", traffic={"jwtAuthentication": {"providers": [{"issuer": "x", "jwks": {"secretRef": {"name": "none"}}}]}}
    )
    res = translate(world(g, bad))
    assert {r["policies"]["directResponse"]["status"] for r in routes(res)} == {CLOSED_RESPONSE["status"]}
    # targetSelectors pick GRPCRoutes by label too
    g["metadata"]["labels"] = {"team": "a"}
    sel = policy("sel", traffic={"timeouts": {"request": "7s"}})
    sel["spec"] = {
        "targetSelectors": [{"group": GW, "kind": "GRPCRoute", "matchLabels": {"team": "a"}}],
        "traffic": sel["spec"]["traffic"],
    }
    res = translate(world(g, sel))
    assert {r["policies"]["timeout"]["requestTimeout"] for r in routes(res)} == {"7s"}


# -- HTTP/2 Service ports -----------------------------------------------------------------------
@pytest.mark.parametrize("app_protocol", ["kubernetes.io/h2c", "grpc", "HTTP2"])
def test_a_service_port_that_speaks_http2_makes_its_backends_speak_it(app_protocol, tmp_path):
    objs = [gateway_class(), gateway(), service("web", port=80, appProtocol=app_protocol), http_route()]
    res = translate(objs)
    assert routes(res)[0]["backends"][0]["policies"] == {"http": {"version": "HTTP2"}}
    assert res.gateways[(NS, "gw")].sources["binds[0].listeners[0].routes[0].backends[0].policies.http.version"] == {
        ("", "Service", NS, "web")
    }
    compiles(res, tmp_path)
    # under a Gateway's backend policy: its http fields are kept, the version added
    gw_pol = policy(
        "gwpol", target={"group": GW, "kind": "Gateway", "name": "gw"}, backend={"http": {"requestTimeout": "5s"}}
    )
    res = translate([*objs, gw_pol])
    assert routes(res)[0]["backends"][0]["policies"] == {"http": {"requestTimeout": "5s", "version": "HTTP2"}}
    # a policy that sets the version wins
    svc_pol = policy(
        "svcpol", target={"group": "", "kind": "Service", "name": "web"}, backend={"http": {"version": "HTTP1"}}
    )
    res = translate([*objs, svc_pol])
    assert routes(res)[0]["backends"][0]["policies"] == {"http": {"version": "HTTP1"}}
    # GRPCRoute backends too (gRPC calls speak HTTP/2 anyway)
    res = translate([gateway_class(), gateway(), service(appProtocol=app_protocol), grpc_route()])
    assert routes(res)[0]["backends"][0]["policies"] == {"http": {"version": "HTTP2"}}
    # other appProtocols leave it unset
    res = translate([gateway_class(), gateway(), service("web", port=80, appProtocol="http"), http_route()])
    assert "policies" not in routes(res)[0]["backends"][0]


# -- the proxy's check and the controller -------------------------------------------------------
def test_a_grpc_route_the_proxy_refuses_is_not_accepted():
    g = grpc_route(
        rules=[
            {
                "matches": [{"method": {"type": "RegularExpression", "service": "a(("}}],
                "backendRefs": [{"name": "grpc", "port": 50051}],
            }
        ]
    )
    res = translate_checked(world(g, http_route()), offline=True)
    acc = parent(res)["Accepted"]
    assert acc[:2] == ("False", "Invalid") and "the proxy refuses the config made from it" in acc[2], acc
    assert parent(res, "h", "HTTPRoute")["Accepted"][:2] == ("True", "Accepted")  # the rest is served
    assert [r["name"] for r in routes(res)] == ["h"]


def _group(obj):
    av = obj["apiVersion"]
    return av.split("/")[0] if "/" in av else ""


def test_controller_watches_grpc_routes_and_writes_their_status(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        for o in [gateway_class(), gateway(), service(), grpc_route()]:
            o = copy.deepcopy(o)
            o["metadata"].pop("creationTimestamp", None)
            await api.put_object(_group(o), o)
        client = await api.connect(tmp_path)
        ctl = Controller(client, image="registry.example/agentgw:test", debounce=0.05)
        task = asyncio.get_running_loop().create_task(ctl.run())
        try:
            st = await eventually(lambda: (api.get("GRPCRoute", NS, "g") or {}).get("status"), what="GRPCRoute status")
            conds = {c["type"]: c["status"] for c in st["parents"][0]["conditions"]}
            assert conds == {"Accepted": "True", "ResolvedRefs": "True"}
            gw = await eventually(lambda: (api.get("Gateway", NS, "gw") or {}).get("status"), what="Gateway status")
            assert {"group": GW, "kind": "GRPCRoute"} in gw["listeners"][0]["supportedKinds"]
            # a change is seen: a backend that does not exist
            res = Resource(GW, "v1", "grpcroutes", "GRPCRoute")
            await client.merge_patch(
                res, NS, "g", {"spec": {"rules": [{"backendRefs": [{"name": "nope", "port": 1}]}]}}
            )

            def resolved():
                st = api.get("GRPCRoute", NS, "g")["status"]
                c = next(c for c in st["parents"][0]["conditions"] if c["type"] == "ResolvedRefs")
                return c["reason"] if c["status"] == "False" else None

            assert await eventually(resolved, what="ResolvedRefs=False") == "BackendNotFound"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
            await api.stop()

    asyncio.run(asyncio.wait_for(main(), 50))


# -- a gRPC client and server through the gateway -------------------------------------------------
def _unary(request: bytes, context) -> bytes:
    md = dict(context.invocation_metadata())
    return b"%s env=%s tenant=%s" % (request, md.get("x-env", "").encode(), md.get("x-tenant", "").encode())


MANIFESTS = (
    LOCAL_GATEWAY
    + """
apiVersion: v1
kind: Service
metadata: {{name: grpc, namespace: demo}}
spec:
  type: ExternalName
  externalName: 127.0.0.1
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  rules:
  - name: echo
    matches:
    - method: {{service: test.Echo, method: Unary}}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-env, value: prod}}]}}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{add: [{{name: x-gw, value: agentgw}}]}}
    backendRefs: [{{name: grpc, port: {up_port}}}]
  - name: tenant-b
    matches:
    - method: {{service: test.Echo}}
      headers: [{{name: x-tenant, value: b}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-env, value: tenant-b}}]}}
    backendRefs: [{{name: grpc, port: {up_port}}}]
  - name: health
    matches:
    - method: {{service: grpc.health.v1.Health}}
    backendRefs: [{{name: grpc, port: {up_port}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  rules:
  - matches: [{{path: {{type: Exact, value: /test.Echo/Unary}}}}]
    backendRefs: [{{name: grpc, port: {web_port}}}]
"""
)


class _Web(BaseHTTPRequestHandler):
    def _answer(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = f"web {self.command} {self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *a):
        pass


def test_grpc_client_through_a_grpc_route(tmp_path):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Echo",
                {m: grpc.unary_unary_rpc_method_handler(_unary) for m in ("Unary", "Other")},
            ),
        )
    )
    hs = health.HealthServicer()
    hs.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    up_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    gw_port = free_port()
    f = tmp_path / "m.yaml"
    try:
        with upstream(_Web) as web_port:
            f.write_text(MANIFESTS.format(gw_port=gw_port, up_port=up_port, web_port=web_port))
            _calls(f, gw_port)
    finally:
        server.stop(0).wait(5)


def _calls(f, gw_port: int) -> None:
    # an HTTPRoute for the same path as a gRPC method keeps the requests that are not gRPC calls
    with serving(f, gw_port, "/test.Echo/Unary") as first:
        assert first.text == "web GET /test.Echo/Unary"
        r = httpx.post(f"http://127.0.0.1:{gw_port}/test.Echo/Unary", json={}, timeout=5)
        assert r.text == "web POST /test.Echo/Unary"
        with grpc.insecure_channel(f"127.0.0.1:{gw_port}") as ch:
            unary = ch.unary_unary("/test.Echo/Unary")
            got, call = unary.with_call(b"hi", timeout=10)
            assert got == b"hi env=prod tenant="
            assert ("x-gw", "agentgw") in call.initial_metadata()
            # the exact method match wins over the tenant rule's service prefix and header
            assert unary(b"b", metadata=(("x-tenant", "b"),), timeout=10) == b"b env=prod tenant=b"
            # another method of the service: only with the tenant header
            other = ch.unary_unary("/test.Echo/Other")
            assert other(b"o", metadata=(("x-tenant", "b"),), timeout=10) == b"o env=tenant-b tenant=b"
            with pytest.raises(grpc.RpcError) as ei:
                other(b"o", timeout=10)
            # no route: the gateway's 404, as gRPC says it
            assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED, ei.value
            with pytest.raises(grpc.RpcError) as ei:
                ch.unary_unary("/other.Svc/Do")(b"x", timeout=10)
            assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
            # the standard health service, by its service-prefix rule
            stub = health_pb2_grpc.HealthStub(ch)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
