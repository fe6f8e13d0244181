"""Fixtures for the LLM tests: the provider fakes process and a shared gateway."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import pytest

from tests.support.harness import REPO_ROOT, free_port, subprocess_env

LLM_TEST_TIMEOUT = 60


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/llm" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LLM_TEST_TIMEOUT))


class Fakes:
    def __init__(self, port: int, proc: subprocess.Popen):
        self.port = port
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    def log(self) -> list[dict]:
        import json
        import urllib.request

        with urllib.request.urlopen(self.url + "/_log", timeout=5) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(self.url + "/_reset", method="POST", data=b""), timeout=5).read()

    def last(self, kind: str | None = None) -> dict:
        entries = [e for e in self.log() if kind is None or e["kind"] == kind]
        assert entries, f"the {kind or 'any'} fake saw no request"
        return entries[-1]

    def assert_valid(self) -> None:
        bad = [e for e in self.log() if e["error"]]
        assert not bad, (
            f"requests failed provider-schema validation: {[(e['kind'], e['path'], e['error']) for e in bad]}"
        )


@contextlib.contextmanager
def fake_server(module: str):
    """``python -m <module> --port P`` started on a free port, until the block ends;
    yields ``(port, process)`` once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port)],
        env=subprocess_env(),
        cwd=str(REPO_ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"{module} did not start: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.05)
    try:
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def fakes():
    with fake_server("tests.llm.fakes") as (port, proc):
        yield Fakes(port, proc)
