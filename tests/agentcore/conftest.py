"""AgentCore test stack: the local AgentCore stand-in (with a moto STS in the same
process, so it can check temporary credentials) and helpers for gateway environments."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.harness import ReadyProcess

AGENTCORE_TEST_TIMEOUT = 60
ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/hello_agent-AbCdE12345"
ROLE_ARN = "arn:aws:iam::123456789012:role/agentgw-agentcore-irsa"
DEMO_KEY, DEMO_SECRET = "AKIDEXAMPLEAGENTGW", "agentgw-demo-secret-key"  # docs/agentcore.md


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/agentcore" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(AGENTCORE_TEST_TIMEOUT))


class StandIn(ReadyProcess):
    """``python -m agentgw_demo.agentcore_standin`` as a process."""

    def __init__(self, workdir: Path, *args: str):
        super().__init__(
            workdir,
            "standin",
            [sys.executable, "-m", "agentgw_demo.agentcore_standin", "--port", "0", *args],
            r"READY (\d+)(?: STS (\d+))?",
        )
        m = self.ready_match
        self.port = int(m.group(1))
        self.sts_port = int(m.group(2)) if m.group(2) else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict]:
        with urllib.request.urlopen(self.url + "/_standin/requests", timeout=5) as r:
            return json.loads(r.read())


def aws_env(**kw: str) -> dict[str, str]:
    """An environment with no ambient AWS settings of the machine, plus ``kw``."""
    env = {
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "us-east-1",
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
    }
    env.update(kw)
    return env


def irsa_env(tmp: Path, sts_port: int) -> dict[str, str]:
    """What EKS injects for IRSA, with STS at the local moto server."""
    token = tmp / "eks.amazonaws.com" / "serviceaccount" / "token"
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text(
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWdlbnRnYXRld2F5LXN5c3RlbTphZ2VudGdhdGV3YXkifQ.c2ln"
    )
    return aws_env(
        AWS_ROLE_ARN=ROLE_ARN,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
        AWS_ENDPOINT_URL_STS=f"http://127.0.0.1:{sts_port}",
    )


@pytest.fixture(scope="module", autouse=True)
def _no_ambient_aws():
    """Child processes inherit this process's environment: keep the machine's own AWS
    settings (keys, profiles, roles, container credentials) out of it."""
    mp = pytest.MonkeyPatch()
    for k in list(os.environ):
        if k.startswith("AWS_"):
            mp.delenv(k)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """Stand-in + local STS whose credentials live 16 s; STS answers take 1.5 s."""
    s = StandIn(
        tmp_path_factory.mktemp("standin"),
        "--arn",
        ARN,
        "--sts-port",
        "0",
        "--credentials",
        f"{DEMO_KEY}:{DEMO_SECRET}",
        "--sts-duration",
        "16",
        "--sts-delay",
        "1.5",
        "--delay",
        "0.08",
    )
    yield s
    s.stop()
