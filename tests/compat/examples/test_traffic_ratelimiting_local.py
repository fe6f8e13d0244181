"""agentgateway's traffic-ratelimiting-local example, run as its README runs it, against a
real agentgw.

README steps (agentgateway commit 75b4e6ce6, ``examples/traffic-ratelimiting-local/README.md``):
start an upstream (``python3 -m http.server 8080``), start the gateway on
``examples/traffic-ratelimiting-local/config.yaml``, ``curl http://localhost:3000/``. "The
``localRateLimit`` policy allows 10 requests per minute" (``maxTokens: 10, tokensPerFill:
1, fillInterval: 60s``), and "Increase ``maxTokens``, ``tokensPerFill``, or shorten
``fillInterval`` in ``config.yaml`` to change the allowed request rate."

Checked:

* ``curl http://localhost:3000/`` (the client names ``localhost``, as the README does)
  reaches the upstream, itself named ``localhost`` in the config;
* 10 requests pass, the next ones get 429 from the gateway (not forwarded), however the
  client connects (new connections, another loopback source address): the bucket is the
  route's; no token comes back within seconds (the fill interval is a minute);
* the README's knobs: the same config with ``fillInterval`` shortened (1s) and
  ``tokensPerFill`` / ``maxTokens`` changed lets through what the new numbers say;
* the config's ``tracing`` (``randomSampling: true``) exports a span per request, the
  refused ones included, to the OTLP/gRPC collector it names.

Changed from the vendored config, and why:

* ``binds[0].port`` 3000 -> a free port (3000 may be taken here);
* the backend ``localhost:8080`` -> ``localhost:<port of the test's echo upstream>`` (the
  stand-in for ``python3 -m http.server 8080``; it counts what reached it);
* ``config.tracing.otlpEndpoint`` ``http://localhost:4317`` -> ``http://localhost:<port>``
  of an in-test OTLP/gRPC collector (the README runs none; 4317 may be another's here);
* ``config`` gets admin/stats/readiness addresses on free ports (the defaults are fixed
  ports, and the harness waits on readiness).

The route and its ``localRateLimit`` are as written (asserted below).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.observability.otlp import GrpcReceiver
from tests.support.harness import free_port, wait_for

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-ratelimiting-local" / "config.yaml"

pytestmark = pytest.mark.timeout(60)

LIMIT = [{"maxTokens": 10, "tokensPerFill": 1, "fillInterval": "60s"}]


def _route(cfg: dict) -> dict:
    return cfg["binds"][0]["listeners"][0]["routes"][0]


def _config(upstream_port: int, collector_port: int) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    # the example as vendored
    assert cfg["config"] == {"tracing": {"otlpEndpoint": "http://localhost:4317", "randomSampling": True}}
    assert cfg["binds"][0]["port"] == 3000
    assert cfg["binds"][0]["listeners"][0]["protocol"] == "HTTP"
    assert _route(cfg) == {"policies": {"localRateLimit": LIMIT}, "backends": [{"host": "localhost:8080"}]}
    # the changes (see the module docstring)
    cfg["binds"][0]["port"] = free_port()
    _route(cfg)["backends"][0]["host"] = f"localhost:{upstream_port}"
    cfg["config"]["tracing"]["otlpEndpoint"] = f"http://localhost:{collector_port}"
    cfg["config"].update({f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")})
    return cfg


@pytest.fixture
def collector():
    r = GrpcReceiver()
    yield r
    r.stop()


@pytest.fixture
def env(collector, harness):  # (the collector outlives the gateway, which flushes at exit)
    up = harness.upstream("http-server")
    gw = harness.gateway(_config(up.port, collector.port))
    return gw, up


def _curl(port: int, path: str = "/", source: str | None = None) -> httpx.Response:
    """One request on a new connection, as ``curl http://localhost:PORT/`` makes it (from
    ``source`` when given)."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    host = "127.0.0.1" if source else "localhost"
    with httpx.Client(transport=transport, timeout=10) as c:
        return c.get(f"http://{host}:{port}{path}")


def test_curl_through_the_gateway_reaches_the_upstream(env):
    gw, up = env
    r = _curl(gw.port)
    assert r.status_code == 200, r.text
    assert r.headers["x-upstream-name"] == "http-server"
    assert (r.json()["method"], r.json()["path"]) == ("GET", "/")
    assert up.count("/") == 1


def test_ten_requests_per_minute(env):
    """10 pass, then 429 from the gateway, whoever asks; no token is back seconds later."""
    gw, up = env
    statuses = [_curl(gw.port, f"/r{i}").status_code for i in range(10)]
    assert statuses == [200] * 10
    refused = [_curl(gw.port, "/r10"), _curl(gw.port, "/", source="127.0.0.2")]
    with httpx.Client(base_url=gw.url, timeout=10) as c:  # and on a kept-alive connection
        refused += [c.get("/r11"), c.post("/r12", content=b"x")]
    for r in refused:
        assert r.status_code == 429, r.text
        assert r.json()["error"]["type"] == "rate_limited"
        assert "x-upstream-name" not in r.headers
        assert r.headers.get("x-ratelimit-limit") == "10"
        assert r.headers.get("x-ratelimit-remaining") == "0"
    assert sum(up.counts().values()) == 10  # the refused ones never reached it
    time.sleep(1.5)  # a 60 s fill interval: nothing comes back meanwhile
    assert _curl(gw.port).status_code == 429


@pytest.mark.parametrize(
    "limit, burst, per_second",
    [
        ({"maxTokens": 10, "tokensPerFill": 1, "fillInterval": "1s"}, 10, 1),  # fillInterval shortened
        ({"maxTokens": 4, "tokensPerFill": 3, "fillInterval": "1s"}, 4, 3),  # tokensPerFill up, maxTokens down
    ],
)
def test_the_readmes_knobs_change_the_rate(collector, harness, limit, burst, per_second):
    up = harness.upstream("http-server")
    cfg = _config(up.port, collector.port)
    _route(cfg)["policies"]["localRateLimit"] = [limit]
    gw = harness.gateway(cfg)
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        t0 = time.monotonic()
        first = [c.get("/").status_code for _ in range(burst + 1)]
        assert time.monotonic() - t0 < 0.9  # (within the first fill interval)
        assert first == [200] * burst + [429], first
        time.sleep(1.15)
        after = [c.get("/").status_code for _ in range(per_second + 1)]
        assert after == [200] * per_second + [429], after


def test_every_request_is_traced_to_the_configured_collector(env, collector):
    """``tracing.randomSampling: true``: a server span per request, the 429s included."""
    gw, _ = env
    statuses = [_curl(gw.port, f"/t{i}").status_code for i in range(12)]
    assert statuses == [200] * 10 + [429] * 2

    def server_spans():  # (SPAN_KIND_SERVER; the forwarded ones have a client span too)
        spans = [s for s in collector.spans if s["kind"] == 2]
        return spans if len(spans) >= 12 else None

    spans = wait_for(server_spans, 10, message="12 server spans")
    seen = sorted((s["attrs"]["url.path"], s["attrs"]["http.response.status_code"]) for s in spans)
    assert seen == sorted([(f"/t{i}", 200) for i in range(10)] + [("/t10", 429), ("/t11", 429)])
    assert {s["resource"]["service.name"] for s in spans} == {"agentgw"}
