"""Limits with defaults, through a real gateway: a request body that stops arriving,
too many header fields, HTTP versions and request-target forms the listener does not
serve."""

from __future__ import annotations

import os
import time

import pytest

from tests.support.harness import RawHTTP, build_request, echo_headers, gateway_config, route, wait_for


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("up")
    cfg = gateway_config(
        [route("all", [up.host])],
        limits={"requestBodyTimeout": "1s", "headerReadTimeout": "2s"},
    )
    cfg["frontendPolicies"] = {"http": {"http1MaxHeaders": 20}}
    gw = module_harness.gateway(cfg)
    return gw, up


def test_a_body_that_stops_arriving_gets_408_and_frees_both_sockets(env):
    gw, _ = env
    pid = gw.proc.pid
    time.sleep(0.2)
    baseline = fd_count(pid)
    clients = []
    for _ in range(10):  # more than the small-body wait: streamed to the upstream
        c = RawHTTP(gw.port, timeout=10)
        c.send(build_request("POST", "/echo/slow", {"Content-Length": "1000000"}, body=b"x" * 200_000))
        clients.append(c)
    time.sleep(0.3)
    assert fd_count(pid) > baseline  # client and upstream sockets are open
    start = time.monotonic()
    for c in clients:
        r = c.read_response("POST")  # the upstream waits for the whole body: nothing sent yet
        assert r.status == 408 and r.json()["error"]["type"] == "request_body_timeout"
        assert c.closed_by_peer(timeout=5)
        c.close()
    assert time.monotonic() - start < 6  # 1 s timeout, swept once a second
    wait_for(lambda: fd_count(pid) <= baseline, timeout=5, message=f"gateway fds back to {baseline}")


def test_a_small_body_that_never_comes_gets_408(env):
    gw, _ = env
    with RawHTTP(gw.port, timeout=10) as c:
        c.send(build_request("POST", "/echo/x", {"Content-Length": "10"}))
        r = c.read_response("POST")
        assert r.status == 408 and r.json()["error"]["type"] == "request_body_timeout"


def test_a_chunked_body_that_pauses_within_the_timeout_is_served(env):
    gw, _ = env
    with RawHTTP(gw.port, timeout=10) as c:
        c.send(b"POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            c.send(b"3\r\nabc\r\n")
            time.sleep(0.4)  # each pause under the 1 s timeout
        c.send(b"0\r\n\r\n")
        r = c.read_response("POST")
        assert r.status == 200 and r.json()["body_len"] == 12


def test_header_count_limit(env):
    gw, _ = env
    with RawHTTP(gw.port, timeout=5) as c:
        r = c.request("GET", "/echo/x", [(f"x-h{i}", "v") for i in range(19)])  # + Host = 20
        assert r.status == 200
    with RawHTTP(gw.port, timeout=5) as c:
        r = c.request("GET", "/echo/x", [(f"x-h{i}", "v") for i in range(20)])
        assert r.status == 431 and r.json()["error"]["type"] == "too_many_headers"
        assert c.closed_by_peer()


def test_default_header_count_limit_is_100(harness):
    up = harness.upstream("up")
    gw = harness.gateway(gateway_config([route("all", [up.host])]))
    with RawHTTP(gw.port, timeout=5) as c:
        assert c.request("GET", "/echo/x", [(f"x-h{i}", "v") for i in range(99)]).status == 200
    with RawHTTP(gw.port, timeout=5) as c:
        assert c.request("GET", "/echo/x", [(f"x-h{i}", "v") for i in range(100)]).status == 431


@pytest.mark.parametrize(
    "head,status,kind",
    [
        (b"GET /x HTTP/2.0\r\nHost: a\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /x HTTP/0.9\r\nHost: a\r\n\r\n", 505, "http_version_not_supported"),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, "method_not_allowed"),
        (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request"),
    ],
)
def test_versions_and_target_forms_not_served(env, head, status, kind):
    gw, up = env
    with RawHTTP(gw.port, timeout=5) as c:
        c.send(head + b"GET /echo/after HTTP/1.1\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert (r.status, r.json()["error"]["type"]) == (status, kind)
        assert c.closed_by_peer()  # nothing after it is read as another request


def test_header_names_with_underscores(harness):
    """Dropped by default (a CGI-style upstream would read ``x_user`` as ``x-user``),
    refused or passed on when the config says so."""
    up = harness.upstream("up")
    headers = [("X-User", "alice"), ("X_User", "admin"), ("x_role", "root")]
    gw = harness.gateway(gateway_config([route("all", [up.host])]))
    with RawHTTP(gw.port, timeout=5) as c:
        r = c.request("GET", "/echo/x", headers)
        assert r.status == 200
        got = [(k, v) for k, v in echo_headers(r.json()) if k in ("x-user", "x_user", "x_role")]
        assert got == [("x-user", "alice")]
    for mode, status in (("reject", 400), ("allow", 200)):
        cfg = gateway_config([route("all", [up.host])])
        cfg["frontendPolicies"] = {"http": {"headersWithUnderscores": mode}}
        gw = harness.gateway(cfg)
        with RawHTTP(gw.port, timeout=5) as c:
            r = c.request("GET", "/echo/x", headers)
            assert r.status == status, (mode, r.body)
            if mode == "reject":
                assert r.json()["error"]["type"] == "invalid_header"
            else:
                got = [k for k, _ in echo_headers(r.json())]
                assert "x_user" in got and "x_role" in got


def test_a_repeated_field_a_route_matches_on_is_refused(harness):
    """``?tier=free&tier=pro``: the gateway would take the first, PHP the last, Express
    both: which route's policies apply must not depend on the reader."""
    up = harness.upstream("up")
    deny = {"directResponse": {"body": "login required", "status": 401}}
    routes = [
        route("free-tier", [up.host], query={"tier": "free"}),
        route("partner", [up.host], headers={"x-partner": "acme"}),
        route("rest", [], policies=deny),
    ]
    gw = harness.gateway(gateway_config(routes))
    with RawHTTP(gw.port, timeout=5) as c:
        assert c.request("GET", "/echo/a?tier=free").status == 200
        assert c.request("GET", "/echo/a?tier=pro").status == 401
        assert c.request("GET", "/echo/a", [("x-partner", "acme")]).status == 200
        # repeated fields that no route matches on are fine
        assert c.request("GET", "/echo/a?tier=free&x=1&x=2", [("accept", "a"), ("accept", "b")]).status == 200
    for target, headers in (
        ("/echo/a?tier=free&tier=pro", []),
        ("/echo/a?tier=pro&tier=free", []),
        ("/echo/a", [("x-partner", "acme"), ("x-partner", "evil")]),
    ):
        with RawHTTP(gw.port, timeout=5) as c:
            r = c.request("GET", target, headers)
            assert (r.status, r.json()["error"]["type"]) == (400, "ambiguous_request"), (target, r.body)
