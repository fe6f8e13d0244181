"""agentgateway's traffic-tailscale-auth example against a real agentgw, with a stand-in
for tailscaled's local API on a unix socket (Tailscale itself cannot run here).

The config asks tailscaled, over its unix socket, who the client is
(``GET /localapi/v0/whois?addr=<source.address>`` with ``Host: local-tailscaled.sock``):
a known peer is let through and its node name and login go into the access log
(``tailscale.node``, ``tailscale.email`` from the authorizer's answer, through
``extauthz.*``); an address tailscaled does not know is refused with tailscaled's own
answer (404).

Changed from the vendored config: ``binds[0].port`` 3000 -> a free port; the socket
``/run/tailscale/tailscaled.sock`` -> the stand-in's socket in a temporary directory; the
backend ``localhost:8080`` -> the test upstream; ``config`` gets admin/stats/readiness
addresses on free ports.
"""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-tailscale-auth" / "config.yaml"


class _Tailscaled(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    known: dict[str, dict] = {}
    seen: list[tuple[str, str]] = []


class _WhoIs(BaseHTTPRequestHandler):
    def address_string(self) -> str:  # (a unix socket has no peer address)
        return "local"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server: _Tailscaled = self.server  # type: ignore[assignment]
        url = urlsplit(self.path)
        addr = (parse_qs(url.query).get("addr") or [""])[0]
        server.seen.append((self.headers.get("host", ""), self.path))
        ip = addr.rsplit(":", 1)[0]
        who = server.known.get(ip) if url.path == "/localapi/v0/whois" else None
        body = json.dumps(who).encode() if who else b"no match for IP:port\n"
        self.send_response(200 if who else 404)
        self.send_header("content-type", "application/json" if who else "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_known_peers_pass_and_are_logged_unknown_ones_are_refused(harness, upstream, tmp_path):
    sock = tmp_path / "tailscaled.sock"
    server = _Tailscaled(str(sock), _WhoIs)
    server.known = {}
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = yaml.safe_load(EXAMPLE.read_text())
        [route] = cfg["binds"][0]["listeners"][0]["routes"]
        ea = route["policies"]["extAuthz"]
        assert ea["host"] == "unix:/run/tailscale/tailscaled.sock"
        ea["host"] = f"unix:{sock}"
        assert route["backends"] == [{"host": "localhost:8080"}]
        route["backends"] = [{"host": upstream.host}]
        cfg["binds"][0]["port"] = free_port()
        cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
        cfg["config"]["logging"] = {"format": "json"}
        gw = harness.gateway(cfg)

        # nobody is known yet: tailscaled answers 404, and that answer is the client's
        # (an HTTP authorizer's denial goes back as it gave it, as in agentgateway)
        r = httpx.get(gw.url + "/hello")
        assert r.status_code == 404 and "no match" in r.text, r.text
        assert upstream.counts().get("/hello", 0) == 0
        host, path = server.seen[-1]
        assert host == "local-tailscaled.sock"  # the :authority the example sets
        assert path.startswith("/localapi/v0/whois?addr=127.0.0.1")

        server.known["127.0.0.1"] = {
            "Node": {"Name": "laptop.tail1234.ts.net."},
            "UserProfile": {"LoginName": "alice@example.com"},
        }
        r = httpx.get(gw.url + "/hello")
        assert r.status_code == 200, r.text
        e = gw.wait_access_log(lambda e: e.get("path") == "/hello" and e.get("status") == 200)
        assert e["tailscale.node"] == "laptop.tail1234.ts.net."
        assert e["tailscale.email"] == "alice@example.com"
    finally:
        server.shutdown()
        server.server_close()
