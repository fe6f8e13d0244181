"""``csrf``: state-changing cross-site browser requests are refused (agentgateway's
checks: Sec-Fetch-Site first, then Origin against the gateway's own origin), everything
else reaches the upstream."""

from __future__ import annotations

import httpx
import pytest

from tests.support.harness import gateway_config, route


@pytest.fixture(scope="module")
def gw(module_harness):
    up = module_harness.upstream("csrf")
    pol = {"csrf": {"additionalOrigins": ["https://app.example"]}}
    return module_harness.gateway(gateway_config([route("forms", [up.host], policies=pol)]))


def _post(gw, **headers) -> httpx.Response:
    return httpx.post(gw.url + "/submit", content=b"x=1", headers=headers, timeout=10)


def test_cross_site_browser_requests_are_refused(gw):
    r = _post(gw, **{"sec-fetch-site": "cross-site", "origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "csrf_failed"
    assert _post(gw, **{"sec-fetch-site": "same-site", "origin": "https://sub.evil.example"}).status_code == 403
    # without Sec-Fetch-Site (older browsers), Origin decides
    assert _post(gw, origin="https://evil.example").status_code == 403
    assert _post(gw, origin=gw.url.replace("127.0.0.1", "localhost")).status_code == 403


def test_same_origin_trusted_and_non_browser_requests_pass(gw):
    assert _post(gw, **{"sec-fetch-site": "same-origin", "origin": gw.url}).status_code == 200
    assert _post(gw, **{"sec-fetch-site": "none"}).status_code == 200
    assert _post(gw, origin=gw.url).status_code == 200
    assert _post(gw, **{"sec-fetch-site": "cross-site", "origin": "https://app.example"}).status_code == 200
    assert _post(gw, origin="https://app.example").status_code == 200
    assert _post(gw).status_code == 200  # no Origin: not a browser's cross-site request
    assert _post(gw, origin="null").status_code == 200


def test_safe_methods_always_pass(gw):
    h = {"sec-fetch-site": "cross-site", "origin": "https://evil.example"}
    for method in ("GET", "HEAD", "OPTIONS"):
        assert httpx.request(method, gw.url + "/page", headers=h, timeout=10).status_code == 200, method
    assert httpx.request("DELETE", gw.url + "/page", headers=h, timeout=10).status_code == 403
