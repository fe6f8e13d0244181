"""The MCP conformance suite (server mode) through the gateway equals the suite direct.

The runner is npm ``@modelcontextprotocol/conformance`` (pinned in
scripts/install-test-deps.sh); the server is the conformance repository's
everything-server, vendored in tests/vendor/mcp-conformance and run with ``tsx``. Each
round runs the whole active server suite twice: against the everything-server direct and
against an agentgw gateway whose one MCP target is that server. Every check must pass
direct, and the gateway must give the same status to every check.

A round costs 3-4 s. ``AGENTGW_CONFORMANCE_RUNS`` sets how many run in a row; unset, it
is 10 in CI (``CI`` set in the environment) and 3 elsewhere. A race shows up as a check that
fails in some round: the suite's elicitation scenarios wait 60 s for a request that was
lost, so a failing round costs a minute more.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.support.harness import REPO_ROOT, free_port

from .conftest import LOOPBACK, NPM_BIN, Server, mcp_config, node_env

RUNS = int(os.environ.get("AGENTGW_CONFORMANCE_RUNS") or (10 if os.environ.get("CI") else 3))
CONFORMANCE = NPM_BIN / "conformance"
TSX = NPM_BIN / "tsx"
VENDOR = REPO_ROOT / "tests" / "vendor" / "mcp-conformance"
NODE20_GLOBSYNC = Path(__file__).with_name("node20-globsync.mjs")
# result directories are named server-<scenario>-<ISO timestamp with - for : and .>
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$")


def _need_npm() -> None:
    missing = [p.name for p in (CONFORMANCE, TSX) if not p.exists()]
    if missing or shutil.which("node") is None:
        pytest.skip(f"{', '.join(missing) or 'node'} not installed (run scripts/install-test-deps.sh)")


def _server_script() -> Path:
    """The vendored server, copied next to the npm packages so its imports resolve.

    Node resolves ``import 'express'`` from the importing file's directory upwards, and
    the packages live in .cache/npm/node_modules. The ``.mts`` name makes it an ES module
    whatever package.json is nearest.
    """
    src = (VENDOR / "everything-server.ts").read_bytes()
    dst = NPM_BIN.parent.parent / "mcp-conformance" / "everything-server.mts"
    if not dst.exists() or dst.read_bytes() != src:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(src)
        tmp.replace(dst)
    return dst


def _run_suite(url: str, out: Path) -> Counter:
    """One run of the active server suite; ``Counter((scenario, check id, status))``.

    INFO entries are the runner's own logs, not checks, and are left out.
    """
    env = node_env()
    env["NODE_OPTIONS"] = f"--import {NODE20_GLOBSYNC} --require {LOOPBACK} --no-warnings"
    out.mkdir(parents=True)
    p = subprocess.run(
        [str(CONFORMANCE), "server", "--url", url, "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=str(out),
    )
    (out / "runner.log").write_text(p.stdout + p.stderr)
    checks: Counter = Counter()
    for d in sorted(out.iterdir()):
        m = RESULT_DIR.match(d.name)
        if not m:
            continue
        for c in json.loads((d / "checks.json").read_text()):
            if c.get("status") != "INFO":
                checks[(m["scenario"], c["id"], c["status"])] += 1
    assert checks, f"the runner wrote no results (exit {p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}"
    return checks


def _failures(out: Path) -> str:
    lines = []
    for d in sorted(out.iterdir()):
        if RESULT_DIR.match(d.name):
            for c in json.loads((d / "checks.json").read_text()):
                if c.get("status") not in ("SUCCESS", "INFO"):
                    lines.append(f"  {d.name}: {c['id']} {c['status']}: {c.get('errorMessage')}")
    return "\n".join(lines)


@pytest.mark.timeout(60 + 40 * RUNS)
def test_conformance_through_the_gateway_equals_direct(harness, tmp_path):
    _need_npm()
    port = free_port()
    server = Server(
        [str(TSX), str(_server_script())], port, tmp_path / "everything-server.log", node_env({"PORT": str(port)})
    )
    try:
        gw = harness.gateway(mcp_config({"targets": [{"name": "conformance", "mcp": {"host": server.url}}]}))
        for i in range(RUNS):
            direct = _run_suite(server.url, tmp_path / f"direct-{i}")
            failing = {k: n for k, n in direct.items() if k[2] != "SUCCESS"}
            assert not failing, (
                f"run {i + 1}/{RUNS}: the everything-server fails direct:\n{_failures(tmp_path / f'direct-{i}')}"
            )
            via = _run_suite(gw.url + "/mcp", tmp_path / f"gateway-{i}")
            if via != direct:
                raise AssertionError(
                    f"run {i + 1}/{RUNS}: {sum(direct.values())} checks pass direct; through the gateway:\n"
                    f"{_failures(tmp_path / f'gateway-{i}')}\n"
                    f"missing: {sorted((direct - via).keys())}\nextra: {sorted((via - direct).keys())}\n"
                    f"gateway log:\n{gw.logs()[-4000:]}"
                )
    finally:
        server.stop()
