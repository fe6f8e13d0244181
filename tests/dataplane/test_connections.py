"""Connection handling: keep-alive, pipelining, hop-by-hop headers,
X-Forwarded-*, Expect: 100-continue."""

from __future__ import annotations

import http.client
import socket

import httpx
import pytest

from tests.support.harness import RawHTTP, build_request, echo_header, echo_headers, gateway_config, route


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("conn")
    gw = module_harness.gateway(gateway_config([route("all", [up.host])]))
    yield gw, up


def test_many_requests_on_one_keepalive_connection(env):
    gw, _ = env
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.connect()
        local = conn.sock.getsockname()
        for i in range(100):
            conn.request("GET", f"/echo/ka/{i}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            assert f'"/echo/ka/{i}"'.encode() in body
            assert conn.sock is not None and conn.sock.getsockname() == local, "connection was not reused"
    finally:
        conn.close()


def test_keepalive_with_bodies_of_both_framings(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r1 = s.request("POST", "/echo/1", body=b"first")
        s.send(build_request("POST", "/echo/2", [("Transfer-Encoding", "chunked")]) + b"6\r\nsecond\r\n0\r\n\r\n")
        r2 = s.read_response()
        r3 = s.request("GET", "/echo/3")
    assert (r1.json()["body"], r2.json()["body"], r3.json()["path"]) == ("first", "second", "/echo/3")


def test_upstream_connections_are_reused(env):
    """Keep-alive to the backend: 30 sequential requests use few upstream connections."""
    gw, _ = env
    peer_ports = set()
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for _ in range(30):
            r = c.get("/echo/pool")
            assert r.status_code == 200
            peer_ports.add(r.json()["peer_port"])
    assert len(peer_ports) <= 3, f"{len(peer_ports)} upstream connections for 30 sequential requests"


def test_pipelined_requests_answered_in_order(env):
    gw, _ = env
    n = 10
    data = b"".join(
        build_request("POST" if i % 2 else "GET", f"/echo/pipe/{i}", body=(f"body{i}".encode() if i % 2 else b""))
        for i in range(n)
    )
    with RawHTTP(gw.port, timeout=10) as s:
        s.send(data)
        paths = []
        for i in range(n):
            r = s.read_response()
            assert r.status == 200
            echo = r.json()
            paths.append(echo["path"])
            if i % 2:
                assert echo["body"] == f"body{i}"
    assert paths == [f"/echo/pipe/{i}" for i in range(n)]


def test_pipelined_with_slow_first_request(env):
    gw, _ = env
    with RawHTTP(gw.port, timeout=10) as s:
        s.send(build_request("GET", "/slow?delay=0.5") + build_request("GET", "/echo/second"))
        first, second = s.read_response(), s.read_response()
    assert first.json()["slept"] == 0.5
    assert second.json()["path"] == "/echo/second"


def test_connection_close_is_honoured(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/echo/close", [("Connection", "close")])
        assert r.status == 200
        assert s.closed_by_peer(3)


def test_http10_request(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        s.send(b"GET /echo/ten HTTP/1.0\r\nHost: x\r\n\r\n")
        r = s.read_response()
        assert r.status == 200 and r.json()["path"] == "/echo/ten"
        assert s.closed_by_peer(3)


HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]


def test_hop_by_hop_request_headers_removed(env):
    gw, _ = env
    headers = [
        ("Connection", "keep-alive, X-Drop-Me"),
        ("X-Drop-Me", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "x-t"),
        ("Upgrade", "foo/1"),
        ("X-Stay", "yes"),
    ]
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/echo/hop", headers)
    assert r.status == 200
    names = {k for k, _ in echo_headers(r.json())}
    leaked = names & set(HOP_BY_HOP + ["x-drop-me"])
    # the gateway may open its own keep-alive connection upstream ("connection: keep-alive")
    conn_vals = [v.lower() for v in echo_header(r.json(), "connection")]
    assert all("x-drop-me" not in v and "upgrade" not in v for v in conn_vals), conn_vals
    leaked.discard("connection")
    assert not leaked, f"hop-by-hop headers forwarded: {leaked}"
    assert echo_header(r.json(), "x-stay") == ["yes"]


def test_hop_by_hop_response_headers_removed(env):
    gw, _ = env
    target = (
        "/echo/hopresp?header=Connection:x-resp-drop&header=x-resp-drop:1"
        "&header=Proxy-Connection:keep-alive&header=Keep-Alive:timeout=99&header=x-resp-stay:1"
    )
    with RawHTTP(gw.port) as s:
        r = s.request("GET", target)
    assert r.status == 200
    assert r.header("x-resp-drop") is None
    assert r.header("proxy-connection") is None
    assert "timeout=99" not in (r.header("keep-alive") or "")
    assert r.header("x-resp-stay") == "1"


def test_x_forwarded_headers(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        echo = s.request("GET", "/echo/xff", host="front.example:8443").json()
        echo2 = s.request("GET", "/echo/xff", [("X-Forwarded-For", "203.0.113.9")], host="front.example").json()
    assert echo_header(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert echo_header(echo, "x-forwarded-proto") == ["http"]
    assert echo_header(echo, "x-forwarded-host") == ["front.example:8443"]
    xff2 = ",".join(echo_header(echo2, "x-forwarded-for"))
    assert [p.strip() for p in xff2.split(",")] == ["203.0.113.9", "127.0.0.1"]


def test_x_forwarded_proto_not_spoofable(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        echo = s.request("GET", "/echo/xfp", [("X-Forwarded-Proto", "https")]).json()
    assert echo_header(echo, "x-forwarded-proto") == ["http"]


def test_expect_100_continue(env):
    gw, _ = env
    body = b"continued-body"
    with RawHTTP(gw.port, timeout=5) as s:
        s.send(build_request("POST", "/echo/expect", [("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
        interim = s.read_response()
        assert interim.status == 100, f"expected 100 Continue before sending the body, got {interim.status}"
        s.send(body)
        final = s.read_response()
        while final.status == 100:  # tolerate a duplicate interim response
            final = s.read_response()
    assert final.status == 200
    assert final.json()["body"] == "continued-body"


def test_half_closed_client_still_gets_response(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        s.send(build_request("GET", "/echo/halfclose"))
        s.sock.shutdown(socket.SHUT_WR)
        r = s.read_response()
    assert r.status == 200 and r.json()["path"] == "/echo/halfclose"
