"""Top-level ``policies[]`` (targeted policies), through a real gateway: each applies to
exactly what it names, with agentgateway's precedence; what names nothing is refused."""

from __future__ import annotations

import httpx
import pytest

from agentgw.compile import _NothingServed, compile_config
from agentgw.config import ConfigError, load_config_text
from tests.support.harness import echo_header, gateway_config, route


def _hm(name: str, value: str) -> dict:
    return {"set": {name: value}}


def _route_target(name: str) -> dict:
    return {"route": {"name": name, "namespace": "default"}}


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("targeted")
    routes = [
        route("a", [up.host], prefix="/a", policies={"requestHeaderModifier": _hm("x-inline", "a")}),
        route("b", [up.host], prefix="/b"),
        route("c", [{"backend": "nb"}], prefix="/c"),
    ]
    cfg = gateway_config(routes, backends=[{"name": "nb", "host": up.host}])
    cfg["policies"] = [
        {"name": {"name": "p-b", "namespace": "default"}, "target": _route_target("b"),
         "policy": {"requestHeaderModifier": _hm("x-t", "route-b")}},
        # the route's inline requestHeaderModifier wins over a targeted one
        {"name": {"name": "p-a", "namespace": "default"}, "target": _route_target("a"),
         "policy": {"requestHeaderModifier": _hm("x-t", "route-a")}},
        # a listener-targeted route-phase policy wins over a whole-gateway one
        {"name": {"name": "p-gw", "namespace": "default"},
         "target": {"gateway": {"gatewayName": "default", "gatewayNamespace": "default"}},
         "policy": {"responseHeaderModifier": _hm("x-gw", "gateway")}},
        {"name": {"name": "p-l", "namespace": "default"},
         "target": {"gateway": {"gatewayName": "default", "gatewayNamespace": "default", "listenerName": "main"}},
         "policy": {"responseHeaderModifier": _hm("x-gw", "listener")}},
        {"name": {"name": "p-be", "namespace": "default"},
         "target": {"backend": {"backend": {"name": "nb", "namespace": ""}}},
         "policy": {"backendAuth": {"key": "nb-secret"}}},
    ]
    gw = module_harness.gateway(cfg)
    client = httpx.Client(base_url=gw.url, timeout=10)
    yield client
    client.close()


def test_route_target_applies_to_exactly_that_route(env):
    assert echo_header(env.get("/b/x").json(), "x-t") == ["route-b"]
    assert echo_header(env.get("/c/x").json(), "x-t") == []


def test_inline_policy_wins_over_targeted(env):
    echo = env.get("/a/x").json()
    assert echo_header(echo, "x-inline") == ["a"]
    assert echo_header(echo, "x-t") == []


def test_gateway_target_applies_to_every_route_of_the_listener(env):
    for p in ("/a/x", "/b/x", "/c/x"):
        r = env.get(p)
        assert r.status_code == 200
        assert r.headers.get_list("x-gw") == ["listener"], p


def test_backend_target_applies_to_the_backend(env):
    assert echo_header(env.get("/c/x").json(), "authorization") == ["Bearer nb-secret"]
    assert echo_header(env.get("/b/x").json(), "authorization") == []


BASE = """
binds:
- port: 18555
  listeners:
  - name: main
    routes:
    - name: r1
      backends: [{host: 127.0.0.1:9}]
backends:
- name: nb
  host: 127.0.0.1:9
policies:
"""


def _errors(policies: str) -> str:
    cfg = load_config_text(BASE + policies, source="t.yaml")
    with pytest.raises(ConfigError) as ei:
        compile_config(cfg, _NothingServed())
    return str(ei.value)


@pytest.mark.parametrize(
    "target,where",
    [
        ("{route: {name: nope, namespace: default}}", "there is no route default/nope"),
        ("{route: {name: r1, namespace: other}}", "there is no route other/r1"),
        ("{route: {name: r1, namespace: default, ruleName: x}}", "ruleName"),
        ("{gateway: {gatewayName: gw, gatewayNamespace: default}}", "standalone gateway is default/default"),
        ("{gateway: {gatewayName: default, gatewayNamespace: default, listenerName: x}}", "no listener"),
        ("{backend: {backend: {name: nope, namespace: ''}}}", "no backend 'nope'"),
        ("{backend: {service: {hostname: a.b, namespace: default}}}", "service targets are not supported"),
        ("{listenerSet: {name: a, namespace: default}}", "listenerSet targets are not supported"),
    ],
)
def test_target_naming_nothing_is_refused(target, where):
    err = _errors(f"- name: {{name: p, namespace: default}}\n  target: {target}\n  policy: {{cors: {{}}}}\n")
    assert "policies[0]" in err and where in err


def test_gateway_phase_on_route_is_refused():
    err = _errors(
        "- name: {name: p, namespace: default}\n  phase: gateway\n"
        "  target: {route: {name: r1, namespace: default}}\n  policy: {cors: {}}\n"
    )
    assert "policies[0].phase" in err


def test_two_targeted_policies_of_one_kind_are_refused():
    one = "- name: {{name: p{0}, namespace: default}}\n  target: {{route: {{name: r1, namespace: default}}}}\n"
    one += "  policy: {{requestHeaderModifier: {{set: {{x: '{0}'}}}}}}\n"
    err = _errors(one.format(1) + one.format(2))
    assert "policies[1].policy.requestHeaderModifier" in err


def test_targeted_policy_compiles_when_it_names_something():
    cfg = load_config_text(
        BASE + "- name: {name: p, namespace: default}\n  target: {route: {name: r1, namespace: default}}\n"
        "  policy: {requestHeaderModifier: {set: {x: y}}}\n",
        source="t.yaml",
    )
    compile_config(cfg, _NothingServed())
    assert cfg.binds[0].listeners[0].routes[0].policies is None  # the loaded config is not changed
