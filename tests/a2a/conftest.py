"""A2A test agents as real processes: a2a-sdk 1.x, a2a-sdk 0.3 (own virtualenv), demo."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.harness import REPO_ROOT, ReadyProcess

A2A03_PYTHON = REPO_ROOT / ".venvs" / "a2a03" / "bin" / "python"
A2A_TEST_TIMEOUT = 60


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/a2a" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(A2A_TEST_TIMEOUT))


class AgentProc(ReadyProcess):
    """A test agent process; ``port`` is read from its ``READY <port>`` line (or the demo
    agent's ``on http://127.0.0.1:<port>/`` banner), ``grpc_port`` from a ``GRPC <port>``
    after it (agents that serve the gRPC binding too), else None."""

    def __init__(self, workdir: Path, name: str, cmd: list[str]):
        self.name = name
        super().__init__(workdir, f"agent-{name}", cmd, r"READY (\d+)(?: GRPC (\d+))?\n| on http://127\.0\.0\.1:(\d+)/")
        m = self.ready_match
        self.port = int(m.group(1) or m.group(3))
        self.grpc_port = int(m.group(2)) if m.group(2) else None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def grpc_host(self) -> str:
        assert self.grpc_port is not None, f"{self.name} serves no gRPC"
        return f"127.0.0.1:{self.grpc_port}"


@pytest.fixture(scope="session")
def a2a_agents(tmp_path_factory):
    """Start agents on demand: ``a2a_agents("v1", name)`` / ``("v03", name)`` / ``("demo", name)``
    / ``("tck", name)`` (the A2A TCK's SUT agent, tests/a2a/agents/tck_sut_agent.py, which
    serves gRPC too); ``a2a_agents("v1", name, grpc=True)`` serves the gRPC binding as well."""
    workdir = tmp_path_factory.mktemp("a2a-agents")
    procs: list[AgentProc] = []

    def start(kind: str, name: str, *, grpc: bool = False) -> AgentProc:
        if grpc and kind != "v1":
            raise ValueError(f"{kind} agents serve no separate gRPC option")
        if kind == "v1":
            cmd = [sys.executable, "-m", "tests.a2a.agents.sdk_v1_agent", "--name", name]
            if grpc:
                cmd.append("--grpc")
        elif kind == "v03":
            if not A2A03_PYTHON.exists():
                pytest.fail(
                    f"{A2A03_PYTHON} is missing: run scripts/install-test-deps.sh (it creates the a2a-sdk 0.3 venv)"
                )
            cmd = [str(A2A03_PYTHON), str(REPO_ROOT / "tests/a2a/agents/sdk_v03_agent.py"), "--name", name]
        elif kind == "tck":
            cmd = [sys.executable, "-m", "tests.a2a.agents.tck_sut_agent"]
        elif kind == "demo":
            cmd = [
                sys.executable,
                "-m",
                "agentgw_demo.a2a_agent",
                "--port",
                "0",
                "--name",
                name,
                "--stream-delay",
                "0.05",
            ]
        else:
            raise ValueError(kind)
        p = AgentProc(workdir, f"{kind}-{name}-{len(procs)}", cmd)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
