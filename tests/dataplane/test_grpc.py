"""gRPC through the gateway, and HTTP/2 to backends (engine/h2client.py, engine/grpc.py).

Real processes only: an ``agentgw`` in front of a grpcio server (tests/support/grpc_servers.py:
``test.Echo`` on raw bytes plus the standard health service, h2c and TLS) and of an nginx
that speaks HTTP/2 only (``listen ... http2`` without TLS: prior knowledge, nothing else),
driven by grpcio clients, ``httpx``, ``curl`` and raw sockets. Every call that can be made
directly to the gRPC server is made both ways and the outcomes compared.

What is covered: a backend with no ``http.version`` reached over HTTP/2 for gRPC calls
(unary, metadata and trailers, binary metadata, statuses and messages, the four kinds of
streaming, 3 MB both ways, 50 calls multiplexed); the gateway's own refusals as
trailers-only gRPC statuses (UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED,
RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED) with its message; ``grpc-timeout``
forwarded; TLS with ALPN h2 to the backend and from the client; ``http.version: HTTP2``
(and its spellings) for ordinary HTTP/1.1 and HTTP/2 clients; trailers to HTTP/1.1
clients that send ``TE: trailers``; the access log."""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.grpc_servers import TRAILER_BIN, GrpcServer
from tests.support.harness import (
    RawHTTP,
    closed_port,
    free_port,
    gateway_config,
    route,
    terminate,
    wait_for,
)
from tests.support.upstream import big_body

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

SERVICE = "test.Echo"
TIMEOUT = 10.0  # every call's deadline: generous, only there so that a hang fails
API_KEY = "k-grpc-123"
MB3 = 3 * 1024 * 1024
#: grpcio rounds a deadline up as it encodes ``grpc-timeout`` (1.5 s may arrive as 1.51 s)
SLACK = 0.1


# --------------------------------------------------------------------------------------
# upstreams
# --------------------------------------------------------------------------------------
class NginxH2c:
    """nginx speaking HTTP/2 with prior knowledge only (``listen ... http2`` without
    ``ssl``): it answers with the protocol, method, target, ``x-test`` and the request
    body's length as it read them; ``.../trailers`` adds a trailer field (nginx's
    ``add_trailer``), ``.../bigtrailers`` too, after a 1 MiB body."""

    BIG = 1024 * 1024

    def __init__(self, workdir: Path):
        self.port = free_port()
        d = workdir / "nginx-h2c"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "nginx.conf"
        # (as root, nginx's worker would be ``nobody``, who cannot read the test's
        # private temporary directory, where the 1 MiB file is)
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            textwrap.dedent(
                f"""\
                daemon off;
                {user}
                worker_processes 1;
                pid {d}/nginx.pid;
                error_log {d}/error.log warn;
                events {{ worker_connections 256; }}
                http {{
                    access_log off;
                    client_body_temp_path {d}/body;
                    proxy_temp_path {d}/proxy;
                    fastcgi_temp_path {d}/fastcgi;
                    uwsgi_temp_path {d}/uwsgi;
                    scgi_temp_path {d}/scgi;
                    default_type text/plain;
                    client_max_body_size 8m;
                    server {{
                        listen 127.0.0.1:{self.port} http2;
                        server_name _;
                        location ~ /bigtrailers$ {{
                            root {d}/static;
                            try_files /big.bin =404;
                            add_trailer x-ngx-trailer "t-$request_method" always;
                        }}
                        location ~ /trailers$ {{
                            add_trailer x-ngx-trailer "t-$request_method" always;
                            return 200 "with trailers\\n";
                        }}
                        location / {{
                            add_header x-upstream nginx-h2c always;
                            return 200 "$server_protocol $request_method $request_uri [$http_x_test] [$content_length]\\n";
                        }}
                    }}
                }}
                """
            )
        )
        (d / "static").mkdir(exist_ok=True)
        (d / "static" / "big.bin").write_bytes(big_body(self.BIG))
        self.log = d / "error.log"
        self.proc = subprocess.Popen(
            [NGINX, "-e", str(self.log), "-p", str(d), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

        def listening() -> bool:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout=10, message="nginx listening")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        terminate(self.proc)  # (SIGTERM: nginx's fast shutdown, its worker with it)


# --------------------------------------------------------------------------------------
# the gateway under test
# --------------------------------------------------------------------------------------
def sel(name: str) -> dict:
    """Metadata (request headers) selecting the route ``name``."""
    return {"x-route": name}


def grpc_route(name: str, backends, policies: dict | None = None) -> dict:
    return route(name, backends, prefix=f"/{SERVICE}/", headers=sel(name), policies=policies)


class Env:
    def __init__(self, gw, grpc_server, nginx, tls_files):
        self.gw = gw
        self.grpc = grpc_server
        self.nginx = nginx
        self.tls = tls_files

    @property
    def gw_target(self) -> str:
        return f"127.0.0.1:{self.gw.port}"

    @property
    def gw_tls_port(self) -> int:
        return self.gw.ports[1]


@pytest.fixture(scope="module")
def env(module_harness, tls_files):
    srv = GrpcServer(module_harness.workdir / "grpc", tls=tls_files)
    nginx = NginxH2c(module_harness.workdir) if NGINX else None
    backend_tls = {"backendTLS": {"root": str(tls_files.ca_cert), "hostname": "localhost"}}
    nginx_host = nginx.host if nginx else f"127.0.0.1:{closed_port()}"

    def h2_routes(tag: str) -> list[dict]:
        """Ordinary HTTP to the h2c-only nginx, with each spelling of ``http.version``."""
        out = []
        for prefix, version in (("/h2", "HTTP2"), ("/h20", "HTTP/2.0"), ("/h1", "HTTP1"), ("/h11", "HTTP/1.1")):
            out.append(
                route(
                    f"{tag}{prefix[1:]}",
                    [{"host": nginx_host, "policies": {"http": {"version": version}}}],
                    prefix=prefix + "/",
                )
            )
        out.append(route(f"{tag}default", [nginx_host], prefix="/plain/"))
        return out

    routes = [
        grpc_route("auth", [srv.host], {"apiKey": {"mode": "strict", "keys": [{"key": API_KEY}]}}),
        grpc_route("deny", [srv.host], {"authorization": {"deny": ['request.headers["x-deny"] == "yes"']}}),
        grpc_route(
            "rl", [srv.host], {"localRateLimit": [{"maxTokens": 2, "tokensPerFill": 1, "fillInterval": "3600s"}]}
        ),
        grpc_route("dead", [f"127.0.0.1:{closed_port()}"]),
        grpc_route("timeout", [srv.host], {"timeout": {"requestTimeout": "500ms"}}),
        grpc_route("btimeout", [{"host": srv.host, "policies": {"http": {"requestTimeout": "500ms"}}}]),
        grpc_route("deadline", [srv.host], {"timeout": {"requestTimeout": "3s"}}),
        grpc_route("tls", [srv.tls_host], backend_tls),
        grpc_route("log", [srv.host]),
        grpc_route("forced", [{"host": srv.host, "policies": {"http": {"version": "HTTP2"}}}]),
        route("health", [srv.host], prefix="/grpc.health.v1.Health/"),
        route("echo", [srv.host], prefix=f"/{SERVICE}/"),
        *h2_routes("n-"),
    ]
    tls_bind = {
        "port": free_port(),
        "listeners": [
            {
                "name": "secure",
                "protocol": "HTTPS",
                "tls": {"cert": str(tls_files.cert), "key": str(tls_files.key)},
                "routes": [route("s-echo", [srv.host], prefix=f"/{SERVICE}/"), *h2_routes("s-")],
            }
        ],
    }
    gw = module_harness.gateway(gateway_config(routes, extra_binds=[tls_bind]))
    yield Env(gw, srv, nginx, tls_files)
    srv.stop()
    if nginx is not None:
        nginx.stop()


# --------------------------------------------------------------------------------------
# gRPC client helpers
# --------------------------------------------------------------------------------------
_OPTIONS = [
    ("grpc.enable_http_proxy", 0),  # straight to the address, whatever the environment says
    ("grpc.enable_retries", 0),  # each call once: what the gateway answered is what is seen
]


class Channels:
    """A direct channel to the gRPC server and one through the gateway (closed at exit)."""

    def __init__(self, env: Env):
        self.direct = grpc.insecure_channel(env.grpc.host, options=_OPTIONS)
        self.gw = grpc.insecure_channel(env.gw_target, options=_OPTIONS)

    def __enter__(self) -> Channels:
        return self

    def __exit__(self, *exc) -> None:
        self.direct.close()
        self.gw.close()

    def both(self):
        return (("direct", self.direct), ("gateway", self.gw))


def unary(ch: grpc.Channel, method: str = "Unary"):
    return ch.unary_unary(f"/{SERVICE}/{method}")


def call(ch: grpc.Channel, method: str, request: bytes, metadata=(), timeout: float = TIMEOUT):
    """(response, call) of a unary call."""
    return unary(ch, method).with_call(request, metadata=tuple(metadata), timeout=timeout)


def failure(ch: grpc.Channel, method: str, request: bytes, metadata=(), timeout: float = TIMEOUT) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as ei:
        unary(ch, method)(request, metadata=tuple(metadata), timeout=timeout)
    return ei.value


def md_dict(md) -> dict:
    return {k: v for k, v in (md or ())}


def http1_error(env: Env, path: str, headers: dict) -> tuple[int, dict]:
    """The same request as a gRPC call, but ordinary HTTP/1.1: the gateway's JSON error."""
    r = httpx.post(f"{env.gw.url}{path}", headers=headers, content=b"\x00\x00\x00\x00\x00", timeout=TIMEOUT)
    return r.status_code, r.json()["error"]


def grpc_frame(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


# --------------------------------------------------------------------------------------
# 1. calls relayed as they are, compared with the direct call
# --------------------------------------------------------------------------------------
def test_health_check(env):
    with Channels(env) as chs:
        for where, ch in chs.both():
            stub = health_pb2_grpc.HealthStub(ch)
            for service in ("", SERVICE):
                resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
                assert resp.status == health_pb2.HealthCheckResponse.SERVING, (where, service)
            # an unknown service: the health service's own NOT_FOUND, a trailers-only answer
            with pytest.raises(grpc.RpcError) as ei:
                stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=TIMEOUT)
            assert ei.value.code() == grpc.StatusCode.NOT_FOUND, where
    assert not env.gw.has_traceback(), env.gw.logs()


def test_unary_with_metadata_and_trailers(env):
    outcomes = {}
    md = (("x-echo", "hello-md"), ("x-data-bin", b"\x00\xffbin\x80"))
    with Channels(env) as chs:
        for where, ch in chs.both():
            resp, c = call(ch, "Unary", b"\x00payload\xff" * 10, md)
            assert c.code() == grpc.StatusCode.OK
            trailing = md_dict(c.trailing_metadata())
            trailing.pop("x-peer")
            initial = md_dict(c.initial_metadata())
            outcomes[where] = (resp, trailing, initial.get("x-initial"))
    assert outcomes["gateway"] == outcomes["direct"]
    resp, trailing, initial = outcomes["gateway"]
    assert resp == b"\x00payload\xff" * 10
    assert initial == "yes"
    assert trailing["x-trailer"] == "t-value"
    assert trailing["x-trailer-bin"] == TRAILER_BIN  # binary metadata both ways
    assert trailing["x-echo"] == "hello-md"
    assert trailing["x-echo-bin"] == b"\x00\xffbin\x80"


def test_empty_request_and_response(env):
    with Channels(env) as chs:
        for _where, ch in chs.both():
            resp, c = call(ch, "Unary", b"")
            assert resp == b"" and c.code() == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "code, message",
    [
        ("NOT_FOUND", "no such thing"),
        ("INVALID_ARGUMENT", 'bad value: ünïcødé ✓ 100% "quoted" \\ 日本語'),
        ("PERMISSION_DENIED", "denied by the server itself"),
        ("INTERNAL", "line one\nline two"),
    ],
)
def test_upstream_status_and_message_relayed_exactly(env, code, message):
    """The server's status and its UTF-8 message (percent-encoded on the wire) arrive as
    they left it: a trailers-only answer from the upstream, relayed."""
    seen = {}
    with Channels(env) as chs:
        for where, ch in chs.both():
            err = failure(ch, "Fail", code.encode() + b"\n" + message.encode("utf-8"))
            seen[where] = (err.code(), err.details())
    assert seen["direct"] == (grpc.StatusCode[code], message)
    assert seen["gateway"] == seen["direct"]


def test_server_streaming(env):
    with Channels(env) as chs:
        got = {}
        for where, ch in chs.both():
            stream = ch.unary_stream(f"/{SERVICE}/ServerStream")(b"200", timeout=TIMEOUT)
            got[where] = list(stream)
            assert stream.code() == grpc.StatusCode.OK
    assert got["gateway"] == got["direct"] == [b"item-%d" % i for i in range(200)]


def test_client_streaming(env):
    items = [b"part-%d" % i for i in range(100)]
    with Channels(env) as chs:
        got = {
            where: ch.stream_unary(f"/{SERVICE}/ClientStream")(iter(items), timeout=TIMEOUT) for where, ch in chs.both()
        }
    assert got["gateway"] == got["direct"] == b",".join(items)


def test_bidi_streaming_is_relayed_message_by_message(env):
    """Each request is sent only after the answer to the previous one came back: a
    gateway that held either direction until its end would deadlock here."""

    def ping_pong(ch: grpc.Channel) -> list[bytes]:
        outgoing: queue.Queue = queue.Queue()
        words = [b"alpha", b"beta", b"gamma", b"delta", b"x" * 70000]

        def requests():
            while (item := outgoing.get()) is not None:
                yield item

        responses = ch.stream_stream(f"/{SERVICE}/Bidi")(requests(), timeout=TIMEOUT)
        got = []
        try:
            for w in words:
                outgoing.put(w)
                got.append(next(responses))
        finally:
            outgoing.put(None)
        assert list(responses) == []
        assert responses.code() == grpc.StatusCode.OK
        return got

    with Channels(env) as chs:
        direct = ping_pong(chs.direct)
        through = ping_pong(chs.gw)
    assert through == direct == [b"ALPHA", b"BETA", b"GAMMA", b"DELTA", b"X" * 70000]


def test_3mb_response_and_3mb_request(env):
    """Bodies far past the streams' flow-control windows, both ways."""
    payload = hashlib.sha256(b"seed").digest() * (MB3 // 32)
    want = b"%d %s" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    with Channels(env) as chs:
        for where, ch in chs.both():
            resp, _ = call(ch, "Big", str(MB3).encode())
            assert len(resp) == MB3 and resp == big_body(MB3), where
            resp, _ = call(ch, "Digest", payload)
            assert resp == want, where
            # and a 3 MB echo (both directions in one call)
            resp, _ = call(ch, "Unary", payload)
            assert resp == payload, where


def test_compressed_messages(env):
    """gzip-compressed messages (``grpc-encoding``, the compressed flag of each message)
    pass through untouched, both ways."""
    payload = b"compress me " * 50000
    with Channels(env) as chs:
        for where, ch in chs.both():
            resp, c = unary(ch).with_call(payload, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
            assert resp == payload and c.code() == grpc.StatusCode.OK, where


def test_cancelled_call_is_cancelled_upstream(env):
    """A client that gives up: the gateway resets its upstream stream, so the server sees
    the call end (and stops working on it); the connection serves on."""
    tag = f"cancel-{time.monotonic_ns()}"
    with Channels(env) as chs:
        for where, ch in chs.both():
            fut = unary(ch, "Slow").future(b"8", metadata=(("x-tag", f"{tag}-{where}"),), timeout=TIMEOUT)
            time.sleep(0.4)
            assert fut.cancel(), where
            wait_for(
                lambda where=where: unary(chs.direct, "Cancelled")(f"{tag}-{where}".encode(), timeout=TIMEOUT) == b"1",
                timeout=5,
                message=f"the server to see the cancelled call ({where})",
            )
            resp, _ = call(ch, "Unary", b"after")
            assert resp == b"after"


def test_50_concurrent_calls_are_multiplexed(env):
    """50 calls at once on one client connection, each held 0.2 s by the server: all
    answered with their own payload, and all carried upstream on one HTTP/2 connection
    (the server sees a single peer address). Eight rounds, each on a client connection of
    its own (grpcio otherwise shares one between channels to the same address), and one
    round direct for comparison."""

    def burst(target: str, tag: int) -> set:
        ch = grpc.insecure_channel(target, options=[*_OPTIONS, ("grpc.use_local_subchannel_pool", 1)])
        try:
            stub = unary(ch)
            futures = [
                stub.future(
                    b"call-%d-%d" % (tag, i), metadata=(("x-sleep", "0.2"), ("x-echo", str(i))), timeout=TIMEOUT
                )
                for i in range(50)
            ]
            peers = set()
            for i, f in enumerate(futures):
                try:
                    assert f.result() == b"call-%d-%d" % (tag, i)
                except grpc.RpcError as exc:
                    raise AssertionError(f"round {tag}, call {i}: {exc.code()} {exc.details()}") from None
                trailing = md_dict(f.trailing_metadata())
                assert trailing["x-echo"] == str(i)
                peers.add(trailing["x-peer"])
            return peers
        finally:
            ch.close()

    assert len(burst(env.grpc.host, 0)) == 1
    for tag in range(1, 9):
        peers = burst(env.gw_target, tag)
        assert len(peers) == 1, peers
    assert not env.gw.has_traceback(), env.gw.logs()


def test_a_burst_beyond_one_connection_opens_a_second(harness, env):
    """160 calls at once on a gateway that has no upstream connection yet: the first
    opens one, those arriving meanwhile wait for it, and what exceeds its 100 streams
    goes on a second connection, none refused or retried into a failure (the server sees
    two peer addresses). (A gateway of its own, so that its pool starts empty.)"""
    gw = harness.gateway(gateway_config([route("burst", [env.grpc.host])]))
    # two client connections (a client connection carries 100 streams to the gateway)
    chs = [
        grpc.insecure_channel(f"127.0.0.1:{gw.port}", options=[*_OPTIONS, ("grpc.use_local_subchannel_pool", 1)])
        for _ in range(2)
    ]
    try:
        futures = [
            unary(chs[i % 2]).future(b"b%d" % i, metadata=(("x-sleep", "0.5"),), timeout=TIMEOUT) for i in range(160)
        ]
        peers = set()
        for i, f in enumerate(futures):
            assert f.result() == b"b%d" % i
            peers.add(md_dict(f.trailing_metadata())["x-peer"])
    finally:
        for ch in chs:
            ch.close()
    assert len(peers) == 2, peers
    assert not gw.has_traceback(), gw.logs()


# --------------------------------------------------------------------------------------
# 2. statuses the gateway makes itself: trailers-only, with its message
# --------------------------------------------------------------------------------------
def test_no_route_is_unimplemented(env):
    with Channels(env) as chs:
        with pytest.raises(grpc.RpcError) as ei:
            chs.gw.unary_unary("/other.Service/Method")(b"x", timeout=TIMEOUT)
        err = ei.value
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED, (err.code(), err.details())
    status, doc = http1_error(env, "/other.Service/Method", {"content-type": "application/octet-stream"})
    assert status == 404
    assert err.details() == doc["message"]


def test_api_key_strict_without_credential_is_unauthenticated(env):
    with Channels(env) as chs:
        err = failure(chs.gw, "Unary", b"x", sel("auth").items())
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (err.code(), err.details())
        status, doc = http1_error(env, f"/{SERVICE}/Unary", sel("auth"))
        assert status == 401
        assert err.details() == doc["message"]
        # a wrong key: also UNAUTHENTICATED; the right one: through
        err = failure(chs.gw, "Unary", b"x", [*sel("auth").items(), ("authorization", "Bearer wrong")])
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        resp, c = call(chs.gw, "Unary", b"with key", [*sel("auth").items(), ("authorization", f"Bearer {API_KEY}")])
        assert resp == b"with key" and c.code() == grpc.StatusCode.OK


def test_authorization_deny_is_permission_denied(env):
    with Channels(env) as chs:
        err = failure(chs.gw, "Unary", b"x", [*sel("deny").items(), ("x-deny", "yes")])
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (err.code(), err.details())
        status, doc = http1_error(env, f"/{SERVICE}/Unary", {**sel("deny"), "x-deny": "yes"})
        assert status == 403
        assert err.details() == doc["message"]
        resp, _ = call(chs.gw, "Unary", b"allowed", [*sel("deny").items(), ("x-deny", "no")])
        assert resp == b"allowed"


def test_local_rate_limit_is_resource_exhausted(env):
    md = list(sel("rl").items())
    with Channels(env) as chs:
        for i in range(2):
            resp, _ = call(chs.gw, "Unary", b"token-%d" % i, md)
            assert resp == b"token-%d" % i
        err = failure(chs.gw, "Unary", b"x", md)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
    status, doc = http1_error(env, f"/{SERVICE}/Unary", sel("rl"))
    assert status == 429
    assert err.details() == doc["message"]


def test_closed_backend_port_is_unavailable(env):
    with Channels(env) as chs:
        err = failure(chs.gw, "Unary", b"x", sel("dead").items())
    assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
    status, doc = http1_error(env, f"/{SERVICE}/Unary", sel("dead"))
    assert status in (502, 503)
    assert err.details() == doc["message"]


def test_grpc_over_http1_to_the_backend_is_unavailable(harness, env):
    """``http.version: HTTP1`` wins over the gRPC default: the call goes to the gRPC
    server in HTTP/1.1, which it cannot read (it answers with its HTTP/2 preface): 502,
    said as UNAVAILABLE. (A gateway of its own: a failure here must not be charged to
    the module's gateway.)"""
    gw = harness.gateway(
        gateway_config([route("h1", [{"host": env.grpc.host, "policies": {"http": {"version": "HTTP1"}}}])])
    )
    ch = grpc.insecure_channel(f"127.0.0.1:{gw.port}", options=_OPTIONS)
    try:
        for i in range(60):  # (each on a new upstream connection)
            err = failure(ch, "Unary", b"x")
            assert err.code() == grpc.StatusCode.UNAVAILABLE, (i, err.code(), err.details())
    finally:
        ch.close()
    assert not gw.has_traceback(), gw.logs()


@pytest.mark.parametrize(
    "which, message",
    [("timeout", "request timed out after 0.5s"), ("btimeout", "upstream did not respond within 0.5s")],
)
def test_timeout_shorter_than_the_call_is_deadline_exceeded(env, which, message):
    """A route ``requestTimeout`` / backend ``http.requestTimeout`` of 500 ms against a
    method that takes 3 s (the client allows 10 s): DEADLINE_EXCEEDED with the
    gateway's own message, long before the method would have answered."""
    with Channels(env) as chs:
        t0 = time.monotonic()
        err = failure(chs.gw, "Slow", b"3", sel(which).items())
        elapsed = time.monotonic() - t0
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (err.code(), err.details())
        if which == "timeout":
            # the route's timeout is also sent upstream as the call's grpc-timeout, so the
            # server may end the call at the same moment (its own words, then)
            assert err.details() in (message, "Deadline Exceeded"), err.details()
        else:
            assert err.details() == message
        assert elapsed < 2.5, elapsed  # (the gateway's deadline, not the method's end)
        # the route still serves a quick call
        resp, _ = call(chs.gw, "Slow", b"0", sel(which).items())
        assert resp == b"done"


def h2_exchange(port: int, path: str, extra=(), body: bytes | None = None) -> list:
    """One request on a raw HTTP/2 (h2c) connection; the events of its stream, to its end."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    method = "GET" if body is None else "POST"
    headers = [(":method", method), (":scheme", "http"), (":authority", "gw.test"), (":path", path), *extra]
    conn.send_headers(sid, headers, end_stream=body is None)
    if body is not None:
        conn.send_data(sid, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    events = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            evs = conn.receive_data(data)
            events += [ev for ev in evs if getattr(ev, "stream_id", None) == sid]
            for ev in evs:
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            sock.sendall(conn.data_to_send())
            if any(isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) for ev in events):
                break
    finally:
        sock.close()
    return events


def test_window_updates_as_grpc_clients_send_them_are_no_flood(env):
    """grpcio tops up each new stream's receive window (and the connection's) with a
    WINDOW_UPDATE as it opens the stream, before any response DATA has come. 60 calls
    opened that way are legitimate work: they are answered, not taken for a
    WINDOW_UPDATE flood (GOAWAY ENHANCE_YOUR_CALM)."""
    sock = socket.create_connection(("127.0.0.1", env.gw.port), timeout=TIMEOUT)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sids = []
    for i in range(60):
        sid = conn.get_next_available_stream_id()
        sids.append(sid)
        conn.send_headers(
            sid,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "gw.test"),
                (":path", f"/{SERVICE}/Unary"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("x-sleep", "0.3"),
            ],
        )
        conn.send_data(sid, grpc_frame(b"w%d" % i), end_stream=True)
        conn.increment_flow_control_window(65536, stream_id=sid)
        conn.increment_flow_control_window(65536)
    sock.sendall(conn.data_to_send())
    statuses: dict[int, str] = {}
    goaway = None
    deadline = time.monotonic() + TIMEOUT
    try:
        while len(statuses) < len(sids) and goaway is None and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.TrailersReceived):
                    statuses[ev.stream_id] = dict(ev.headers).get("grpc-status", "?")
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    goaway = ev
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    assert goaway is None, f"GOAWAY {goaway.error_code!r}: {goaway.additional_data!r}"
    assert statuses == {sid: "0" for sid in sids}


def test_gateway_made_status_is_trailers_only(env):
    """On the wire: one HEADERS frame with END_STREAM, ``:status 200``, the gRPC content
    type, ``grpc-status``, ``grpc-message``; no content-length and no DATA."""
    grpc_headers = [("content-type", "application/grpc"), ("te", "trailers")]
    events = h2_exchange(env.gw.port, f"/{SERVICE}/Unary", [*grpc_headers, ("x-route", "auth")], grpc_frame(b"x"))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ResponseReceived", "StreamEnded"], kinds
    headers = dict(events[0].headers)
    assert headers[":status"] == "200"
    assert headers["content-type"] == "application/grpc"
    assert headers["grpc-status"] == "16"
    assert headers.get("grpc-message")
    assert "content-length" not in headers
    # a gRPC content type with a suffix is gRPC too; grpc-web is not
    events = h2_exchange(env.gw.port, "/nowhere/At", [("content-type", "application/grpc+proto")], b"")
    assert dict(events[0].headers)["grpc-status"] == "12"
    events = h2_exchange(env.gw.port, "/nowhere/At", [("content-type", "application/grpc-web")], b"")
    headers = dict(events[0].headers)
    assert headers[":status"] == "404" and "grpc-status" not in headers


# --------------------------------------------------------------------------------------
# 3. deadlines
# --------------------------------------------------------------------------------------
def _remaining(ch: grpc.Channel, metadata=(), timeout: float | None = None) -> float | None:
    resp = unary(ch, "Deadline")(b"", metadata=tuple(metadata), timeout=timeout)
    return None if resp == b"none" else float(resp)


def test_grpc_timeout_is_forwarded(env):
    with Channels(env) as chs:
        for where, ch in chs.both():
            left = _remaining(ch, timeout=5.0)
            assert left is not None and 0 < left <= 5.0 + SLACK, (where, left)
            assert left > 2.0, (where, left)  # (generous: the call takes milliseconds)
            assert _remaining(ch, timeout=None) is None, where


def test_route_timeout_bounds_the_deadline_the_server_sees(env):
    """A route ``requestTimeout`` (3 s) shorter than the client's deadline (or with none):
    the server is told the shorter one, so it stops when the gateway stops waiting."""
    with Channels(env) as chs:
        left = _remaining(chs.gw, sel("deadline").items(), timeout=None)
        assert left is not None and 0 < left <= 3.0 + SLACK, left
        left = _remaining(chs.gw, sel("deadline").items(), timeout=8.0)
        assert left is not None and 0 < left <= 3.0 + SLACK, left
        left = _remaining(chs.gw, sel("deadline").items(), timeout=1.5)  # the client's is shorter
        assert left is not None and 0 < left <= 1.5 + SLACK, left


# --------------------------------------------------------------------------------------
# 4. TLS: to the backend (ALPN h2) and from the client
# --------------------------------------------------------------------------------------
def test_backend_over_tls_with_alpn_h2(env):
    md = [*sel("tls").items(), ("x-echo", "over-tls")]
    with Channels(env) as chs:
        resp, c = call(chs.gw, "Unary", b"secret", md)
        assert resp == b"secret"
        assert md_dict(c.trailing_metadata())["x-echo"] == "over-tls"
        stream = chs.gw.unary_stream(f"/{SERVICE}/ServerStream")(
            b"5", metadata=tuple(sel("tls").items()), timeout=TIMEOUT
        )
        assert list(stream) == [b"item-%d" % i for i in range(5)]
        err = failure(chs.gw, "Fail", "ABORTED\nüber tls".encode(), sel("tls").items())
        assert (err.code(), err.details()) == (grpc.StatusCode.ABORTED, "über tls")


def test_grpc_client_over_tls_to_the_gateway(env):
    creds = grpc.ssl_channel_credentials(root_certificates=env.tls.ca_cert.read_bytes())
    ch = grpc.secure_channel(f"localhost:{env.gw_tls_port}", creds, options=_OPTIONS)
    try:
        resp, c = call(ch, "Unary", b"tls both sides", [("x-echo", "e2e")])
        assert resp == b"tls both sides"
        assert md_dict(c.trailing_metadata())["x-trailer-bin"] == TRAILER_BIN
        resp, _ = call(ch, "Big", str(MB3).encode())
        assert resp == big_body(MB3)
    finally:
        ch.close()


# --------------------------------------------------------------------------------------
# 5. http.version HTTP2 for ordinary HTTP (nginx h2c-only upstream)
# --------------------------------------------------------------------------------------
@needs_nginx
@pytest.mark.parametrize("prefix", ["/h2", "/h20"])
def test_http11_client_to_h2c_only_upstream(env, prefix):
    with httpx.Client(base_url=env.gw.url, timeout=TIMEOUT) as c:
        r = c.get(f"{prefix}/some/path?q=1", headers={"x-test": "hello"})
        assert r.http_version == "HTTP/1.1"
        assert r.status_code == 200, r.text
        assert r.text == f"HTTP/2.0 GET {prefix}/some/path?q=1 [hello] []\n"
        assert r.headers["x-upstream"] == "nginx-h2c"
        for size in (1000, 600 * 1024):  # past the upstream stream's window and WRITE_HIGH
            r = c.post(f"{prefix}/upload", headers={"x-test": "body"}, content=b"b" * size)
            assert r.status_code == 200, r.text
            assert r.text == f"HTTP/2.0 POST {prefix}/upload [body] [{size}]\n"
        # a streamed body of unknown length (chunked from the client, DATA frames upstream)
        r = c.post(f"{prefix}/chunked", content=iter([b"a" * 5000, b"b" * 5000]))
        assert r.status_code == 200, r.text
        assert r.text.startswith(f"HTTP/2.0 POST {prefix}/chunked [] ")


@needs_nginx
@pytest.mark.parametrize("prefix", ["/plain", "/h1", "/h11"])
def test_http11_to_h2c_only_upstream_fails_with_502(env, prefix):
    """Without ``http.version`` (or with HTTP1), ordinary requests go as HTTP/1.1, which
    an h2c-only server cannot read: 502, for an HTTP/2 client too."""
    r = httpx.get(f"{env.gw.url}{prefix}/x", timeout=TIMEOUT)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["type"]
    with httpx.Client(transport=httpx.HTTPTransport(http1=False, http2=True), timeout=TIMEOUT) as c:
        r = c.get(f"{env.gw.url}{prefix}/x")
        assert r.http_version == "HTTP/2"
        assert r.status_code == 502


@needs_nginx
def test_many_http11_requests_share_the_upstream_h2_connection(env):
    """20 HTTP/1.1 clients at once: all answered (streams on the pooled connection)."""
    results: list = [None] * 20

    def one(i: int) -> None:
        r = httpx.get(f"{env.gw.url}/h2/par/{i}", headers={"x-test": str(i)}, timeout=TIMEOUT)
        results[i] = (r.status_code, r.text)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT + 5)
    assert results == [(200, f"HTTP/2.0 GET /h2/par/{i} [{i}] []\n") for i in range(20)]


# --------------------------------------------------------------------------------------
# 6. curl, HTTP/2 on both sides
# --------------------------------------------------------------------------------------
def _curl_v(*args: str) -> tuple[str, bytes, str]:
    """``curl -v -i``: (status line, body, verbose log)."""
    r = subprocess.run(
        ["curl", "-sS", "-v", "-i", "--noproxy", "*", "--max-time", "10", *args], capture_output=True, timeout=20
    )
    assert r.returncode == 0, r.stderr.decode()
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n")[0], body, r.stderr.decode("latin-1")


@needs_curl
@needs_nginx
def test_curl_h2c_prior_knowledge_to_h2_upstream(env):
    line, body, log = _curl_v("--http2-prior-knowledge", "-H", "x-test: curl", f"{env.gw.url}/h2/c?x=1")
    assert line.startswith("HTTP/2 200"), line
    assert body == b"HTTP/2.0 GET /h2/c?x=1 [curl] []\n"
    assert "< HTTP/2 200" in log, log
    line, body, _ = _curl_v("--http2-prior-knowledge", "--data-binary", "abc", f"{env.gw.url}/h2/p")
    assert line.startswith("HTTP/2 200"), line
    assert body == b"HTTP/2.0 POST /h2/p [] [3]\n"


@needs_curl
@needs_nginx
def test_curl_h2_over_tls_to_h2_upstream(env):
    url = f"https://localhost:{env.gw_tls_port}/h2/tls"
    line, body, log = _curl_v("--http2", "--cacert", str(env.tls.ca_cert), "-H", "x-test: tls", url)
    assert line.startswith("HTTP/2 200"), line
    assert body == b"HTTP/2.0 GET /h2/tls [tls] []\n"
    assert "ALPN: server accepted h2" in log or "ALPN, server accepted to use h2" in log, log
    assert "< HTTP/2 200" in log, log
    line, body, _ = _curl_v("--http1.1", "--cacert", str(env.tls.ca_cert), url)
    assert line.startswith("HTTP/1.1 200"), line
    assert body == b"HTTP/2.0 GET /h2/tls [] []\n"


# --------------------------------------------------------------------------------------
# trailers to HTTP/1.1 clients (http.version HTTP2 makes the gateway speak h2 upstream)
# --------------------------------------------------------------------------------------
def _raw_grpc_over_http1(env: Env, payload: bytes, te: bool, method: str = "Unary") -> tuple[str, dict, bytes, dict]:
    """A gRPC unary call written by hand over HTTP/1.1 (``Connection: close``), read to
    the end: (status line, headers, de-chunked body, trailers)."""
    body = grpc_frame(payload)
    headers = [("Content-Type", "application/grpc"), ("X-Route", "forced"), ("Connection", "close")]
    if te:
        headers.append(("TE", "trailers"))
    with RawHTTP(env.gw.port, timeout=TIMEOUT) as c:
        c.send(
            f"POST /{SERVICE}/{method} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {len(body)}\r\n".encode()
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
            + b"\r\n"
            + body
        )
        raw = c.read_until_close(TIMEOUT)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "chunked" in hdrs.get("transfer-encoding", ""):
        data, trailers = _dechunk(rest)
    else:
        data, trailers = rest[: int(hdrs.get("content-length", len(rest)))], {}
    return lines[0], hdrs, data, trailers


def test_http11_client_with_te_trailers_gets_the_grpc_status_as_trailers(env):
    """A gRPC call by an HTTP/1.1 client that accepts trailers (``TE: trailers``), to a
    backend with ``http.version: HTTP2``: the body, then ``grpc-status`` and the server's
    trailing metadata as chunked trailers. Repeated: a short answer usually arrives whole
    with its head, a longer one does not; both must keep the trailers."""
    for i in range(50):
        line, headers, body, trailers = _raw_grpc_over_http1(env, b"over http/1.1 #%d" % i, te=True)
        assert line.startswith("HTTP/1.1 200"), (i, line, headers, body)
        assert headers["content-type"].startswith("application/grpc")
        assert body == grpc_frame(b"over http/1.1 #%d" % i)
        assert headers.get("transfer-encoding") == "chunked", (i, headers)
        assert trailers.get("grpc-status") == "0", (i, headers, trailers)
        assert trailers.get("x-trailer") == "t-value"


def test_http11_client_with_te_trailers_gets_a_streamed_grpc_status(env):
    """The same for a 3 MB call, streamed both ways (never whole in the gateway)."""
    line, headers, body, trailers = _raw_grpc_over_http1(env, b"x" * MB3, te=True)
    assert line.startswith("HTTP/1.1 200"), (line, headers, body[:300])
    assert body == grpc_frame(b"x" * MB3)
    assert trailers.get("grpc-status") == "0", (headers, trailers)


def _h1_get(port: int, path: str, te: bool) -> tuple[bytes, dict, bytes, dict]:
    """A GET over HTTP/1.1 (``Connection: close``), read to the end: (head, headers,
    de-chunked body, trailers)."""
    with RawHTTP(port, timeout=TIMEOUT) as c:
        extra = b"TE: trailers\r\n" if te else b""
        c.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gw.test\r\n" + extra + b"Connection: close\r\n\r\n")
        raw = c.read_until_close(TIMEOUT)
    head, _, rest = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body, trailers = _dechunk(rest) if "chunked" in headers.get("transfer-encoding", "") else (rest, {})
    return head, headers, body, trailers


def _dechunk(rest: bytes) -> tuple[bytes, dict]:
    out = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    trailers = {}
    for tl in rest.split(b"\r\n"):
        if tl:
            k, _, v = tl.decode("latin-1").partition(":")
            trailers[k.strip().lower()] = v.strip()
    return out, trailers


@needs_nginx
@pytest.mark.parametrize("path, body", [("/h2/trailers", b"with trailers\n"), ("/h2/bigtrailers", None)])
def test_http_trailers_from_an_h2_upstream_to_an_h2_client(env, path, body):
    """Ordinary HTTP: nginx's ``add_trailer`` over HTTP/2 reaches an HTTP/2 client as
    trailers (a HEADERS frame after the body), after a short body and a 1 MiB one."""
    body = body if body is not None else big_body(NginxH2c.BIG)
    for _ in range(3):
        events = h2_exchange(env.gw.port, path)
        kinds = [type(e).__name__ for e in events]
        assert kinds[0] == "ResponseReceived" and kinds[-2:] == ["TrailersReceived", "StreamEnded"], kinds[-5:]
        assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived)) == body
        trailer = next(e for e in events if isinstance(e, h2.events.TrailersReceived))
        assert dict(trailer.headers)["x-ngx-trailer"] == "t-GET"


@needs_nginx
@pytest.mark.parametrize("path, body", [("/h2/trailers", b"with trailers\n"), ("/h2/bigtrailers", None)])
def test_http_trailers_from_an_h2_upstream_to_an_http11_client(env, path, body):
    """The same to HTTP/1.1 clients: as chunked trailers for one that sends ``TE:
    trailers`` (nginx's answer has a content-length, which chunked framing replaces:
    the trailers cannot follow a length-delimited body), not at all for one that does
    not (the body intact, length-delimited)."""
    body = body if body is not None else big_body(NginxH2c.BIG)
    for i in range(5):
        head, headers, got, trailers = _h1_get(env.gw.port, path, te=True)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert got == body, i
        assert headers.get("transfer-encoding") == "chunked", (i, headers)
        assert "content-length" not in headers, (i, headers)
        assert trailers == {"x-ngx-trailer": "t-GET"}, (i, trailers)
    head, headers, got, trailers = _h1_get(env.gw.port, path, te=False)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert got == body
    assert trailers == {}
    assert "x-ngx-trailer" not in headers


# --------------------------------------------------------------------------------------
# 7. access log
# --------------------------------------------------------------------------------------
def test_access_log_records_the_grpc_call(env):
    """One line per call, with the gRPC method's path and status 200 (the ``log`` route
    serves this test only)."""
    with Channels(env) as chs:
        resp, _ = call(chs.gw, "Unary", b"logged", sel("log").items())
        assert resp == b"logged"
    entry = env.gw.wait_access_log(lambda e: e.get("route") == "log")
    assert entry["path"] == f"/{SERVICE}/Unary"
    assert int(entry["status"]) == 200
    assert entry["method"] == "POST"
    assert entry["backend"] == env.grpc.host
    assert entry["bytes_received"] == len(grpc_frame(b"logged"))
    assert entry["bytes_sent"] == len(grpc_frame(b"logged"))
