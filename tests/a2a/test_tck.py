"""The A2A TCK through agentgw gives the same results as against the agent directly.

The TCK (tests/vendor/a2a-tck, see its README) is run as a subprocess in its own
virtualenv (``.venvs/a2a-tck``, made by scripts/install-test-deps.sh) against the TCK's
own SUT agent (tests/a2a/agents/tck_sut_agent.py): once directly, then through a real
gateway with an ``a2a`` route at the root and once behind a path prefix with
``urlRewrite`` (the card's addresses point back through the gateway, so every later call
goes through it). It runs on all three transports: JSON-RPC, HTTP+JSON and gRPC. The
SUT serves gRPC on a second port; the gateway has a route for the gRPC service path
(``/lf.a2a.v1.A2AService/``) to it, so the card keeps its GRPC interface, rewritten to
the gateway's ``host:port``, and the TCK's gRPC client (an insecure channel to the card's
URL: h2c with prior knowledge) calls through the gateway in both gateway runs. Each TCK
test's outcome (passed, failed, skipped) through the gateway must equal its outcome
direct; a difference is a gateway bug, not a tolerance.

The whole TCK runs by default: one run takes ~10 s (265 tests), so the module takes
~40 s. ``AGENTGW_TCK_KEEP=DIR`` keeps the TCK's JUnit XML and compatibility reports (JSON
and HTML) of each run in DIR.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from tests.support.harness import REPO_ROOT, gateway_config, route

TCK_DIR = REPO_ROOT / "tests" / "vendor" / "a2a-tck"
TCK_PYTHON = REPO_ROOT / ".venvs" / "a2a-tck" / "bin" / "python"
TRANSPORTS = "jsonrpc,http_json,grpc"  # all three: the gateway carries each
TCK_RUN_TIMEOUT = 300
# The TCK's own tests are grouped by transport for the report and the comparison; tests
# that belong to none (agent card discovery and caching, data model) are "card+model".
GROUPS = ("jsonrpc", "http_json", "grpc", "card+model")

pytestmark = pytest.mark.timeout(4 * TCK_RUN_TIMEOUT)


def tck_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing written into the vendored tree
    return env


def transport_group(classname: str, name: str) -> str:
    """``jsonrpc`` / ``http_json`` / ``grpc`` / ``card+model`` for one TCK test case."""
    m = re.search(r"\[(?:.*-)?(jsonrpc|http_json|grpc)\]$", name)
    if m:
        return m.group(1)
    parts = classname.split(".")
    for t in ("jsonrpc", "http_json", "grpc"):
        if t in parts[:-1]:
            return t
    base = name.split("[")[0]
    cls = parts[-1]
    if base.endswith("_jsonrpc") or "JsonRpc" in cls:
        return "jsonrpc"
    if base.endswith(("_rest", "_http_json")) or "Rest" in cls:
        return "http_json"
    if base.endswith("_grpc") or "Grpc" in cls:
        return "grpc"
    return "card+model"


class TckRun:
    """One TCK run: ``outcomes[test id] = (group, "passed" | "failed" | "skipped")``."""

    def __init__(self, label: str, junit: Path, output: str):
        self.label = label
        self.output = output
        self.outcomes: dict[str, tuple[str, str]] = {}
        self.messages: dict[str, str] = {}
        for tc in ET.parse(junit).getroot().iter("testcase"):
            classname, name = tc.get("classname", ""), tc.get("name", "")
            outcome, message = "passed", ""
            for child in tc:
                if child.tag in ("failure", "error"):
                    outcome, message = "failed", child.get("message", "")
                elif child.tag == "skipped":
                    outcome, message = "skipped", child.get("message", "")
            tid = f"{classname}::{name}"
            self.outcomes[tid] = (transport_group(classname, name), outcome)
            self.messages[tid] = message

    def tests(self, group: str, outcome: str | None = None) -> set[str]:
        return {t for t, (g, o) in self.outcomes.items() if g == group and (outcome is None or o == outcome)}

    def counts(self, group: str) -> Counter:
        return Counter(o for g, o in self.outcomes.values() if g == group)

    def summary(self) -> str:
        return ", ".join(
            f"{g}: {c['passed']} passed / {c['failed']} failed / {c['skipped']} skipped"
            for g in GROUPS
            for c in [self.counts(g)]
        )


def run_tck(sut_host: str, out_dir: Path, label: str) -> TckRun:
    """The command ``run_tck.py --sut-host URL --transport jsonrpc,http_json,grpc`` builds, with
    JUnit XML and the TCK's compatibility report written to ``out_dir`` (not its tree)."""
    junit = out_dir / f"{label}.xml"
    cmd = [
        str(TCK_PYTHON),
        "-m",
        "pytest",
        "tests/compatibility/",
        f"--sut-host={sut_host}",
        f"--transport={TRANSPORTS}",
        "--tb=line",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--compatibility-report={out_dir / (label + '-compatibility')}",
    ]
    proc = subprocess.run(
        cmd,
        cwd=TCK_DIR,
        env=tck_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TCK_RUN_TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    (out_dir / f"{label}.out").write_text(output)
    # pytest: 0 all passed, 1 some failed; anything else (usage, internal error, no tests) is
    # the TCK not running at all
    assert proc.returncode in (0, 1) and junit.exists(), f"TCK run {label} exited {proc.returncode}:\n{output[-6000:]}"
    return TckRun(label, junit, output)


def describe_differences(direct: TckRun, other: TckRun, group: str) -> str:
    lines = []
    for tid in sorted(direct.tests(group) | other.tests(group)):
        a = direct.outcomes.get(tid, (group, "absent"))[1]
        b = other.outcomes.get(tid, (group, "absent"))[1]
        if a != b:
            lines.append(f"  {tid}: direct {a}, {other.label} {b}: {other.messages.get(tid, '')[:300]}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def tck(module_harness, a2a_agents, tmp_path_factory):
    if not TCK_PYTHON.exists():
        pytest.fail(f"{TCK_PYTHON} is missing: run scripts/install-test-deps.sh (it creates the A2A TCK venv)")
    keep = os.environ.get("AGENTGW_TCK_KEEP")
    out_dir = Path(keep) if keep else tmp_path_factory.mktemp("tck")
    out_dir.mkdir(parents=True, exist_ok=True)
    sut = a2a_agents("tck", "tck-sut")
    gw = module_harness.gateway(
        gateway_config(
            [
                # the gRPC binding: the service path, to the SUT's gRPC port (both gateway
                # runs' cards name the gateway's authority for it, as the route is the same
                # agent's; no prefix crosses gRPC)
                route("tck-grpc", [sut.grpc_host], prefix="/lf.a2a.v1.A2AService/", policies={"a2a": {"agent": "tck"}}),
                route(
                    "tck-prefixed",
                    [sut.host],
                    prefix="/agents/tck",
                    policies={"a2a": {"agent": "tck"}, "urlRewrite": {"path": {"prefix": "/"}}},
                ),
                route("tck-sut", [sut.host], policies={"a2a": {"agent": "tck"}}),
            ]
        )
    )
    runs = {
        "direct": run_tck(f"http://{sut.host}", out_dir, "direct"),
        "gateway": run_tck(gw.url, out_dir, "gateway"),
        "gateway-prefixed": run_tck(f"{gw.url}/agents/tck", out_dir, "gateway-prefixed"),
    }
    for run in runs.values():
        print(f"TCK {run.label}: {run.summary()}", file=sys.stderr)
    return runs, gw


def test_tck_runs_against_the_agent_directly(tck):
    """The baseline is a real one: the TCK ran its JSON-RPC, HTTP+JSON and gRPC tests
    against the SUT and most pass (the few that fail are the SDK's, identical through the
    gateway)."""
    direct = tck[0]["direct"]
    for group in GROUPS:
        counts = direct.counts(group)
        assert counts["passed"] >= 10, f"{group}: {direct.summary()}\n{direct.output[-4000:]}"
        assert counts["passed"] > 5 * counts["failed"], f"{group}: {direct.summary()}\n{direct.output[-4000:]}"


@pytest.mark.parametrize("gateway", ["gateway", "gateway-prefixed"])
@pytest.mark.parametrize("group", GROUPS)
def test_tck_through_the_gateway_equals_direct(tck, gateway, group):
    direct, through = tck[0]["direct"], tck[0][gateway]
    differences = describe_differences(direct, through, group)
    assert not differences, (
        f"TCK {group} tests whose outcome differs through the gateway ({gateway}):\n{differences}\n"
        f"direct: {direct.summary()}\n{gateway}: {through.summary()}"
    )
    assert through.tests(group, "passed") == direct.tests(group, "passed")


def test_tck_calls_went_through_the_gateway(tck):
    """The card sent the TCK's clients back through the gateway on all three bindings:
    JSON-RPC posts to the agent's root and HTTP+JSON calls under its /a2a/rest on both
    routes, gRPC calls (of both gateway runs) on the gRPC service's route."""
    _, gw = tck
    calls = Counter()
    for e in gw.access_log():
        if e.get("msg") == "request" and e.get("a2a_method") and e.get("a2a_method") != "agent-card":
            path = e.get("path", "")
            binding = (
                "grpc"
                if path.startswith("/lf.a2a.v1.A2AService/")
                else "http_json"
                if "/a2a/rest/" in path
                else "jsonrpc"
            )
            calls[(e.get("route"), binding)] += 1
    for r in ("tck-sut", "tck-prefixed"):
        for binding in ("jsonrpc", "http_json"):
            assert calls[(r, binding)] >= 50, calls
    assert calls[("tck-grpc", "grpc")] >= 2 * 50, calls
    assert {r for r, b in calls if b == "grpc"} == {"tck-grpc"}, calls
