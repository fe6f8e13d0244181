"""HTTP/2 from clients: h2c with prior knowledge and h2 over TLS (ALPN), on the same
ports and through the same pipeline as HTTP/1.1 (engine/h2server.py).

Real processes: an ``agentgw`` routing to the test upstream, driven by ``curl``, by
``httpx`` with ``http2=True`` and by a raw client built with the ``h2`` library (for the
defences: rapid reset, floods, invalid frames)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httpx
import pytest
from h2.errors import ErrorCodes

from tests.support.harness import RawHTTP, free_port, gateway_config, route, wait_for
from tests.support.upstream import big_body

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def gw(harness, upstream):
    routes = [
        route("direct", [], prefix="/direct", policies={"directResponse": {"body": "hello h2", "status": 203}}),
        route(
            "modified",
            [upstream.host],
            prefix="/mod",
            policies={"requestHeaderModifier": {"set": {"x-added": "yes"}, "remove": ["x-drop"]}},
        ),
        route("r", [upstream.host]),
    ]
    return harness.gateway(gateway_config(routes))


@pytest.fixture
def tls_gw(harness, upstream, tls_files):
    return harness.gateway(gateway_config([route("r", [upstream.host])], protocol="HTTPS", tls=tls_files))


def _curl(*args: str) -> tuple[str, dict[str, str], bytes]:
    """``curl -i``: (status line, headers, body)."""
    r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", *args], capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr.decode()
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def _comparable(echo: bytes) -> dict:
    """An /echo answer minus what differs per connection."""
    doc = json.loads(echo)
    doc.pop("peer_port")
    return doc


# -- requests through h2c and h2 over TLS -----------------------------------------------
@needs_curl
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_h2c_prior_knowledge_answers_as_http11(gw, method):
    url = f"http://127.0.0.1:{gw.port}/echo/x?a=1&b=2"
    body = ["--data-binary", "hello body"] if method == "POST" else []
    line2, h2_headers, h2_body = _curl("--http2-prior-knowledge", *body, url)
    line1, _, h1_body = _curl("--http1.1", *body, url)
    assert line2.startswith("HTTP/2 200"), line2
    assert line1.startswith("HTTP/1.1 200"), line1
    assert _comparable(h2_body) == _comparable(h1_body)
    echo = json.loads(h2_body)
    assert echo["method"] == method
    assert echo["query"] == "a=1&b=2"
    assert dict(echo["headers"])["host"] == f"127.0.0.1:{gw.port}"
    if method == "POST":
        assert echo["body"] == "hello body"
    # no connection-specific fields on an HTTP/2 response
    for k in ("connection", "keep-alive", "transfer-encoding"):
        assert k not in h2_headers
    assert h2_headers["x-upstream-name"] == "up"
    assert not gw.has_traceback(), gw.logs()


@needs_curl
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_h2_over_tls_is_negotiated_with_alpn(tls_gw, tls_files, method):
    url = f"https://localhost:{tls_gw.port}/echo/tls?q=1"
    body = ["--data-binary", "over tls"] if method == "POST" else []
    common = ["--cacert", str(tls_files.ca_cert), *body, url]
    line2, _, h2_body = _curl("--http2", *common)
    line1, _, h1_body = _curl("--http1.1", *common)
    assert line2.startswith("HTTP/2 200"), line2
    assert line1.startswith("HTTP/1.1 200"), line1
    assert _comparable(h2_body) == _comparable(h1_body)
    # the default offer is h2, then http/1.1
    ctx = tls_files.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_gw.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "h2"
    ctx = tls_files.client_context()
    ctx.set_alpn_protocols(["http/1.1"])
    with RawHTTP(tls_gw.port, ssl_context=ctx, server_hostname="localhost") as c:
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        assert c.request("GET", "/echo").status == 200
    assert not tls_gw.has_traceback(), tls_gw.logs()


@needs_curl
def test_h2_on_an_https_listener_sharing_a_port_by_sni(harness, upstream, tls_files):
    """An HTTPS listener next to a TLS passthrough one (TLS terminated after the SNI
    look-up, engine/tcpproxy.py): ALPN h2 there too."""
    port = free_port()
    cfg = {
        "config": {
            "adminAddr": f"127.0.0.1:{free_port()}",
            "statsAddr": f"127.0.0.1:{free_port()}",
            "readinessAddr": f"127.0.0.1:{free_port()}",
            "logging": {"format": "json"},
        },
        "gateways": {
            "secure": {
                "port": port,
                "listeners": [
                    {
                        "name": "web",
                        "hostname": "static.example.com",
                        "protocol": "HTTPS",
                        "tls": {"cert": str(tls_files.cert), "key": str(tls_files.key)},
                    },
                    {"name": "pass", "hostname": "*", "protocol": "TLS"},
                ],
            }
        },
        "tcpRoutes": [{"gateways": "secure/pass", "backends": [{"host": upstream.host}]}],
        "routes": [{"gateways": "secure/web", "policies": {"directResponse": {"status": 200, "body": "sni h2"}}}],
    }
    gw = harness.gateway(cfg)
    line, _, body = _curl(
        "--http2",
        "--cacert",
        str(tls_files.ca_cert),
        "--resolve",
        f"static.example.com:{port}:127.0.0.1",
        f"https://static.example.com:{port}/",
    )
    assert line.startswith("HTTP/2 200"), line
    assert body == b"sni h2"
    assert not gw.has_traceback(), gw.logs()


def test_head_and_expect_continue(gw):
    with _h2c_client() as c:
        r = c.head(f"http://127.0.0.1:{gw.port}/echo/head")
        assert r.status_code == 200 and r.content == b""
        assert int(r.headers["content-length"]) > 0
    # Expect: 100-continue: the interim 100 comes when the body is wanted, then the answer
    cli = RawH2(gw.port)
    sid = cli.request("POST", "/echo/expect", end=False, extra=[("expect", "100-continue"), ("content-length", "5")])
    statuses = []
    end = time.monotonic() + 5
    while "100" not in statuses and time.monotonic() < end:
        for ev in cli.events(0.05):
            if isinstance(ev, (h2.events.InformationalResponseReceived, h2.events.ResponseReceived)):
                statuses.append(dict(ev.headers)[":status"])
    assert statuses == ["100"]
    cli.conn.send_data(sid, b"hello", end_stream=True)
    cli.flush()
    body = b""
    ended = False
    while not ended and time.monotonic() < end:
        for ev in cli.events(0.05):
            if isinstance(ev, h2.events.ResponseReceived):
                statuses.append(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                ended = True
    cli.close()
    assert statuses == ["100", "200"]
    assert json.loads(body)["body"] == "hello"


def test_httpx_http2_over_tls(tls_gw, tls_files):
    with httpx.Client(http2=True, verify=tls_files.client_context()) as c:
        r = c.post(f"https://localhost:{tls_gw.port}/echo/httpx", content=b"x" * 1000)
    assert r.http_version == "HTTP/2"
    assert r.status_code == 200
    assert r.json()["body_len"] == 1000


# -- multiplexing, streaming, flow control ------------------------------------------------
def test_50_concurrent_requests_share_one_connection(gw):
    async def run():
        transport = httpx.AsyncHTTPTransport(http1=False, http2=True)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{gw.port}") as c:
            t0 = time.monotonic()
            pending = asyncio.gather(
                *(c.post(f"/echo/m{i}?delay=0.3", content=f"body {i}".encode()) for i in range(50))
            )
            # while the 50 are in flight, the gateway holds one client connection
            await asyncio.sleep(0.15)
            open_conns = await asyncio.to_thread(gw.metric, "agentgw_active_connections")
            rs = await pending
            return rs, time.monotonic() - t0, open_conns

    rs, elapsed, open_conns = asyncio.run(run())
    assert all(r.status_code == 200 for r in rs)
    assert all(r.http_version == "HTTP/2" for r in rs)
    for i, r in enumerate(rs):
        echo = r.json()
        assert echo["path"] == f"/echo/m{i}"
        assert echo["body"] == f"body {i}"
    # served side by side (50 × 0.3 s one after the other would take 15 s)
    assert elapsed < 5.0, elapsed
    # one client connection carried them all (the gateway serves no other client here)
    assert open_conns == 1, open_conns
    assert not gw.has_traceback(), gw.logs()


def _h2c_client() -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(http1=False, http2=True), timeout=10)


def test_sse_is_relayed_event_by_event(gw):
    arrivals = []
    with _h2c_client() as c:
        with c.stream("GET", f"http://127.0.0.1:{gw.port}/sse?n=4&interval=0.4") as r:
            assert r.http_version == "HTTP/2"
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data:"):
                    arrivals.append((time.monotonic(), json.loads(line[5:])["i"]))
    assert [i for _, i in arrivals] == [0, 1, 2, 3]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
    assert all(g > 0.2 for g in gaps), gaps  # each event as the upstream sent it


def test_big_bodies_both_ways_follow_flow_control(gw):
    size = 6 * 1024 * 1024  # far past the client's and the gateway's windows
    with _h2c_client() as c:
        r = c.get(f"http://127.0.0.1:{gw.port}/big?size={size}")
        assert r.http_version == "HTTP/2"
        assert r.content == big_body(size)
        payload = bytes(range(256)) * (3 * 1024 * 1024 // 256)  # past the body's high-water mark
        r = c.post(f"http://127.0.0.1:{gw.port}/echo/up", content=payload)
        assert r.status_code == 200
        assert r.json()["body_len"] == len(payload)


def test_slow_reader_pauses_the_upstream_and_resumes(gw):
    """A raw client with a small window that reads slowly still gets the whole body."""
    size = 2 * 1024 * 1024
    cli = RawH2(gw.port, window=16384)
    sid = cli.request("GET", f"/big?size={size}")
    got = bytearray()
    deadline = time.monotonic() + 20
    ended = False
    while not ended and time.monotonic() < deadline:
        for ev in cli.events():
            if isinstance(ev, h2.events.DataReceived):
                got += ev.data
                cli.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                ended = True
        cli.flush()
        time.sleep(0.001)
    cli.close()
    assert ended and bytes(got) == big_body(size)


def test_http11_still_served_on_the_same_port(gw):
    with RawHTTP(gw.port) as c:
        r = c.request("GET", "/echo/one", headers=[("Host", "gw.test")])
        assert r.status == 200
        assert r.json()["http_version"] == "1.1"
        r = c.request("POST", "/echo/two", headers=[("Host", "gw.test")], body=b"abc")
        assert r.json()["body"] == "abc"
    # a client that sends its request line a byte at a time (the preface check waits
    # for four bytes, then it is HTTP/1.1)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        for b in b"GET /echo/slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[:6]:
            s.sendall(bytes([b]))
            time.sleep(0.02)
        s.sendall(b"GET /echo/slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[6:])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


# -- policies and observability ----------------------------------------------------------
def test_policies_apply_on_h2(gw):
    with _h2c_client() as c:
        r = c.get(f"http://127.0.0.1:{gw.port}/direct")
        assert r.http_version == "HTTP/2"
        assert (r.status_code, r.text) == (203, "hello h2")
        r = c.get(f"http://127.0.0.1:{gw.port}/mod/x", headers={"x-drop": "1", "cookie": "a=1"})
        assert r.status_code == 200
        headers = dict(r.json()["headers"])
        assert headers["x-added"] == "yes"
        assert "x-drop" not in headers
        assert headers["cookie"] == "a=1"


def test_access_log_and_metrics_record_h2_requests(gw):
    before = gw.metric("agentgw_requests_total") or 0.0
    marker = f"/echo/log-{time.monotonic_ns()}"
    with _h2c_client() as c:
        r = c.post(f"http://127.0.0.1:{gw.port}{marker}?q=1", content=b"abcd")
        assert r.http_version == "HTTP/2" and r.status_code == 200
    entry = gw.wait_access_log(lambda e: str(e.get("path", "")).startswith(marker))
    assert entry["method"] == "POST"
    assert entry["path"] == marker + "?q=1"
    assert int(entry["status"]) == 200
    assert entry["route"] == "r"
    assert entry["host"] == f"127.0.0.1:{gw.port}"
    assert entry["bytes_received"] == 4
    assert entry["bytes_sent"] == len(r.content)
    wait_for(lambda: (gw.metric("agentgw_requests_total") or 0.0) >= before + 1, message="request counted")


# -- limits and defences -----------------------------------------------------------------
class RawH2:
    """A minimal HTTP/2 client over a socket (the ``h2`` library), for misbehaving."""

    def __init__(self, port: int, window: int | None = None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.port = port
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method: str, path: str, end: bool = True, extra=()) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "gw.test"), *extra]
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()
        return sid

    def events(self, timeout: float = 0.05) -> list:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (TimeoutError, BlockingIOError):
            return []
        if not data:
            raise ConnectionResetError("closed")
        return self.conn.receive_data(data)

    def wait_goaway(self, timeout: float = 5.0):
        """The GOAWAY's event, or "closed" if the gateway closed without one."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                for ev in self.events(0.2):
                    if isinstance(ev, h2.events.ConnectionTerminated):
                        return ev
            except (ConnectionResetError, BrokenPipeError):
                return "closed"
            except h2.exceptions.ProtocolError:
                continue
        return None

    def close(self) -> None:
        self.sock.close()


def _still_serves(gw) -> None:
    with _h2c_client() as c:
        assert c.get(f"http://127.0.0.1:{gw.port}/echo/after").status_code == 200
    assert not gw.has_traceback(), gw.logs()


def _reset_one(cli, i, _):
    sid = cli.conn.get_next_available_stream_id()
    cli.conn.send_headers(sid, [(":method", "GET"), (":path", "/echo/rr"), (":scheme", "http"), (":authority", "a")])
    cli.conn.reset_stream(sid, ErrorCodes.CANCEL)
    cli.flush()


def _ping_one(cli, i, _):
    cli.conn.ping(i.to_bytes(8, "big"))
    cli.flush()


def _window_update_one(cli, i, _):  # no DATA sent to justify it (bounded per DATA frame sent)
    cli.conn.increment_flow_control_window(1)
    cli.flush()


def _priority_one(cli, i, _):
    cli.conn.prioritize(1 + 2 * (i % 50), weight=1 + i % 200)
    cli.flush()


def _empty_data_one(cli, i, sid):  # carries nothing, ends nothing, on an open request stream
    cli.conn.send_data(sid, b"")
    cli.flush()


def _unknown_one(cli, i, _):
    cli.sock.sendall(bytes.fromhex("000000fa0000000000") * 10)  # type 0xfa, stream 0, empty


@pytest.mark.parametrize(
    "send_one, n, prepare",
    [
        pytest.param(_reset_one, 1000, None, id="rapid-reset"),  # CVE-2023-44487
        pytest.param(_ping_one, 1000, None, id="ping"),
        pytest.param(_window_update_one, 2000, None, id="window-update"),
        pytest.param(_priority_one, 2000, None, id="priority"),
        pytest.param(_empty_data_one, 200, lambda cli: cli.request("POST", "/echo/empty", end=False), id="empty-data"),
        pytest.param(_unknown_one, 100, None, id="unknown-frames"),
    ],
)
def test_a_flood_gets_goaway_and_the_gateway_serves_on(gw, send_one, n, prepare):
    """``n`` frames of one flood-prone kind: GOAWAY ENHANCE_YOUR_CALM, and other clients
    are still served, with no traceback."""
    cli = RawH2(gw.port)
    ctx = prepare(cli) if prepare is not None else None
    try:
        for i in range(n):
            send_one(cli, i, ctx)
    except (ConnectionResetError, BrokenPipeError, h2.exceptions.ProtocolError):
        pass
    goaway = cli.wait_goaway()
    cli.close()
    assert goaway is not None and goaway != "closed", goaway  # a GOAWAY, not just a cut connection
    assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    _still_serves(gw)


def test_a_large_download_is_no_window_update_flood(gw):
    """A client that acknowledges every DATA frame it reads stays within the bounds."""
    with _h2c_client() as c:
        r = c.get(f"http://127.0.0.1:{gw.port}/big?size={8 * 1024 * 1024}")
        assert r.status_code == 200 and len(r.content) == 8 * 1024 * 1024


@pytest.mark.parametrize(
    "first",
    [
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 40,  # a broken preface
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64,  # garbage after a good one
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000004040000000000") + b"\x00\x03\x00\x00",  # bad SETTINGS
    ],
)
def test_invalid_frames_get_goaway_and_no_traceback(gw, first):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(first)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    # what came back, if anything, is HTTP/2 frames ending in a GOAWAY (type 7)
    frames = []
    i = 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i : i + 3], "big")
        frames.append((data[i + 3], data[i + 9 : i + 9 + length]))
        i += 9 + length
    if data:
        assert frames and frames[-1][0] == 7, data[:200]
        code = int.from_bytes(frames[-1][1][4:8], "big")
        assert code in (ErrorCodes.PROTOCOL_ERROR, ErrorCodes.FRAME_SIZE_ERROR), code
    _still_serves(gw)


def _frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


def _read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_continuation_flood_gets_goaway(gw):
    """A header block that never ends, one CONTINUATION after another (CVE-2024-27316
    style): GOAWAY once it passes the header list limit, long before memory matters."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(PREFACE + _frame(4, 0, 0, b""))
        s.sendall(_frame(1, 0, 1, b"\x82\x84\x86" + b"\x00" * 100))  # HEADERS, no END_HEADERS
        try:
            for _ in range(200):
                s.sendall(_frame(9, 0, 1, b"\x40\x01a\x01b" * 2000))
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = _read_all(s)
    goaways = [p for t, _, _, p in _frames(data) if t == 7]
    assert goaways, data[:200]
    assert int.from_bytes(goaways[-1][4:8], "big") in (ErrorCodes.ENHANCE_YOUR_CALM, ErrorCodes.PROTOCOL_ERROR)
    _still_serves(gw)


def test_oversized_frame_is_refused_from_its_header(gw):
    """A DATA frame announced at 16 MiB (over SETTINGS_MAX_FRAME_SIZE) is refused when
    its header arrives, not buffered."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(PREFACE + _frame(4, 0, 0, b"") + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"x" * 100)
        data = _read_all(s)
    goaways = [p for t, _, _, p in _frames(data) if t == 7]
    assert goaways and int.from_bytes(goaways[-1][4:8], "big") == ErrorCodes.FRAME_SIZE_ERROR
    _still_serves(gw)


def test_unread_request_body_is_dropped_and_the_connection_goes_on(gw):
    """A route that answers without reading the body: the rest of the body is taken
    and dropped (httpx sends it all before it reads the answer), and the next stream
    works. Past DISCARD_MAX the stream is reset instead (NO_ERROR)."""
    with _h2c_client() as c:
        r = c.post(f"http://127.0.0.1:{gw.port}/direct", content=b"z" * (900 * 1024))
        assert (r.status_code, r.text) == (203, "hello h2")
        r = c.get(f"http://127.0.0.1:{gw.port}/echo/next")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
    cli = RawH2(gw.port)
    sid = cli.request("POST", "/direct", end=False)
    reset = None
    end = time.monotonic() + 10
    while reset is None and time.monotonic() < end:
        if cli.conn.local_flow_control_window(sid) > 0:
            cli.conn.send_data(sid, b"y" * min(16384, cli.conn.local_flow_control_window(sid)))
            cli.flush()
        for ev in cli.events(0.01):
            if isinstance(ev, h2.events.StreamReset):
                reset = ev
            elif isinstance(ev, h2.events.DataReceived):
                cli.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        cli.flush()
    cli.close()
    assert reset is not None and reset.error_code == ErrorCodes.NO_ERROR
    assert not gw.has_traceback(), gw.logs()


def test_bad_header_answers_on_the_stream_only(gw):
    cli = RawH2(gw.port)
    big = [("x-big", "v" * 70000)]
    sid = cli.request("GET", "/echo/bighead", extra=[("x-a", "1")] * 150)
    statuses = {}
    end = time.monotonic() + 5
    while sid not in statuses and time.monotonic() < end:
        for ev in cli.events():
            if isinstance(ev, h2.events.ResponseReceived):
                statuses[ev.stream_id] = dict(ev.headers)[":status"]
        cli.flush()
    assert statuses[sid] == "431"
    # the connection still works for the next stream
    sid2 = cli.request("GET", "/echo/fine")
    end = time.monotonic() + 5
    while sid2 not in statuses and time.monotonic() < end:
        for ev in cli.events():
            if isinstance(ev, h2.events.ResponseReceived):
                statuses[ev.stream_id] = dict(ev.headers)[":status"]
        cli.flush()
    assert statuses[sid2] == "200"
    # a header block past the HPACK limit ends the connection (GOAWAY)
    try:
        cli.request("GET", "/echo/huge", extra=big * 2)
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert cli.wait_goaway() is not None
    cli.close()
    _still_serves(gw)


def test_connect_refused_and_limits_advertised(gw):
    cli = RawH2(gw.port)
    sid = cli.conn.get_next_available_stream_id()
    cli.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "example.com:443")])
    cli.flush()
    status = None
    end = time.monotonic() + 5
    while status is None and time.monotonic() < end:
        for ev in cli.events():
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[":status"]
    assert status == "405"
    # our SETTINGS: at most 100 streams at once, a bounded header list, default frames
    assert cli.conn.remote_settings.max_concurrent_streams == 100
    assert cli.conn.remote_settings.max_header_list_size is not None
    assert cli.conn.remote_settings.max_frame_size == 16384
    cli.close()
    _still_serves(gw)


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Raw HTTP/2 frames: (type, flags, stream id, payload)."""
    out = []
    i = 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i : i + 3], "big")
        sid = int.from_bytes(data[i + 5 : i + 9], "big") & 0x7FFFFFFF
        out.append((data[i + 3], data[i + 4], sid, data[i + 9 : i + 9 + length]))
        i += 9 + length
    return out


def test_drain_finishes_streams_in_flight_with_goaway(harness, upstream):
    """SIGTERM: GOAWAY (NO_ERROR, the last stream taken) at once, the stream in flight
    answered, then the connection closes. Read as raw frames: the ``h2`` library takes
    no frame after a GOAWAY (curl, browsers and Go do)."""
    gw = harness.gateway(gateway_config([route("r", [upstream.host])]))
    cli = RawH2(gw.port)
    sid = cli.request("GET", "/echo/slow?delay=1.5")
    time.sleep(0.3)
    gw.proc.send_signal(15)
    data = b""
    cli.sock.settimeout(10)
    try:
        while chunk := cli.sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    cli.close()
    frames = _frames(data)
    kinds = [(t, s) for t, _, s, _ in frames]
    goaways = [p for t, _, _, p in frames if t == 7]
    assert goaways, kinds
    assert int.from_bytes(goaways[0][:4], "big") == sid  # last stream id
    assert int.from_bytes(goaways[0][4:8], "big") == 0  # NO_ERROR
    assert kinds.index((7, 0)) < kinds.index((1, sid))  # GOAWAY before the answer
    assert any(t == 0 and s == sid and f & 1 for t, f, s, _ in frames), kinds  # DATA, END_STREAM
    gw.proc.wait(10)
    assert not gw.has_traceback(), gw.logs()


def test_header_read_and_idle_timeouts_close_with_goaway(harness, upstream):
    gw = harness.gateway(
        gateway_config([route("r", [upstream.host])], limits={"headerReadTimeout": "1s", "idleTimeout": "2s"})
    )
    # a preface and SETTINGS, then nothing: the header-read timeout
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(PREFACE + _frame(4, 0, 0, b""))
        data = _read_all(s, 10)
        waited = time.monotonic() - t0
    assert 0.5 < waited < 4.0, waited
    assert any(t == 7 for t, _, _, _ in _frames(data))
    # half a header block, then nothing: the header-read timeout too
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(PREFACE + _frame(4, 0, 0, b"") + _frame(1, 0, 1, b"\x82\x84\x86"))
        data = _read_all(s, 10)
        waited = time.monotonic() - t0
    assert 0.5 < waited < 4.0, waited
    # after a request: the idle timeout
    cli = RawH2(gw.port)
    sid = cli.request("GET", "/echo/idle")
    t0 = time.monotonic()
    ended = False
    while not ended and time.monotonic() - t0 < 5:
        ended = any(isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid for ev in cli.events(0.1))
    assert ended
    goaway = cli.wait_goaway(10)
    waited = time.monotonic() - t0
    cli.close()
    assert goaway is not None and 1.5 < waited < 5.0, (goaway, waited)
    assert not gw.has_traceback(), gw.logs()


@pytest.mark.parametrize(
    "fields, end",
    [
        ([(":method", "GET /admin"), (":path", "/echo/public")], True),  # a method that is no token
        ([(":method", "GET"), (":path", "/echo/a b")], True),  # a space in the target
        ([(":method", "GET"), (":path", "/echo/\x7f")], True),  # a control character
        ([(":method", "GET"), (":path", "/echo/x"), ("x-a", "v\x01w")], True),  # one in a value
        ([(":method", "POST"), (":path", "/echo/x"), ("content-length", "5")], True),  # no body after all
        ([(":method", "HEAD"), (":path", "/echo/x"), ("content-length", "9999")], False),
    ],
)
def test_a_request_the_upstream_would_read_otherwise_is_refused(gw, upstream, fields, end):
    """What reaches an HTTP/1.1 upstream as a request line and fields must read there as
    the gateway read it: malformed pseudo-headers, control characters and a declared
    length no body follows are 400, and nothing reaches the upstream."""
    before = upstream.counts()
    cli = RawH2(gw.port)
    sid = cli.conn.get_next_available_stream_id()
    headers = [fields[0], fields[1], (":scheme", "http"), (":authority", "gw.test"), *fields[2:]]
    cli.conn.send_headers(sid, headers, end_stream=end)
    cli.flush()
    status = None
    deadline = time.monotonic() + 5
    while status is None and time.monotonic() < deadline:
        for ev in cli.events(0.2):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                status = dict(ev.headers)[":status"]
    cli.close()
    assert status == "400", status
    assert upstream.counts() == before


@pytest.mark.parametrize("stalled", ["response waits for window", "request body unfinished"])
def test_a_client_half_close_does_not_hold_streams_it_can_no_longer_finish(gw, stalled):
    """A client that shuts its side of the connection can send neither the WINDOW_UPDATE a
    response waits for nor the rest of a request body: those streams end at once, and the
    gateway closes the connection instead of holding it (CLOSE-WAIT) for good."""
    cli = RawH2(gw.port, window=1 if stalled == "response waits for window" else None)
    try:
        if stalled == "response waits for window":
            cli.request("GET", "/echo/stalled")
        else:
            cli.request("POST", "/echo/stalled", end=False, extra=[("content-length", "10")])
        time.sleep(0.3)  # (the gateway has the request)
        cli.sock.shutdown(socket.SHUT_WR)
        start = time.monotonic()
        _read_all(cli.sock, timeout=10.0)  # returns at the gateway's close (or after 10 s)
        assert time.monotonic() - start < 5.0
    finally:
        cli.close()
    _still_serves(gw)


_GOOD = [(":method", "GET"), (":scheme", "http"), (":authority", "gw.test"), (":path", "/echo/m")]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param([*_GOOD, ("X-Upper", "1")], id="uppercase name"),
        pytest.param([*_GOOD, ("connection", "keep-alive")], id="connection-specific field"),
        pytest.param([*_GOOD, ("transfer-encoding", "chunked")], id="transfer-encoding"),
        pytest.param([*_GOOD, ("te", "gzip")], id="te other than trailers"),
        pytest.param([*_GOOD, (":status", "200")], id="response pseudo-header"),
        pytest.param([*_GOOD, (":foo", "x")], id="unknown pseudo-header"),
        pytest.param([*_GOOD[:3], ("accept", "*/*"), _GOOD[3]], id="pseudo-header after a regular one"),
        pytest.param([*_GOOD, (":path", "/again")], id="pseudo-header twice"),
        pytest.param([_GOOD[0], _GOOD[2], _GOOD[3]], id="no :scheme"),
        pytest.param([*_GOOD[:3], (":path", "")], id="empty :path"),
        pytest.param([*_GOOD, ("", "x")], id="empty name"),
        pytest.param([*_GOOD, ("x y", "1")], id="name not a token"),
    ],
)
def test_malformed_requests_reset_their_stream_only(gw, fields):
    """The request head's HTTP/2 rules (RFC 9113 §8.2-8.3) are checked by the gateway: a
    malformed head resets its stream with PROTOCOL_ERROR, and the connection goes on."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    cfg = h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=False, normalize_outbound_headers=False
    )
    conn = h2.connection.H2Connection(cfg)
    conn.initiate_connection()
    conn.send_headers(1, fields, end_stream=True)
    conn.send_headers(3, _GOOD, end_stream=True)
    sock.sendall(conn.data_to_send())
    reset = status = None
    end = time.monotonic() + 5
    try:
        while (reset is None or status is None) and time.monotonic() < end:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.StreamReset) and ev.stream_id == 1:
                    reset = ev.error_code
                elif isinstance(ev, h2.events.ResponseReceived):
                    if ev.stream_id == 1:
                        reset = "answered"
                    else:
                        status = dict(ev.headers)[":status"]
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    assert reset == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert status == "200"  # the other stream on the connection is served
    assert not gw.has_traceback(), gw.logs()
