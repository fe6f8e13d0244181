"""Timeouts, retries, local rate limiting and weighted backends."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support.harness import assert_gateway_error, closed_port, gateway_config, route


def sel(name: str) -> dict:
    return {"x-route": name}


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("resil", nports=2)
    live = up.hosts[0]
    dead = f"127.0.0.1:{closed_port()}"
    routes = [
        route("t-backend", [live], headers=sel("tb"), policies={"timeout": {"backendRequestTimeout": "1s"}}),
        route("t-request", [live], headers=sel("tr"), policies={"timeout": {"requestTimeout": "1s"}}),
        route(
            "retry",
            [live],
            headers=sel("retry"),
            policies={"retry": {"attempts": 3, "backoff": "50ms", "codes": [503]}},
        ),
        route(
            "retry-connect",
            [(dead, 1), (live, 1)],
            headers=sel("retry-connect"),
            policies={"retry": {"attempts": 3, "backoff": "10ms", "codes": [503]}},
        ),
        route(
            "rl",
            [live],
            headers=sel("rl"),
            policies={"localRateLimit": [{"maxTokens": 5, "tokensPerFill": 1, "fillInterval": "60s"}]},
        ),
        route("weighted", [(up.hosts[0], 1), (up.hosts[1], 3)], headers=sel("w")),
        route("default", [live]),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    client = httpx.Client(base_url=gw.url, timeout=15)
    yield gw, up, client
    client.close()


def key() -> str:
    return uuid.uuid4().hex[:12]


# -- timeouts ------------------------------------------------------------------
def test_backend_request_timeout_is_504(env):
    _, _, c = env
    t0 = time.monotonic()
    r = c.get("/slow?delay=4", headers=sel("tb"))
    elapsed = time.monotonic() - t0
    assert_gateway_error(r.status_code, r.content, 504, "upstream_timeout")
    assert 0.8 <= elapsed < 3.0, elapsed


def test_request_timeout_is_504(env):
    _, _, c = env
    t0 = time.monotonic()
    r = c.get("/slow?delay=4", headers=sel("tr"))
    elapsed = time.monotonic() - t0
    assert_gateway_error(r.status_code, r.content, 504, "request_timeout")
    assert 0.8 <= elapsed < 3.0, elapsed


def test_fast_request_within_timeout_succeeds(env):
    _, _, c = env
    r = c.get("/slow?delay=0.2", headers=sel("tb"))
    assert r.status_code == 200 and r.json()["slept"] == 0.2


# -- retries -------------------------------------------------------------------
def test_retry_on_503_succeeds(env):
    _, _, c = env
    k = key()
    r = c.get(f"/flaky?fail=2&key={k}", headers=sel("retry"))
    assert r.status_code == 200, r.text
    assert r.json()["attempt"] == 3


def test_retry_gives_up_after_attempts(env):
    _, up, c = env
    k = key()
    r = c.get(f"/flaky?fail=100&key={k}", headers=sel("retry"))
    assert r.status_code == 503
    # attempts=3: three tries in total, or one try plus three retries
    assert r.json()["attempt"] in (3, 4)
    probe = httpx.get(f"{up.url}/flaky?fail=100&key={k}").json()
    assert probe["attempt"] == r.json()["attempt"] + 1  # no retry still running


def test_no_retry_without_policy(env):
    _, _, c = env
    k = key()
    r = c.get(f"/flaky?fail=1&key={k}")
    assert r.status_code == 503 and r.json()["attempt"] == 1


def test_no_retry_for_streamed_non_idempotent_post(env):
    _, up, c = env
    k = key()

    def body():
        for _ in range(16):
            yield b"z" * 16384  # 256 KiB, streamed with chunked encoding

    r = c.post(f"/flaky?fail=1&key={k}", headers=sel("retry"), content=body())
    assert r.status_code == 503
    assert r.json()["attempt"] == 1
    assert r.json()["body_len"] == 16 * 16384
    probe = httpx.get(f"{up.url}/flaky?fail=100&key={k}").json()
    assert probe["attempt"] == 2  # the upstream saw exactly one POST


def test_retry_on_connect_failure(env):
    """Half the picks hit a dead backend; a retry goes to the other backend, so every
    request succeeds."""
    _, _, c = env
    n, failures = 30, 0
    for _ in range(n):
        r = c.get("/echo/rc", headers=sel("retry-connect"))
        if r.status_code != 200:
            assert_gateway_error(r.status_code, r.content, 502, "upstream_connect_failed")
            failures += 1
    # without retries ~15 of 30 fail; a retry never picks the backend that just failed
    assert failures == 0, f"{failures}/{n} requests failed: connect failures are not retried elsewhere"


# -- local rate limit ----------------------------------------------------------
def test_local_rate_limit(env):
    _, _, c = env
    statuses = []
    last = None
    for _ in range(7):
        last = c.get("/echo/rl", headers=sel("rl"))
        statuses.append(last.status_code)
    assert statuses[:5] == [200] * 5, statuses
    assert statuses[5:] == [429, 429], statuses
    assert_gateway_error(last.status_code, last.content, 429, "rate_limited")
    assert int(last.headers["retry-after"]) >= 1
    assert last.headers["x-ratelimit-limit"].split(",")[0].strip() == "5"
    assert last.headers["x-ratelimit-remaining"].strip() == "0"
    assert int(last.headers["x-ratelimit-reset"].strip()) >= 1


def test_rate_limit_is_per_route(env):
    _, _, c = env
    for _ in range(8):
        assert c.get("/echo/not-limited").status_code == 200


# -- weighted backends ---------------------------------------------------------
def test_weighted_backends_split_traffic(env):
    _, up, c = env
    heavy = 0
    n = 200
    for _ in range(n):
        r = c.get("/echo/w", headers=sel("w"))
        assert r.status_code == 200
        if int(r.headers["x-upstream-port"]) == up.ports[1]:
            heavy += 1
    share = heavy / n
    assert 0.63 <= share <= 0.87, f"weight-3 backend got {share:.2f} of traffic, expected ~0.75"
