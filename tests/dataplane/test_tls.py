"""HTTPS listener and TLS to the backend (certificates from trustme)."""

from __future__ import annotations

import ssl

import httpx
import pytest

from tests.support.harness import RawHTTP, assert_gateway_error, echo_header, gateway_config, make_tls_files, route


@pytest.fixture(scope="module")
def env(module_harness, tls_files):
    plain = module_harness.upstream("plain-up")
    tls_up = module_harness.upstream("tls-up", tls=tls_files)
    other_ca = make_tls_files(module_harness.workdir / "other-ca")
    routes = [
        route(
            "to-tls",
            [tls_up.host],
            prefix="/tls-backend",
            policies={"backendTLS": {"root": str(tls_files.ca_cert), "hostname": "localhost"}},
        ),
        route(
            "to-tls-url",
            [f"https://localhost:{tls_up.port}"],
            prefix="/tls-url",
            policies={"backendTLS": {"root": str(tls_files.ca_cert)}},
        ),
        route(
            "to-tls-wrong-ca",
            [tls_up.host],
            prefix="/wrong-ca",
            policies={"backendTLS": {"root": str(other_ca.ca_cert), "hostname": "localhost"}},
        ),
        route("plain", [plain.host]),
    ]
    gw = module_harness.gateway(gateway_config(routes, protocol="HTTPS", tls=tls_files))
    client = httpx.Client(base_url=gw.url, verify=tls_files.client_context(), timeout=10)
    yield gw, plain, tls_up, client
    client.close()


def test_https_listener_serves(env):
    gw, _, _, c = env
    assert gw.url.startswith("https://")
    r = c.get("/echo/over-tls")
    assert r.status_code == 200
    assert r.json()["upstream"] == "plain-up"
    assert r.json()["path"] == "/echo/over-tls"


def test_https_sets_x_forwarded_proto(env):
    _, _, _, c = env
    assert echo_header(c.get("/echo/xfp").json(), "x-forwarded-proto") == ["https"]


def test_https_keepalive_and_large_body(env):
    _, _, _, c = env
    for i in range(5):
        r = c.post(f"/echo/{i}", content=b"q" * 300_000)
        assert r.status_code == 200 and r.json()["body_len"] == 300_000


def test_https_client_without_our_ca_fails_handshake(env):
    """A client that does not trust our CA must fail the handshake (the cert is really served)."""
    gw, _, _, _ = env
    with pytest.raises(httpx.ConnectError):
        httpx.get(gw.url + "/echo/x", verify=ssl.create_default_context(), timeout=5)


def test_plain_http_to_https_listener_does_not_crash(env):
    gw, _, _, c = env
    try:
        with RawHTTP(gw.port, timeout=3) as s:
            s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.read_until_close(3)
    except OSError:
        pass
    assert c.get("/echo/still-up").status_code == 200


def test_tls_to_backend(env):
    _, _, tls_up, c = env
    r = c.get("/tls-backend/x")
    assert r.status_code == 200, r.text
    assert r.json()["upstream"] == "tls-up"
    assert tls_up.count("/tls-backend/x") >= 1


def test_tls_to_backend_https_url(env):
    _, _, tls_up, c = env
    r = c.get("/tls-url/y")
    assert r.status_code == 200, r.text
    assert r.json()["upstream"] == "tls-up"


def test_tls_to_backend_untrusted_ca_is_502(env):
    _, _, tls_up, c = env
    r = c.get("/wrong-ca/z")
    assert_gateway_error(r.status_code, r.content, 502)
    assert tls_up.count("/wrong-ca/z") == 0
