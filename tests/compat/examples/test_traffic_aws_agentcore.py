"""agentgateway's traffic-aws-agentcore example, unchanged but for its port, against a
real agentgw and the AgentCore stand-in (``python -m agentgw_demo.agentcore_standin``).

The config names a real runtime ARN in us-west-2 and no endpoint: the AWS SDKs'
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` points every AgentCore backend of the process at
the stand-in, which checks each SigV4 signature as AWS would (the ARN's region, the
signed headers) and records what it received. The example's point: the backend's
``requestHeaderModifier`` sets the runtime's user-id headers, signed with the request.

Changed from the vendored config: ``binds[0].port`` 3000 -> a free port, and ``config``
gets admin/stats/readiness addresses on free ports.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from tests.agentcore.conftest import DEMO_KEY, DEMO_SECRET, StandIn, aws_env
from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-aws-agentcore" / "config.yaml"
USER = "x-amzn-bedrock-agentcore-runtime-user-id"
CUSTOM = "x-amzn-bedrock-agentcore-runtime-custom-user-id"


def test_the_example_reaches_the_runtime_signed_with_its_user_headers(harness, tmp_path):
    cfg = yaml.safe_load(EXAMPLE.read_text())
    [route] = cfg["binds"][0]["listeners"][0]["routes"]
    arn = route["backends"][0]["aws"]["agentCore"]["agentRuntimeArn"]
    assert ":us-west-2:" in arn and "endpoint" not in route["backends"][0]["aws"]["agentCore"]
    cfg["binds"][0]["port"] = free_port()
    cfg.setdefault("config", {}).update({f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")})
    standin = StandIn(tmp_path / "standin", "--arn", arn, "--credentials", f"{DEMO_KEY}:{DEMO_SECRET}")
    try:
        env = aws_env(
            AWS_ACCESS_KEY_ID=DEMO_KEY,
            AWS_SECRET_ACCESS_KEY=DEMO_SECRET,
            AWS_ENDPOINT_URL_BEDROCK_AGENTCORE=standin.url,
        )
        gw = harness.gateway(cfg, env=env)
        task = {
            "jsonrpc": "2.0",
            "id": "sca-1",
            "method": "message/send",
            "params": {"message": {"role": "user", "messageId": "m-1", "parts": [{"kind": "text", "text": "stock of part 42?"}]}},
        }
        r = httpx.post(f"{gw.url}/supply-chain-agent", json=task, timeout=20)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["id"] == "sca-1" and "result" in doc, doc
        [seen] = standin.requests()
        assert seen["verified"], seen  # SigV4 for bedrock-agentcore in us-west-2, as AWS checks it
        assert seen["runtime_headers"][USER] == "user-foo" and seen["runtime_headers"][CUSTOM] == "user-foo"
        assert {USER, CUSTOM} <= set(seen["signed_headers"])
    finally:
        standin.stop()
