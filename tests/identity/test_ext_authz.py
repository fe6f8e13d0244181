"""extAuthz against a real gRPC server implementing envoy.service.auth.v3 Check, and an
HTTP authorizer; failure modes when the authorizer is down or slow."""

from __future__ import annotations

import httpx
import pytest

from tests.support.harness import closed_port, gateway_config, route

from .support import GrpcAuthzServer, HttpAuthzServer, echo_headers


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("extauthz")
    grpc_srv = GrpcAuthzServer()
    http_srv = HttpAuthzServer()
    dead = f"127.0.0.1:{closed_port()}"
    routes = [
        route(
            "grpc",
            [up.host],
            prefix="/grpc",
            policies={"extAuthz": {"host": grpc_srv.host, "protocol": {"grpc": {"context": {"route": "grpc"}}}}},
        ),
        route(
            "http",
            [up.host],
            prefix="/http",
            policies={
                "extAuthz": {
                    "host": http_srv.host,
                    "protocol": {"http": {"path": "/authz", "addRequestHeaders": {"x-gw": "agentgw"}}},
                    "includeRequestHeaders": ["x-user"],
                    "timeout": "500ms",
                }
            },
        ),
        route(
            "http-default",
            [up.host],
            prefix="/default",
            policies={"extAuthz": {"host": http_srv.host, "protocol": {"http": {}}}},
        ),
        route(
            "http-inc",
            [up.host],
            prefix="/inc",
            policies={
                "extAuthz": {
                    "host": http_srv.host,
                    "protocol": {"http": {"includeResponseHeaders": ["x-authz-user"]}},
                    "includeRequestHeaders": ["x-user"],
                }
            },
        ),
        route("dead-deny", [up.host], prefix="/dead-deny", policies={"extAuthz": {"host": dead, "timeout": "300ms"}}),
        route(
            "dead-allow",
            [up.host],
            prefix="/dead-allow",
            policies={"extAuthz": {"host": dead, "failureMode": "allow", "protocol": {"http": {}}}},
        ),
        route(
            "dead-status",
            [up.host],
            prefix="/dead-status",
            policies={"extAuthz": {"host": dead, "failureMode": {"denyWithStatus": 503}, "protocol": {"grpc": {}}}},
        ),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    c = httpx.Client(base_url=gw.url, timeout=10)
    yield {"c": c, "grpc": grpc_srv, "http": http_srv}
    c.close()
    grpc_srv.close()
    http_srv.close()


def test_grpc_allow_adds_and_removes_headers(env):
    c, srv = env["c"], env["grpc"]
    r = c.get("/grpc/tools?q=1", headers={"x-user": "alice", "x-other": "kept"})
    assert r.status_code == 200, r.text
    h = echo_headers(r)
    assert h["x-authz-user"] == ["alice"]
    assert "x-user" not in h and h["x-other"] == ["kept"]
    assert r.headers["x-authz-checked"] == "yes"
    req = srv.requests[-1]
    http = req.attributes.request.http
    assert (http.method, http.path, http.query) == ("GET", "/grpc/tools?q=1", "q=1")
    assert http.headers["x-user"] == "alice"
    assert req.attributes.source.address.socket_address.address == "127.0.0.1"
    assert req.attributes.context_extensions["route"] == "grpc"


def test_grpc_deny_passes_authorizer_answer(env):
    c = env["c"]
    r = c.post("/grpc/tools", headers={"x-user": "bob", "x-authz-user": "alice"})
    assert r.status_code == 403
    assert r.json() == {"denied": "grpc policy"}
    assert r.headers["x-authz-reason"] == "not alice"


def test_http_mode(env):
    c, srv = env["c"], env["http"]
    r = c.get("/http/x?y=1", headers={"x-user": "alice"})
    assert r.status_code == 200, r.text
    h = echo_headers(r)
    assert h["x-authz-user"] == ["alice"] and h["x-authz-tier"] == ["gold"]
    assert "content-type" not in h or h["content-type"] != ["text/plain"]
    sent = srv.requests[-1]
    assert sent["path"] == "/authz/http/x?y=1" and sent["headers"]["x-gw"] == "agentgw"
    assert sent["headers"]["x-user"] == "alice"
    r = c.get("/http/x", headers={"x-user": "bob"})
    assert r.status_code == 403 and r.json() == {"denied": "by policy"}
    # includeRequestHeaders / includeResponseHeaders
    r = c.get("/inc/x", headers={"x-user": "alice", "cookie": "s=1"})
    assert r.status_code == 200
    assert echo_headers(r)["x-authz-user"] == ["alice"] and "x-authz-tier" not in echo_headers(r)
    assert "cookie" not in srv.requests[-1]["headers"]


def test_http_check_carries_only_authorization_by_default(env):
    """Without includeRequestHeaders an HTTP check sends the client's Authorization and
    nothing else of its headers (agentgateway's default): cookies and the rest stay."""
    c, srv = env["c"], env["http"]
    c.get("/default/x", headers={"authorization": "Bearer t", "cookie": "s=1", "x-user": "alice"})
    sent = srv.requests[-1]["headers"]
    assert sent["authorization"] == "Bearer t"
    assert "cookie" not in sent and "x-user" not in sent


def test_failure_modes(env):
    c = env["c"]
    r = c.get("/dead-deny/x")
    assert r.status_code == 403 and r.json()["error"]["type"] == "ext_authz_error"
    assert c.get("/dead-allow/x").status_code == 200
    assert c.get("/dead-status/x").status_code == 503
    # a slow authorizer times out (500ms) and fails closed
    r = c.get("/http/slow", headers={"x-user": "alice"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "ext_authz_error"
