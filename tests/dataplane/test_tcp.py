"""TCP and TLS listeners (``tcpRoutes``) and CONNECT egress tunnels, through real gateway
processes: bytes proxied to a TCP echo server both ways with backpressure, TLS passed
through by SNI (the ClientHello's name picks the route, the gateway never decrypts),
HTTPS and TLS listeners sharing a port by SNI, and ``tunnelProtocol: connect`` tunnels
to the bind of the CONNECT target's port (agentgateway's egress-proxy example)."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import httpx
import pytest

from tests.support.harness import free_port


def _admin() -> dict:
    return {
        "adminAddr": f"127.0.0.1:{free_port()}",
        "statsAddr": f"127.0.0.1:{free_port()}",
        "readinessAddr": f"127.0.0.1:{free_port()}",
        "logging": {"format": "json"},
    }


class EchoServer:
    """A TCP echo server on 127.0.0.1 (a thread per connection); it closes its side once
    the client has half-closed and everything is echoed."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def echo():
    e = EchoServer()
    yield e
    e.close()


def _recv_all(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(min(1 << 20, n - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_tcp_route_proxies_bytes_both_ways(harness, echo):
    port = free_port()
    cfg = {
        "config": _admin(),
        "gateways": {"tcp": {"port": port, "protocol": "TCP"}},
        "tcpRoutes": [{"gateways": "tcp", "backends": [{"host": f"127.0.0.1:{echo.port}"}]}],
    }
    harness.gateway(cfg)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hello")
        assert _recv_all(s, 5) == b"hello"
        # 16 MiB each way at once: the echo server writes back while we still write, so
        # either direction's buffers fill up unless the proxy passes backpressure on
        payload = bytes(range(256)) * (1 << 16)
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        got = _recv_all(s, len(payload))
        sender.join(10)
        assert got == payload
        # a half-close reaches the echo server, whose close comes back as EOF
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""


def test_a_refused_upstream_closes_the_client(harness):
    port = free_port()
    closed = free_port()
    cfg = {
        "config": _admin(),
        "binds": [
            {
                "port": port,
                "listeners": [
                    {"protocol": "TCP", "tcpRoutes": [{"backends": [{"host": f"127.0.0.1:{closed}"}]}]},
                ],
            }
        ],
    }
    harness.gateway(cfg)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"anyone?")
        assert s.recv(10) == b""


@pytest.fixture
def tls_upstreams(harness):
    tls = harness.tls()
    return tls, harness.upstream("tls-a", tls=tls), harness.upstream("tls-b", tls=tls)


def _https_get(port: int, sni: str, ca: str, path: str = "/echo") -> tuple[int, dict, bytes]:
    """A GET over TLS to 127.0.0.1:port with ``sni`` as the server name (verified)."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            return _http_over(s, sni, path)


def _http_over(s, host: str, path: str) -> tuple[int, dict, bytes]:
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_tls_passthrough_routes_by_sni(harness, tls_upstreams):
    tls, a, b = tls_upstreams
    port = free_port()
    cfg = {
        "config": _admin(),
        "gateways": {"edge": {"port": port, "protocol": "TLS"}},
        "tcpRoutes": [
            {"gateways": "edge", "hostnames": ["a.example.com"], "backends": [{"host": f"127.0.0.1:{a.port}"}]},
            {"gateways": "edge", "hostnames": ["*.example.com"], "backends": [{"host": f"127.0.0.1:{b.port}"}]},
        ],
    }
    harness.gateway(cfg)
    ca = str(tls.ca_cert)
    # the upstream's own certificate (verified end to end: the gateway does not terminate)
    status, headers, _ = _https_get(port, "a.example.com", ca)
    assert status == 200 and headers["x-upstream-port"] == str(a.port)
    status, headers, _ = _https_get(port, "other.example.com", ca)
    assert status == 200 and headers["x-upstream-port"] == str(b.port)
    # a name no route takes: the connection is closed, nothing is dialled
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _https_get(port, "nowhere.test", ca)


def test_https_and_tls_listeners_share_a_port_by_sni(harness, tls_upstreams):
    """config-conditional.yaml: one name terminated for an HTTP route, the rest passed
    through untouched."""
    tls, a, _ = tls_upstreams
    port = free_port()
    cert = {"cert": str(tls.cert), "key": str(tls.key)}
    cfg = {
        "config": _admin(),
        "gateways": {
            "secure": {
                "port": port,
                "listeners": [
                    {"name": "direct-response", "hostname": "static.example.com", "protocol": "HTTPS", "tls": cert},
                    {"name": "public-egress", "hostname": "*", "protocol": "TLS"},
                ],
            }
        },
        "tcpRoutes": [
            {
                "gateways": "secure/public-egress",
                "hostnames": ["a.example.com"],
                "backends": [{"host": f"127.0.0.1:{a.port}"}],
            }
        ],
        "routes": [
            {
                "gateways": "secure/direct-response",
                "policies": {"directResponse": {"status": 200, "body": "hello from agentgateway"}},
            }
        ],
    }
    harness.gateway(cfg)
    ca = str(tls.ca_cert)
    status, _, body = _https_get(port, "static.example.com", ca, "/")
    assert (status, body) == (200, b"hello from agentgateway")
    status, headers, _ = _https_get(port, "a.example.com", ca)
    assert status == 200 and headers["x-upstream-port"] == str(a.port)


def _connect(proxy_port: int, target: str) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def test_connect_egress_through_an_allowlist(harness, tls_upstreams):
    """The egress example: CONNECT on one port; the tunnel goes to the bind of the
    target's port, whose TLS listener lets through the allowlisted SNI names to the name
    itself (``dynamic``) on that port."""
    tls, a, _ = tls_upstreams
    proxy = free_port()
    cfg = {
        "config": _admin(),
        "binds": [
            {"port": proxy, "tunnelProtocol": "connect", "listeners": []},
            # the upstream's port: internal, so the gateway does not listen there itself
            {
                "port": a.port,
                "mode": "internal",
                "listeners": [
                    {
                        "name": "public-egress",
                        "hostname": "*",
                        "protocol": "TLS",
                        "tcpRoutes": [{"hostnames": ["localhost"], "backends": [{"dynamic": {}}]}],
                    }
                ],
            },
        ],
    }
    harness.gateway(cfg)
    ca = str(tls.ca_cert)
    # as a client configured with HTTPS_PROXY does it
    verify = ssl.create_default_context(cafile=ca)
    r = httpx.get(f"https://localhost:{a.port}/echo", proxy=f"http://127.0.0.1:{proxy}", verify=verify, timeout=10)
    assert r.status_code == 200 and r.headers["x-upstream-port"] == str(a.port)
    # a name outside the allowlist: the tunnel opens, the TLS connection does not
    s, head = _connect(proxy, f"127.0.0.1:{a.port}")
    with s:
        assert head.startswith(b"HTTP/1.1 200")
        ctx = ssl.create_default_context(cafile=ca)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(s, server_hostname="blocked.example.com").do_handshake()
    # a port no bind serves
    s, head = _connect(proxy, f"localhost:{free_port()}")
    with s:
        assert head.startswith(b"HTTP/1.1 403"), head


def test_connect_to_a_named_tls_gateway_refuses_what_is_not_allowed(harness):
    """config.yaml as written (gateways, tcpRoutes): a name outside the allowlist gets no
    connection, and nothing is dialled for it."""
    proxy, secure = free_port(), free_port()
    cfg = {
        "config": _admin(),
        "binds": [{"port": proxy, "tunnelProtocol": "connect", "listeners": []}],
        "gateways": {
            "secure": {"port": secure, "listeners": [{"name": "public-egress", "hostname": "*", "protocol": "TLS"}]}
        },
        "tcpRoutes": [
            {
                "name": "public-egress-allowlist",
                "gateways": "secure/public-egress",
                "hostnames": ["pypi.org"],
                "backends": [{"dynamic": {}}],
            }
        ],
    }
    harness.gateway(cfg)
    s, head = _connect(proxy, f"example.com:{secure}")
    with s:
        assert head.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ssl.create_default_context().wrap_socket(s, server_hostname="example.com").do_handshake()
        assert time.monotonic() - started < 5


def test_connect_is_refused_where_it_is_not_configured(harness, echo):
    port = free_port()
    cfg = {
        "config": _admin(),
        "gateways": {"web": {"port": port}},
        "routes": [{"gateways": "web", "backends": [{"host": f"127.0.0.1:{echo.port}"}]}],
    }
    harness.gateway(cfg)
    s, head = _connect(port, f"127.0.0.1:{echo.port}")
    with s:
        assert head.startswith(b"HTTP/1.1 405"), head
    assert echo.accepted == 0


def test_connect_into_a_tcp_bind_carries_plain_bytes(harness, echo):
    proxy = free_port()
    cfg = {
        "config": _admin(),
        "binds": [
            {"port": proxy, "tunnelProtocol": "connect", "listeners": []},
            {
                "port": echo.port,
                "mode": "internal",
                "listeners": [{"protocol": "TCP", "tcpRoutes": [{"backends": [{"host": f"127.0.0.1:{echo.port}"}]}]}],
            },
        ],
    }
    harness.gateway(cfg)
    s, head = _connect(proxy, f"anything:{echo.port}")
    with s:
        assert head == b"HTTP/1.1 200 OK\r\n\r\n"
        s.sendall(b"ping")
        assert _recv_all(s, 4) == b"ping"


def test_conditional_egress_terminates_selected_names(harness):
    """config-conditional.yaml with its ports and certificate replaced: through the CONNECT
    proxy, llm.example.com serves the llm section's model list, static.example.com a
    direct response, and any other name is only passed through if allowlisted."""
    tls = harness.tls()
    proxy, secure = free_port(), free_port()
    cert = {"cert": str(tls.cert), "key": str(tls.key)}
    cfg = {
        "config": _admin(),
        "binds": [{"port": proxy, "tunnelProtocol": "connect", "listeners": []}],
        "gateways": {
            "secure": {
                "port": secure,
                "listeners": [
                    {"name": "llm", "hostname": "llm.example.com", "protocol": "HTTPS", "tls": cert},
                    {"name": "direct-response", "hostname": "static.example.com", "protocol": "HTTPS", "tls": cert},
                    {"name": "public-egress", "hostname": "*", "protocol": "TLS"},
                ],
            }
        },
        "tcpRoutes": [
            {
                "name": "public-egress-allowlist",
                "gateways": "secure/public-egress",
                "hostnames": ["pypi.org"],
                "backends": [{"dynamic": {}}],
            }
        ],
        "routes": [
            {
                "name": "static-response",
                "gateways": "secure/direct-response",
                "policies": {"directResponse": {"status": 200, "body": "hello from agentgateway"}},
            }
        ],
        "llm": {
            "gateways": "secure/llm",
            "models": [{"name": "smart", "provider": "openAI", "params": {"model": "gpt-5.5", "apiKey": "dummy"}}],
        },
    }
    harness.gateway(cfg)
    verify = ssl.create_default_context(cafile=str(tls.ca_cert))
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy}", verify=verify, timeout=10) as client:
        r = client.get(f"https://static.example.com:{secure}/")
        assert (r.status_code, r.text) == (200, "hello from agentgateway")
        r = client.get(f"https://llm.example.com:{secure}/v1/models")
        assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["smart"]
        with pytest.raises(httpx.HTTPError):
            client.get(f"https://example.com:{secure}/")


def test_connect_into_an_https_bind_terminates_for_http_policies(harness):
    """config-dynamic-tls.yaml's shape with a static certificate: every tunnel to the
    internal port is terminated, and HTTP policies see (and edit) the requests."""
    tls = harness.tls()
    up = harness.upstream("inspected")
    proxy, internal = free_port(), free_port()
    cfg = {
        "config": _admin(),
        "binds": [
            {"port": proxy, "tunnelProtocol": "connect", "listeners": []},
            {
                "port": internal,
                "mode": "internal",
                "listeners": [
                    {
                        "protocol": "HTTPS",
                        "tls": {"cert": str(tls.cert), "key": str(tls.key)},
                        "routes": [
                            {
                                "backends": [{"host": up.host}],
                                "policies": {
                                    "requestHeaderModifier": {"set": {"x-req-message": "hello"}},
                                    "responseHeaderModifier": {"set": {"x-resp-message": "hi"}},
                                },
                            }
                        ],
                    }
                ],
            },
        ],
    }
    harness.gateway(cfg)
    verify = ssl.create_default_context(cafile=str(tls.ca_cert))
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy}", verify=verify, timeout=10) as client:
        r = client.get(f"https://api.example.com:{internal}/echo")
    assert r.status_code == 200 and r.headers["x-resp-message"] == "hi"
    assert ["x-req-message", "hello"] in r.json()["headers"]


def test_tls_terminated_on_a_tls_listener_and_originated_to_a_backend(harness, echo):
    """A TLS listener with ``tls`` terminates and sends the plain bytes on (here to an
    echo server); ``backendTLS`` on a TCP route opens TLS to the backend (here a TLS
    upstream, reached from a plain TCP listener), verified against its root."""
    tls = harness.tls()
    up = harness.upstream("tls-backend", tls=tls)
    term, orig = free_port(), free_port()
    cfg = {
        "config": _admin(),
        "gateways": {
            "term": {"port": term, "protocol": "TLS", "tls": {"cert": str(tls.cert), "key": str(tls.key)}},
            "orig": {"port": orig, "protocol": "TCP"},
        },
        "tcpRoutes": [
            {"gateways": "term", "backends": [{"host": f"127.0.0.1:{echo.port}"}]},
            {
                "gateways": "orig",
                "policies": {"backendTLS": {"root": str(tls.ca_cert), "hostname": "localhost"}},
                "backends": [{"host": f"127.0.0.1:{up.port}"}],
            },
        ],
    }
    harness.gateway(cfg)
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    with socket.create_connection(("127.0.0.1", term), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"in the clear behind the gateway")
            assert _recv_all(s, 31) == b"in the clear behind the gateway"
    with socket.create_connection(("127.0.0.1", orig), timeout=10) as s:
        status, headers, _ = _http_over(s, "localhost", "/echo")
    assert status == 200 and headers["x-upstream-port"] == str(up.port)


def test_a_dynamic_target_expression_picks_the_dial_target(harness, tls_upstreams):
    """The README's mirror example: ``dynamic.target`` sends an allowlisted name elsewhere
    (here a.example.com to upstream a's port, any other name to its own port on localhost)."""
    tls, a, b = tls_upstreams
    port = free_port()
    expr = f'destination.hostname == "a.example.com" ? "127.0.0.1:{a.port}" : "127.0.0.1:{b.port}"'
    cfg = {
        "config": _admin(),
        "gateways": {"edge": {"port": port, "protocol": "TLS"}},
        "tcpRoutes": [
            {
                "gateways": "edge",
                "hostnames": ["a.example.com", "b.example.com"],
                "backends": [{"dynamic": {"target": expr}}],
            }
        ],
    }
    harness.gateway(cfg)
    ca = str(tls.ca_cert)
    status, headers, _ = _https_get(port, "a.example.com", ca)
    assert status == 200 and headers["x-upstream-port"] == str(a.port)
    status, headers, _ = _https_get(port, "b.example.com", ca)
    assert status == 200 and headers["x-upstream-port"] == str(b.port)


def test_reload_moves_new_connections_and_keeps_open_ones(harness):
    """A reload that points the TCP route elsewhere: a connection already open keeps its
    upstream, the next one goes to the new backend; a TCP port turning into an HTTP one
    gets a new server on the same socket."""
    first, second = EchoServer(), EchoServer()
    try:
        port = free_port()
        cfg = {
            "config": _admin(),
            "gateways": {"tcp": {"port": port, "protocol": "TCP"}},
            "tcpRoutes": [{"gateways": "tcp", "backends": [{"host": f"127.0.0.1:{first.port}"}]}],
        }
        gw = harness.gateway(cfg)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as old:
            old.sendall(b"a")
            assert _recv_all(old, 1) == b"a"
            cfg["tcpRoutes"][0]["backends"] = [{"host": f"127.0.0.1:{second.port}"}]
            gw.reload(cfg)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as new:
                new.sendall(b"b")
                assert _recv_all(new, 1) == b"b"
            old.sendall(b"c")
            assert _recv_all(old, 1) == b"c"
        assert (first.accepted, second.accepted) == (1, 1)
        up = harness.upstream("after")
        gw.reload(
            {
                "config": cfg["config"],
                "gateways": {"tcp": {"port": port}},
                "routes": [{"gateways": "tcp", "backends": [{"host": up.host}]}],
            }
        )
        r = httpx.get(f"http://127.0.0.1:{port}/echo", timeout=10)
        assert r.status_code == 200 and r.headers["x-upstream-port"] == str(up.port)
    finally:
        first.close()
        second.close()


def test_dynamic_ca_mints_a_certificate_per_name(harness, tmp_path):
    """config-dynamic-tls.yaml's listener: ``tls.mode: dynamicCa`` with a CA; a tunnel to
    any name gets a certificate for that name signed by the CA (clients trust the CA)."""
    tls = harness.tls()
    ca_key = tmp_path / "ca-key.pem"
    tls.ca.private_key_pem.write_to_path(str(ca_key))
    up = harness.upstream("minted")
    proxy, internal = free_port(), free_port()
    cfg = {
        "config": _admin(),
        "binds": [
            {"port": proxy, "tunnelProtocol": "connect", "listeners": []},
            {
                "port": internal,
                "mode": "internal",
                "listeners": [
                    {
                        "protocol": "HTTPS",
                        "tls": {"mode": "dynamicCa", "cert": str(tls.ca_cert), "key": str(ca_key)},
                        "routes": [
                            {
                                "backends": [{"host": up.host}],
                                "policies": {"responseHeaderModifier": {"set": {"x-inspected": "yes"}}},
                            }
                        ],
                    }
                ],
            },
        ],
    }
    harness.gateway(cfg)
    verify = ssl.create_default_context(cafile=str(tls.ca_cert))
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy}", verify=verify, timeout=10) as client:
        for name in ("httpbingo.org", "pypi.org", "httpbingo.org"):
            r = client.get(f"https://{name}:{internal}/echo")
            assert r.status_code == 200 and r.headers["x-inspected"] == "yes"
    # the certificate names the host asked for, issued by the CA
    s, head = _connect(proxy, f"example.net:{internal}")
    with s, verify.wrap_socket(s, server_hostname="example.net") as t:
        cert = t.getpeercert()
    assert ("DNS", "example.net") in cert["subjectAltName"]


def test_dynamic_tls_egress_inspects_every_request(harness, tmp_path):
    """config-dynamic-tls.yaml with local stand-ins: every CONNECT to the internal port is
    terminated with a certificate minted for the name, the HTTP transformations run, and
    the request goes on over TLS to the host it names (``dynamic: {}`` + ``backendTLS``)."""
    tls = harness.tls()
    ca_key = tmp_path / "ca-key.pem"
    tls.ca.private_key_pem.write_to_path(str(ca_key))
    up = harness.upstream("destination", tls=tls)
    proxy = free_port()
    cfg = {
        "config": _admin(),
        "binds": [
            {"port": proxy, "tunnelProtocol": "connect", "listeners": []},
            {
                # the destination's own port: internal, so only tunnels reach the gateway here
                "port": up.port,
                "mode": "internal",
                "listeners": [
                    {
                        "protocol": "HTTPS",
                        "tls": {"mode": "dynamicCa", "cert": str(tls.ca_cert), "key": str(ca_key)},
                        "routes": [
                            {
                                "backends": [{"dynamic": {}, "policies": {"backendTLS": {"root": str(tls.ca_cert)}}}],
                                "policies": {
                                    "transformations": {
                                        "request": {
                                            "set": {"x-agentgateway-req-message": "'Hello from AgentGateway!'"}
                                        },
                                        "response": {
                                            "set": {"x-agentgateway-resp-message": "'Hello from AgentGateway!'"}
                                        },
                                    }
                                },
                            }
                        ],
                    }
                ],
            },
        ],
    }
    harness.gateway(cfg)
    verify = ssl.create_default_context(cafile=str(tls.ca_cert))
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy}", verify=verify, timeout=10) as client:
        r = client.get(f"https://localhost:{up.port}/headers")
    assert r.status_code == 200, r.text
    assert r.headers["x-agentgateway-resp-message"] == "Hello from AgentGateway!"
    assert ["x-agentgateway-req-message", "Hello from AgentGateway!"] in r.json()["headers"]
    assert r.headers["x-upstream-port"] == str(up.port)


def test_max_connections_counts_tcp_connections(harness, echo):
    port = free_port()
    cfg = {
        "config": {**_admin(), "limits": {"maxConnections": 1}},
        "gateways": {"tcp": {"port": port, "protocol": "TCP"}},
        "tcpRoutes": [{"gateways": "tcp", "backends": [{"host": f"127.0.0.1:{echo.port}"}]}],
    }
    harness.gateway(cfg)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
        first.sendall(b"1")
        assert _recv_all(first, 1) == b"1"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
            try:
                second.sendall(b"2")
                assert second.recv(10) == b""
            except ConnectionError:
                pass  # (closed with a reset: also refused)
        first.sendall(b"3")
        assert _recv_all(first, 1) == b"3"
    assert echo.accepted == 1
