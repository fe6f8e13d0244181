"""``remoteRateLimit`` against a stand-in Envoy rate-limit service (gRPC, in the test)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from agentgw.policies import rls_proto as pb
from tests.support.harness import gateway_config, metric_sum, parse_metrics, route
from tests.support.rls import RateLimitService


class StandInRLS(RateLimitService):
    """Counts hits per (domain, descriptor) like envoyproxy/ratelimit, with fixed limits."""

    def __init__(self, limits: dict[tuple, int]):
        self.limits = limits  # ((key, value), ...) -> requests per window
        self.counts: dict = {}
        self.requests: list = []
        self.lock = threading.Lock()
        super().__init__()

    def should_rate_limit(self, req, _context):
        resp = pb.RateLimitResponse(overall_code=pb.OK)
        with self.lock:
            self.requests.append(req)
            for d in req.descriptors:
                key = (req.domain,) + tuple((e.key, e.value) for e in d.entries)
                st = resp.statuses.add(code=pb.OK)
                limit = self.limits.get(key[1:])
                self.counts[key] = self.counts.get(key, 0) + (req.hits_addend or 1)
                if limit is not None:
                    st.current_limit.requests_per_unit = limit
                    st.limit_remaining = max(0, limit - self.counts[key])
                    if self.counts[key] > limit:
                        st.code = pb.OVER_LIMIT
                        st.duration_until_reset.seconds = 42
                        resp.overall_code = pb.OVER_LIMIT
        resp.response_headers_to_add.add(key="x-ratelimit-service", value="stand-in")
        return resp


@pytest.fixture
def rls():
    s = StandInRLS({(("user", "alice"), ("tool", "echo")): 2})
    s.start()
    yield s
    s.stop()


def _policy(port: int, mode: str = "failOpen") -> dict:
    return {
        "remoteRateLimit": {
            "domain": "agentgateway",
            "host": f"127.0.0.1:{port}",
            "failureMode": mode,
            "descriptors": [
                {
                    "entries": [
                        {"key": "user", "value": 'request.headers["x-user"]'},
                        {"key": "tool", "value": '"echo"'},
                    ],
                    "type": "requests",
                }
            ],
        }
    }


def test_remote_rate_limit_service(harness, rls):
    up = harness.upstream("up")
    gw = harness.gateway(
        gateway_config(
            [
                route("open", [up.host], prefix="/open", policies=_policy(rls.port)),
                route("closed", [up.host], prefix="/closed", policies=_policy(rls.port, "failClosed")),
            ]
        )
    )
    with httpx.Client(base_url=gw.url, timeout=5) as c:
        rs = [c.get("/open", headers={"x-user": "alice"}) for _ in range(3)]
        assert [r.status_code for r in rs] == [200, 200, 429]
        assert rs[0].headers["x-ratelimit-service"] == "stand-in"
        assert rs[2].json()["error"]["type"] == "rate_limited"
        assert rs[2].headers["retry-after"] == "42"
        assert rs[2].headers["x-ratelimit-limit"] == "2"
        # another user: its own counter; no x-user: the descriptor doesn't apply, no call
        assert c.get("/open", headers={"x-user": "bob"}).status_code == 200
        n = len(rls.requests)
        assert c.get("/open").status_code == 200
        assert len(rls.requests) == n
        req = rls.requests[0]
        assert req.domain == "agentgateway" and req.hits_addend == 1
        assert [(e.key, e.value) for e in req.descriptors[0].entries] == [("user", "alice"), ("tool", "echo")]
        # the service goes away: failOpen lets requests through, failClosed answers 503
        rls.stop()
        t0 = time.monotonic()
        assert c.get("/open", headers={"x-user": "carol"}).status_code == 200
        r = c.get("/closed", headers={"x-user": "carol"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "rate_limit_unavailable"
        assert time.monotonic() - t0 < 3
    m = parse_metrics(gw.metrics_text())
    assert metric_sum(m, "agentgw_ratelimit_checks_total", limiter="rls", result="limited") == 1
    assert metric_sum(m, "agentgw_ratelimit_checks_total", limiter="rls", result="failed_open") == 1
    assert metric_sum(m, "agentgw_ratelimit_checks_total", limiter="rls", result="failed_closed") == 1
