"""agentgateway's traffic-egress-proxy example (``config.yaml``, "Allowlist HTTPS
destinations"), run as its README runs it, against a real agentgw.

README steps (agentgateway commit 75b4e6ce6, ``examples/traffic-egress-proxy/README.md``)::

    agentgateway -f examples/traffic-egress-proxy/config.yaml
    curl --proxy http://127.0.0.1:3000 --head https://pypi.org/     # an allowed destination
    curl --proxy http://127.0.0.1:3000 https://example.com/         # "should fail because
                                                                    # example.com has no matching route"

and the "TCP dynamic target expression" snippet ("To send a permitted hostname to a
different destination": ``pypi.org`` -> ``mirror.example.com:8443``).

Local stand-ins for the internet: the destinations are TLS servers on ``[::1]`` (with
certificates for their names from a test CA the client trusts, ``--cacert``), and the
gateway process alone sees ``pypi.org``, ``files.pythonhosted.org``, ``example.com`` and
``mirror.example.com`` resolve to ``::1``: it runs in a mount namespace of its own
(``unshare -m``) with a hosts file bind-mounted on ``/etc/hosts``. The stand-ins record the
TLS server names they were asked for, so "no matching route" is checked as "nothing was
dialled" too. The client is the README's ``curl``.

Changed from the vendored config, and why:

* ``binds[0].port`` 3000 -> a free port (the proxy port);
* ``gateways.secure.port`` 443 -> a free port P, and the clients ask for ``https://NAME:P/``
  (the CONNECT target's port picks the ``secure`` gateway, and ``dynamic: {}`` dials the
  SNI name on that same port, where the stand-ins listen on ``::1`` -- the gateway listens
  on ``0.0.0.0``); 443 may be taken here;
* ``config`` gets admin/stats/readiness addresses on free ports (the harness waits on
  readiness).

The allowlist, the TLS (passthrough) listener and the ``dynamic`` backend are as written
(asserted below). Not run here: ``config-conditional.yaml`` and ``config-dynamic-tls.yaml``
(their README sections; tests/dataplane/test_tcp.py covers both shapes).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-egress-proxy" / "config.yaml"

pytestmark = pytest.mark.timeout(60)

ALLOWLIST = [
    "pypi.org",
    "files.pythonhosted.org",
    "api.github.com",
    "github.com",
    "raw.githubusercontent.com",
    "objects.githubusercontent.com",
]
NAMES = ["pypi.org", "files.pythonhosted.org", "example.com", "mirror.example.com"]


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


class Destination:
    """An HTTPS server on [::1]:port standing in for the internet's sites."""

    def __init__(self, name: str, port: int, tls):
        self.name = name
        self.snis: list[str | None] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, body: bool):
                data = f"{outer.name} served {self.headers.get('host')}{self.path}\n".encode()
                self.send_response(200)
                self.send_header("x-served-by", outer.name)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

            def log_message(self, *a):
                pass

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.cert.configure_cert(ctx)

        def sni(_sock, name, _ctx):
            outer.snis.append(name)

        ctx.sni_callback = sni
        self.httpd = _V6Server(("::1", port), H)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Certs:
    def __init__(self, directory: Path):
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert(*NAMES)
        self.ca_path = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))


def _gateway_command(workdir: Path) -> list[str]:
    """``python -m agentgw`` in a mount namespace where /etc/hosts names NAMES as ::1."""
    hosts = workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost " + " ".join(NAMES) + "\n")
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        str(hosts),
        sys.executable,
        "-m",
        "agentgw",
    ]


def _namespaces_work(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [*_gateway_command(tmp_path)[:-3], "getent", "hosts", "pypi.org"], capture_output=True, text=True, timeout=10
    )
    return probe.returncode == 0 and probe.stdout.split()[:1] == ["::1"]


def _config(secure_port: int) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    # the example as vendored
    assert cfg["binds"] == [{"port": 3000, "tunnelProtocol": "connect", "listeners": []}]
    assert cfg["gateways"] == {
        "secure": {"port": 443, "listeners": [{"name": "public-egress", "hostname": "*", "protocol": "TLS"}]}
    }
    assert cfg["tcpRoutes"] == [
        {
            "name": "public-egress-allowlist",
            "gateways": "secure/public-egress",
            "hostnames": ALLOWLIST,
            "backends": [{"dynamic": {}}],
        }
    ]
    assert "config" not in cfg
    # the changes (see the module docstring)
    cfg["binds"][0]["port"] = free_port()
    cfg["gateways"]["secure"]["port"] = secure_port
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg


@pytest.fixture
def env(harness, tmp_path):
    if not _namespaces_work(tmp_path):
        pytest.skip("needs unshare -m and mount (a private /etc/hosts for the gateway)")
    certs = _Certs(tmp_path)
    secure = free_port()
    site = Destination("internet", secure, certs)
    mirror = Destination("mirror", free_port(), certs)
    try:
        yield harness, certs, site, mirror, secure
    finally:
        site.stop()
        mirror.stop()


def _start(harness, cfg: dict, tmp_path: Path):
    return harness.gateway(cfg, command=_gateway_command(tmp_path))


def curl(proxy: int, url: str, ca: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--proxy", f"http://127.0.0.1:{proxy}", "--cacert", str(ca), *args, url],
        capture_output=True,
        text=True,
        timeout=20,
    )


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="the README's client, curl, is not installed")


@needs_curl
def test_an_allowlisted_destination_is_reached_through_the_tunnel(env, tmp_path):
    """``curl --proxy http://127.0.0.1:3000 --head https://pypi.org/``: the TLS goes through
    untouched (the client verifies the destination's own certificate) to the SNI name."""
    harness, certs, site, _, secure = env
    gw = _start(harness, _config(secure), tmp_path)
    r = curl(gw.port, f"https://pypi.org:{secure}/", certs.ca_path, "--head")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 200"), r.stdout
    assert "x-served-by: internet" in r.stdout.lower()
    # "include artifact and redirect destinations such as files.pythonhosted.org"
    r = curl(gw.port, f"https://files.pythonhosted.org:{secure}/packages/x.whl", certs.ca_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"internet served files.pythonhosted.org:{secure}/packages/x.whl\n"
    assert site.snis == ["pypi.org", "files.pythonhosted.org"]


@needs_curl
def test_a_destination_outside_the_allowlist_is_blocked(env, tmp_path):
    """``curl --proxy http://127.0.0.1:3000 https://example.com/`` fails, and nothing is
    dialled for it."""
    harness, certs, site, _, secure = env
    gw = _start(harness, _config(secure), tmp_path)
    r = curl(gw.port, f"https://example.com:{secure}/", certs.ca_path)
    assert r.returncode != 0, r.stdout
    assert site.snis == []
    # the allowlist still works meanwhile
    assert curl(gw.port, f"https://pypi.org:{secure}/", certs.ca_path).returncode == 0
    assert site.snis == ["pypi.org"]


@needs_curl
def test_a_dynamic_target_expression_sends_a_name_elsewhere(env, tmp_path):
    """The README's ``dynamic.target`` snippet, with ``mirror.example.com:8443`` -> the mirror's
    port: pypi.org goes to the mirror (SNI still pypi.org), other allowed names to themselves."""
    harness, certs, site, mirror, secure = env
    cfg = _config(secure)
    snippet = yaml.safe_load(
        """
tcpRoutes:
- hostnames:
  - pypi.org
  backends:
  - dynamic:
      target: 'destination.hostname == "pypi.org" ? "mirror.example.com:8443" : destination.hostname + ":" + string(destination.port)'
"""
    )["tcpRoutes"][0]
    target = snippet["backends"][0]["dynamic"]["target"]
    snippet["backends"][0]["dynamic"]["target"] = target.replace(":8443", f":{mirror.port}")
    (route,) = cfg["tcpRoutes"]
    route["backends"] = snippet["backends"]
    route["hostnames"] = ["pypi.org", "files.pythonhosted.org"]
    gw = _start(harness, cfg, tmp_path)
    r = curl(gw.port, f"https://pypi.org:{secure}/simple/", certs.ca_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"mirror served pypi.org:{secure}/simple/\n"
    assert mirror.snis == ["pypi.org"] and site.snis == []
    r = curl(gw.port, f"https://files.pythonhosted.org:{secure}/", certs.ca_path)
    assert r.returncode == 0 and r.stdout.startswith("internet served"), (r.stdout, r.stderr)
    assert site.snis == ["files.pythonhosted.org"]
