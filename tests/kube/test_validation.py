"""Accepted means enforced: what the translator cannot enforce, it refuses, and says where.

Schema validation of every translated object (unknown or misspelled fields, Gateway API
fields agentgw does not implement, types, enums, the schemas' CEL rules), refusal of what the proxy's own
config validation and compiler refuse, and both through the controller and the stand-in API
server (which now enforces the schemas as an API server with these CRDs does).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os

import aiohttp
import pytest
import yaml

from agentgw.kube import crds, schema
from agentgw.kube.check import proxy_errors, translate_checked
from agentgw.kube.client import ApiError, Resource
from agentgw.kube.controller import Controller
from agentgw.kube.manifests import load_manifests
from agentgw.kube.policy_attachment import CLOSED_RESPONSE
from agentgw.kube.translate import translate
from tests.kube.waiting import eventually

from .fakeapi import FakeApi

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GW = "gateway.networking.k8s.io"
AGW = "agentgateway.dev"
NS = "ns"
JWKS = '{"keys": [{"crv": "P-256", "x": "7rI5kNRfv2Pz16Q8LwbzLYW9Ow6sn3bLLPbEJbvPVt0", "y": "jw1oMWs65rM83RmLICrOb3VYEGNIch7hm-nVFdQ7v8o", "kty": "EC", "kid": "k1"}]}'
ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/demo_agent-AbCdEf1234"
pytestmark = pytest.mark.timeout(60)


# -- objects ------------------------------------------------------------------------------------
def gateway_class():
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "agentgw"},
        "spec": {"controllerName": "agentgw.dev/controller"},
    }


def gateway(**spec):
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": NS},
        "spec": {
            "gatewayClassName": "agentgw",
            "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}],
            **spec,
        },
    }


def route(name="r", backend="b", **rule):
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"group": AGW, "kind": "AgentgatewayBackend", "name": backend}], **rule}],
        },
    }


def backend(name="b", **spec):
    return {
        "apiVersion": f"{AGW}/v1alpha1",
        "kind": "AgentgatewayBackend",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec or {"static": {"host": "10.0.0.1", "port": 80}},
    }


def policy(name="p", target=None, **spec):
    return {
        "apiVersion": f"{AGW}/v1alpha1",
        "kind": "AgentgatewayPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"targetRefs": [target or {"group": GW, "kind": "HTTPRoute", "name": "r"}], **spec},
    }


def jwt_policy(**provider):
    return policy(
        traffic={
            "jwtAuthentication": {
                "providers": [{"issuer": "https://idp.example.com", "jwks": {"inline": JWKS}, **provider}]
            }
        }
    )


def world(*extra):
    return [gateway_class(), gateway(), route(), backend(), *extra]


def status(res, kind, name, group=None, ns=NS):
    group = (
        group
        if group is not None
        else {"AgentgatewayPolicy": AGW, "AgentgatewayBackend": AGW, "AgentgatewayParameters": AGW}.get(kind, GW)
    )
    return res.status[(group, kind, ns if kind != "GatewayClass" else "", name)]


def accepted(st):
    return next(c for c in st["conditions"] if c["type"] == "Accepted")


def routes_of(res):
    return res.gateways[(NS, "gw")].config["binds"][0]["listeners"][0]["routes"]


def config_text(res):
    return json.dumps(res.gateways[(NS, "gw")].config) if (NS, "gw") in res.gateways else ""


# -- the schema validator -----------------------------------------------------------------------
def test_misspelled_jwt_audience_names_the_field_and_suggests_the_right_one():
    res = translate(world(jwt_policy(audience=["agents"])))
    a = accepted(status(res, "AgentgatewayPolicy", "p"))
    assert (a["status"], a["reason"]) == ("False", "Invalid")
    assert (
        a["message"]
        == "spec.traffic.jwtAuthentication.providers[0].audience: unknown field (did you mean 'audiences'?)"
    )
    assert status(res, "AgentgatewayPolicy", "p")["ancestors"][0]["conditions"][0]["status"] == "False"
    assert (
        "AgentgatewayPolicy ns/p: Accepted=Invalid: spec.traffic.jwtAuthentication.providers[0].audience: unknown field (did you mean 'audiences'?)"
        in res.errors
    )
    # not applied, and the route it was to protect is closed rather than open
    assert routes_of(res) == [{"name": "r", "namespace": NS, "policies": {"directResponse": CLOSED_RESPONSE}}]
    assert "jwtAuth" not in config_text(res)
    # spelled right: accepted, the audience is enforced
    res = translate(world(jwt_policy(audiences=["agents"])))
    assert accepted(status(res, "AgentgatewayPolicy", "p"))["status"] == "True"
    assert routes_of(res)[0]["policies"]["jwtAuth"]["providers"][0]["audiences"] == ["agents"]


def test_misspelled_agentcore_qualifier_refuses_the_backend():
    res = translate(
        [gateway_class(), gateway(), route(), backend(aws={"agentCore": {"agentRuntimeArn": ARN, "qualifer": "prod"}})]
    )
    a = accepted(status(res, "AgentgatewayBackend", "b"))
    assert (a["status"], a["reason"], a["message"]) == (
        "False",
        "Invalid",
        "spec.aws.agentCore.qualifer: unknown field (did you mean 'qualifier'?)",
    )
    r = routes_of(res)[0]
    assert "backends" not in r and r["policies"]["directResponse"]["status"] == 500
    rr = next(c for c in status(res, "HTTPRoute", "r")["parents"][0]["conditions"] if c["type"] == "ResolvedRefs")
    assert rr["status"] == "False" and "qualifer: unknown field" in rr["message"]
    res = translate(
        [gateway_class(), gateway(), route(), backend(aws={"agentCore": {"agentRuntimeArn": ARN, "qualifier": "prod"}})]
    )
    assert routes_of(res)[0]["backends"][0]["aws"]["agentCore"] == {"agentRuntimeArn": ARN, "qualifier": "prod"}


def test_httproute_extras_refuse_the_route():
    cases = {
        "spec.rules[0].matches[0].header: unknown field (did you mean 'headers'?)": {
            "matches": [{"path": {"type": "PathPrefix", "value": "/a"}, "header": []}]
        },
        "spec.rules[0].sessionPersistence: not supported by agentgw (session persistence is not supported)": {
            "sessionPersistence": {"sessionName": "s"}
        },
        "spec.rules[0].filters[0].type: unsupported value 'RequestMirror': not supported by agentgw": {
            "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "m", "port": 80}}}]
        },
        "spec.rules[0].timeouts.request: must match the pattern": {"timeouts": {"request": "10 seconds"}},
        "spec.rules[0].filters: RequestHeaderModifier filter cannot be repeated": {
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "a", "value": "1"}]}},
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "b", "value": "2"}]}},
            ]
        },
    }
    for want, rule in cases.items():
        res = translate([gateway_class(), gateway(), route(**rule), backend()])
        parent = status(res, "HTTPRoute", "r")["parents"][0]
        a = accepted(parent)
        assert (a["status"], a["reason"]) == ("False", "Invalid"), want
        assert want in a["message"], (want, a["message"])
        assert routes_of(res) == [] if (NS, "gw") in res.gateways else True
        gw = status(res, "Gateway", "gw")
        assert gw["listeners"][0]["attachedRoutes"] == 0
    # an extra top-level field and a misspelled parentRef field
    r = route()
    r["spec"]["parentRefs"][0]["sectionNmae"] = "http"
    r["spce"] = {}
    res = translate([gateway_class(), gateway(), r, backend()])
    msg = accepted(status(res, "HTTPRoute", "r")["parents"][0])["message"]
    assert (
        "spce: unknown field (did you mean 'spec'?)" in msg
        and "spec.parentRefs[0].sectionNmae: unknown field (did you mean 'sectionName'?)" in msg
    )


def test_gateway_extras_refuse_the_gateway_and_its_routes_say_so():
    g = gateway(addresses=[{"type": "IPAddress", "value": "10.0.0.9"}])
    g["spec"]["listeners"][0]["hostnme"] = "api.example.com"
    res = translate([gateway_class(), g, route(), backend()])
    a = accepted(status(res, "Gateway", "gw"))
    assert (a["status"], a["reason"]) == ("False", "Invalid")
    assert "spec.addresses: not supported by agentgw" in a["message"]
    assert "spec.listeners[0].hostnme: unknown field (did you mean 'hostname'?)" in a["message"]
    assert (NS, "gw") not in res.gateways
    parent = accepted(status(res, "HTTPRoute", "r")["parents"][0])
    assert (parent["status"], parent["reason"]) == ("False", "NoMatchingParent")
    # two certificates on a listener: agentgw would serve one, so it is refused
    g = gateway(
        listeners=[
            {
                "name": "https",
                "port": 8443,
                "protocol": "HTTPS",
                "tls": {"certificateRefs": [{"name": "a"}, {"name": "b"}]},
            }
        ]
    )
    a = accepted(status(translate([gateway_class(), g]), "Gateway", "gw"))
    assert (
        "spec.listeners[0].tls.certificateRefs: must have at most 1 item (agentgw serves one certificate per listener)"
        in a["message"]
    )


def test_gateway_api_fields_outside_the_subset_agentgw_implements_are_refused():
    # a field that is no misspelling: not supported by agentgw
    res = translate(world(route(priority=5)))
    a = accepted(status(res, "HTTPRoute", "r")["parents"][0])
    assert (a["status"], a["message"]) == ("False", "spec.rules[0].priority: unknown field (not supported by agentgw)")
    # a misspelled unimplemented field is pointed at its name, which is then refused with the reason
    msg = "; ".join(schema.validate(route(sessionPersistance={"sessionName": "s"})))
    assert msg == "spec.rules[0].sessionPersistance: unknown field (did you mean 'sessionPersistence'?)"
    # the API server's view: plain unknown field (it knows nothing of agentgw)
    assert schema.validate(route(priority=5), server=True) == ["spec.rules[0].priority: unknown field"]
    # metadata is Kubernetes' own
    r = route()
    r["metadata"]["lables"] = {}
    assert schema.validate(r) == ["metadata.lables: unknown field (did you mean 'labels'?)"]


def _unsupported_markers(node, path, out):
    for k, why in (node.get("x-agentgw-unsupported") or {}).items():
        out.append((f"{path}.{k}", why))
    for k, v in (node.get("properties") or {}).items():
        _unsupported_markers(v, f"{path}.{k}", out)
    if "items" in node:
        _unsupported_markers(node["items"], path + "[]", out)
    return out


def _put(obj, path, value):
    """Set ``value`` at ``path`` (``spec.rules[].x``: in the first item) in a copy of ``obj``."""
    obj = copy.deepcopy(obj)
    cur = obj
    parts = path.replace("[]", ".[]").split(".")
    for p_, nxt in zip(parts, parts[1:] + [None]):
        if nxt is None:
            cur[p_] = value
        elif p_ == "[]":
            cur = cur[0]
        else:
            cur = cur.setdefault(p_, [{}] if nxt == "[]" else {})
    return obj


def test_every_unimplemented_gateway_api_field_is_refused_by_agentgw_and_kept_by_the_api_server():
    from agentgw.kube import gatewayapi_schema as gwapi

    https = gateway(
        listeners=[{"name": "https", "port": 8443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "c"}]}}]
    )
    redirect = route(filters=[{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}}])
    redirect["spec"]["rules"][0]["backendRefs"][0]["filters"] = [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}}
    ]
    grpc = {**redirect, "kind": "GRPCRoute", "spec": copy.deepcopy(redirect["spec"])}
    grpc["spec"]["rules"][0]["backendRefs"][0] = {
        "name": "svc",
        "port": 50051,
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}}],
    }
    base = {"Gateway": https, "HTTPRoute": redirect, "GRPCRoute": grpc}
    found = []
    for kind, d in gwapi.SCHEMAS.items():
        for path, why in _unsupported_markers(d["schema"], "", []):
            path = path.lstrip(".")
            o = _put(base[kind], path, {"x": 1})
            if "filters[]." in path:  # a filter of that type, with its settings only
                filters, field = path.rsplit("[].", 1)
                type_of = {f: t for t, f in gwapi.FILTER_FIELDS.items()}
                o = _put(base[kind], filters, [{"type": type_of[field], field: {"x": 1}}])
            found.append(f"{kind}.{path}")
            field_path = (
                path.replace("rules[]", "rules[0]")
                .replace("listeners[]", "listeners[0]")
                .replace("backendRefs[]", "backendRefs[0]")
                .replace("filters[]", "filters[0]")
            )
            assert f"{field_path}: not supported by agentgw ({why})" in schema.validate(o), (kind, path)
            assert schema.validate(o, server=True) == [], (kind, path)  # stored as it is ...
            assert schema.prune(o) == o, (kind, path)  # ... also without strict field validation
    assert (
        len(found) >= 15 and "HTTPRoute.spec.rules[].sessionPersistence" in found and "Gateway.spec.addresses" in found
    )
    assert "GRPCRoute.spec.rules[].filters[].requestMirror" in found
    assert "GRPCRoute.spec.rules[].backendRefs[].filters[].extensionRef" in found


GATEWAY_API_RULES = {
    "spec.rules[0]: a rule with a RequestRedirect filter cannot have backendRefs (the redirect is its answer)": {
        "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]
    },
    "spec.rules[0]: replacePrefixMatch needs exactly one match, with a PathPrefix path (the prefix it replaces)": {
        "matches": [{"path": {"type": "Exact", "value": "/a"}}],
        "filters": [
            {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"}}}
        ],
    },
    "spec.rules[0].filters[0].urlRewrite.path: replacePrefixMatch is set when type is ReplacePrefixMatch, and only then": {
        "filters": [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/", "replacePrefixMatch": "/b"}},
            }
        ]
    },
    "spec.rules[0].filters[0]: requestHeaderModifier is set when type is RequestHeaderModifier, and only then": {
        "filters": [{"type": "RequestHeaderModifier"}]
    },
    "spec.rules[0].filters: RequestRedirect and URLRewrite filters cannot be used together": {
        "filters": [
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}},
            {"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}},
        ]
    },
    "spec.rules[0].matches[0].path: an Exact or PathPrefix path must start with '/'": {
        "matches": [{"path": {"type": "Exact", "value": "a"}}]
    },
    "spec.rules[0].matches[0].path: an Exact or PathPrefix path must be normalized": {
        "matches": [{"path": {"value": "/a/../b"}}]
    },
    "spec.rules[0].matches[0].path: an Exact or PathPrefix path may hold only URI path characters": {
        "matches": [{"path": {"value": "/a b"}}]
    },
    "spec.rules[0].timeouts: backendRequest cannot be longer than request": {
        "timeouts": {"request": "1m", "backendRequest": "1h"}
    },
    "spec.rules[0].filters[0].cors.allowOrigins: '*' (any origin) cannot be listed with other values": {
        "filters": [{"type": "CORS", "cors": {"allowOrigins": ["*", "https://a.example.com"]}}]
    },
    "spec.rules[0].filters[0].requestHeaderModifier.set[0].value: must match the pattern": {
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "trailing "}]}}
        ]
    },
}


@pytest.mark.parametrize("want", list(GATEWAY_API_RULES))
def test_gateway_api_rules(want):
    r = route(**GATEWAY_API_RULES[want])
    if "RequestRedirect filter cannot" not in want and any(
        f.get("type") == "RequestRedirect" for f in r["spec"]["rules"][0].get("filters", [])
    ):
        del r["spec"]["rules"][0]["backendRefs"]
    problems = schema.validate(r)
    assert any(p.startswith(want) for p in problems), problems
    assert not [p for p in problems if "rule error" in p or "cannot be evaluated" in p], problems


def test_gateway_api_rules_accept_what_agentgw_implements():
    ok = [
        route(
            matches=[
                {
                    "path": {"type": "PathPrefix", "value": "/a"},
                    "headers": [{"name": "x-a", "value": "1"}],
                    "queryParams": [{"name": "q", "type": "RegularExpression", "value": "^a"}],
                    "method": "POST",
                }
            ],
            filters=[
                {
                    "type": "URLRewrite",
                    "urlRewrite": {
                        "hostname": "a.example.com",
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"},
                    },
                },
                {
                    "type": "CORS",
                    "cors": {
                        "allowOrigins": ["https://*.example.com", "http://localhost:3000"],
                        "allowMethods": ["GET"],
                        "maxAge": 60,
                    },
                },
            ],
            timeouts={"request": "1h30m", "backendRequest": "90m"},
            retry={"attempts": 2, "backoff": "100ms", "codes": [502, 503]},
        ),
        route(
            matches=[{"path": {"type": "RegularExpression", "value": "/a/.*[0-9]+"}}],
            timeouts={"request": "0s", "backendRequest": "10s"},
        ),
        {
            **route(),
            "spec": {
                "parentRefs": [
                    {"name": "gw", "sectionName": "a"},
                    {"name": "gw", "sectionName": "b"},
                    {"name": "gw", "namespace": "other"},
                ],
                "rules": [
                    {
                        "name": "a",
                        "filters": [
                            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
                        ],
                    },
                    {"name": "b"},
                    {},
                ],
            },
        },
        gateway(
            listeners=[
                {
                    "name": "https",
                    "hostname": "*.example.com",
                    "port": 8443,
                    "protocol": "HTTPS",
                    "tls": {"certificateRefs": [{"name": "c", "namespace": "certs"}]},
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]},
                        },
                        "kinds": [{"kind": "HTTPRoute"}],
                    },
                },
                {"name": "tcp", "port": 5432, "protocol": "TCP"},
            ],  # refused by the listener's status, not the schema
            infrastructure={
                "labels": {"app.kubernetes.io/part-of": "agents"},
                "annotations": {"example.com/note": "any text"},
                "parametersRef": {"group": AGW, "kind": "AgentgatewayParameters", "name": "p"},
            },
        ),
    ]
    for o in ok:
        assert schema.validate(o) == [], o
    refused = {
        "spec.listeners[0]: tls is not allowed for HTTP, TCP and UDP listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP", "tls": {"certificateRefs": [{"name": "c"}]}}
        ],
        "spec.listeners[0]: an HTTPS listener terminates TLS: tls.mode must be Terminate": [
            {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"mode": "Passthrough"}}
        ],
        "spec.listeners[0].tls: certificateRefs is required when mode is Terminate": [
            {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {}}
        ],
        "spec.listeners[0].allowedRoutes.namespaces: selector is set when from is Selector, and only then": [
            {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Selector"}}}
        ],
        "spec.listeners[1]: duplicate entry with name of spec.listeners[0]": [
            {"name": "a", "port": 80, "protocol": "HTTP"},
            {"name": "a", "port": 81, "protocol": "HTTP"},
        ],
    }
    for want, listeners in refused.items():
        assert want in schema.validate(gateway(listeners=listeners)), want
    two = {**route(), "spec": {"parentRefs": [{"name": "gw"}, {"name": "gw"}], "rules": [{"name": "a"}, {"name": "a"}]}}
    problems = schema.validate(two)
    assert "spec.parentRefs: parentRefs naming the same parent must each set sectionName or port" in problems
    assert "spec.rules: rule names must be unique within the route" in problems
    assert schema.validate({**route(), "spec": {"rules": [{"backendRefs": [{"name": "svc"}]}]}}) == [
        "spec.rules[0].backendRefs[0]: port is required for a Service"
    ]


def test_gatewayclass_and_parameters_are_validated():
    gc = gateway_class()
    gc["spec"]["parametersRef"] = {"group": AGW, "kind": "AgentgatewayParameters", "name": "params", "namespace": NS}
    params = {
        "apiVersion": f"{AGW}/v1alpha1",
        "kind": "AgentgatewayParameters",
        "metadata": {"name": "params", "namespace": NS},
        "spec": {
            "env": [{"name": "X", "valeu": "1"}],
            "replicas": 2,
            "horizontalPodAutoscaler": {"spec": {"maxReplicas": 3}},
        },
    }
    res = translate([gc, gateway(), route(), backend(), params])
    a = accepted(status(res, "GatewayClass", "agentgw"))
    assert (a["status"], a["reason"]) == (
        "False",
        "InvalidParameters",
    ) and "spec.env[0].valeu: unknown field (did you mean 'value'?)" in a["message"]
    a = accepted(status(res, "Gateway", "gw"))
    assert (a["status"], a["reason"]) == ("False", "InvalidParameters")
    assert "replicas and horizontalPodAutoscaler are exclusive" in a["message"]
    assert accepted(status(res, "AgentgatewayParameters", "params"))["status"] == "False"
    assert (NS, "gw") not in res.gateways
    # an invalid GatewayClass handles no Gateway
    gc = gateway_class()
    gc["spec"]["parameterRef"] = {"group": AGW, "kind": "AgentgatewayParameters", "name": "params"}
    res = translate([gc, gateway(), route(), backend()])
    assert (
        accepted(status(res, "GatewayClass", "agentgw"))["message"]
        == "spec.parameterRef: unknown field (did you mean 'parametersRef'?)"
    )
    assert accepted(status(res, "Gateway", "gw"))["message"].startswith("GatewayClass agentgw is not accepted")
    assert (NS, "gw") not in res.gateways


def test_nested_arrays_and_free_form_parts_are_checked_to_the_leaf():
    mcp = backend(
        mcp={
            "targets": [
                {"name": "a", "static": {"host": "a", "port": 80}},
                {"name": "b", "static": {"host": "b", "port": 80, "protocl": "SSE"}},
            ]
        }
    )
    ai = backend(name="ai", ai={"groups": [{"providers": [{"openai": {"model": "m"}}, {"anthropic": {"modle": "m"}}]}]})
    hm = policy(
        name="hm", traffic={"headerModifiers": {"request": {"set": [{"name": "x", "value": "1"}], "remvoe": ["y"]}}}
    )
    rl = {
        "apiVersion": "ratelimit.solo.io/v1alpha1",
        "kind": "RateLimitConfig",
        "metadata": {"name": "rl", "namespace": NS},
        "spec": {
            "raw": {
                "descriptors": [
                    {"key": "generic_key", "value": "c", "rateLimit": {"requestsPerUnit": 5, "unit": "MINUTE"}}
                ],
                "rateLimits": [
                    {"actions": [{"genericKey": {"descriptorValue": "c"}}], "limit": {"dynamicMetadata": {}}}
                ],
            }
        },
    }
    ent = {
        "apiVersion": "enterpriseagentgateway.solo.io/v1alpha1",
        "kind": "EnterpriseAgentgatewayPolicy",
        "metadata": {"name": "ent", "namespace": NS},
        "spec": {
            "targetRefs": [{"group": GW, "kind": "HTTPRoute", "name": "r2"}],
            "traffic": {"entRateLimit": {"global": {"rateLimitConfigRefs": [{"name": "rl"}]}}},
        },
    }
    res = translate([gateway_class(), gateway(), route(), mcp, ai, route("r2", "ai"), hm, rl, ent])
    assert (
        accepted(status(res, "AgentgatewayBackend", "b"))["message"]
        == "spec.mcp.targets[1].static.protocl: unknown field (did you mean 'protocol'?)"
    )
    assert (
        accepted(status(res, "AgentgatewayBackend", "ai"))["message"]
        == "spec.ai.groups[0].providers[1].anthropic.modle: unknown field (did you mean 'model'?)"
    )
    assert (
        accepted(status(res, "AgentgatewayPolicy", "hm"))["message"]
        == "spec.traffic.headerModifiers.request.remvoe: unknown field (did you mean 'remove'?)"
    )
    # a RateLimitConfig has no status of its own here: the policy using it says what is wrong with it
    a = accepted(status(res, "EnterpriseAgentgatewayPolicy", "ent", group="enterpriseagentgateway.solo.io"))
    assert (
        a["status"] == "False"
        and "RateLimitConfig ns/rl is not valid: spec.raw.rateLimits[0].limit: unknown field" in a["message"]
    )


def test_one_of_rules_refuse_what_would_be_silently_ignored():
    both = policy(
        traffic={
            "jwtAuthentication": {
                "providers": [{"issuer": "i", "jwks": {"inline": JWKS, "remote": {"url": "https://idp/jwks"}}}]
            },
            "rateLimit": {"local": [{"requests": 5, "tokens": 100, "unit": "Minutes"}]},
        }
    )
    msg = accepted(status(translate(world(both)), "AgentgatewayPolicy", "p"))["message"]
    assert (
        "spec.traffic.jwtAuthentication.providers[0].jwks: exactly one of inline, remote, secretRef, configMapRef must be set"
        in msg
    )
    assert "spec.traffic.rateLimit.local[0]: exactly one of requests, tokens must be set" in msg


def test_wrong_types_are_refused_before_translation():
    p = policy(traffic={"retry": {"attempts": "three"}, "timeouts": {"request": 5}})
    msg = accepted(status(translate(world(p)), "AgentgatewayPolicy", "p"))["message"]
    assert "spec.traffic.retry.attempts: must be an integer (got string)" in msg
    assert "spec.traffic.timeouts.request: must be a string (got integer)" in msg
    p = policy(
        traffic={"jwtAuthentication": {"mode": "Stritc", "providers": [{"issuer": "i", "jwks": {"inline": JWKS}}]}}
    )
    msg = accepted(status(translate(world(p)), "AgentgatewayPolicy", "p"))["message"]
    assert (
        msg
        == "spec.traffic.jwtAuthentication.mode: unsupported value 'Stritc' (supported: 'Strict', 'Optional', 'Permissive')"
    )


def test_a_policy_that_only_configures_observability_does_not_close_routes():
    p = policy(target={"group": GW, "kind": "Gateway", "name": "gw"}, frontend={"accessLog": {"fitler": "true"}})
    res = translate(world(p))
    assert (
        accepted(status(res, "AgentgatewayPolicy", "p"))["message"]
        == "spec.frontend.accessLog.fitler: unknown field (did you mean 'filter'?)"
    )
    assert routes_of(res)[0]["backends"]


def test_a_gateway_level_policy_that_is_refused_closes_every_route_of_the_gateway():
    p = policy(
        target={"group": GW, "kind": "Gateway", "name": "gw"},
        traffic={"apiKeyAuthentication": {"secretRef": {"name": "keys", "key": "k"}}},
    )
    res = translate(world(p, route("r2")))
    assert (
        "spec.traffic.apiKeyAuthentication.secretRef.key: unknown field"
        in accepted(status(res, "AgentgatewayPolicy", "p"))["message"]
    )
    assert [r["policies"] for r in routes_of(res)] == [{"directResponse": CLOSED_RESPONSE}] * 2


def test_invalid_reference_grant_grants_nothing():
    objs = [
        gateway_class(),
        gateway(),
        backend(),
        {
            "apiVersion": f"{GW}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": NS},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"backendRefs": [{"name": "svc", "namespace": "other", "port": 80}]}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc", "namespace": "other"},
            "spec": {"ports": [{"port": 80}]},
        },
    ]
    grant = {
        "apiVersion": f"{GW}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "g", "namespace": "other"},
        "spec": {
            "from": [{"group": GW, "kind": "HTTPRoute", "namespace": NS}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }
    assert routes_of(translate(objs + [grant]))[0]["backends"]
    bad = copy.deepcopy(grant)
    bad["spec"]["to"][0]["nmae"] = "svc"
    res = translate(objs + [bad])
    assert "backends" not in routes_of(res)[0]
    assert (
        "ReferenceGrant other/g: not accepted (grants nothing): spec.to[0].nmae: unknown field (did you mean 'name'?)"
        in res.errors
    )


def test_fields_dropped_by_the_api_server_are_found_in_the_last_applied_configuration():
    applied = jwt_policy(audience=["agents"])
    live = jwt_policy()  # what the API server stored: the unknown field pruned
    live["metadata"]["annotations"] = {schema.LAST_APPLIED: json.dumps(applied)}
    res = translate(world(live))
    a = accepted(status(res, "AgentgatewayPolicy", "p"))
    assert a["status"] == "False"
    assert a["message"] == (
        "spec.traffic.jwtAuthentication.providers[0].audience: unknown field (did you mean 'audiences'?) "
        "(in the last applied configuration; the API server dropped it)"
    )


def test_every_seed_and_example_is_valid():
    for case in sorted(os.listdir(FIXTURES)):
        for o in load_manifests(os.path.join(FIXTURES, case)):
            if case == "broken_refs" and o["metadata"]["name"] == "two-kinds":
                continue
            assert schema.validate(o) == [], (case, o["kind"], o["metadata"]["name"])


def test_schemas_behind_the_validation():
    # every CEL rule of every schema compiles in the engine the validator uses
    rules = []

    def walk(n):
        if isinstance(n, dict):
            rules.extend(r["rule"] for r in n.get("x-kubernetes-validations") or [])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    for k in schema.registry().values():
        walk(k.root)
    assert len(rules) > 60
    assert [r for r in rules if "oldSelf" not in r and isinstance(schema._program(r), Exception)] == []
    # our CRDs keep free-form parts only where something else checks them (or where the
    # translator refuses whatever they hold: crds.REFUSED)
    free = []
    refused = []

    def free_paths(n, p):
        if n is crds.REFUSED:
            refused.append(p)
        elif n.get("x-kubernetes-preserve-unknown-fields"):
            free.append(p)
        for k, v in (n.get("properties") or {}).items():
            free_paths(v, f"{p}.{k}")
        if "items" in n:
            free_paths(n["items"], p + "[]")

    for doc in list(crds.CORE.values()) + list(crds.COMPAT.values()):
        free_paths(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"], doc["spec"]["names"]["kind"])
    assert sorted(p for p in free if ".status." not in p) == sorted(
        ["AgentgatewayParameters.spec.rawConfig"]
        # values agentgw passes on as written: JWT claims, AI request field values
        + [
            f"{k}.{p}"
            for k in ("AgentgatewayBackend.spec.policies", "AgentgatewayPolicy.spec.backend")
            + ("EnterpriseAgentgatewayPolicy.spec.backend",)
            for p in ("auth.jwtSign.claims", "ai.defaults[].value", "ai.overrides[].value")
        ]
        + ["AgentgatewayModel.spec.policies.auth.jwtSign.claims"]
        + [
            f"AgentgatewayParameters.spec.{o}.spec"
            for o in ("deployment", "service", "serviceAccount", "podDisruptionBudget", "horizontalPodAutoscaler")
        ]
    )
    # the API server's view (server mode) accepts Gateway API fields agentgw refuses
    r = route(sessionPersistence={"sessionName": "s"})
    assert schema.validate(r, server=True) == []
    assert schema.validate(r) != []
    # a served version is required
    assert schema.validate({**backend(), "apiVersion": f"{AGW}/v1"}) == [
        f"apiVersion: {AGW}/v1 is not served for AgentgatewayBackend (served: {AGW}/v1alpha1)"
    ]


# -- the proxy's verdict ------------------------------------------------------------------------
def test_a_config_the_proxy_refuses_is_never_accepted():
    # a CEL syntax error passes the schema (a string) but not the proxy's compiler
    p = policy(traffic={"authorization": {"policy": {"matchExpressions": ["request.path =="]}}})
    res = translate(world(p))
    assert accepted(status(res, "AgentgatewayPolicy", "p"))["status"] == "True"  # the schema alone is not enough
    assert proxy_errors(res.gateways[(NS, "gw")], {})
    res = translate_checked(world(p))
    a = accepted(status(res, "AgentgatewayPolicy", "p"))
    assert (a["status"], a["reason"]) == ("False", "Invalid")
    assert a["message"].startswith(
        "the proxy refuses the config made from it: binds[0].listeners[0].routes[0].policies.authorization.allow[0]: invalid CEL expression"
    )
    assert routes_of(res) == [{"name": "r", "namespace": NS, "policies": {"directResponse": CLOSED_RESPONSE}}]
    assert accepted(status(res, "HTTPRoute", "r")["parents"][0])["status"] == "True"  # the route itself is fine
    assert proxy_errors(res.gateways[(NS, "gw")], {}) == []


def test_proxy_refusals_are_pinned_on_the_object_that_made_the_part():
    # a backend: its host
    res = translate_checked([gateway_class(), gateway(), route(), backend(static={"host": "bad host!", "port": 80})])
    assert "backends[0].host: invalid host" in accepted(status(res, "AgentgatewayBackend", "b"))["message"]
    assert routes_of(res)[0]["policies"]["directResponse"]["status"] == 500
    # the parameters: their rawConfig
    params = {
        "apiVersion": f"{AGW}/v1alpha1",
        "kind": "AgentgatewayParameters",
        "metadata": {"name": "params", "namespace": NS},
        "spec": {"rawConfig": {"config": {"logLevl": "debug"}}},
    }
    g = gateway(infrastructure={"parametersRef": {"group": AGW, "kind": "AgentgatewayParameters", "name": "params"}})
    res = translate_checked([gateway_class(), g, route(), backend(), params])
    assert (
        accepted(status(res, "AgentgatewayParameters", "params"))["message"]
        == "the proxy refuses the config made from it: config.logLevl: unknown field"
    )
    assert accepted(status(res, "Gateway", "gw"))["reason"] == "InvalidParameters"
    assert (NS, "gw") not in res.gateways
    # a listener: a certificate the proxy cannot load; the other listeners are served
    objs = load_manifests(os.path.join(FIXTURES, "gwapi_examples"))
    res = translate_checked(objs, offline=True)
    gw = res.status[(GW, "Gateway", "infra", "shared-gateway")]
    https = next(ls for ls in gw["listeners"] if ls["name"] == "https")
    rr = next(c for c in https["conditions"] if c["type"] == "ResolvedRefs")
    assert (rr["status"], rr["reason"]) == ("False", "InvalidCertificateRef") and "cannot load TLS certificate" in rr[
        "message"
    ]
    assert accepted(gw)["status"] == "True"
    assert [b["port"] for b in res.gateways[("infra", "shared-gateway")].config["binds"]] == [80]


def test_a_refusal_that_belongs_to_no_object_refuses_the_gateway():
    def prepare(g):  # as the controller adds its defaults; here, a broken one
        g.config["config"]["tracing"] = {"otlpEndpoint": "http://collector:4317", "otlpProtocl": "grpc"}

    res = translate_checked(world(), prepare=prepare)
    a = accepted(status(res, "Gateway", "gw"))
    assert (a["status"], a["reason"]) == ("False", "Invalid")
    assert "the proxy refuses the config made for it: config.tracing.otlpProtocl: unknown field" in a["message"]
    assert (NS, "gw") not in res.gateways
    assert accepted(status(res, "HTTPRoute", "r")["parents"][0])["reason"] == "NoMatchingParent"


def test_valid_worlds_are_unchanged_by_the_check():
    for case in ("seed000_agentcore", "seed002_flux", "seed003_ack_a2a", "seed004_three_listeners"):
        objs = load_manifests(os.path.join(FIXTURES, case))
        a, b = translate(objs, offline=True), translate_checked(objs, offline=True)
        assert {k: g.config for k, g in a.gateways.items()} == {k: g.config for k, g in b.gateways.items()}, case
        assert a.status == b.status and a.errors == b.errors, case


# -- the stand-in API server and the controller ----------------------------------------------------
def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 50))


POLICIES = Resource(AGW, "v1alpha1", "agentgatewaypolicies", "AgentgatewayPolicy")


def test_stand_in_api_server_enforces_the_schemas(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        client = await api.connect(tmp_path)
        try:
            # strict field validation (what the controller and kubectl apply send): refused
            with pytest.raises(ApiError) as ei:
                await client.create(POLICIES, jwt_policy(audience=["x"]))
            assert (
                ei.value.status == 400
                and 'unknown field "spec.traffic.jwtAuthentication.providers[0].audience"' in ei.value.message
            )
            # other problems are 422 whatever the field validation
            bad = jwt_policy()
            bad["spec"]["traffic"]["jwtAuthentication"]["mode"] = "Sometimes"
            with pytest.raises(ApiError) as ei:
                await client.create(POLICIES, bad)
            assert ei.value.status == 422 and "unsupported value 'Sometimes'" in ei.value.message
            # without strict validation the API server drops the field and warns
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    api.url + POLICIES.path(NS),
                    json=jwt_policy(audience=["x"]),
                    headers={"Authorization": f"Bearer {api.token}"},
                ) as resp,
            ):
                assert resp.status == 201
                assert "audience" in resp.headers.get("Warning", "")
            stored = api.get("AgentgatewayPolicy", NS, "p")
            assert "audience" not in stored["spec"]["traffic"]["jwtAuthentication"]["providers"][0]
            # merge patches too
            with pytest.raises(ApiError) as ei:
                await client.merge_patch(POLICIES, NS, "p", {"spec": {"traffic": {"timeouts": {"requst": "5s"}}}})
            assert ei.value.status == 400
            # Gateway API kinds: a cluster with the API's own CRDs stores the fields agentgw does not
            # implement (the translator refuses them); an unknown field is refused as for our CRDs
            await client.create(
                Resource(GW, "v1", "httproutes", "HTTPRoute"), route(sessionPersistence={"sessionName": "s"})
            )
            with pytest.raises(ApiError):
                await client.create(
                    Resource(GW, "v1", "httproutes", "HTTPRoute"),
                    {**route("r2"), "spec": {**route()["spec"], "hostnaems": ["a"]}},
                )
        finally:
            await client.close()
            await api.stop()

    run(main())


def test_controller_refuses_what_it_cannot_enforce_and_accepts_the_fix(tmp_path):
    async def main():
        api = FakeApi()
        await api.start()
        for o in [gateway_class(), gateway(), route(), backend()]:
            await api.put_object(o["apiVersion"].split("/")[0], o)
        # as a cluster whose CRD is wider than ours would store it
        await api.put_object(AGW, jwt_policy(audience=["agents"]), validate=False)
        # what `kubectl apply --validate=false` leaves: the field dropped, the annotation keeping it
        applied = policy(
            name="p2",
            target={"group": GW, "kind": "HTTPRoute", "name": "r2"},
            traffic={"rateLimit": {"local": [{"requests": 5, "unit": "Minutes", "brust": 10}]}},
        )
        p2 = copy.deepcopy(applied)
        p2["metadata"]["annotations"] = {schema.LAST_APPLIED: json.dumps(applied)}
        await api.put_object(AGW, p2, field_validation="Warn")
        await api.put_object(GW, route("r2"))
        # a policy the proxy's compiler refuses
        await api.put_object(
            AGW,
            policy(
                name="p3",
                target={"group": GW, "kind": "HTTPRoute", "name": "r3"},
                traffic={"authorization": {"policy": {"matchExpressions": ["jwt.sub =="]}}},
            ),
        )
        await api.put_object(GW, route("r3"))
        client = await api.connect(tmp_path)
        ctl = Controller(client, image="registry.example/agentgw:test", debounce=0.05)
        task = asyncio.get_running_loop().create_task(ctl.run())

        def config():
            s = api.get("Secret", NS, "gw-agentgw-config")
            return yaml.safe_load(base64.b64decode(s["data"]["config.yaml"]))

        def route_cfg(name):
            return next(r for r in config()["binds"][0]["listeners"][0]["routes"] if r["name"] == name)

        try:
            st = await eventually(lambda: api.get("AgentgatewayPolicy", NS, "p").get("status"), what="policy status")
            a = accepted(st)
            assert (a["status"], a["reason"]) == ("False", "Invalid")
            assert (
                a["message"]
                == "spec.traffic.jwtAuthentication.providers[0].audience: unknown field (did you mean 'audiences'?)"
            )
            a2 = accepted(
                await eventually(lambda: api.get("AgentgatewayPolicy", NS, "p2").get("status"), what="p2 status")
            )
            assert (
                a2["status"] == "False"
                and "spec.traffic.rateLimit.local[0].brust: unknown field (did you mean 'burst'?) (in the last applied configuration"
                in a2["message"]
            )
            a3 = accepted(
                await eventually(lambda: api.get("AgentgatewayPolicy", NS, "p3").get("status"), what="p3 status")
            )
            assert a3["status"] == "False" and a3["message"].startswith("the proxy refuses the config made from it: ")
            for name in ("r", "r2", "r3"):
                assert route_cfg(name)["policies"] == {"directResponse": CLOSED_RESPONSE}, name
            gw = await eventually(lambda: api.get("Gateway", NS, "gw").get("status"), what="gateway status")
            assert accepted(gw)["status"] == "True"

            # the fix: accepted, and the audience is in the proxy's config
            await client.merge_patch(
                POLICIES,
                NS,
                "p",
                {
                    "spec": {
                        "traffic": {
                            "jwtAuthentication": {
                                "providers": [
                                    {
                                        "issuer": "https://idp.example.com",
                                        "audiences": ["agents"],
                                        "jwks": {"inline": JWKS},
                                    }
                                ]
                            }
                        }
                    }
                },
            )
            await eventually(
                lambda: accepted(api.get("AgentgatewayPolicy", NS, "p")["status"])["status"] == "True",
                what="fixed policy accepted",
            )
            await eventually(
                lambda: (
                    route_cfg("r")["policies"].get("jwtAuth", {}).get("providers", [{}])[0].get("audiences")
                    == ["agents"]
                ),
                what="audience in config",
            )
            assert ctl.last_error is None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
            await api.stop()

    run(main())
