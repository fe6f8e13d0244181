"""Fault injection: ``delay`` (latency before the backend) and conditional
``directResponse`` (aborts), as agentgateway's fault-injection example uses them."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.harness import gateway_config, route, run_cli

FIXED = 0.3  # s
HEADER_DELAY = 600  # ms


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("faults")
    b = [up.host]
    routes = [
        route("fixed", b, prefix="/fixed", policies={"delay": {"duration": "300ms"}}),
        route(
            "header",
            b,
            prefix="/header",
            policies={"delay": {"duration": f'request.headers["x-chaos"] == "1" ? {HEADER_DELAY} : 0'}},
        ),
        route("as-duration", b, prefix="/dur", policies={"delay": {"duration": 'duration("300ms")'}}),
        route("random", b, prefix="/random", policies={"delay": {"duration": "random() < 0.5 ? 200 : 0"}}),
        route(
            "over-deadline",
            b,
            prefix="/deadline",
            policies={"delay": {"duration": "5s"}, "timeout": {"requestTimeout": "300ms"}},
        ),
        route(
            "within-deadline",
            b,
            prefix="/within",
            policies={"delay": {"duration": "200ms"}, "timeout": {"requestTimeout": "400ms"}},
        ),
        route(
            "abort-header",
            b,
            prefix="/abort",
            policies={
                "directResponse": {
                    "conditional": [
                        {"condition": 'request.headers["x-fail"] == "1"', "status": 503, "body": "injected fault"},
                        {"condition": 'request.headers["x-fail"] == "2"', "status": 429, "body": "slow down"},
                    ]
                }
            },
        ),
        route(
            "abort-random",
            b,
            prefix="/flaky",
            policies={"directResponse": {"conditional": [{"condition": "random() < 0.5", "status": 503}]}},
        ),
        route(
            "abort-fallback",
            b,
            prefix="/fallback",
            policies={
                "directResponse": {
                    "conditional": [
                        {"condition": 'request.path == "/fallback/a"', "status": 200, "body": "a"},
                        {"status": 404, "body": "default"},
                    ]
                }
            },
        ),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    client = httpx.Client(base_url=gw.url, timeout=15)
    yield gw, up, client
    client.close()


def _timed(client: httpx.Client, path: str, **kw) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = client.get(path, **kw)
    return r, time.perf_counter() - t0


def test_fixed_delay_holds_the_request_then_forwards_it(env):
    _, up, c = env
    r, took = _timed(c, "/fixed/x")
    assert r.status_code == 200
    assert r.json()["path"] == "/fixed/x"
    assert took >= FIXED


def test_a_duration_valued_expression_delays(env):
    _, _, c = env
    r, took = _timed(c, "/dur")
    assert r.status_code == 200 and took >= FIXED


def test_the_expression_delays_only_the_requests_it_selects(env):
    _, _, c = env
    r, took = _timed(c, "/header", headers={"x-chaos": "1"})
    assert r.status_code == 200 and took >= HEADER_DELAY / 1000
    # a second identical request is delayed again (the result is not a memoised wait)
    r, took = _timed(c, "/header", headers={"x-chaos": "1"})
    assert took >= HEADER_DELAY / 1000
    r, took = _timed(c, "/header", headers={"x-chaos": "0"})
    assert r.status_code == 200 and took < HEADER_DELAY / 1000


def test_random_delays_some_requests_and_not_others(env):
    _, _, c = env
    took = [_timed(c, "/random")[1] for _ in range(16)]
    delayed = sum(t >= 0.2 for t in took)
    assert 0 < delayed < 16, took  # all-or-nothing has odds of 2 in 65536


def test_a_delay_past_the_request_timeout_is_a_504_at_the_deadline(env):
    _, up, c = env
    before = up.count("/deadline")
    r, took = _timed(c, "/deadline")
    assert r.status_code == 504
    assert r.json()["error"]["type"] == "request_timeout", r.text
    assert 0.3 <= took < 3.0  # the deadline, not the 5 s delay
    assert up.count("/deadline") == before  # never sent


def test_a_delay_counts_against_the_request_timeout(env):
    _, up, c = env
    # 200 ms of delay leaves 200 ms of the 400 ms budget: an upstream answering in 1 s is late
    r, took = _timed(c, "/within?delay=1")
    assert r.status_code == 504, r.text
    assert took < 1.1  # at the 400 ms deadline: the upstream would have answered after 1.2 s
    r = c.get("/within")
    assert r.status_code == 200


def test_conditional_direct_response_aborts_selected_requests(env):
    _, up, c = env
    before = up.count("/abort")
    r = c.get("/abort", headers={"x-fail": "1"})
    assert (r.status_code, r.text) == (503, "injected fault")
    r = c.get("/abort", headers={"x-fail": "2"})
    assert (r.status_code, r.text) == (429, "slow down")
    assert up.count("/abort") == before
    r = c.get("/abort")  # no entry matches: on to the backend
    assert r.status_code == 200 and r.json()["path"] == "/abort"
    assert up.count("/abort") == before + 1


def test_conditional_direct_response_without_condition_is_the_fallback(env):
    _, _, c = env
    assert c.get("/fallback/a").text == "a"
    r = c.get("/fallback/b")
    assert (r.status_code, r.text) == (404, "default")


def test_random_aborts_fail_some_requests_and_not_others(env):
    _, _, c = env
    codes = [c.get("/flaky").status_code for _ in range(40)]
    assert set(codes) == {200, 503}, codes


def test_a_duration_that_is_neither_a_duration_nor_cel_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "binds:\n- port: 3999\n  listeners:\n  - routes:\n    - policies:\n        delay:\n"
        "          duration: 'nope('\n      backends:\n      - host: 127.0.0.1:1\n"
    )
    r = run_cli("validate", "-f", str(cfg))
    assert r.returncode != 0
    assert "routes[0].policies.delay.duration" in r.stderr + r.stdout
