"""Route matching: every match type and the precedence rules.

Each route points at its own upstream port, so ``x-upstream-port`` tells which
route served a request.  Routes are listed in the config in an order that is
deliberately the *opposite* of their precedence where file order must not win.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.harness import RawHTTP, assert_gateway_error, build_request, gateway_config, route

ROUTE_NAMES = [
    "regex",  # 0
    "prefix-short",  # 1
    "prefix-long",  # 2
    "exact",  # 3
    "method-post",  # 4
    "method-any",  # 5
    "hdr-two",  # 6
    "hdr-one",  # 7
    "hdr-none",  # 8
    "query-debug",  # 9
    "query-none",  # 10
    "host-exact",  # 11
    "host-wild",  # 12
    "tie-first",  # 13
    "tie-second",  # 14
]


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("routing", nports=len(ROUTE_NAMES))
    h = dict(zip(ROUTE_NAMES, up.hosts))
    routes = [
        route("regex", [h["regex"]], regex="^/v[0-9]+/.*"),
        route("prefix-short", [h["prefix-short"]], prefix="/api"),
        route("prefix-long", [h["prefix-long"]], prefix="/api/v2"),
        route("exact", [h["exact"]], exact="/api/v2/exact"),
        # method: the route without a method comes first in the file
        route("method-any", [h["method-any"]], prefix="/m"),
        route("method-post", [h["method-post"]], prefix="/m", method="POST"),
        # headers: fewer header matches first in the file
        route("hdr-none", [h["hdr-none"]], prefix="/h"),
        route("hdr-one", [h["hdr-one"]], prefix="/h", headers={"x-env": "prod"}),
        route(
            "hdr-two",
            [h["hdr-two"]],
            prefix="/h",
            headers={"x-env": "prod", "x-tier": {"regex": "^gold.*"}},
        ),
        # query: the route without a query match first
        route("query-none", [h["query-none"]], prefix="/q"),
        route("query-debug", [h["query-debug"]], prefix="/q", query={"debug": "1"}),
        # hostnames: wildcard first in the file
        route("host-wild", [h["host-wild"]], prefix="/", hostnames=["*.example.com"]),
        route("host-exact", [h["host-exact"]], prefix="/", hostnames=["a.example.com"]),
        # identical matches: file order decides
        route("tie-first", [h["tie-first"]], prefix="/tie"),
        route("tie-second", [h["tie-second"]], prefix="/tie"),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    port_to_route = {p: n for n, p in zip(ROUTE_NAMES, up.ports)}
    client = httpx.Client(base_url=gw.url, timeout=10)
    yield gw, port_to_route, client
    client.close()


def served_by(env, method, path, headers=None):
    gw, port_to_route, client = env
    r = client.request(method, path, headers=headers or {})
    if r.status_code == 404 and "x-upstream-port" not in r.headers:
        assert_gateway_error(r.status_code, r.content, 404, "route_not_found")
        return None
    assert r.status_code == 200, (r.status_code, r.text)
    return port_to_route[int(r.headers["x-upstream-port"])]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/api/v2/exact", "exact"),
        ("/api/v2/exact?z=1", "exact"),
        ("/api/v2/exact/", "prefix-long"),
        ("/api/v2/exactly", "prefix-long"),
        ("/api/v2", "prefix-long"),
        ("/api/v2/x/y", "prefix-long"),
        ("/api/v3", "prefix-short"),
        ("/api", "prefix-short"),
        ("/api/", "prefix-short"),
        ("/v1/foo", "regex"),
        ("/v42/a/b", "regex"),
    ],
)
def test_path_match_types_and_precedence(env, path, expected):
    assert served_by(env, "GET", path) == expected


@pytest.mark.parametrize("path", ["/", "/nothing", "/v/foo", "/vx/foo", "/ap"])
def test_no_route_is_404_json(env, path):
    assert served_by(env, "GET", path) is None


def test_prefix_matches_whole_path_segments(env):
    # Gateway API semantics: pathPrefix /api does not match /apix
    assert served_by(env, "GET", "/apix") is None


def test_regex_is_applied_to_the_path_not_the_query(env):
    assert served_by(env, "GET", "/x?/v1/y") is None


def test_method_match_beats_file_order(env):
    assert served_by(env, "POST", "/m/x") == "method-post"
    assert served_by(env, "GET", "/m/x") == "method-any"
    assert served_by(env, "PUT", "/m") == "method-any"


def test_more_header_matches_win(env):
    assert served_by(env, "GET", "/h", {"x-env": "prod", "x-tier": "gold-plus"}) == "hdr-two"
    assert served_by(env, "GET", "/h", {"X-Env": "prod", "x-tier": "silver"}) == "hdr-one"
    assert served_by(env, "GET", "/h", {"x-env": "prod"}) == "hdr-one"
    assert served_by(env, "GET", "/h", {"x-env": "PROD"}) == "hdr-none"
    assert served_by(env, "GET", "/h") == "hdr-none"


def test_query_match(env):
    assert served_by(env, "GET", "/q?debug=1") == "query-debug"
    assert served_by(env, "GET", "/q?x=2&debug=1") == "query-debug"
    assert served_by(env, "GET", "/q?debug=2") == "query-none"
    assert served_by(env, "GET", "/q") == "query-none"


def test_hostname_precedence(env):
    # exact hostname beats wildcard, and any hostname beats routes without one
    assert served_by(env, "GET", "/api/v2/exact", {"host": "a.example.com"}) == "host-exact"
    assert served_by(env, "GET", "/x", {"host": "a.example.com:8080"}) == "host-exact"
    assert served_by(env, "GET", "/api", {"host": "b.example.com"}) == "host-wild"
    assert served_by(env, "GET", "/x", {"host": "deep.b.example.com"}) == "host-wild"
    assert served_by(env, "GET", "/api", {"host": "c.other.org"}) == "prefix-short"
    # *.example.com does not match the bare domain
    assert served_by(env, "GET", "/nothing", {"host": "example.com"}) is None


def test_hostname_match_is_case_insensitive(env):
    assert served_by(env, "GET", "/x", {"host": "A.Example.COM"}) == "host-exact"


def test_file_order_breaks_ties(env):
    for _ in range(3):
        assert served_by(env, "GET", "/tie/x") == "tie-first"


def test_route_not_found_for_every_method(env):
    gw, _, client = env
    for method in ("GET", "POST", "DELETE", "OPTIONS"):
        r = client.request(method, "/definitely/not/routed")
        assert_gateway_error(r.status_code, r.content, 404, "route_not_found")


@pytest.mark.parametrize("value", ["prod ", "prod\t", "prod \t ", "  prod"])
def test_header_match_ignores_whitespace_around_the_value(env, value):
    """Optional whitespace around a field value is not part of it (RFC 9110 §5.5): the
    exact match ``x-env: prod`` holds however the client pads it. (The echo upstream
    trims values itself, so this is seen by the gateway's own matching.)"""
    gw, port_to_route, _ = env
    with RawHTTP(gw.port) as s:
        s.send(build_request("GET", "/h/x", [("X-Other", "a "), ("X-Env", value), ("Accept", "*/*")]))
        r = s.read_response()
    assert r.status == 200, r.body
    assert port_to_route[int(r.header("x-upstream-port"))] == "hdr-one"
