"""`agentgw run --k8s-manifests DIR`: serve a Gateway from manifests on a laptop, reload on edits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tests.support.harness import terminate

pytestmark = pytest.mark.timeout(60)
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = f"path={self.path} x-env={self.headers.get('x-env')}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


MANIFESTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: local, namespace: demo}}
spec:
  gatewayClassName: agentgw
  infrastructure:
    parametersRef: {{group: agentgateway.dev, kind: AgentgatewayParameters, name: local}}
  listeners:
  - {{name: http, port: {gw_port}, protocol: HTTP}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayParameters
metadata: {{name: local, namespace: demo}}
spec:
  rawConfig:
    config: {{adminAddr: "off", statsAddr: "off", readinessAddr: "off"}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: demo}}
spec:
  type: ExternalName
  externalName: 127.0.0.1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: echo, namespace: demo}}
spec:
  parentRefs: [{{name: local}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-env, value: {env}}}]}}
    backendRefs: [{{name: echo, port: {up_port}}}]
"""


def test_run_k8s_manifests_serves_and_reloads(tmp_path):
    up = HTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    gw_port = _free_port()
    f = tmp_path / "m.yaml"
    f.write_text(MANIFESTS.format(gw_port=gw_port, up_port=up.server_address[1], env="one"))
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgw", "run", "--k8s-manifests", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{gw_port}/api/x"
        deadline = time.time() + 20
        r = None
        while time.time() < deadline:
            try:
                r = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r is not None, proc.stdout.read1().decode() if proc.stdout else ""
        assert r.status_code == 200 and r.text == "path=/api/x x-env=one"
        assert httpx.get(f"http://127.0.0.1:{gw_port}/other", timeout=2).status_code == 404
        f.write_text(MANIFESTS.format(gw_port=gw_port, up_port=up.server_address[1], env="two"))
        deadline = time.time() + 15
        while time.time() < deadline:
            if httpx.get(url, timeout=2).text.endswith("x-env=two"):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("edit to the manifests was not served")
    finally:
        terminate(proc, timeout=10)
        up.shutdown()
