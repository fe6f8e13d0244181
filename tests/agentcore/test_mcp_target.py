"""MCP targets on AgentCore: ``mcp: {backend: <aws backend>}``, as agentgateway's
``mcp_to_aws_backend_config.yaml`` writes it.

A real agentgw process federates an MCP server hosted on an AgentCore runtime: the local
stand-in checks each InvokeAgentRuntime signature and relays the invocation to a real
MCP SDK server (as AgentCore relays to a runtime's ``/mcp``). The client is the official
MCP SDK client, through the gateway."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import yaml
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from agentgw.compile import check_config_file
from agentgw.config import ConfigError
from tests.mcp.conftest import PY, Server, run
from tests.support.harness import free_port, gateway_config, subprocess_env

from .conftest import ARN, DEMO_KEY, DEMO_SECRET, StandIn, aws_env

INVOKE = "/runtimes/" + quote(ARN, safe="") + "/invocations"


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory):
    port = free_port()
    d = tmp_path_factory.mktemp("fast")
    s = Server(
        [PY, "-m", "tests.mcp.fast_server", "--name", "runtime", "--http", str(port)], port, d / "log", subprocess_env()
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def standin(tmp_path_factory, mcp_server):
    s = StandIn(
        tmp_path_factory.mktemp("standin"),
        "--arn",
        ARN,
        "--credentials",
        f"{DEMO_KEY}:{DEMO_SECRET}",
        "--mcp",
        mcp_server.url,
    )
    yield s
    s.stop()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def config(standin_url: str, aws_auth: dict) -> dict:
    """agentgateway's file, with the stand-in as the endpoint and the credentials given."""
    cfg = gateway_config([{"name": "mcp", "backends": [{"backend": "/shared-mcp"}]}], logging_format=None)
    cfg["backends"] = [
        {
            "name": "shared-mcp",
            "mcp": {"targets": [{"name": "default", "mcp": {"backend": "/aws-agent-core-mcp-target", "path": "/mcp"}}]},
        },
        {
            "name": "aws-agent-core-mcp-target",
            "aws": {"agentCore": {"agentRuntimeArn": ARN, "endpoint": standin_url}},
            "policies": {"backendAuth": {"aws": aws_auth}},
        },
    ]
    return cfg


def test_tools_run_on_the_runtime_signed(harness, standin):
    gw = harness.gateway(
        config(standin.url, {"accessKeyId": DEMO_KEY, "secretAccessKey": DEMO_SECRET}), env=aws_env()
    )  # no ambient credentials: the backend's own backendAuth.aws signs
    n = len(standin.requests())

    async def go():
        async with Client(gw.url + "/mcp") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"echo", "add"} <= names
            r = await c.call_tool("echo", {"text": "via agentcore"})
            assert r.content[0].text == "runtime: via agentcore"
            r = await c.call_tool("add", {"a": 2, "b": 40})
            assert r.content[0].text == "42"

    run(go())
    seen = standin.requests()[n:]
    assert seen, "nothing reached the runtime"
    assert all(e["verified"] for e in seen), seen
    assert {e["method"] for e in seen} == {"POST"}  # InvokeAgentRuntime only: no GET stream, no DELETE
    assert {e["path"] for e in seen} == {INVOKE}  # the target's path is not used
    methods = [e["payload"]["method"] for e in seen if isinstance(e.get("payload"), dict) and "method" in e["payload"]]
    assert methods[0] == "initialize" and "tools/call" in methods
    assert all(e["access_key"] == DEMO_KEY and "host" in e["signed_headers"] for e in seen)
    # the server's session rides on every request after initialize (it keeps the microVM)
    sids = {e["mcp_session_id"] for e in seen[1:]}
    assert len(sids) == 1 and None not in sids


def test_wrong_credentials_fail_closed(harness, standin):
    gw = harness.gateway(config(standin.url, {"accessKeyId": DEMO_KEY, "secretAccessKey": "wrong"}), env=aws_env())
    n = len(standin.requests())

    async def go() -> list[BaseException]:
        try:
            async with Client(gw.url + "/mcp") as c:
                await c.list_tools()
        except BaseException as exc:  # the SDK raises its errors in exception groups
            return _leaves(exc)
        return []

    errors = [str(e) for e in run(go()) if isinstance(e, MCPError)]
    assert any("answered HTTP 403 (InvalidSignatureException)" in e for e in errors), errors
    seen = standin.requests()[n:]
    assert seen and not any(e["verified"] for e in seen)
    assert {e["error"] for e in seen} == {"InvalidSignatureException"}


def test_only_aws_backend_auth_applies(tmp_path):
    cfg = config("http://127.0.0.1:9", {})
    cfg["backends"][1]["policies"] = {"backendAuth": {"key": "sk-123"}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as exc:
        check_config_file(str(p))
    assert "backends[1].policies.backendAuth.key: not supported on aws backends (an AgentCore runtime takes AWS SigV4" in str(exc.value)
