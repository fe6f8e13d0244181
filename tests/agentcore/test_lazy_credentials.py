"""AWS credentials are resolved when a request first needs them: a gateway with a Bedrock
model and an AgentCore backend starts quietly on a machine without any AWS credentials,
and a call that needs them gets a clear 503 JSON error, with one warning in the log."""

from __future__ import annotations

import httpx

from tests.support.harness import closed_port, free_port, gateway_config, route, wait_for

from .conftest import ARN, aws_env

REASON = "no AWS credentials found"
WARNING = "WARNING agentgw.aws: AWS credentials unavailable (region us-east-1): " + REASON


def config() -> dict:
    cfg = gateway_config(
        [route("agent", [{"backend": "agentcore"}])],
        backends=[
            {
                "name": "agentcore",
                "aws": {"agentCore": {"agentRuntimeArn": ARN, "endpoint": f"http://127.0.0.1:{closed_port()}"}},
            }
        ],
        logging_format="text",
    )
    cfg["llm"] = {
        "port": free_port(),
        "models": [
            {
                "name": "claude",
                "provider": "bedrock",
                "params": {"model": "anthropic.claude-sonnet-4-5-20250929-v1:0", "awsRegion": "us-east-1"},
            }
        ],
    }
    return cfg


def test_no_credentials_no_error_at_startup_a_clear_503_and_one_warning_when_used(harness):
    cfg = config()
    gw = harness.gateway(cfg, env=aws_env())  # no keys, no profiles, no metadata service
    llm = f"http://127.0.0.1:{cfg['llm']['port']}/v1/chat/completions"

    # serving, and nothing said about AWS: no Bedrock or AgentCore call has been made
    assert "AWS" not in gw.stderr_text() and "ERROR" not in gw.stderr_text(), gw.logs()

    for _ in range(2):
        r = httpx.post(llm, json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]}, timeout=20)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["type"] == "aws_credentials_unavailable" and REASON in err["message"], r.text

        call = {"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {"message": {"role": "user"}}}
        r = httpx.post(gw.url + "/", json=call, timeout=20)
        assert r.status_code == 503, r.text
        doc = r.json()
        assert doc["id"] == 7 and doc["error"]["data"]["type"] == "aws_credentials_unavailable", r.text
        assert REASON in doc["error"]["message"], r.text

    # one warning for the four calls (both backends share the region's credentials), no error
    wait_for(lambda: WARNING in gw.stderr_text(), timeout=5, message="the credentials warning")
    log = gw.stderr_text()
    assert log.count("AWS credentials unavailable (region") == 1, log
    assert "ERROR" not in log and "Traceback" not in log, log
