"""Self-tests of the test upstream and of the harness (no gateway involved)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

import aiohttp
import httpx
import pytest

from tests.support.harness import (
    ConnectionClosed,
    Gateway,
    RawHTTP,
    build_request,
    free_port,
    gateway_config,
    metric_sum,
    parse_metrics,
    route,
    with_routes,
)
from tests.support.upstream import big_body

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def up(module_harness):
    return module_harness.upstream("self", nports=2)


def test_ready_line_and_two_ports(up):
    assert len(up.ports) == 2 and up.ports[0] != up.ports[1]
    for port in up.ports:
        r = httpx.get(f"http://127.0.0.1:{port}/echo")
        assert r.status_code == 200
        assert r.headers["x-upstream-name"] == "self"
        assert r.headers["x-upstream-port"] == str(port)
        assert r.json()["port"] == port


def test_echo_reports_request(up):
    r = httpx.post(
        f"{up.url}/echo/x?a=1&b=two",
        content=b"hello body",
        headers={"X-Custom": "v1"},
    )
    data = r.json()
    assert data["method"] == "POST"
    assert data["path"] == "/echo/x"
    assert data["query"] == "a=1&b=two"
    assert data["body"] == "hello body"
    assert data["body_len"] == 10
    assert data["upstream"] == "self"
    assert ["X-Custom", "v1"] in data["headers"]


def test_echo_status_delay_and_header(up):
    t0 = time.monotonic()
    r = httpx.get(f"{up.url}/echo?status=418&delay=0.3&header=x-a:1&header=x-b:two")
    assert r.status_code == 418
    assert time.monotonic() - t0 >= 0.3
    assert r.headers["x-a"] == "1" and r.headers["x-b"] == "two"


def test_echo_raw_path_is_byte_exact(up):
    target = "/echo/a%2Fb/%7e~!$&'()*+,;=:@/x?q=%20a+b&&=&x=%2F"
    with RawHTTP(up.port) as c:
        resp = c.request("GET", target)
    assert resp.status == 200
    data = resp.json()
    assert data["raw_path"] == target
    assert data["path"] + "?" + data["query"] == target


def test_sse_events_are_spaced(up):
    times = []
    with httpx.stream("GET", f"{up.url}/sse?n=3&interval=0.3") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                times.append((time.time(), json.loads(line[6:])))
    assert [e["i"] for _, e in times] == [0, 1, 2]
    assert times[2][1]["t"] - times[0][1]["t"] >= 0.55
    # the first event was received long before the last one was produced
    assert times[0][0] < times[2][1]["t"] - 0.4


def test_chunked_response(up):
    with RawHTTP(up.port) as c:
        resp = c.request("GET", "/chunked?n=4&interval=0.01")
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.complete
    assert resp.body.count(b"chunk ") == 4


@pytest.mark.parametrize("chunked", ["0", "1"])
def test_big(up, chunked):
    size = 1_000_003
    r = httpx.get(f"{up.url}/big?size={size}&chunked={chunked}")
    assert r.content == big_body(size)


def test_slow(up):
    t0 = time.monotonic()
    r = httpx.get(f"{up.url}/slow?delay=0.4")
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.4


@pytest.mark.parametrize("chunked", ["0", "1"])
def test_die_aborts_mid_body(up, chunked):
    with RawHTTP(up.port) as c:
        resp = c.request("GET", f"/die?chunked={chunked}")
        assert resp.status == 200
        assert not resp.complete
        assert 0 < len(resp.body) < 100_000


def test_reset_sends_nothing(up):
    with RawHTTP(up.port) as c:
        c.send(build_request("GET", "/reset"))
        with pytest.raises(ConnectionClosed) as ei:
            c.read_response()
        assert ei.value.partial == b""


def test_status_endpoint(up):
    for code in (200, 404, 503):
        assert httpx.get(f"{up.url}/status/{code}").status_code == code
    assert httpx.get(f"{up.url}/status/204").status_code == 204


def test_websocket_echo(up):
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{up.url}/ws") as ws:
                await ws.send_str("hi")
                assert (await ws.receive(timeout=5)).data == "hi"
                await ws.send_bytes(b"\x00\x01")
                assert (await ws.receive(timeout=5)).data == b"\x00\x01"

    asyncio.run(go())


def test_count_and_flaky(up):
    key = f"k{time.monotonic_ns()}"
    codes = [httpx.get(f"{up.url}/flaky?fail=2&key={key}").status_code for _ in range(4)]
    assert codes == [503, 503, 200, 200]
    assert up.count("/flaky") >= 4
    path = f"/echo/count-{key}"
    for _ in range(3):
        httpx.get(f"{up.url}{path}")
    assert up.count(path) == 3
    assert ["GET", path] in up.request_log()


def test_upload_reports_streaming(up):
    def body():
        yield b"a" * 1000
        time.sleep(0.5)
        yield b"b" * 1000

    t_end = None

    def gen():
        nonlocal t_end
        yield from body()
        t_end = time.time()

    r = httpx.post(f"{up.url}/upload", content=gen())
    data = r.json()
    assert data["total"] == 2000
    assert data["pieces"][0][0] < t_end - 0.3


def test_tls_upstream(harness):
    tls = harness.tls()
    u = harness.upstream("tlsup", tls=tls)
    r = httpx.get(f"https://localhost:{u.port}/echo", verify=tls.client_context())
    assert r.status_code == 200 and r.json()["upstream"] == "tlsup"
    assert u.count("/echo") == 1


# --------------------------------------------------------------------------- #
# harness pieces
# --------------------------------------------------------------------------- #
def test_free_port_is_bindable():
    p = free_port()
    s = socket.socket()
    s.bind(("127.0.0.1", p))
    s.close()


def test_parse_metrics():
    text = (
        "# HELP x y\n# TYPE agentgw_requests_total counter\n"
        'agentgw_requests_total{route="r1",status="200",method="GET"} 3\n'
        'agentgw_requests_total{route="r2",status="200",method="GET"} 2.0\n'
        'agentgw_requests_total{route="r2",status="404",method="GET"} 1\n'
        "agentgw_active_connections 4\n"
        'weird{a="x\\"y"} 1e3\n'
    )
    s = parse_metrics(text)
    assert metric_sum(s, "agentgw_requests_total") == 6
    assert metric_sum(s, "agentgw_requests_total", status="200") == 5
    assert metric_sum(s, "agentgw_active_connections") == 4
    assert metric_sum(s, "nope") is None
    assert metric_sum(s, "weird", a='x\\"y') == 1000


def test_config_builder_shapes():
    r = route(
        "r1",
        ["127.0.0.1:1", ("127.0.0.1:2", 3)],
        prefix="/api",
        method="GET",
        headers={"x-env": "prod", "x-t": {"regex": "^a"}},
        query={"debug": "1"},
        hostnames=["a.example.com"],
        policies={"directResponse": {"body": "x", "status": 200}},
    )
    assert r["matches"][0]["path"] == {"pathPrefix": "/api"}
    assert r["matches"][0]["headers"][1] == {"name": "x-t", "value": {"regex": "^a"}}
    assert r["matches"][0]["query"] == [{"name": "debug", "value": {"exact": "1"}}]
    assert r["backends"][1] == {"host": "127.0.0.1:2", "weight": 3}
    cfg = gateway_config([r], limits={"maxHeaderBytes": 2048, "maxBodyBytes": 10})
    addrs = {cfg["config"][k] for k in ("adminAddr", "statsAddr", "readinessAddr")}
    assert len(addrs) == 3 and all(a.startswith("127.0.0.1:") for a in addrs)
    assert cfg["config"]["limits"] == {"maxHeaderBytes": 2048}
    assert cfg["frontendPolicies"]["http"]["maxBufferSize"] == 10
    cfg2 = with_routes(cfg, [])
    assert cfg2["binds"][0]["listeners"][0]["routes"] == [] and cfg["binds"][0]["listeners"][0]["routes"]


FAKE = [sys.executable, "-m", "tests.support.fake_gateway"]


def test_gateway_lifecycle_and_reload_with_fake(harness):
    cfg = gateway_config([route("r", ["127.0.0.1:1"])])
    gw = harness.gateway(cfg, command=FAKE)
    assert gw.is_ready()
    assert httpx.get(gw.url).text == "fake"
    assert gw.config_dump()["binds"][0]["port"] == gw.port
    cfg2 = with_routes(cfg, [route("r2", ["127.0.0.1:2"])])
    assert gw.reload(cfg2) == "ok"
    assert gw.config["binds"][0]["listeners"][0]["routes"][0]["name"] == "r2"
    assert gw.reload("not: [valid", expect="failed") == "failed"
    assert gw.metric("agentgw_config_reloads_total", result="failed") == 1
    assert "fake gateway started" in gw.stdout_text()
    assert gw.stop() == 0
    assert not gw.has_traceback()


def test_gateway_traceback_is_detected(tmp_path):
    cfg = gateway_config([route("r", ["127.0.0.1:1"])])
    gw = Gateway(tmp_path / "gw", cfg, command=FAKE, env={"FAKE_TRACEBACK": "1"})
    try:
        assert gw.has_traceback()
    finally:
        gw.stop()


def test_gateway_startup_failure_shows_logs(tmp_path):
    cfg = gateway_config([route("r", ["127.0.0.1:1"])])
    cmd = [sys.executable, "-c", "import sys; print('bad config here', file=sys.stderr); sys.exit(3)", "--"]
    with pytest.raises(AssertionError, match="bad config here"):
        Gateway(tmp_path / "gw", cfg, command=cmd)


def test_raw_http_pipelining_parser(up):
    with RawHTTP(up.port) as c:
        c.send(build_request("GET", "/echo/1") + build_request("GET", "/echo/2") + build_request("HEAD", "/echo/3"))
        r1, r2 = c.read_response(), c.read_response()
        r3 = c.read_response("HEAD")
    assert r1.json()["path"] == "/echo/1" and r2.json()["path"] == "/echo/2"
    assert r3.status == 200 and r3.body == b""
