"""agentgateway's traffic-http example, run as its README says, against a real agentgw.

README steps: start the gateway on ``examples/traffic-http/config.yaml``, an upstream on
8080 (``python3 -m http.server 8080``), then ``curl '127.0.0.1:3000/match?param=hello' -H
'x-header: test-0'``; ``/direct`` and ``/ips`` answer directly without an upstream. The
routes "demonstrate matching, policy application, direct responses, and authorization
rules", so each route is exercised as its config (and the comments in it) describes.

Changed from the vendored config, and why:

* ``binds[0].port`` 3000 -> a free port (3000 may be taken here);
* every ``backends[].host`` ``127.0.0.1:8080`` -> the test's echo upstream (stand-in for
  ``python3 -m http.server 8080``: it reports what it received, which the policy checks
  need); the mirror backend ``127.0.0.1:8081`` -> a second echo upstream;
* ``config`` gets admin/stats/readiness addresses on free ports (the defaults are fixed
  ports, and the harness waits on readiness).

Everything else (matches, CORS, header modifiers, rewrite, rate limit, mirror, retry,
timeout, direct responses, the CIDR authorization rule) is as written.

Each test starts its own gateway: the policy route's 10-token bucket is shared by all its
requests, so tests sharing one gateway would depend on their order.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.harness import echo_header, free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-http" / "config.yaml"


def _config(web: str, mirror: str) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    assert cfg["binds"][0]["port"] == 3000
    cfg["binds"][0]["port"] = free_port()
    for r in cfg["binds"][0]["listeners"][0]["routes"]:
        for b in r.get("backends", []):
            assert b["host"] == "127.0.0.1:8080"
            b["host"] = web
        m = (r.get("policies") or {}).get("requestMirror")
        if m:
            assert m["backend"]["host"] == "127.0.0.1:8081"
            m["backend"]["host"] = mirror
    cfg.setdefault("config", {}).update(
        {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    )
    return cfg


@pytest.fixture
def env(harness):
    web = harness.upstream("web")
    mirror = harness.upstream("mirror")
    gw = harness.gateway(_config(web.host, mirror.host))
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        yield gw, web, mirror, client


def test_matched_route_reaches_the_upstream(env):
    """``curl '127.0.0.1:3000/match?param=hello' -H 'x-header: test-0'``: match-example
    (GET, path prefix, exact query, header regex) forwards the request as it is."""
    _, _web, _, c = env
    r = c.get("/match?param=hello", headers={"x-header": "test-0"})
    assert r.status_code == 200, r.text
    assert r.headers["x-upstream-name"] == "web"
    echo = r.json()
    assert (echo["method"], echo["path"], echo["query"]) == ("GET", "/match", "param=hello")
    assert echo_header(echo, "x-header") == ["test-0"]
    assert echo_header(echo, "x-req-added") == []  # the policy route's modifier did not run
    assert "x-req-added" not in r.headers
    # any digit matches the regex
    assert c.get("/match?param=hello", headers={"x-header": "test-7"}).json()["path"] == "/match"


def test_a_request_the_match_rejects_falls_to_the_policy_route(env):
    """A miss on any of match-example's conditions falls through to policy-example (no
    match: every path), whose urlRewrite sends it to ``/new-path`` on ``custom-host-header``."""
    _, _, _, c = env
    for path, headers, method in (
        ("/match?param=hello", {"x-header": "test-x"}, "GET"),  # header regex misses
        ("/match?param=bye", {"x-header": "test-0"}, "GET"),  # query value misses
        ("/match?param=hello", {"x-header": "test-0"}, "POST"),  # method misses
    ):
        r = c.request(method, path, headers=headers)
        assert r.status_code == 200, (path, headers, method, r.text)
        assert r.json()["path"] == "/new-path", (path, headers, method)


def test_policy_route_rewrites_and_modifies_headers(env):
    _, _, _, c = env
    r = c.get("/anything/else?q=1", headers={"x-illegal-header": "secret", "origin": "https://app.example"})
    assert r.status_code == 200, r.text
    echo = r.json()
    # urlRewrite: full path and authority
    assert echo["path"] == "/new-path" and echo["query"] == "q=1"
    assert echo_header(echo, "host") == ["custom-host-header"]
    # requestHeaderModifier: add x-req-added, remove x-illegal-header
    assert echo_header(echo, "x-req-added") == ["value"]
    assert echo_header(echo, "x-illegal-header") == []
    # responseHeaderModifier: set x-req-added on the response
    assert r.headers["x-req-added"] == "value"
    # CORS on an actual request: any origin, credentials allowed, header2 exposed
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["access-control-expose-headers"] == "header2"


def test_cors_preflight_is_answered_by_the_gateway(env):
    _, web, _, c = env
    r = c.options(
        "/anything",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "header",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.headers["access-control-allow-methods"] == "GET"
    assert r.headers["access-control-allow-headers"] == "header"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["access-control-max-age"] == "100"
    assert web.counts() == {}  # a preflight never reaches the upstream


def test_policy_route_allows_ten_requests_then_one_per_second(env):
    """localRateLimit ``maxTokens: 10, tokensPerFill: 1, fillInterval: 1s``: a burst of 10
    passes, then 429 until the next token (at most one more per elapsed second)."""
    _, _, _, c = env
    t0 = time.monotonic()
    statuses = []
    while 429 not in statuses and len(statuses) < 60:
        statuses.append(c.get("/limited").status_code)
    elapsed = time.monotonic() - t0
    ok = statuses.count(200)
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {200}, statuses
    assert 10 <= ok <= 10 + int(elapsed) + 1, (ok, elapsed)
    r = c.get("/limited")
    if r.status_code == 429:  # (a token may have come back meanwhile on a slow machine)
        assert r.headers.get("x-ratelimit-remaining") == "0"
    # a token is back after the fill interval
    time.sleep(1.1)
    assert c.get("/limited").status_code == 200


def test_policy_route_mirrors_about_half_the_requests(env):
    """requestMirror ``percentage: .5`` to 127.0.0.1:8081: some requests are copied to the
    mirror (as rewritten), others are not; every one is answered by the main backend."""
    _, web, mirror, c = env

    def mirrored() -> set[str]:
        return {p.partition("?")[2] for _, p in mirror.request_log()}

    sent: list[str] = []
    deadline = time.monotonic() + 20
    while True:  # 10 requests (the burst), then more until both outcomes were seen
        r = c.get(f"/m?i={len(sent)}")
        if r.status_code == 429:  # wait for the next token
            time.sleep(0.5)
        else:
            assert r.status_code == 200 and r.headers["x-upstream-name"] == "web"
            sent.append(f"i={len(sent)}")
        if len(sent) >= 10:
            time.sleep(0.3)  # mirrors are sent in the background
            if mirrored() and set(sent) - mirrored():
                break
        assert time.monotonic() < deadline, (sent, mirrored())  # P(all alike) = 2 * 0.5**n
    assert mirrored() <= set(sent)
    log = mirror.request_log()
    assert {m for m, _ in log} == {"GET"} and {p.partition("?")[0] for _, p in log} == {"/new-path"}
    assert {p.partition("?")[2] for _, p in web.request_log()} == set(sent)


def test_policy_route_retries_429_from_the_backend(env):
    """retry ``attempts: 2, codes: [429]``: an upstream 429 is tried twice in all
    (agentgateway's schema: "total number of attempts, including the original request")."""
    _, web, _, c = env
    r = c.get("/x?status=429&id=retry-me")
    assert r.status_code == 429
    tries = [p for _, p in web.request_log() if "id=retry-me" in p]
    assert tries == ["/new-path?status=429&id=retry-me"] * 2
    r = c.get("/x?status=503&id=no-retry")  # not a listed code: one try
    assert r.status_code == 503
    assert [p for _, p in web.request_log() if "id=no-retry" in p] == ["/new-path?status=503&id=no-retry"]


def test_policy_route_times_out_after_one_second(env):
    """timeout ``requestTimeout: 1s``: a backend slower than that gets a 504 at ~1 s."""
    _, _, _, c = env
    t0 = time.monotonic()
    r = c.get("/slow?delay=3")
    elapsed = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert 0.9 <= elapsed < 2.9, elapsed


def test_direct_response_without_an_upstream(env):
    """ "The `/direct` and `/ips` routes return direct responses without contacting an upstream."""
    _, web, mirror, c = env
    for path in ("/direct", "/direct/sub", "/ips", "/ips/x"):
        r = c.get(path)
        assert (r.status_code, r.text) == (200, "hello!"), path
    assert web.counts() == {} and mirror.counts() == {}


def _non_loopback_ipv4() -> str | None:
    """An address of this machine outside 127.0.0.0/8, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a source address
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def test_ips_route_answers_a_loopback_client(env):
    """ip-rules: ``cidr("127.0.0.1/8").containsIP(source.address)`` holds for 127.0.0.1."""
    _, web, _, c = env
    r = c.get("/ips")
    assert (r.status_code, r.text) == (200, "hello!")
    assert web.counts() == {}


def test_ips_route_refuses_a_client_outside_127_0_0_0_8(env):
    """The same request from one of the machine's other addresses is refused (403), while
    the unrestricted /direct route answers that client."""
    gw, _, _, _ = env
    addr = _non_loopback_ipv4()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    r = httpx.get(f"http://{addr}:{gw.port}/ips", timeout=10)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["type"] == "forbidden"
    assert httpx.get(f"http://{addr}:{gw.port}/direct", timeout=10).text == "hello!"
