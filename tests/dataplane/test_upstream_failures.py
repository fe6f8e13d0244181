"""Upstream failures turn into JSON errors (or an aborted client connection
once the response has started) -- never a traceback, never a hang."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.harness import RawHTTP, assert_gateway_error, closed_port, gateway_config, route


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("fail", nports=2)
    dead = f"127.0.0.1:{closed_port()}"
    routes = [
        route("dead", [dead], prefix="/dead"),
        # only ever sent /die: its pool never holds an idle connection (the task path)
        route("cold", [up.hosts[1]], prefix="/cold", policies={"urlRewrite": {"path": {"prefix": "/die"}}}),
        route("empty", [], prefix="/empty"),
        route("slow", [up.host], prefix="/slow", policies={"timeout": {"backendRequestTimeout": "1s"}}),
        route("all", [up.host]),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    client = httpx.Client(base_url=gw.url, timeout=15)
    yield gw, up, client
    client.close()


def test_connect_refused_is_502_json(env):
    _, _, c = env
    t0 = time.monotonic()
    r = c.get("/dead/x")
    assert_gateway_error(r.status_code, r.content, 502, "upstream_connect_failed")
    assert r.headers["content-type"].startswith("application/json")
    assert time.monotonic() - t0 < 5


def test_connection_survives_a_502(env):
    gw, _, _ = env
    with RawHTTP(gw.port) as s:
        r1 = s.request("GET", "/dead/x")
        assert r1.status == 502
        r2 = s.request("GET", "/echo/after-502")
    assert r2.status == 200 and r2.json()["path"] == "/echo/after-502"


def test_no_backends_is_503(env):
    _, _, c = env
    r = c.get("/empty/x")
    assert_gateway_error(r.status_code, r.content, 503, "no_healthy_backend")


def test_slow_upstream_is_504(env):
    _, _, c = env
    t0 = time.monotonic()
    r = c.get("/slow?delay=5")
    assert_gateway_error(r.status_code, r.content, 504, "upstream_timeout")
    assert time.monotonic() - t0 < 3


def test_upstream_reset_before_response_is_502(env):
    _, _, c = env
    r = c.get("/reset")
    assert_gateway_error(r.status_code, r.content, 502, "upstream_reset")


def test_upstream_reset_on_a_pooled_connection_is_502(env):
    """The task-free relay waits for the head by callback: a connection lost before the
    head must call it back too (it once didn't, and the client waited forever)."""
    gw, _, _ = env
    with httpx.Client(base_url=gw.url, timeout=5) as c:
        for _ in range(2):
            assert c.get("/echo/warm").status_code == 200  # leaves an idle pooled connection
            t0 = time.monotonic()
            r = c.get("/reset")
            assert_gateway_error(r.status_code, r.content, 502, "upstream_reset")
            assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "pooled"])
@pytest.mark.parametrize("chunked", ["0", "1"])
def test_upstream_dies_mid_body_aborts_client(env, chunked, warm):
    """Both relays: a pooled upstream connection sends from the parser callback and relays
    from the upstream's (no task); otherwise the request runs in a task."""
    gw, _, c = env
    if warm:
        assert c.get("/echo/warm").status_code == 200  # leaves an idle pooled connection
    path = "/die" if warm else "/cold"
    with RawHTTP(gw.port, timeout=10) as s:
        r = s.request("GET", f"{path}?chunked={chunked}")
        assert r.status == 200, "headers were already sent: the status must be the upstream's"
        assert not r.complete, "the client must see an incomplete body, not a clean end"
        assert len(r.body) < 100_000
        assert s.eof  # connection closed by the gateway


def test_upstream_dies_mid_body_httpx_raises(env):
    _, _, c = env
    with pytest.raises(httpx.HTTPError):
        c.get("/die")


def test_gateway_still_serves_after_failures(env):
    _, _, c = env
    for _ in range(3):
        c.get("/dead/x")
        c.get("/reset")
    r = c.get("/echo/healthy")
    assert r.status_code == 200 and r.json()["path"] == "/echo/healthy"
