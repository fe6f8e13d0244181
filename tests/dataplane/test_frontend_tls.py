"""``frontendPolicies.tls``: the handshake timeout and ALPN of HTTPS listeners."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.harness import RawHTTP, dump_yaml, gateway_config, route, run_cli


def _silent_client_lifetime(port: int, limit: float) -> float:
    """Connect and send nothing; seconds until the gateway closes the connection (or
    ``limit`` if it is still open then)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=limit)
    t0 = time.monotonic()
    try:
        s.settimeout(limit)
        while s.recv(4096):
            pass
    except socket.timeout:
        return limit
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return time.monotonic() - t0


def test_handshake_timeout_closes_a_client_that_does_not_finish_it(harness, tls_files):
    up = harness.upstream("hs")
    cfg = gateway_config([route("r", [up.host])], protocol="HTTPS", tls=tls_files)
    cfg["frontendPolicies"] = {"tls": {"handshakeTimeout": "1s"}}
    gw = harness.gateway(cfg)
    lifetime = _silent_client_lifetime(gw.port, 8.0)
    assert 0.8 <= lifetime < 4.0, (lifetime, gw.logs())
    # a client that does finish it is served (and may stay past the timeout)
    with RawHTTP(gw.port, ssl_context=tls_files.client_context(), server_hostname="localhost") as c:
        assert c.request("GET", "/x").status == 200
        time.sleep(1.5)
        assert c.request("GET", "/y").status == 200

    # a reload applies to new connections
    cfg["frontendPolicies"]["tls"]["handshakeTimeout"] = "2500ms"
    gw.reload(cfg)
    lifetime = _silent_client_lifetime(gw.port, 8.0)
    assert 2.3 <= lifetime < 6.0, (lifetime, gw.logs())


def test_default_handshake_timeout_is_agentgateways(harness, tls_files):
    """15s when unset: a silent client is still connected after 2s."""
    up = harness.upstream("hs-default")
    gw = harness.gateway(gateway_config([route("r", [up.host])], protocol="HTTPS", tls=tls_files))
    assert _silent_client_lifetime(gw.port, 2.0) == 2.0


@pytest.mark.parametrize(
    "alpn, offered, chosen",
    [
        (None, ["h2", "http/1.1"], "h2"),  # the default: both, h2 preferred
        (["h2", "http/1.1"], ["h2", "http/1.1"], "h2"),
        (["http/1.1"], ["h2", "http/1.1"], "http/1.1"),  # h2 not offered: HTTP/1.1
        (["h2"], ["h2"], "h2"),
    ],
)
def test_alpn_chooses_what_the_listener_offers(harness, tls_files, alpn, offered, chosen):
    up = harness.upstream("alpn")
    cfg = gateway_config([route("r", [up.host])], protocol="HTTPS", tls=tls_files)
    if alpn is not None:
        cfg["frontendPolicies"] = {"tls": {"alpn": alpn}}
    gw = harness.gateway(cfg)
    ctx = tls_files.client_context()
    ctx.set_alpn_protocols(offered)
    if chosen == "http/1.1":
        with RawHTTP(gw.port, ssl_context=ctx, server_hostname="localhost") as c:
            assert c.sock.selected_alpn_protocol() == "http/1.1"
            assert c.request("GET", "/x").status == 200
        return
    import socket
    import ssl

    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert isinstance(tls, ssl.SSLSocket) and tls.selected_alpn_protocol() == "h2"


def test_alpn_names_other_than_h2_and_http11_are_refused(tmp_path, tls_files):
    cfg = gateway_config([route("r", ["127.0.0.1:9"])], protocol="HTTPS", tls=tls_files)
    cfg["frontendPolicies"] = {"tls": {"alpn": ["h2", "h3"]}}
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode == 1
    assert [line.split(": ", 1)[1] for line in r.stderr.splitlines()] == [  # after <file>:<line>:<column>
        "frontendPolicies.tls.alpn: 'h3' not supported (HTTPS listeners speak h2 and http/1.1 only)"
    ], r.stderr
