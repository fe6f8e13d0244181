"""Streaming through the gateway: SSE event by event, chunked bodies both ways,
large bodies."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import pytest

from tests.support.harness import RawHTTP, build_request, gateway_config, route
from tests.support.upstream import big_body


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("stream")
    gw = module_harness.gateway(gateway_config([route("all", [up.host])]))
    client = httpx.Client(base_url=gw.url, timeout=20)
    yield gw, up, client
    client.close()


def test_sse_events_arrive_one_by_one(env):
    _, _, c = env
    n, interval = 4, 0.4
    received = []
    with c.stream("GET", f"/sse?n={n}&interval={interval}") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                received.append((time.time(), json.loads(line[6:])))
    assert [e["i"] for _, e in received] == list(range(n))
    first_rx = received[0][0]
    last_sent = received[-1][1]["t"]
    # the first event reached us long before the upstream produced the last one
    assert first_rx < last_sent - 2 * interval, (first_rx, last_sent)
    # and every event arrived shortly after the upstream sent it
    for rx, ev in received:
        assert rx - ev["t"] < 0.3, f"event {ev['i']} delayed by {rx - ev['t']:.2f}s"


def test_chunked_response_streams(env):
    _, _, c = env
    stamps = []
    with c.stream("GET", "/chunked?n=3&interval=0.4") as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("chunk "):
                _, i, t = line.split()
                stamps.append((time.time(), float(t)))
    assert len(stamps) == 3
    assert stamps[0][0] < stamps[-1][1] - 0.5


def test_chunked_request_body_is_streamed_to_upstream(env):
    _, _, c = env
    sent_last_at = None

    def body():
        nonlocal sent_last_at
        yield b"a" * 4096
        time.sleep(0.6)
        yield b"b" * 4096
        time.sleep(0.6)
        sent_last_at = time.time()
        yield b"c" * 4096

    r = c.post("/upload", content=body())
    assert r.status_code == 200
    data = r.json()
    assert data["total"] == 3 * 4096
    assert data["sha256"] == hashlib.sha256(b"a" * 4096 + b"b" * 4096 + b"c" * 4096).hexdigest()
    # the upstream handler got data before the client finished sending
    assert data["pieces"][0][0] < sent_last_at - 0.5, (data["pieces"], sent_last_at)


def test_raw_chunked_upload_with_extensions_and_trailer(env):
    gw, _, _ = env
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
    with RawHTTP(gw.port) as s:
        s.send(build_request("POST", "/echo/te", [("Transfer-Encoding", "chunked")]) + body)
        r = s.read_response()
    assert r.status == 200
    assert r.json()["body"] == "hello world"


@pytest.mark.parametrize("chunked", ["0", "1"])
def test_5mb_response(env, chunked):
    _, _, c = env
    size = 5 * 1024 * 1024
    r = c.get(f"/big?size={size}&chunked={chunked}")
    assert r.status_code == 200
    assert len(r.content) == size
    assert r.content == big_body(size)


def test_5mb_request_body(env):
    _, _, c = env
    payload = big_body(5 * 1024 * 1024 - 7)
    r = c.post("/upload", content=payload)
    assert r.status_code == 200
    assert r.json()["total"] == len(payload)
    assert r.json()["sha256"] == hashlib.sha256(payload).hexdigest()


def test_head_request_has_no_body(env):
    gw, _, _ = env
    with RawHTTP(gw.port) as s:
        r1 = s.request("HEAD", "/big?size=1000")
        r2 = s.request("GET", "/echo/after-head")  # framing intact after HEAD
    assert r1.status == 200 and r1.body == b""
    assert r2.json()["path"] == "/echo/after-head"


def test_upstream_connections_paused_by_the_client_are_pooled_reading(env):
    """The relay of a large response pauses reading from the upstream whenever the
    client falls behind, and the client's drain resumes it. When the read that paused it
    also ended the response, the upstream connection went back to the pool still paused,
    and the next request given it waited for a response it never read: a hang. Which read
    pauses is up to timing (about one large chunked response in forty did it here), so
    this makes many; ``test_client_errors`` has the deterministic case."""
    gw, _, _ = env
    size = 5 * 1024 * 1024
    with httpx.Client(base_url=gw.url, timeout=5) as c:
        for i in range(120):
            with c.stream("GET", f"/big?size={size}&chunked=1") as r:
                assert sum(len(b) for b in r.iter_raw()) == size
            r = c.get(f"/echo/after-big-{i}")  # on the upstream connection just pooled
            assert r.status_code == 200 and r.json()["path"] == f"/echo/after-big-{i}"
