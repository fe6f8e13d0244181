"""Header policies on an AgentCore backend (agentgateway's traffic-aws-agentcore example):
``requestHeaderModifier`` sets the runtime's user-id headers on the signed request;
``responseHeaderModifier`` edits the answer."""

from __future__ import annotations

import httpx

from tests.support.harness import free_port, gateway_config

from .conftest import ARN, DEMO_KEY, DEMO_SECRET, aws_env

USER = "x-amzn-bedrock-agentcore-runtime-user-id"
CUSTOM = "x-amzn-bedrock-agentcore-runtime-custom-user-id"
TASK = {
    "jsonrpc": "2.0",
    "id": "h-1",
    "method": "tasks/send",
    "params": {"id": "task-h", "message": {"role": "user", "parts": [{"type": "text", "text": "hi"}]}},
}


def test_header_policies_reach_agentcore_signed(harness, standin):
    backend = {
        "aws": {"agentCore": {"agentRuntimeArn": ARN, "endpoint": standin.url}},
        "policies": {
            "requestHeaderModifier": {
                "set": {"X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "user-foo", CUSTOM: "user-foo"},
            },
            "responseHeaderModifier": {"set": {"x-served-by": "agentcore"}},
        },
    }
    route = {
        "name": "agent",
        "matches": [{"path": {"pathPrefix": "/supply-chain-agent"}}],
        "policies": {"requestHeaderModifier": {"add": {"X-Amzn-Bedrock-AgentCore-Runtime-Custom-Team": "ops"}}},
        "backends": [backend],
    }
    cfg = gateway_config([route], port=free_port())
    g = harness.gateway(cfg, env=aws_env(AWS_ACCESS_KEY_ID=DEMO_KEY, AWS_SECRET_ACCESS_KEY=DEMO_SECRET))
    n = len(standin.requests())
    r = httpx.post(f"{g.url}/supply-chain-agent", json=TASK, timeout=20)
    assert r.status_code == 200, r.text
    assert r.headers["x-served-by"] == "agentcore"
    raw = httpx.post(f"{g.url}/supply-chain-agent", json={"prompt": "raw"}, timeout=20)
    assert raw.status_code == 200, raw.text
    assert raw.headers["x-served-by"] == "agentcore"
    seen = standin.requests()[n:]
    assert len(seen) == 2
    for e in seen:
        assert e["verified"], e  # the stand-in recomputed the signature over the edited headers
        assert e["runtime_headers"][USER] == "user-foo"
        assert e["runtime_headers"][CUSTOM] == "user-foo"
        assert e["runtime_headers"]["x-amzn-bedrock-agentcore-runtime-custom-team"] == "ops"
        assert {USER, CUSTOM} <= set(e["signed_headers"])


def test_other_backend_policies_on_agentcore_are_refused(harness, tmp_path):
    from tests.support.harness import dump_yaml, run_cli

    backend = {
        "aws": {"agentCore": {"agentRuntimeArn": ARN}},
        "policies": {"requestRedirect": {"scheme": "https"}},
    }
    cfg = gateway_config([{"name": "a", "backends": [backend]}])
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0
    assert "backends[0].policies.requestRedirect: not supported for aws backends yet" in r.stderr + r.stdout


def test_runtime_arns_are_read_as_agentgateway_reads_them(tmp_path):
    from tests.support.harness import dump_yaml, run_cli

    def validate(arn: str):
        cfg = gateway_config([{"name": "a", "backends": [{"aws": {"agentCore": {"agentRuntimeArn": arn}}}]}])
        path = tmp_path / "c.yaml"
        path.write_text(dump_yaml(cfg))
        return run_cli("validate", "-f", str(path))

    # an account id that is not 12 digits is AWS's to refuse, as in agentgateway
    assert validate("arn:aws:bedrock-agentcore:us-east-1:12345678:runtime/mcp-runtime").returncode == 0
    bad = validate("arn:aws:bedrock:us-east-1:123456789012:runtime/abc")  # another service
    assert bad.returncode != 0 and "agentRuntimeArn" in bad.stderr + bad.stdout
