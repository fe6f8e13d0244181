"""agentgateway's fault-injection example, run as its README runs it, against a real agentgw.

README steps (agentgateway commit 75b4e6ce6, ``examples/fault-injection/README.md``):
start an upstream (``python3 -m http.server 8080``), start the gateway on
``examples/fault-injection/config.yaml``, then::

    curl http://localhost:3000/random   # ~10% of requests take 2s
    curl http://localhost:3000/header -H 'x-chaos: 1'   # always delayed 500ms
    curl http://localhost:3000/abort    # ~10% of requests return 503

Each becomes a test: the probabilistic ones send enough requests (concurrently, so a 2 s
delay costs 2 s once) that "about 10%" is told apart from "never" and "always" with a
failure chance below one in a million, and check the two outcomes are exactly the
configured ones (a 2 s / 500 ms delay or none; a 503 ``injected fault`` that never reaches
the backend, or the backend's answer).

The README's prose is checked too, with its snippets put in place of a route's policy:
``duration: 2s`` delays every request; a CEL ``duration("500ms")`` result is a duration; a
"non-positive result injects no delay"; ``random()``-based jitter (see ``JITTER`` below:
the README's own ``int(random() * 500)`` is ill-typed, and refused); "Any CEL expression
works as the condition" of an abort (a header); the injected delay "counts against the
route's ``requestTimeout``" (504 at the deadline, not after the delay) but not against
``backendRequestTimeout``.

Changed from the vendored config, and why:

* ``binds[0].port`` 3000 -> a free port (3000 may be taken here);
* every ``backends[].host`` ``127.0.0.1:8080`` -> the test's echo upstream (stand-in for
  ``python3 -m http.server 8080``, which would answer these paths 404: the echo server
  answers 200 and counts what reached it, which the abort checks need);
* ``config`` gets admin/stats/readiness addresses on free ports (the defaults are fixed
  ports, and the harness waits on readiness).

The routes, their matches and their ``delay`` / ``directResponse`` policies are as written
(asserted below).
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.harness import dump_yaml, echo_header, free_port, run_cli

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "fault-injection" / "config.yaml"

pytestmark = pytest.mark.timeout(60)


def _routes(cfg: dict) -> list[dict]:
    return cfg["binds"][0]["listeners"][0]["routes"]


def _config(upstream: str) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    # the example as vendored
    assert cfg["binds"][0]["port"] == 3000 and "config" not in cfg
    assert [(r["name"], r["matches"], r["policies"]) for r in _routes(cfg)] == [
        (
            "delay-probability",
            [{"path": {"pathPrefix": "/random"}}],
            {"delay": {"duration": "random() < 0.1 ? 2000 : 0"}},
        ),
        (
            "delay-header",
            [{"path": {"pathPrefix": "/header"}}],
            {"delay": {"duration": 'request.headers["x-chaos"] == "1" ? 500 : 0'}},
        ),
        (
            "abort-probability",
            [{"path": {"pathPrefix": "/abort"}}],
            {
                "directResponse": {
                    "conditional": [{"condition": "random() < 0.1", "status": 503, "body": "injected fault"}]
                }
            },
        ),
    ]
    # the changes (see the module docstring)
    cfg["binds"][0]["port"] = free_port()
    for r in _routes(cfg):
        assert r["backends"] == [{"host": "127.0.0.1:8080"}]
        r["backends"] = [{"host": upstream}]
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg


@pytest.fixture(scope="module")
def example(module_harness):
    up = module_harness.upstream("http-server")
    gw = module_harness.gateway(_config(up.host))
    return gw, up


async def _timed(url: str, n: int, headers: dict | None = None) -> list[tuple[float, httpx.Response]]:
    """``n`` concurrent GETs of ``url``, each on its own connection: (seconds, response)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=20, limits=limits) as c:

        async def one():
            t0 = time.monotonic()
            r = await c.get(url, headers=headers)
            return time.monotonic() - t0, r

        return await asyncio.gather(*(one() for _ in range(n)))


def timed(url: str, n: int = 1, headers: dict | None = None) -> list[tuple[float, httpx.Response]]:
    return asyncio.run(_timed(url, n, headers))


def test_random_route_delays_about_one_request_in_ten_by_two_seconds(example):
    """``curl http://localhost:3000/random   # ~10% of requests take 2s``: of 120 requests,
    some (P(none) = 0.9**120 ~ 3e-6) but far from all wait 2 s; the rest are not delayed;
    every one reaches the backend."""
    gw, up = example
    up.reset_counts()
    results = timed(f"{gw.url}/random", 120)
    assert {r.status_code for _, r in results} == {200}
    assert {r.json()["path"] for _, r in results} == {"/random"}
    delayed = [t for t, _ in results if t >= 1.95]
    prompt = [t for t, _ in results if t < 1.0]
    assert len(delayed) + len(prompt) == len(results), sorted(t for t, _ in results)
    assert 1 <= len(delayed) <= 40, len(delayed)  # mean 12, sd 3.3
    assert max(delayed) < 3.5
    assert up.count("/random") == 120


def test_header_route_delays_requests_that_opt_in_by_500ms(example):
    """``curl http://localhost:3000/header -H 'x-chaos: 1'   # always delayed 500ms``; without
    the header (or with another value) the CEL expression gives 0: no delay."""
    gw, _ = example
    for t, r in timed(f"{gw.url}/header", 4, {"x-chaos": "1"}):
        assert r.status_code == 200 and 0.48 <= t < 1.3, t
        assert echo_header(r.json(), "x-chaos") == ["1"]  # forwarded as it was
    for headers in (None, {"x-chaos": "0"}, {"x-chaos": "yes"}):
        for t, r in timed(f"{gw.url}/header", 4, headers):
            assert r.status_code == 200 and t < 0.4, (headers, t)


def test_abort_route_fails_about_one_request_in_ten_with_503(example):
    """``curl http://localhost:3000/abort    # ~10% of requests return 503``: the 503s carry
    the configured body and never reach the backend ("without forwarding them"); the others
    are the backend's answers ("the request proceeds to the backend as normal")."""
    gw, up = example
    up.reset_counts()
    results = [r for _ in range(3) for _, r in timed(f"{gw.url}/abort", 100)]
    aborted = [r for r in results if r.status_code == 503]
    passed = [r for r in results if r.status_code != 503]
    assert 6 <= len(aborted) <= 70, len(aborted)  # mean 30, sd 5.2
    assert {r.text for r in aborted} == {"injected fault"}
    assert all("x-upstream-name" not in r.headers for r in aborted)
    assert {r.status_code for r in passed} == {200}
    assert {r.headers["x-upstream-name"] for r in passed} == {"http-server"}
    assert up.count("/abort") == len(passed)


# --------------------------------------------------------------------------- #
# the README's snippets and prose, on the example's routes
# --------------------------------------------------------------------------- #
# The README's ``int(random() * 500)`` multiplies a double by an int, which CEL has no
# overload for (agentgateway's CEL neither: it loads the config, the evaluation fails and no
# delay is injected; agentgw refuses the config when loading it, which
# test_the_readmes_jitter_expression_is_refused_as_ill_typed checks). The same jitter, well
# typed, as agentgateway's own ``random()`` test writes it (``int(random() * 10.0)``):
JITTER = "int(random() * 500.0)"


def _variant(upstream: str) -> dict:
    """The example with routes holding the README's snippets in place of a policy."""
    cfg = _config(upstream)
    base = _routes(cfg)[1]  # delay-header

    def like(name: str, prefix: str, policies: dict) -> dict:
        r = copy.deepcopy(base)
        r["name"], r["matches"], r["policies"] = name, [{"path": {"pathPrefix": prefix}}], policies
        return r

    header_delay = copy.deepcopy(base["policies"]["delay"])
    _routes(cfg)[:] = [
        # "duration: 2s   # always delay 2s before forwarding"
        like("fixed", "/fixed", {"delay": {"duration": "2s"}}),
        # "The expression may return a duration (`duration("500ms")`) or a number"
        like("cel-duration", "/cel-duration", {"delay": {"duration": 'duration("500ms")'}}),
        # "a non-positive result injects no delay"
        like("negative", "/negative", {"delay": {"duration": "-500"}}),
        # "`random()`-based jitter such as `int(random() * 500)`" (with a double: see below)
        like("jitter", "/jitter", {"delay": {"duration": JITTER}}),
        # "Any CEL expression works as the condition, so aborts can target ... specific headers"
        like(
            "abort-header",
            "/abort-header",
            {
                "directResponse": {
                    "conditional": [
                        {"condition": 'request.headers["x-chaos"] == "1"', "status": 503, "body": "injected fault"}
                    ]
                }
            },
        ),
        # "Injected delay counts against the route's `requestTimeout`"
        like("request-timeout", "/request-timeout", {"delay": header_delay, "timeout": {"requestTimeout": "300ms"}}),
        # "For a timeout that excludes the injected delay, use `backendRequestTimeout`"
        like(
            "backend-timeout",
            "/backend-timeout",
            {"delay": header_delay, "timeout": {"backendRequestTimeout": "300ms"}},
        ),
    ]
    return cfg


@pytest.fixture(scope="module")
def snippets(module_harness):
    up = module_harness.upstream("snippets")
    return module_harness.gateway(_variant(up.host)), up


def test_a_plain_duration_delays_every_request(snippets):
    gw, _ = snippets
    results = timed(f"{gw.url}/fixed", 5)
    assert all(r.status_code == 200 and 1.95 <= t < 3.5 for t, r in results), results


def test_a_cel_duration_result_and_a_non_positive_one(snippets):
    gw, _ = snippets
    for t, r in timed(f"{gw.url}/cel-duration", 3):
        assert r.status_code == 200 and 0.48 <= t < 1.3, t
    for t, r in timed(f"{gw.url}/negative", 3):
        assert r.status_code == 200 and t < 0.4, t


def test_random_jitter_spreads_delays_below_500ms(snippets):
    gw, _ = snippets
    times = sorted(t for t, r in timed(f"{gw.url}/jitter", 30) if r.status_code == 200)
    assert len(times) == 30 and times[-1] < 1.0, times
    # uniform over [0, 500) ms: the spread is far from nothing (P(spread < 150ms) ~ 1e-13)
    assert times[-1] - times[0] > 0.15, times


def test_the_readmes_jitter_expression_is_refused_as_ill_typed(tmp_path):
    cfg = _config("127.0.0.1:9")
    _routes(cfg)[0]["policies"]["delay"]["duration"] = "int(random() * 500)"
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "routes[0].policies.delay.duration" in out and "(double, int)" in out, out


def test_an_abort_conditioned_on_a_header(snippets):
    gw, up = snippets
    up.reset_counts()
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for _ in range(5):
            r = c.get("/abort-header", headers={"x-chaos": "1"})
            assert (r.status_code, r.text) == (503, "injected fault")
        for _ in range(5):
            assert c.get("/abort-header").status_code == 200
    assert up.count("/abort-header") == 5


def test_injected_delay_counts_against_request_timeout_not_backend_timeout(snippets):
    """A 500 ms delay under a 300 ms ``requestTimeout``: 504 at the deadline (~300 ms), not
    after the delay; under a 300 ms ``backendRequestTimeout`` (per backend attempt, after
    the delay): answered after ~500 ms."""
    gw, up = snippets
    up.reset_counts()
    ((t, r),) = timed(f"{gw.url}/request-timeout", headers={"x-chaos": "1"})
    assert r.status_code == 504, r.text
    assert 0.28 <= t < 0.48, t
    assert up.count("/request-timeout") == 0  # it never got past the delay
    ((t, r),) = timed(f"{gw.url}/request-timeout")  # no delay: answered
    assert r.status_code == 200 and t < 0.3
    ((t, r),) = timed(f"{gw.url}/backend-timeout", headers={"x-chaos": "1"})
    assert r.status_code == 200, r.text
    assert 0.48 <= t < 1.3, t
    # and the backend timeout itself still applies to the backend
    ((t, r),) = timed(f"{gw.url}/backend-timeout?delay=1")
    assert r.status_code == 504 and 0.28 <= t < 0.9, (t, r.text)
