"""Shutdown: ``config.connectionMinTerminationDeadline`` -- after SIGTERM the gateway keeps
accepting new connections for that long (readiness already says 503, each connection is
served one request), then stops listening and drains as before."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx
import pytest

from tests.support.harness import RawHTTP, gateway_config, route, wait_for


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


@pytest.mark.parametrize("workers", [None, 2])
def test_min_termination_deadline_keeps_accepting_after_sigterm(harness, workers):
    up = harness.upstream("min-drain")
    extra = {"connectionMinTerminationDeadline": "2s", "connectionTerminationDeadline": "5s"}
    gw = harness.gateway(gateway_config([route("r", [up.host])], extra_config=extra), workers=workers)
    old = RawHTTP(gw.port)  # a keep-alive connection from before
    assert old.request("GET", "/before").status == 200

    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not gw.is_ready(), 2.0, message="readiness turning 503")
    # within the minimum: new connections are accepted and served, without keep-alive
    for i in range(3):
        with RawHTTP(gw.port) as c:
            r = c.request("GET", f"/during{i}")
            assert r.status == 200, r
            assert (r.header("connection") or "").lower() == "close"
            assert c.closed_by_peer(2.0)
        time.sleep(0.2)
    assert time.monotonic() - t0 < 1.9, "the checks above must run within the minimum"
    # the connection from before is told to go too (it was idle: closed at once)
    assert old.closed_by_peer(1.0)
    # then the gateway stops listening, and exits once nothing is left
    wait_for(lambda: _refused(gw.port), 5.0, message="the port closing")
    assert time.monotonic() - t0 >= 1.9
    assert gw.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5.0


def test_in_flight_request_started_during_the_minimum_completes(harness):
    up = harness.upstream("min-drain-slow")
    extra = {"connectionMinTerminationDeadline": "1s", "connectionTerminationDeadline": "5s"}
    gw = harness.gateway(gateway_config([route("r", [up.host])], extra_config=extra))
    gw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not gw.is_ready(), 2.0, message="readiness turning 503")
    result: dict = {}

    def slow():
        result["status"] = httpx.get(gw.url + "/slow?delay=2", timeout=10).status_code

    t = threading.Thread(target=slow)
    t.start()
    t.join(10)
    assert result.get("status") == 200, result
    assert gw.proc.wait(10) == 0


def test_without_minimum_the_port_closes_at_once(harness):
    up = harness.upstream("no-min")
    gw = harness.gateway(gateway_config([route("r", [up.host])]))
    t0 = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: _refused(gw.port), 2.0, message="the port closing")
    assert time.monotonic() - t0 < 1.0
    assert gw.proc.wait(10) == 0
