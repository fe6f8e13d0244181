"""`agentgw run --k8s-manifests DIR`: serve a Gateway from manifests on a laptop, reload on edits."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tests.kube.served import LOCAL_GATEWAY, serving, upstream
from tests.support.harness import free_port

pytestmark = pytest.mark.timeout(60)


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"path={self.path} x-env={self.headers.get('x-env')}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


MANIFESTS = (
    LOCAL_GATEWAY
    + """
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
)


def test_run_k8s_manifests_serves_and_reloads(tmp_path):
    gw_port = free_port()
    f = tmp_path / "m.yaml"
    with upstream(_Echo) as up_port:
        f.write_text(MANIFESTS.format(gw_port=gw_port, up_port=up_port, env="one"))
        with serving(f, gw_port, "/api/x") as r:
            assert r.status_code == 200 and r.text == "path=/api/x x-env=one"
            assert httpx.get(f"http://127.0.0.1:{gw_port}/other", timeout=2).status_code == 404
            f.write_text(MANIFESTS.format(gw_port=gw_port, up_port=up_port, env="two"))
            url = f"http://127.0.0.1:{gw_port}/api/x"
            deadline = time.time() + 15
            while time.time() < deadline:
                if httpx.get(url, timeout=2).text.endswith("x-env=two"):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError("edit to the manifests was not served")
