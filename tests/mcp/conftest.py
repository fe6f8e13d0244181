"""MCP gateway test fixtures: MCP servers as real processes on 127.0.0.1, SDK clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.harness import REPO_ROOT, free_port, gateway_config, subprocess_env, wait_for

NPM_BIN = REPO_ROOT / ".cache" / "npm" / "node_modules" / ".bin"
EVERYTHING = NPM_BIN / "mcp-server-everything"
INSPECTOR = NPM_BIN / "mcp-inspector"
LOOPBACK = Path(__file__).with_name("loopback.cjs")
PY = sys.executable


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/mcp" in str(item.fspath).replace(os.sep, "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))


def node_env(extra: dict | None = None) -> dict:
    env = subprocess_env(extra)
    env["NODE_OPTIONS"] = f"--require {LOOPBACK} --no-warnings"
    return env


def need_npm(path: Path) -> None:
    if not path.exists() or shutil.which("node") is None:
        pytest.skip(f"{path.name} is not installed (run scripts/install-test-deps.sh)")


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    def __init__(self, cmd: list[str], port: int | None, log: Path, env: dict):
        self.port = port
        self.log = log
        self._f = open(log, "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )
        if port is not None:
            try:
                wait_for(
                    lambda: _port_open(port) or self.proc.poll() is not None, timeout=20, message=f"{cmd} listening"
                )
            except AssertionError:
                self.stop()
                raise
            if self.proc.poll() is not None:
                raise AssertionError(f"{cmd} exited: {log.read_text(errors='replace')[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._f.close()


@pytest.fixture
def servers(tmp_path):
    """Factory for MCP servers: ``servers.fast(name)``, ``servers.everything()``."""
    started: list[Server] = []

    class F:
        @staticmethod
        def fast(name: str, transport: str = "http") -> Server:
            port = free_port()
            s = Server(
                [PY, "-m", "tests.mcp.fast_server", "--name", name, f"--{transport}", str(port)],
                port,
                tmp_path / f"fast-{name}.log",
                subprocess_env(),
            )
            started.append(s)
            return s

        @staticmethod
        def everything() -> Server:
            need_npm(EVERYTHING)
            port = free_port()
            s = Server(
                [str(EVERYTHING), "streamableHttp"], port, tmp_path / "everything.log", node_env({"PORT": str(port)})
            )
            started.append(s)
            return s

    yield F
    for s in started:
        s.stop()


def fast_stdio(name: str) -> dict:
    return {"cmd": PY, "args": ["-m", "tests.mcp.fast_server", "--name", name]}


def demo_stdio(name: str) -> dict:
    return {"cmd": PY, "args": ["-m", "agentgw_demo.mcp_server", "--name", name]}


def everything_stdio() -> dict:
    need_npm(EVERYTHING)
    return {"cmd": str(EVERYTHING), "args": ["stdio"], "env": {"NODE_OPTIONS": f"--require {LOOPBACK} --no-warnings"}}


def mcp_config(
    backend: dict, *, policies: dict | None = None, extra_config: dict | None = None, port: int | None = None
) -> dict:
    r = {"name": "mcp", "backends": [{"mcp": backend}]}
    if policies:
        r["policies"] = policies
    return gateway_config([r], extra_config=extra_config, port=port, logging_format=None)


def run(coro, timeout: float = 45):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def pids_alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            alive.append(pid) if state != "Z" else alive.append(-pid)
        except FileNotFoundError:
            pass
    return alive


def children_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(d))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


__all__ = ["run", "mcp_config", "fast_stdio", "demo_stdio", "everything_stdio", "time"]
