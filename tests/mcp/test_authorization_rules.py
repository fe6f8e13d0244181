"""mcpAuthorization ``allow`` / ``deny`` / ``require`` (besides agentgateway's ``rules``) at
every level it can be written -- route policies, backend policies (inline and on a named
backend) and a target's policies -- through a real gateway and the MCP SDK client: the
listed tools are filtered, and a call to a refused tool gets the JSON-RPC error."""

from __future__ import annotations

import httpx
import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from tests.support.harness import gateway_config, route

from .conftest import run
from .test_sessions import Raw

#: the fast server's tools
ALL = {"echo", "echo_async", "add", "execute_code", "header", "pid", "bump", "progress", "stall", "confirm", "ask_llm", "log_later", "show_panel"}

RULES = {
    # allow: only these two
    "allow": ({"allow": ['mcp.tool.name in ["echo", "add"]']}, lambda names: names == {"echo", "add"}, "execute_code"),
    # deny: everything but execute_code
    "deny": (
        {"deny": ['mcp.tool.name == "execute_code"']},
        lambda names: "execute_code" not in names and {"echo", "add"} <= names,
        "execute_code",
    ),
    # require: only the tools whose name starts with "e"
    "require": (
        {"require": ['mcp.tool.name.startsWith("e")']},
        lambda names: names and all(n.startswith("e") for n in names) and "execute_code" in names,
        "add",
    ),
}
LEVELS = ("route", "backend", "named", "target")


def _route(level: str, kind: str, target: dict) -> dict:
    authz = {"mcpAuthorization": RULES[kind][0]}
    prefix = f"/{level}-{kind}"
    if level == "route":
        return route(prefix[1:], [{"mcp": {"targets": [target]}}], prefix=prefix, policies=authz)
    if level == "backend":
        return route(prefix[1:], [{"mcp": {"targets": [target]}, "policies": authz}], prefix=prefix)
    if level == "named":
        return route(prefix[1:], [{"backend": f"named-{kind}"}], prefix=prefix)
    return route(prefix[1:], [{"mcp": {"targets": [{**target, "policies": authz}]}}], prefix=prefix)


@pytest.fixture(scope="module")
def gw(module_harness, tmp_path_factory):
    import subprocess
    import sys

    from tests.support.harness import REPO_ROOT, free_port, subprocess_env, wait_for

    port = free_port()
    log = tmp_path_factory.mktemp("authz-server") / "beta.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mcp.fast_server", "--name", "beta", "--http", str(port)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )

    def up() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=0.5)
            return True
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=20, message="MCP server listening")
        target = {"name": "beta", "mcp": {"host": f"http://127.0.0.1:{port}/mcp"}}
        routes = [_route(level, kind, target) for level in LEVELS for kind in RULES]
        # all three kinds together, one per level: route allow, backend deny, target require
        routes.append(
            route(
                "combined",
                [
                    {
                        "mcp": {
                            "targets": [
                                {
                                    **target,
                                    "policies": {
                                        "mcpAuthorization": {"require": ['request.headers["x-tenant"] == "acme"']}
                                    },
                                }
                            ]
                        },
                        "policies": {"mcpAuthorization": {"deny": ['mcp.tool.name == "execute_code"']}},
                    }
                ],
                prefix="/combined",
                policies={"mcpAuthorization": {"allow": ['mcp.tool.name in ["echo", "add", "execute_code"]']}},
            )
        )
        named = [
            {"name": f"named-{kind}", "mcp": {"targets": [target]}, "policies": {"mcpAuthorization": RULES[kind][0]}}
            for kind in RULES
        ]
        yield module_harness.gateway(gateway_config(routes, backends=named, logging_format=None))
    finally:
        proc.kill()
        proc.wait(5)


def _tools_and_denied_call(url: str, tool: str) -> tuple[set, MCPError | None, str]:
    async def go():
        async with Client(url) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            err = None
            try:
                await c.call_tool(tool, {"a": 1, "b": 2, "code": "x", "text": "x"})
            except MCPError as exc:
                err = exc
            ok = await c.call_tool("echo", {"text": "hi"})
            return names, err, ok.content[0].text

    return run(go())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", list(RULES))
def test_rules_filter_the_list_and_refuse_the_call(gw, level, kind):
    names, err, echoed = _tools_and_denied_call(f"{gw.url}/{level}-{kind}/mcp", RULES[kind][2])
    assert names <= ALL and RULES[kind][1](names), names
    assert err is not None, f"{RULES[kind][2]} was callable"
    assert err.code == -32003 and "not authorized" in err.message, (err.code, err.message)
    assert echoed == "beta: hi"  # a listed tool still works


def test_deny_require_and_allow_together(gw):
    """Route ``allow``, backend ``deny`` and target ``require`` all apply."""
    url = f"{gw.url}/combined/mcp"
    c = Raw(url)
    c.init()

    def listed(headers: dict) -> set:
        r = httpx.post(
            url, json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"}, headers={**c.h(), **headers}, timeout=10
        )
        return {t["name"] for t in r.json()["result"]["tools"]}

    def call(tool: str, headers: dict) -> dict:
        r = httpx.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 8,
                "method": "tools/call",
                "params": {"name": tool, "arguments": {"a": 1, "b": 2, "code": "x", "text": "x"}},
            },
            headers={**c.h(), **headers},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return r.json()

    acme = {"x-tenant": "acme"}
    assert listed(acme) == {"echo", "add"}  # allowed, minus the denied one
    assert listed({}) == set()  # the target's require fails
    assert listed({"x-tenant": "other"}) == set()
    assert call("echo", acme)["result"]["content"][0]["text"] == "beta: x"
    for tool, headers in (("execute_code", acme), ("pid", acme), ("echo", {})):
        doc = call(tool, headers)
        assert doc["error"]["code"] == -32003, (tool, headers, doc)
