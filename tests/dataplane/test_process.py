"""Process model: ``--workers 2`` sharing the port, graceful SIGTERM drain."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.support.harness import RawHTTP, gateway_config, route, with_routes


def _slow_request(url: str, result: dict) -> None:
    try:
        r = httpx.get(url, timeout=15)
        result["status"] = r.status_code
        result["body"] = r.json()
    except Exception as exc:  # noqa: BLE001
        result["error"] = repr(exc)


@pytest.mark.parametrize("workers", [None, 2])
def test_sigterm_drains_in_flight_request(harness, workers):
    up = harness.upstream("drain")
    gw = harness.gateway(gateway_config([route("all", [up.host])]), workers=workers)
    result: dict = {}
    t = threading.Thread(target=_slow_request, args=(gw.url + "/slow?delay=1.5", result), daemon=True)
    t.start()
    time.sleep(0.5)
    assert up.count("/slow") == 1, "the slow request should be in flight"
    t0 = time.monotonic()
    rc = gw.stop(signal.SIGTERM, timeout=15)
    t.join(10)
    assert result.get("status") == 200, result
    assert result["body"]["slept"] == 1.5
    assert rc == 0, f"exit code {rc}\n{gw.logs()}"
    assert time.monotonic() - t0 < 12
    # after exit nothing listens any more
    with pytest.raises(OSError):
        RawHTTP(gw.port, timeout=1).close()


def test_two_workers_serve_concurrently(harness):
    up = harness.upstream("workers")
    gw = harness.gateway(gateway_config([route("all", [up.host])]), workers=2)
    # many fresh connections: all served
    for i in range(40):
        r = httpx.get(f"{gw.url}/echo/w{i}", timeout=10)
        assert r.status_code == 200 and r.json()["path"] == f"/echo/w{i}"
    # slow requests in parallel complete in about one delay, not sequentially
    results = [dict() for _ in range(4)]
    threads = [threading.Thread(target=_slow_request, args=(gw.url + "/slow?delay=1", res)) for res in results]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(r.get("status") == 200 for r in results), results
    assert time.monotonic() - t0 < 2.5


def test_two_workers_keep_config_reload_in_sync(harness):
    up = harness.upstream("workers-reload")
    cfg = gateway_config([route("all", [up.host], policies={"responseHeaderModifier": {"set": {"x-v": "1"}}})])
    gw = harness.gateway(cfg, workers=2)
    new = with_routes(cfg, [route("all", [up.host], policies={"responseHeaderModifier": {"set": {"x-v": "2"}}})])
    gw.reload(new)
    deadline = time.monotonic() + 6
    seen = []
    while time.monotonic() < deadline:
        seen = [httpx.get(gw.url + "/echo/x", timeout=5).headers.get("x-v") for _ in range(20)]
        if set(seen) == {"2"}:
            break
        time.sleep(0.3)
    assert set(seen) == {"2"}, f"some worker still serves the old config: {seen}"
