"""Serving manifests for real: ``agentgw run --k8s-manifests DIR`` against a local upstream.

The tests that check a translation end to end share the same pieces: a Gateway with its
AgentgatewayParameters on a free port (admin/stats/readiness off), a throwaway HTTP
upstream, and a gateway process that is up once its first request gets an answer.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx

from tests.support.harness import terminate

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))

#: a Gateway ``demo/local`` listening on ``{gw_port}`` (a ``str.format`` template: literal
#: braces doubled), to prepend to a test's own objects
LOCAL_GATEWAY = """
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
---"""


@contextlib.contextmanager
def upstream(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering with ``handler``; yields its port."""
    srv = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()


@contextlib.contextmanager
def serving(manifests: Path, gw_port: int, first: str, headers: dict | None = None) -> Iterator[httpx.Response]:
    """``agentgw run --k8s-manifests`` on the directory of ``manifests``; yields the answer
    to ``GET first`` (retried until the gateway listens, 20 s at most)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgw", "run", "--k8s-manifests", str(manifests.parent)],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 20
        r = None
        while time.time() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{gw_port}{first}", headers=headers, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r is not None, proc.stdout.read1().decode() if proc.stdout else ""
        yield r
    finally:
        terminate(proc, timeout=10)
