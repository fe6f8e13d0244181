"""``requestMirror`` (a copy of a share of requests to another backend) and the CEL
CIDR functions, as agentgateway's traffic-http example uses them."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.support.harness import gateway_config, route, wait_for


@pytest.fixture(scope="module")
def env(module_harness):
    main = module_harness.upstream("main")
    shadow = module_harness.upstream("shadow")
    # a mirror backend that accepts connections and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    silent_addr = f"127.0.0.1:{silent.getsockname()[1]}"
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_addr = f"127.0.0.1:{dead.getsockname()[1]}"
    dead.close()
    b = [main.host]
    routes = [
        route("all", b, prefix="/all", policies={"requestMirror": {"backend": {"host": shadow.host}, "percentage": 1}}),
        route(
            "edited",
            b,
            prefix="/edit",
            policies={
                "urlRewrite": {"path": {"full": "/rewritten"}},
                "requestMirror": {"backend": {"backend": "shadow"}, "percentage": 1.0},
            },
        ),
        route(
            "half", b, prefix="/half", policies={"requestMirror": {"backend": {"host": shadow.host}, "percentage": 0.5}}
        ),
        route(
            "none", b, prefix="/none", policies={"requestMirror": {"backend": {"host": shadow.host}, "percentage": 0}}
        ),
        route(
            "silent",
            b,
            prefix="/silent",
            policies={"requestMirror": {"backend": {"host": silent_addr}, "percentage": 1}},
        ),
        route("dead", b, prefix="/dead", policies={"requestMirror": {"backend": {"host": dead_addr}, "percentage": 1}}),
        route(
            "ips-in",
            [],
            prefix="/ips",
            policies={
                "authorization": {"rules": ['cidr("127.0.0.1/8").containsIP(source.address)']},
                "directResponse": {"body": "hello!", "status": 200},
            },
        ),
        route(
            "ips-out",
            [],
            prefix="/elsewhere",
            policies={
                "authorization": {"rules": ['cidr("10.0.0.0/8").containsIP(source.address)']},
                "directResponse": {"body": "hello!", "status": 200},
            },
        ),
    ]
    gw = module_harness.gateway(gateway_config(routes, backends=[{"name": "shadow", "host": shadow.host}]))
    client = httpx.Client(base_url=gw.url, timeout=10)
    yield gw, main, shadow, client
    client.close()
    silent.close()


def test_every_request_is_copied_to_the_mirror(env):
    _, main, shadow, c = env
    r = c.post("/all/x?q=1", content=b"payload")
    assert r.status_code == 200
    assert r.json()["upstream"] == "main" and r.json()["body"] == "payload"
    wait_for(lambda: ["POST", "/all/x?q=1"] in shadow.request_log(), timeout=5, message="the mirrored copy")


def test_the_copy_is_the_request_after_the_route_edits(env):
    _, main, shadow, c = env
    r = c.get("/edit/me")
    assert r.json()["path"] == "/rewritten"
    wait_for(lambda: shadow.count("/rewritten") >= 1, timeout=5, message="the rewritten copy")


def test_a_percentage_mirrors_a_share(env):
    _, main, shadow, c = env
    for _ in range(40):
        assert c.get("/half").status_code == 200
    assert main.count("/half") == 40
    wait_for(lambda: shadow.count("/half") > 0, timeout=5, message="some copies")
    time.sleep(0.3)  # copies are sent at once; let the last ones land
    assert 0 < shadow.count("/half") < 40


def test_percentage_zero_never_mirrors(env):
    _, main, shadow, c = env
    for _ in range(5):
        c.get("/none")
    c.get("/all/marker")  # a later copy on the same mirror
    wait_for(lambda: shadow.count("/all/marker") >= 1, timeout=5, message="the marker copy")
    assert shadow.count("/none") == 0


def test_a_mirror_that_never_answers_does_not_hold_the_request(env):
    _, _, _, c = env
    t0 = time.perf_counter()
    for _ in range(3):
        assert c.get("/silent").status_code == 200
    assert time.perf_counter() - t0 < 3


def test_a_mirror_that_refuses_connections_does_not_fail_the_request(env):
    gw, _, _, c = env
    for _ in range(3):
        r = c.get("/dead")
        assert r.status_code == 200 and r.json()["upstream"] == "main"
    assert "Traceback" not in gw.logs()


def test_cidr_contains_ip_admits_loopback_clients(env):
    _, _, _, c = env
    r = c.get("/ips")
    assert (r.status_code, r.text) == (200, "hello!")
    assert c.get("/elsewhere").status_code == 403
