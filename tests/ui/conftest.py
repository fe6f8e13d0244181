"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a real
``agentgw`` process running ``examples/quickstart.yaml`` (on free ports) with its demo
upstreams: three stdio MCP servers, the demo A2A agent and the demo OpenAI-compatible
server.

``ui`` is one such stack per test module; ``page`` a fresh browser page for each test,
whose console errors and uncaught page errors fail the test when it ends.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.harness import REPO_ROOT, Gateway, ReadyProcess, free_port

CHROMIUM = os.environ.get("AGENTGW_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

if os.environ.get("CI"):  # in CI a missing browser driver is an error, not a skip
    import playwright.sync_api as playwright_api
else:
    playwright_api = pytest.importorskip("playwright.sync_api")

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    pytest.skip("needs Chromium (apt-get install chromium)", allow_module_level=True)


@dataclass
class UiStack:
    gateway: Gateway
    config: dict
    workdir: Path

    @property
    def ui_url(self) -> str:
        return f"{self.gateway.admin_url}/ui/"

    @property
    def api_url(self) -> str:
        return f"{self.gateway.admin_url}/api/v1"

    @property
    def port(self) -> int:
        """The quickstart's traffic port (MCP /mcp, A2A /a2a, /echo, /hello)."""
        return self.gateway.ports[0]

    @property
    def llm_port(self) -> int:
        return int(self.config["llm"]["port"])


def quickstart_config(ports: dict[str, int], admin: dict | None = None) -> dict:
    """examples/quickstart.yaml as written, on free ports and pointed at ``ports``'
    demo upstreams (``echo``, ``llm``, ``a2a``)."""
    cfg = yaml.safe_load((REPO_ROOT / "examples" / "quickstart.yaml").read_text())
    c = cfg["config"]
    for key in ("adminAddr", "statsAddr", "readinessAddr"):
        c[key] = f"127.0.0.1:{free_port()}"
    if admin is not None:
        c["admin"] = admin
    cfg["binds"][0]["port"] = free_port()
    cfg["llm"]["port"] = free_port()
    for r in cfg["binds"][0]["listeners"][0]["routes"]:
        for b in r.get("backends", []):
            if b.get("host") == "127.0.0.1:9001":
                b["host"] = f"127.0.0.1:{ports['echo']}"
            if b.get("host") == "127.0.0.1:9003":
                b["host"] = f"127.0.0.1:{ports['a2a']}"
            for t in (b.get("mcp") or {}).get("targets", []):
                t["stdio"]["cmd"] = sys.executable
    for m in cfg["llm"]["models"]:
        base = (m.get("params") or {}).get("baseUrl", "")
        if "127.0.0.1:9002" in base:
            m["params"]["baseUrl"] = base.replace("127.0.0.1:9002", f"127.0.0.1:{ports['llm']}")
    return cfg


def start_stack(workdir: Path, admin: dict | None = None, env: dict | None = None) -> tuple[UiStack, list]:
    helpers: list[ReadyProcess] = []
    ports: dict[str, int] = {}
    try:
        echo = ReadyProcess(
            workdir, "echo", [sys.executable, "-m", "agentgw_demo.echo", "--port", str(free_port())], r"on .*:(\d+)"
        )
        helpers.append(echo)
        ports["echo"] = int(echo.ready_match.group(1))
        llm = ReadyProcess(
            workdir,
            "openai",
            [sys.executable, "-m", "agentgw_demo.openai_server", "--port", str(free_port())],
            r"on http://127\.0\.0\.1:(\d+)/v1",
        )
        helpers.append(llm)
        ports["llm"] = int(llm.ready_match.group(1))
        a2a_port = free_port()
        cfg = quickstart_config({**ports, "a2a": a2a_port}, admin)
        agent = ReadyProcess(
            workdir,
            "a2a",
            [sys.executable, "-m", "agentgw_demo.a2a_agent", "--port", str(a2a_port)],
            r" on http://127\.0\.0\.1:(\d+)/",
        )
        helpers.append(agent)
        gw = Gateway(workdir / "gateway", cfg, env=env)
    except BaseException:
        for h in helpers:
            h.stop()
        raise
    return UiStack(gw, cfg, workdir), helpers


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The quickstart with its demo upstreams; the admin API writable from loopback
    without a token, as the quickstart ships."""
    stack, helpers = start_stack(tmp_path_factory.mktemp("ui"))
    try:
        yield stack
    finally:
        stack.gateway.stop()
        for h in helpers:
            h.stop()
        assert not stack.gateway.has_traceback(), stack.gateway.logs()


@pytest.fixture(scope="module")
def browser():
    """Per module, not per session: Playwright's sync API keeps an event loop running in
    this thread while it is open, and tests elsewhere call ``asyncio.run``."""
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh page (its own context: no storage shared between tests). Console errors
    and uncaught exceptions fail the test."""
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.problems = problems  # type: ignore[attr-defined]  # a test expecting an error takes it out
    try:
        yield pg
    finally:
        context.close()
    assert not problems, "\n".join(problems)
