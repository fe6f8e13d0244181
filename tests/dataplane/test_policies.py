"""Route policies that transform requests/responses or answer on their own:
header modifiers, urlRewrite, requestRedirect, directResponse and CORS."""

from __future__ import annotations

import httpx
import pytest

from tests.support.harness import echo_header, gateway_config, route

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("policies")
    b = [up.host]
    routes = [
        route(
            "hm",
            b,
            prefix="/hm",
            policies={
                "requestHeaderModifier": {
                    "add": {"x-a": "1"},
                    "set": {"x-b": "2"},
                    "remove": ["x-c"],
                },
                "responseHeaderModifier": {
                    "add": {"x-ra": "added"},
                    "set": {"x-rs": "set-by-gw"},
                    "remove": ["x-rr"],
                },
            },
        ),
        route("rw-prefix", b, prefix="/old", policies={"urlRewrite": {"path": {"prefix": "/new"}}}),
        route("rw-full", b, prefix="/full", policies={"urlRewrite": {"path": {"full": "/exact"}}}),
        route(
            "rw-auth",
            b,
            prefix="/auth",
            policies={"urlRewrite": {"authority": {"full": "backend.internal"}}},
        ),
        route(
            "redirect",
            b,
            prefix="/redirect",
            policies={
                "requestRedirect": {
                    "scheme": "https",
                    "authority": {"host": "example.org"},
                    "path": {"full": "/moved"},
                    "status": 301,
                }
            },
        ),
        route("direct", [], prefix="/direct", policies={"directResponse": {"body": "hello", "status": 200}}),
        route(
            "direct-teapot",
            [],
            prefix="/teapot",
            policies={"directResponse": {"body": "short and stout", "status": 418}},
        ),
        route(
            "cors",
            b,
            prefix="/cors",
            policies={
                "cors": {
                    "allowOrigins": [ORIGIN],
                    "allowMethods": ["GET", "POST"],
                    "allowHeaders": ["x-custom"],
                    "exposeHeaders": ["x-exp"],
                    "maxAge": "600s",
                    "allowCredentials": True,
                }
            },
        ),
        route("plain", b, prefix="/"),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    client = httpx.Client(base_url=gw.url, timeout=10, follow_redirects=False)
    yield gw, up, client
    client.close()


# -- header modifiers ----------------------------------------------------------
def test_request_header_modifier(env):
    _, _, c = env
    r = c.get("/hm/x", headers=[("x-a", "0"), ("x-b", "old"), ("x-b", "older"), ("x-c", "gone"), ("x-keep", "k")])
    assert r.status_code == 200
    echo = r.json()
    assert sorted(echo_header(echo, "x-a")) == ["0", "1"]  # add appends
    assert echo_header(echo, "x-b") == ["2"]  # set replaces every value
    assert echo_header(echo, "x-c") == []  # removed
    assert echo_header(echo, "x-keep") == ["k"]


def test_request_header_modifier_without_client_headers(env):
    _, _, c = env
    echo = c.get("/hm/y").json()
    assert echo_header(echo, "x-a") == ["1"]
    assert echo_header(echo, "x-b") == ["2"]


def test_response_header_modifier(env):
    _, _, c = env
    r = c.get("/hm/z?header=x-rr:secret&header=x-rs:from-upstream&header=x-ra:up")
    assert r.status_code == 200
    assert "x-rr" not in r.headers
    assert r.headers.get_list("x-rs") == ["set-by-gw"]
    assert sorted(r.headers.get_list("x-ra")) == ["added", "up"]
    assert r.headers["x-upstream-name"] == "policies"


def test_header_modifier_applies_only_to_its_route(env):
    _, _, c = env
    r = c.get("/other", headers={"x-c": "stays"})
    echo = r.json()
    assert echo_header(echo, "x-c") == ["stays"]
    assert echo_header(echo, "x-a") == []
    assert "x-ra" not in r.headers


# -- urlRewrite ----------------------------------------------------------------
def test_url_rewrite_prefix_keeps_rest_and_query(env):
    _, _, c = env
    echo = c.get("/old/a/b?q=1&r=2").json()
    assert echo["path"] == "/new/a/b"
    assert echo["query"] == "q=1&r=2"


def test_url_rewrite_prefix_exact_prefix(env):
    _, _, c = env
    assert c.get("/old").json()["path"] in ("/new", "/new/")


def test_url_rewrite_full_path(env):
    _, _, c = env
    for p in ("/full", "/full/a/b/c"):
        echo = c.get(p).json()
        assert echo["path"] == "/exact", (p, echo["path"])


def test_url_rewrite_authority(env):
    _, _, c = env
    echo = c.get("/auth/x").json()
    assert echo_header(echo, "host") == ["backend.internal"]
    assert echo["path"] == "/auth/x"


def test_host_is_forwarded_without_rewrite(env):
    gw, _, c = env
    echo = c.get("/plain", headers={"host": "client.example"}).json()
    assert echo_header(echo, "host") == ["client.example"]


# -- redirect / direct response ------------------------------------------------
def test_request_redirect(env):
    _, up, c = env
    before = up.count("/redirect/x")
    r = c.get("/redirect/x?a=1")
    assert r.status_code == 301
    loc = r.headers["location"]
    assert loc.startswith("https://example.org/moved"), loc
    assert up.count("/redirect/x") == before  # never proxied


def test_direct_response(env):
    _, up, c = env
    for method in ("GET", "POST"):
        r = c.request(method, "/direct/anything", content=b"ignored" if method == "POST" else None)
        assert r.status_code == 200
        assert r.text == "hello"
        assert "x-upstream-name" not in r.headers
    r = c.get("/teapot")
    assert r.status_code == 418 and r.text == "short and stout"


# -- CORS ----------------------------------------------------------------------
def test_cors_preflight(env):
    _, up, c = env
    before = up.count("/cors/x")
    r = c.options(
        "/cors/x",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-custom",
        },
    )
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] == ORIGIN
    methods = {m.strip().upper() for m in r.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST"} <= methods
    assert "x-custom" in r.headers["access-control-allow-headers"].lower()
    assert r.headers["access-control-max-age"] == "600"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert up.count("/cors/x") == before  # the gateway answered the preflight


def test_cors_simple_request(env):
    _, _, c = env
    r = c.get("/cors/x", headers={"Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "x-exp" in r.headers["access-control-expose-headers"].lower()
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.json()["path"] == "/cors/x"


def test_cors_disallowed_origin_gets_no_allow_header(env):
    _, _, c = env
    r = c.get("/cors/x", headers={"Origin": "https://evil.example.net"})
    assert "access-control-allow-origin" not in r.headers
    pre = c.options(
        "/cors/x",
        headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers
