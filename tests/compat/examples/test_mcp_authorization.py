"""agentgateway's mcp-authorization example, run as its README runs it.

The README starts the upstream with ``PORT=3001 npx -y @modelcontextprotocol/server-everything
streamableHttp``: here the project-local copy of that npm package, run the same way
(``streamableHttp``, ``PORT`` set) on a free port. The bearer tokens the README pastes into
the Inspector are agentgateway's ``manifests/jwt/example1.key`` and ``example2.key``
(vendored beside ``pub-key``; both expire in 2030).

The vendored ``examples/mcp-authorization/config.yaml`` is loaded unchanged except:

* ``mcp.port`` 3000 -> a free port;
* the target ``mcp2``'s ``http://localhost:3001/mcp`` -> the everything server's URL;
* ``jwtAuth.jwks.file`` ``./manifests/jwt/pub-key`` -> that file's absolute path (the gateway
  runs in a test directory, not at the repository root the README runs it from; that the
  relative path loads from the root is checked apart, with ``agentgw validate``);
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

The CORS, ``backendAuth: passthrough``, ``jwtAuth`` issuer/audiences and the three
``mcpAuthorization`` rules stay as written.

README steps checked (the Inspector's calls are made by the official MCP SDK client):

* "users will be required to pass a valid JWT token matching the criteria": a tampered
  token, one signed by another key, or no JWT at all is refused with 401. A request without
  any token is let through (``jwtAuth``'s default mode is ``optional``, in agentgateway as
  here) and, per "Allow anyone to call 'echo'", sees and calls ``echo`` only;
* "use the ``example2.key`` ... for the user ``test-user`` and has no claims. When we 'List
  Tools', we can see the tools are filtered down to only ``echo`` and ``get-sum``";
* "use the ``example1.key`` ... has the claim ``nested.key == value`` ... the tools now
  additionally includes the ``get-env``";
* "If the user does still attempt to call the tool, it is also denied": ``get-env`` called
  with ``example2.key`` (or ``get-sum`` without a token) is refused; allowed calls work.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import httpx2
import pytest
import yaml
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.identity.support import new_ec, sign
from tests.mcp.conftest import EVERYTHING, Server, need_npm, node_env, run
from tests.support.harness import free_port, run_cli

ROOT = Path(__file__).parents[1] / "agentgateway"
EXAMPLE = ROOT / "examples" / "mcp-authorization" / "config.yaml"
EXAMPLE1 = (ROOT / "manifests" / "jwt" / "example1.key").read_text().strip()
EXAMPLE2 = (ROOT / "manifests" / "jwt" / "example2.key").read_text().strip()
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream"}


def _config(upstream: str) -> tuple[dict, int]:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    mcp = cfg["mcp"]
    assert mcp["port"] == 3000
    port = mcp["port"] = free_port()
    assert mcp["targets"] == [{"name": "mcp2", "mcp": {"host": "http://localhost:3001/mcp"}}]
    mcp["targets"][0]["mcp"]["host"] = upstream
    jwt = mcp["policies"]["jwtAuth"]
    assert jwt == {
        "issuer": "agentgateway.dev",
        "audiences": ["test.agentgateway.dev"],
        "jwks": {"file": "./manifests/jwt/pub-key"},
    }
    jwt["jwks"]["file"] = str(ROOT / "manifests" / "jwt" / "pub-key")
    assert mcp["policies"]["backendAuth"] == {"passthrough": {}}
    assert mcp["policies"]["mcpAuthorization"]["rules"] == [
        'mcp.tool.name == "echo"',
        'jwt.sub == "test-user" && mcp.tool.name == "get-sum"',
        'mcp.tool.name == "get-env" && jwt.nested.key == "value"',
    ]
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg, port


@pytest.fixture(scope="module")
def example(module_harness, tmp_path_factory):
    need_npm(EVERYTHING)
    up = free_port()  # PORT=<port> mcp-server-everything streamableHttp
    log = tmp_path_factory.mktemp("everything") / "everything.log"
    everything = Server([str(EVERYTHING), "streamableHttp"], up, log, node_env({"PORT": str(up)}))
    try:
        cfg, port = _config(everything.url)
        module_harness.gateway(cfg)
        yield f"http://127.0.0.1:{port}/mcp", everything
    finally:
        everything.stop()


def _client(url: str, token: str) -> tuple[httpx2.AsyncClient, Client]:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=20)
    return http, Client(streamable_http_client(url, http_client=http))


def test_the_relative_jwks_file_loads_from_the_repository_root():
    r = run_cli("validate", "-f", str(EXAMPLE.relative_to(ROOT)), cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_presented_jwt_must_be_valid(example):
    url, _ = example
    head, payload, sig = EXAMPLE2.split(".")
    tampered = f"{head}.{payload}.{sig[:-6]}AAAAAA"
    # the same claims, signed by a key other than pub-key's
    claims = {
        "iss": "agentgateway.dev",
        "aud": "test.agentgateway.dev",
        "sub": "test-user",
        "exp": int(time.time()) + 60,
    }
    forged = sign(new_ec("XhO06x8JjWH1wwkWkyeEUxsooGEWoEdidEpwyd_hmuI"), claims, alg="ES256")
    for bad in (tampered, forged, "not-a-jwt"):
        r = httpx.post(url, json=INIT, headers={**ACCEPT, "authorization": f"Bearer {bad}"}, timeout=10)
        assert r.status_code == 401, (bad, r.status_code, r.text)
    ok = httpx.post(url, json=INIT, headers={**ACCEPT, "authorization": f"Bearer {EXAMPLE2}"}, timeout=10)
    assert ok.status_code == 200 and ok.headers["mcp-session-id"], ok.text


def test_without_a_token_only_echo_is_allowed(example):
    url, _ = example

    async def inspector():
        async with Client(url) as c:
            assert {t.name for t in (await c.list_tools()).tools} == {"echo"}
            r = await c.call_tool("echo", {"message": "anyone"})
            assert r.content[0].text == "Echo: anyone"
            for name, args in (("get-sum", {"a": 1, "b": 2}), ("get-env", {})):
                with pytest.raises(MCPError):
                    await c.call_tool(name, args)

    run(inspector())


def test_example2_key_sees_and_calls_only_echo_and_get_sum(example):
    url, _ = example

    async def inspector():
        http, client = _client(url, EXAMPLE2)
        async with http, client as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert tools == {"echo", "get-sum"}, tools
            r = await c.call_tool("echo", {"message": "hi"})
            assert r.content[0].text == "Echo: hi"
            r = await c.call_tool("get-sum", {"a": 2, "b": 40})
            assert not r.is_error and "42" in r.content[0].text
            # a filtered tool, called anyway, is denied
            with pytest.raises(MCPError):
                await c.call_tool("get-env", {})

    run(inspector())


def test_example1_key_with_the_nested_claim_also_gets_get_env(example):
    url, _ = example

    async def inspector():
        http, client = _client(url, EXAMPLE1)
        async with http, client as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert tools == {"echo", "get-sum", "get-env"}, tools
            r = await c.call_tool("get-env", {})
            assert not r.is_error and r.content[0].text.startswith("{"), r

    run(inspector())
