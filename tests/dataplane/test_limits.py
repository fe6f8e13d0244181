"""Frontend limits: header size (431), body size (413), slow header read (408 or
close), idle keep-alive timeout, max connections."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.support.harness import (
    ConnectionClosed,
    RawHTTP,
    assert_gateway_error,
    build_request,
    gateway_config,
    route,
)

MAX_HEADER = 8192
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("limits")
    cfg = gateway_config(
        [route("all", [up.host])],
        limits={
            "maxHeaderBytes": MAX_HEADER,
            "maxBodyBytes": MAX_BODY,
            "headerReadTimeout": "1s",
            "idleTimeout": "1500ms",
        },
    )
    gw = module_harness.gateway(cfg)
    yield gw, up


def test_header_too_large_is_431(env):
    gw, up = env
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/echo/big-header", [("x-big", "a" * (MAX_HEADER + 100))])
    assert_gateway_error(r.status, r.body, 431, "header_too_large")
    assert up.count("/echo/big-header") == 0


def test_many_headers_over_limit_is_431(env):
    gw, _ = env
    headers = [(f"x-h{i}", "v" * 90) for i in range(MAX_HEADER // 90 + 10)]
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/echo/many-headers", headers)
    assert_gateway_error(r.status, r.body, 431, "header_too_large")


def test_head_sent_in_pieces_over_limit_is_431_before_it_ends(env):
    """A head that keeps coming in small reads is refused once it is over the limit,
    without waiting for its end (the gateway doesn't buffer an unbounded head)."""
    gw, up = env
    with RawHTTP(gw.port) as s:
        s.send(b"GET /echo/slow-big-head HTTP/1.1\r\nHost: x\r\n")
        line = b"x-filler: " + b"v" * 500 + b"\r\n"
        for _ in range(MAX_HEADER // len(line) + 3):
            try:
                s.send(line)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.005)
        r = s.read_response()  # no blank line was ever sent: the answer came mid-head
    assert_gateway_error(r.status, r.body, 431, "header_too_large")
    assert up.count("/echo/slow-big-head") == 0


def test_headers_under_limit_pass(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/echo/ok-header", [("x-big", "a" * (MAX_HEADER // 2))])
    assert r.status == 200


def test_body_too_large_content_length_is_413(env):
    gw, up = env
    with RawHTTP(gw.port) as s:
        # announce a too-large body; the gateway must answer without waiting for it
        s.send(build_request("POST", "/echo/too-big", [("Content-Length", str(MAX_BODY + 1))]))
        s.send(b"x" * 1024)
        r = s.read_response()
    assert_gateway_error(r.status, r.body, 413, "payload_too_large")
    assert up.count("/echo/too-big") == 0


def test_body_too_large_chunked_is_413(env):
    gw, _ = env
    chunk = b"x" * 8192
    with RawHTTP(gw.port) as s:
        s.send(build_request("POST", "/echo/too-big-chunked", [("Transfer-Encoding", "chunked")]))
        try:
            for _ in range(MAX_BODY // len(chunk) + 4):
                s.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway may stop reading once the limit is hit
        r = s.read_response()
    assert_gateway_error(r.status, r.body, 413, "payload_too_large")


def test_body_under_limit_passes(env):
    gw, _ = env
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.post("/echo/small", content=b"y" * (MAX_BODY // 2))
    assert r.status_code == 200 and r.json()["body_len"] == MAX_BODY // 2


def test_slowloris_header_read_timeout(env):
    gw, up = env
    with RawHTTP(gw.port, timeout=6) as s:
        t0 = time.monotonic()
        s.send(b"GET /echo/slowloris HTTP/1.1\r\nHost: x\r\n")
        got = b""
        try:
            for i in range(20):  # dribble one header every 0.25 s: never completes
                s.send(f"x-drip-{i}: 1\r\n".encode())
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = s.read_response()
            assert_gateway_error(r.status, r.body, 408, "request_header_timeout")
        except ConnectionClosed as exc:
            got = exc.partial
            assert got == b"", got  # closed without a (partial) response is acceptable
        elapsed = time.monotonic() - t0
        assert s.closed_by_peer(3)
    assert elapsed < 5.5, elapsed
    assert up.count("/echo/slowloris") == 0


def test_a_small_body_sent_after_its_head_is_served(env):
    """A client that writes the head and the body separately (httpx does) has its small
    body waited for before the request starts; the request is served as usual."""
    gw, up = env
    body = b'{"k": "' + b"v" * 2000 + b'"}'
    with RawHTTP(gw.port, timeout=5) as s:
        for _ in range(2):  # and again on the same connection
            s.send(
                b"POST /echo/split HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            time.sleep(0.2)
            s.send(body[:100])
            time.sleep(0.1)
            s.send(body[100:])
            r = s.read_response()
            assert r.status == 200 and r.json()["body_len"] == len(body)
    assert up.count("/echo/split") == 2


def test_a_small_body_that_never_comes_is_a_408(env):
    """The wait for a small body is bounded by the header-read deadline; the upstream
    never sees the request."""
    gw, up = env
    with RawHTTP(gw.port, timeout=6) as s:
        t0 = time.monotonic()
        s.send(b"POST /echo/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        r = s.read_response()
        assert_gateway_error(r.status, r.body, 408, "request_body_timeout")
        assert time.monotonic() - t0 < 3.5
        assert s.closed_by_peer(3)
    assert up.count("/echo/stalled") == 0


def test_idle_keepalive_connection_is_closed(env):
    gw, _ = env
    with RawHTTP(gw.port, timeout=5) as s:
        assert s.request("GET", "/echo/idle").status == 200
        t0 = time.monotonic()
        assert s.closed_by_peer(4.5), "idle keep-alive connection was not closed"
        assert time.monotonic() - t0 >= 1.0


def test_idle_connection_without_request_is_closed(env):
    gw, _ = env
    with RawHTTP(gw.port, timeout=5) as s:
        assert s.closed_by_peer(4.5)


def test_max_connections(harness):
    up = harness.upstream("maxconn")
    gw = harness.gateway(gateway_config([route("all", [up.host])], limits={"maxConnections": 2}))
    held = [RawHTTP(gw.port, timeout=5) for _ in range(2)]
    try:
        for h in held:
            assert h.request("GET", "/echo/held").status == 200
        # a third concurrent connection must not be served while two are open
        served = False
        try:
            with RawHTTP(gw.port, timeout=1.5) as extra:
                r = extra.request("GET", "/echo/extra")
                served = r.status == 200
                if not served:
                    assert 400 <= r.status < 600
        except (ConnectionClosed, ConnectionError, socket.timeout, TimeoutError, OSError):
            served = False
        assert not served, "a connection beyond maxConnections was served"
    finally:
        held[0].close()
    time.sleep(0.3)
    # a slot is free again: new connections work
    ok = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not ok:
        try:
            with RawHTTP(gw.port, timeout=2) as again:
                ok = again.request("GET", "/echo/again").status == 200
        except (ConnectionClosed, ConnectionError, socket.timeout, TimeoutError, OSError):
            time.sleep(0.2)
    held[1].close()
    assert ok, "gateway did not accept connections again after one was closed"
