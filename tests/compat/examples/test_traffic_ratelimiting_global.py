"""agentgateway's traffic-ratelimiting-global example, run as its README runs it, against a
real agentgw, a real ``redis-server`` and a stand-in for Envoy's ratelimit service.

README steps (agentgateway commit 75b4e6ce6, ``examples/traffic-ratelimiting-global/README.md``):
start Redis and ``envoyproxy/ratelimit`` (gRPC on 8081, ``REDIS_URL=127.0.0.1:6379``, the
example's ``ratelimit-config.yaml``), an upstream (``python3 -m http.server 8080``), the
gateway on ``examples/traffic-ratelimiting-global/config.yaml``; ``curl
http://localhost:3000/``; "Monitor rate limit decisions" in the service's log (``OK`` /
``OVER_LIMIT``).

The ratelimit service is a container image; the stand-in (``EnvoyRatelimit`` below)
serves ``envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`` over gRPC with
``ratelimit-config.yaml`` (``RATELIMIT_CONFIG``, copied from that commit: it is not a gateway
config, so it is not among the vendored files) and envoyproxy/ratelimit's rules: a limit
applies when the descriptor's entries match the config tree down to the descriptor's last
entry (``GetLimit`` in its ``config_impl.go``), hits are counted in Redis per fixed window
(``INCRBY`` on ``<domain>_<key>_<value>_..._<window start>`` with an ``EXPIRE``), and an
over-limit answer carries the limit, 0 remaining and the time to the window's end. It logs
each decision as ``OK`` / ``OVER_LIMIT``.

Checked:

* ``curl http://localhost:3000/``: the gateway asks the service (domain ``agentgateway``, one
  descriptor ``method=GET``, ``path=/`` from the CEL entries, one hit) and forwards;
* ``ratelimit-config.yaml``'s ``GET`` + ``/``: 5 a minute, then 429 from the gateway (with
  ``Retry-After`` from the service), counted in Redis; the decisions the service logged are
  the answers the client got; other paths (``GET /other``) have no limit in that file;
* the ``POST`` rule (10 a minute, on ``method`` alone) is not reached: the gateway's
  descriptor has two entries (``method`` and ``path``), and envoyproxy/ratelimit takes a
  limit only at the descriptor's full depth, so POSTs pass (as with the README's service);
* ``failureMode: failOpen`` (the config's comment: "allow requests through on service
  failure"): with the service gone, requests go through; ``failClosed`` ("deny requests
  with 500 on service failure") refuses them and forwards nothing -- with 503
  ``rate_limit_unavailable`` where agentgateway answers 500: agentgw answers a dependency
  that is down with 503 (retryable), as for every other unavailable service
  (docs/scaleout.md).

Changed from the vendored config, and why:

* ``binds[0].port`` 3000 -> a free port; ``remoteRateLimit.host`` ``127.0.0.1:8081`` ->
  the stand-in's free port; the backend ``localhost:8080`` -> ``localhost:<port>`` of the
  test's echo upstream (stand-in for ``python3 -m http.server 8080``, which answers 404 for
  ``/other``); the fixed ports may be taken here;
* ``config.tracing.otlpEndpoint`` ``http://localhost:4317`` -> ``http://localhost:<port>``
  of an in-test OTLP/gRPC collector (the README runs none, and 4317 may be another's here;
  with nothing listening, the gateway's exit would wait for its span exporter's timeout);
* ``config`` gets admin/stats/readiness addresses on free ports (the harness waits on
  readiness).

``domain``, ``failureMode`` and the descriptors are as written (asserted below).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from agentgw.policies import rls_proto as pb
from tests.observability.otlp import GrpcReceiver
from tests.support.harness import closed_port, free_port
from tests.support.rls import RateLimitService

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-ratelimiting-global" / "config.yaml"

pytestmark = pytest.mark.timeout(60)

# examples/traffic-ratelimiting-global/ratelimit-config.yaml at agentgateway 75b4e6ce6
RATELIMIT_CONFIG = """\
domain: agentgateway
descriptors:
  - key: method
    value: "GET"
    descriptors:
      - key: path
        value: "/"
        rate_limit:
          unit: minute
          requests_per_unit: 5
  - key: method
    value: "POST"
    rate_limit:
      unit: minute
      requests_per_unit: 10
"""

UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
UNIT_ENUM = {"second": 1, "minute": 2, "hour": 3, "day": 4}  # RateLimitResponse.RateLimit.Unit


class EnvoyRatelimit(RateLimitService):
    """A stand-in for ``envoyproxy/ratelimit`` (see the module docstring)."""

    def __init__(self, config: str, redis_url: str):
        doc = yaml.safe_load(config)
        self.domain = doc["domain"]
        self.tree = self._tree(doc["descriptors"])
        self.redis = redis.Redis.from_url(redis_url)
        self.log: list[str] = []  # one line per descriptor decision
        self.requests: list = []
        self.lock = threading.Lock()
        super().__init__()

    def _tree(self, descriptors: list[dict]) -> dict:
        out = {}
        for d in descriptors:
            key = d["key"] + (f"_{d['value']}" if d.get("value") else "")
            out[key] = {"limit": d.get("rate_limit"), "children": self._tree(d.get("descriptors") or [])}
        return out

    def get_limit(self, entries: list[tuple[str, str]]) -> dict | None:
        """envoyproxy/ratelimit's ``GetLimit``: a limit counts only at the last entry."""
        level, limit = self.tree, None
        for i, (k, v) in enumerate(entries):
            node = level.get(f"{k}_{v}") or level.get(k)
            if node is not None and node["limit"] is not None and i == len(entries) - 1:
                limit = node["limit"]
            if node is None or not node["children"]:
                break
            level = node["children"]
        return limit

    def should_rate_limit(self, req, _context):
        resp = pb.RateLimitResponse(overall_code=pb.OK)
        now = int(time.time())
        with self.lock:
            self.requests.append(req)
        for d in req.descriptors:
            entries = [(e.key, e.value) for e in d.entries]
            st = resp.statuses.add(code=pb.OK)
            limit = self.get_limit(entries)
            if limit is None:
                self.log.append(f"OK {entries} (no limit)")
                continue
            window = UNIT_SECONDS[limit["unit"]]
            key = "_".join([req.domain] + [f"{k}_{v}" for k, v in entries] + [str(now // window * window)])
            pipe = self.redis.pipeline()
            pipe.incrby(key, req.hits_addend or 1)
            pipe.expire(key, window)
            count = pipe.execute()[0]
            allowed = limit["requests_per_unit"]
            st.current_limit.requests_per_unit = allowed
            st.current_limit.unit = UNIT_ENUM[limit["unit"]]
            st.limit_remaining = max(0, allowed - count)
            if count > allowed:
                st.code = pb.OVER_LIMIT
                st.duration_until_reset.seconds = window - now % window
                resp.overall_code = pb.OVER_LIMIT
            self.log.append(f"{'OVER_LIMIT' if count > allowed else 'OK'} {entries} {key}={count}")
        return resp


def _route(cfg: dict) -> dict:
    return cfg["binds"][0]["listeners"][0]["routes"][0]


def _config(upstream_port: int, rls_port: int, collector_port: int) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    # the example as vendored
    assert cfg["config"] == {"tracing": {"otlpEndpoint": "http://localhost:4317", "randomSampling": True}}
    assert cfg["binds"][0]["port"] == 3000
    assert _route(cfg) == {
        "policies": {
            "remoteRateLimit": {
                "domain": "agentgateway",
                "host": "127.0.0.1:8081",
                "failureMode": "failOpen",
                "descriptors": [
                    {
                        "entries": [
                            {"key": "method", "value": "request.method"},
                            {"key": "path", "value": "request.path"},
                        ],
                        "type": "requests",
                    }
                ],
            }
        },
        "backends": [{"host": "localhost:8080"}],
    }
    # the changes (see the module docstring)
    cfg["binds"][0]["port"] = free_port()
    _route(cfg)["policies"]["remoteRateLimit"]["host"] = f"127.0.0.1:{rls_port}"
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
def env(collector, redis_server, harness):  # (the collector outlives the gateway)
    rls = EnvoyRatelimit(RATELIMIT_CONFIG, redis_server.url)
    rls.start()
    up = harness.upstream("http-server")
    gw = harness.gateway(_config(up.port, rls.port, collector.port))
    # a per-minute window: keep a test's requests within one
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.1)
    yield gw, up, rls, redis_server
    rls.stop()


def _curl(port: int, path: str = "/", method: str = "GET") -> httpx.Response:
    """One request on a new connection, as ``curl http://localhost:PORT/`` makes it."""
    return httpx.request(method, f"http://localhost:{port}{path}", timeout=10)


def test_curl_is_checked_with_the_service_and_forwarded(env):
    gw, _, rls, _ = env
    r = _curl(gw.port)
    assert r.status_code == 200, r.text
    assert r.headers["x-upstream-name"] == "http-server" and r.json()["path"] == "/"
    (req,) = rls.requests
    assert req.domain == "agentgateway" and req.hits_addend == 1
    assert [[(e.key, e.value) for e in d.entries] for d in req.descriptors] == [[("method", "GET"), ("path", "/")]]


def test_get_slash_is_limited_to_five_a_minute(env):
    gw, up, rls, redis_server = env
    responses = [_curl(gw.port) for _ in range(7)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 2
    for r in responses[5:]:
        assert r.json()["error"]["type"] == "rate_limited"
        assert "x-upstream-name" not in r.headers
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["x-ratelimit-limit"] == "5"
    assert up.count("/") == 5
    # counted in Redis by the service, per window (over-limit hits too, as envoyproxy/ratelimit)
    window = int(time.time()) // 60 * 60
    assert redis_server.command("GET", f"agentgateway_method_GET_path_/_{window}") == b"$1\r\n7\r\n"
    # "Monitor rate limit decisions": what the service decided is what the client got
    assert [line.split()[0] for line in rls.log] == ["OK"] * 5 + ["OVER_LIMIT"] * 2
    # the config has no limit for another path
    assert [_curl(gw.port, "/other").status_code for _ in range(8)] == [200] * 8
    assert rls.log[-1].startswith("OK [('method', 'GET'), ('path', '/other')] (no limit)")
    # another request for / in this window: still limited
    assert _curl(gw.port).status_code == 429


def test_post_passes_as_the_rule_for_method_alone_is_not_at_the_descriptors_depth(env):
    gw, up, rls, _ = env
    assert [_curl(gw.port, "/", "POST").status_code for _ in range(12)] == [200] * 12
    assert up.count("/") == 12
    assert {line.partition(" (no limit)")[0] for line in rls.log} == {"OK [('method', 'POST'), ('path', '/')]"}


def test_fail_open_lets_requests_through_without_the_service(env):
    gw, up, rls, _ = env
    assert [_curl(gw.port).status_code for _ in range(6)] == [200] * 5 + [429]
    rls.stop()
    t0 = time.monotonic()
    assert [_curl(gw.port).status_code for _ in range(3)] == [200] * 3
    assert time.monotonic() - t0 < 5
    assert up.count("/") == 8


def test_fail_closed_refuses_requests_without_the_service(collector, harness):
    up = harness.upstream("http-server")
    cfg = _config(up.port, closed_port(), collector.port)
    _route(cfg)["policies"]["remoteRateLimit"]["failureMode"] = "failClosed"
    gw = harness.gateway(cfg)
    r = _curl(gw.port)
    assert r.status_code == 503, r.text  # agentgateway: 500 (see the module docstring)
    assert r.json()["error"]["type"] == "rate_limit_unavailable"
    assert up.counts() == {}
