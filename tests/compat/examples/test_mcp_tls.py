"""agentgateway's mcp-tls example, run as its README runs it.

The vendored ``examples/mcp-tls/config.yaml`` is loaded unchanged except:

* the bind's port 3000 -> a free port;
* the ``everything`` target's ``npx @modelcontextprotocol/server-everything`` -> the
  project-local copy of that npm package, on stdio;
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

The listener's ``tls.cert``/``tls.key`` paths (``examples/mcp-tls/certs/...``) are kept as
written: the test generates the example pair the README's ``certs/gen.sh`` makes (a root CA
``agentgateway.dev`` and a ``localhost`` leaf signed by it) into that path under the
gateway's working directory, which plays the repository root the README runs from.

README steps checked:

* ``curl https://localhost:3000 -k`` answers ``Not Acceptable: Client must accept
  text/event-stream``: over TLS (certificate not verified) a plain GET gets 406 with that
  reason, "this shows the TLS was handled properly";
* the listener serves the example certificate (verified against the example CA for
  ``localhost``), and not plain HTTP;
* beyond the README's curl: the MCP server behind it works over that TLS listener (the
  official MCP SDK client, trusting the example CA, lists the tools and calls ``echo``).
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import httpx
import httpx2
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.mcp.conftest import EVERYTHING, LOOPBACK, need_npm, run
from tests.support.harness import Gateway, free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "mcp-tls" / "config.yaml"


def _example_certs(certs: Path) -> None:
    """What ``certs/gen.sh`` writes: ca-cert.pem/ca-key.pem (root CA ``agentgateway.dev``)
    and cert.pem/key.pem (leaf ``localhost``, SAN localhost, signed by the CA)."""
    certs.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write_key(key, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentgateway.dev")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (certs / "ca-cert.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write_key(ca_key, certs / "ca-key.pem")
    (certs / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    write_key(leaf_key, certs / "key.pem")


@pytest.fixture
def example(harness, tmp_path) -> tuple[int, Path]:
    """The example gateway, run from a directory laid out as the README's repository root;
    (its port, the example CA certificate)."""
    need_npm(EVERYTHING)
    cfg = yaml.safe_load(EXAMPLE.read_text())
    bind = cfg["binds"][0]
    assert bind["port"] == 3000
    port = bind["port"] = free_port()
    listener = bind["listeners"][0]
    assert listener["protocol"] == "HTTPS"
    assert listener["tls"] == {"cert": "examples/mcp-tls/certs/cert.pem", "key": "examples/mcp-tls/certs/key.pem"}
    target = listener["routes"][0]["backends"][0]["mcp"]["targets"][0]
    assert target["stdio"] == {"cmd": "npx", "args": ["@modelcontextprotocol/server-everything"]}
    target["stdio"] = {
        "cmd": str(EVERYTHING),
        "args": ["stdio"],
        "env": {"NODE_OPTIONS": f"--require {LOOPBACK} --no-warnings"},
    }
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    root = tmp_path / "agentgateway"
    _example_certs(root / "examples/mcp-tls/certs")
    gw = Gateway(root, cfg, wait_ready=False)
    harness.gateways.append(gw)  # stopped (and checked for tracebacks) by the harness
    gw.wait_ready()
    return port, root / "examples/mcp-tls/certs/ca-cert.pem"


def test_curl_k_gets_not_acceptable_over_tls(example):
    port, ca = example
    # curl https://localhost:3000 -k
    r = httpx.get(f"https://localhost:{port}", verify=False, headers={"accept": "*/*"}, timeout=10)
    assert r.status_code == 406, (r.status_code, r.text)
    assert r.reason_phrase == "Not Acceptable"
    assert "client must accept text/event-stream" in r.text.lower(), r.text

    # the certificate served is the example's localhost certificate, signed by its CA
    ctx = ssl.create_default_context(cafile=str(ca))
    r = httpx.get(f"https://localhost:{port}/", verify=ctx, timeout=10)
    assert r.status_code == 406
    # and the listener speaks only TLS
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)


def test_mcp_over_the_tls_listener(example):
    port, ca = example
    ctx = ssl.create_default_context(cafile=str(ca))

    async def go():
        http = httpx2.AsyncClient(verify=ctx, timeout=20)
        async with http, Client(streamable_http_client(f"https://localhost:{port}/mcp", http_client=http)) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"echo", "get-sum"} <= names, names
            r = await c.call_tool("echo", {"message": "over tls"})
            assert r.content[0].text == "Echo: over tls"

    run(go())
