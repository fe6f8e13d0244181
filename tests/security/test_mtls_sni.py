"""A listener that verifies client certificates is reached only through its own TLS
handshake: SNI chooses the handshake, Host the listener, and the two must agree."""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from tests.support.harness import gateway_config, make_tls_files, route


@pytest.fixture(scope="module")
def env(module_harness, tmp_path_factory):
    d = tmp_path_factory.mktemp("mtls")
    tls = make_tls_files(d)
    client = tls.ca.issue_cert("agent@example.com")
    client.private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    up = module_harness.upstream("up")
    listeners = [
        {
            "name": "public",
            "hostname": "public.example.com",
            "protocol": "HTTPS",
            "tls": {"cert": str(tls.cert), "key": str(tls.key)},
            "routes": [route("public", [up.host], policies={"responseHeaderModifier": {"set": {"x-l": "public"}}})],
        },
        {
            "name": "admin",
            "hostname": "admin.example.com",
            "protocol": "HTTPS",
            "tls": {"cert": str(tls.cert), "key": str(tls.key), "root": str(tls.ca_cert)},
            "routes": [route("admin", [up.host], policies={"responseHeaderModifier": {"set": {"x-l": "admin"}}})],
        },
    ]
    cfg = gateway_config([], extra_binds=[])
    cfg["binds"] = [{"port": cfg["binds"][0]["port"], "listeners": listeners}]
    gw = module_harness.gateway(cfg)
    return gw, tls, d / "client.pem"


def refused(gw, tls, sni: str, host: str, cert=None) -> bool:
    """The TLS handshake failed: in TLS 1.3 the client may see it only as a closed
    connection when it reads, after its own side of the handshake completed."""
    try:
        fetch(gw, tls, sni, host, cert)
    except (ssl.SSLError, ConnectionError):
        return True
    return False


def fetch(gw, tls, sni: str, host: str, cert=None) -> tuple[int, dict, bytes]:
    ctx = tls.client_context()
    if cert is not None:
        ctx.load_cert_chain(str(cert))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall(f"GET /echo/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    if not data:
        raise ConnectionError("closed without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_host_of_an_mtls_listener_on_another_listeners_handshake_is_421(env):
    gw, tls, _ = env
    status, _, body = fetch(gw, tls, "public.example.com", "admin.example.com")
    assert status == 421
    assert json.loads(body)["error"]["type"] == "misdirected_request"


def test_mtls_listener_needs_its_certificate(env, tmp_path):
    gw, tls, cert = env
    # on a bind with several listeners the handshake asks for a certificate, and the
    # listener that requires one refuses the request without it
    status, _, body = fetch(gw, tls, "admin.example.com", "admin.example.com")
    assert status == 403 and json.loads(body)["error"]["type"] == "client_certificate_required"
    status, headers, _ = fetch(gw, tls, "admin.example.com", "admin.example.com", cert)
    assert status == 200 and headers["x-l"] == "admin"
    # a certificate from another CA fails the handshake (checked against the listener's CA)
    other = make_tls_files(tmp_path / "other")
    other.ca.issue_cert("intruder@example.com").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "o.pem"))
    assert refused(gw, tls, "admin.example.com", "admin.example.com", tmp_path / "o.pem")


def test_single_mtls_listener_refuses_the_handshake_without_a_certificate(harness, tmp_path):
    tls = make_tls_files(tmp_path)
    up = harness.upstream("up")
    gw = harness.gateway(
        gateway_config(
            [route("r", [up.host])],
            protocol="HTTPS",
            tls={"cert": str(tls.cert), "key": str(tls.key), "root": str(tls.ca_cert)},
        )
    )
    assert refused(gw, tls, "localhost", "localhost")


def test_other_combinations_are_served(env):
    gw, tls, cert = env
    status, headers, _ = fetch(gw, tls, "public.example.com", "public.example.com")
    assert status == 200 and headers["x-l"] == "public"
    # a verified handshake may reach a listener that verifies nothing
    status, headers, _ = fetch(gw, tls, "admin.example.com", "public.example.com", cert)
    assert status == 200 and headers["x-l"] == "public"
