"""The demo MCP client (``python -m agentgw_demo.mcp_client``) against a real gateway:
tools listed and called, and every kind of failure -- a JSON-RPC error, an HTTP error, an
answer that is not MCP, a gateway that is not there -- as one readable line, exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.harness import closed_port, gateway_config, route, subprocess_env

from .conftest import demo_stdio


def client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentgw_demo.mcp_client", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
    )


@pytest.fixture(scope="module")
def gw(module_harness):
    routes = [
        route(  # two targets, as in the quickstart: tool names get the target's prefix
            "mcp",
            [{"mcp": {"targets": [{"name": n, "stdio": demo_stdio(n)} for n in ("math", "notes")]}}],
            exact="/mcp",
        ),
        # an MCP backend whose only target is down: initialize fails with a JSON-RPC error
        route(
            "down",
            [{"mcp": {"targets": [{"name": "gone", "mcp": {"host": f"http://127.0.0.1:{closed_port()}/mcp"}}]}}],
            exact="/down",
        ),
        route("hello", [], exact="/hello", policies={"directResponse": {"status": 200, "body": "hello\n"}}),
    ]
    return module_harness.gateway(gateway_config(routes))


def failed_with(r: subprocess.CompletedProcess, line: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert r.stderr.splitlines() == [line], r.stderr


def test_lists_and_calls_tools(gw):
    r = client("--url", gw.url + "/mcp", "--call", "math_add", '{"a": 2, "b": 3}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("connected to agentgw "), r.stdout
    assert "  math_add " in r.stdout and '"text": "5' in r.stdout, r.stdout


def test_a_json_rpc_error_is_one_line(gw):
    r = client("--url", gw.url + "/mcp", "--call", "nope", "{}")
    assert "  math_add " in r.stdout  # what worked is still shown
    failed_with(r, "mcp_client: tools/call nope: error -32602: unknown name 'nope': expected <target>_<name>")


def test_a_failed_initialize_is_one_line(gw):
    r = client("--url", gw.url + "/down")
    assert r.returncode == 1 and r.stderr.startswith("mcp_client: initialize: error -32603: "), r.stderr
    assert "gone" in r.stderr and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_http_errors_and_answers_that_are_not_mcp(gw):
    failed_with(
        client("--url", gw.url + "/nothing-here"),
        f"mcp_client: {gw.url}/nothing-here: HTTP 404 Not Found: no route matches this request",
    )
    failed_with(
        client("--url", gw.url + "/hello"),
        f"mcp_client: {gw.url}/hello: the answer is not JSON-RPC (text/plain): is this an MCP endpoint?",
    )


def test_no_gateway_and_bad_arguments(gw):
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    r = client("--url", url)
    assert r.returncode == 1 and r.stderr.startswith(f"mcp_client: cannot reach {url}: "), r.stderr
    assert "refused" in r.stderr.lower() and len(r.stderr.splitlines()) == 1, r.stderr
    failed_with(
        client("--url", gw.url + "/mcp", "--call", "math_add", '{"a": 2'),
        "mcp_client: --call math_add: the arguments are not JSON: Expecting ',' delimiter: line 1 column 8 (char 7)",
    )
