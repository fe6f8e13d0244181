"""A real OpenID provider for the tests: ``oidc_server.mjs`` (oidc-provider from npm) on a
port of its own, configured per test (clients, scopes, claims, dynamic registration, RFC
8707 resource indicators). Its login needs no page: it signs in ``login_hint`` (or the
configured account) and grants what is asked."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .harness import REPO_ROOT, free_port

SERVER = Path(__file__).parent / "oidc_server.mjs"
OIDC_PROVIDER = REPO_ROOT / ".cache/npm/node_modules/oidc-provider/lib/index.js"


class OidcProvider:
    """``issuer`` is its URL; ``close()`` stops it."""

    def __init__(self, workdir: Path, **config):
        if not OIDC_PROVIDER.exists() or shutil.which("node") is None:
            pytest.skip("oidc-provider is not installed (run scripts/install-test-deps.sh)")
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / f"oidc-{self.port}.log"
        env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "OIDC_PROVIDER_MODULE": str(OIDC_PROVIDER)}
        self._f = open(self.log, "wb")
        self.proc = subprocess.Popen(
            ["node", str(SERVER), str(self.port), json.dumps(config)], stdout=self._f, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + 20
        while b"ready" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"oidc-provider did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._f.close()
