"""The files in examples/ and ``make run``, as a new user meets them: each example says how
to run it, uses ports no other example (or the quickstart) uses, validates and starts from
its own instructions (the keys it needs included), and ``make run`` stops cleanly on
Ctrl-C."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.harness import (
    REPO_ROOT,
    ReadyProcess,
    free_port,
    run_cli,
    subprocess_env,
    wait_for,
)

EXAMPLES = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "examples").rglob("*.yaml"))
QUICKSTART = "examples/quickstart.yaml"


def header(rel: str) -> str:
    """The comment block an example starts with, without the ``#``."""
    out = []
    for line in (REPO_ROOT / rel).read_text().splitlines():
        if not line.startswith("#"):
            break
        out.append(line[1:])
    return "\n".join(out)


def documented_env(rel: str) -> dict[str, str]:
    """The variables the example's header says to export, made with the command it gives."""
    env = {}
    for name, cmd in re.findall(r"export ([A-Z_]+)=\$\((.+)\)\s*$", header(rel), re.M):
        argv = shlex.split(cmd)
        if argv[0] == "python":
            argv[0] = sys.executable
        env[name] = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    return env


def loaded(rel: str):
    from agentgw.config import load_config_file

    return load_config_file(REPO_ROOT / rel, env=documented_env(rel))


def _port(addr: str) -> int | None:
    return None if addr in ("off", "") or addr.startswith("unix:") else int(addr.rpartition(":")[2])


def gateway_ports(rel: str) -> list[int]:
    """Every port the example's gateway listens on: traffic, admin, metrics, readiness."""
    cfg = loaded(rel)
    ports = [b.port for b in cfg.binds]
    ports += [x.port for x in (cfg.llm, cfg.mcp) if x is not None]
    c = cfg.config
    ports += [p for p in map(_port, (c.admin_addr, c.stats_addr, c.readiness_addr)) if p is not None]
    return ports


# -- what a reader of each example is told ------------------------------------------------------
@pytest.mark.parametrize("rel", EXAMPLES)
def test_every_example_says_how_to_run_it(rel):
    text = header(rel)
    assert f"agentgw run -f {rel}" in text or (rel == QUICKSTART and "make run" in text), text
    for module in re.findall(r"python -m (agentgw_demo\.\w+)", text):
        assert importlib.util.find_spec(module) is not None, f"{rel} runs {module}, which does not exist"
    for script in re.findall(r"python (examples/\S+\.py)", text):
        assert (REPO_ROOT / script).is_file(), f"{rel} runs {script}, which does not exist"


def test_no_two_examples_share_a_port():
    """So every example runs next to the quickstart (and next to each other): no traffic,
    admin, metrics or readiness port in two of them, and none on a demo upstream's port."""
    owner: dict[int, str] = {}
    for rel in EXAMPLES:
        for port in gateway_ports(rel):
            assert port not in owner, f"port {port}: {owner.get(port)} and {rel}"
            owner[port] = rel
    for rel in EXAMPLES:  # the demo upstreams the headers start
        for port in map(int, re.findall(r"--(?:sts-)?port (\d+)", header(rel))):
            assert port not in owner, f"{rel} starts a demo upstream on {port}, a port of {owner[port]}"
    make_demo_port = re.search(r"^DEMO_PORT \?= (\d+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert make_demo_port and int(make_demo_port.group(1)) not in owner


# -- each example validates and starts from its own instructions --------------------------------
@pytest.mark.parametrize("rel", EXAMPLES)
def test_every_example_validates_as_documented(rel):
    env = subprocess_env(documented_env(rel))
    r = subprocess.run(
        [sys.executable, "-m", "agentgw", "validate", "-f", rel],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(REPO_ROOT),
    )
    assert r.returncode == 0 and r.stdout.strip() == f"{rel}: ok", r.stdout + r.stderr


def test_the_session_key_example_says_which_variable_is_missing():
    r = run_cli("validate", "-f", "examples/mcp-eks.yaml")
    if "MCP_SESSION_KEY" in os.environ:
        pytest.skip("MCP_SESSION_KEY is set in this environment")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.fullmatch(
        r"examples/mcp-eks\.yaml:\d+:\d+: config\.session\.key: environment variable MCP_SESSION_KEY is not set\n",
        r.stderr,
    ), r.stderr
    assert "export MCP_SESSION_KEY=" in header("examples/mcp-eks.yaml")


def with_free_ports(rel: str) -> dict:
    """The example as written, on free ports (so the test runs whatever else is listening)."""
    cfg = yaml.safe_load((REPO_ROOT / rel).read_text())
    c = cfg.setdefault("config", {})
    for key in ("adminAddr", "statsAddr", "readinessAddr"):
        c[key] = f"127.0.0.1:{free_port()}"
    for b in cfg.get("binds", []):
        b["port"] = free_port()
    for key in ("llm", "mcp"):
        if key in cfg:
            cfg[key]["port"] = free_port()
    return cfg


@pytest.mark.parametrize("rel", EXAMPLES)
def test_every_example_starts_quietly(rel, harness):
    """No provider keys, no AWS credentials, nothing but what the header says to set: the
    gateway starts and logs no error."""
    gw = harness.gateway(with_free_ports(rel), env=documented_env(rel))
    log = gw.stdout_text() + gw.stderr_text()
    assert "ERROR" not in log and '"level":"error"' not in log, gw.logs()


def test_the_eks_example_accepts_the_demo_tokens(harness, tmp_path):
    """examples/a2a/eks.yaml as its header runs it: its inlined demo key verifies the
    tokens make_tokens.py prints, and its rules decide who may call which agent."""
    rel = "examples/a2a/eks.yaml"
    agents = {}
    for name in ("weather-agent-v6", "booking-agent"):
        cmd = [sys.executable, "-m", "agentgw_demo.a2a_agent", "--port", "0", "--name", name]
        agents[name] = ReadyProcess(tmp_path, name, cmd, r" on http://127\.0\.0\.1:(\d+)/")
    try:
        cfg = with_free_ports(rel)
        for r in cfg["binds"][0]["listeners"][0]["routes"]:
            r["backends"] = [{"host": f"127.0.0.1:{agents[r['name']].ready_match.group(1)}"}]
        gw = harness.gateway(cfg)
        out = subprocess.run(
            [sys.executable, "examples/a2a/make_tokens.py"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            cwd=str(REPO_ROOT),
            env=subprocess_env(),
        ).stdout
        tokens = dict(line.split("=", 1) for line in out.split())
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": {"message": {"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "hi"}]}},
        }

        def call(agent: str, who: str | None) -> httpx.Response:
            headers = {"authorization": f"Bearer {tokens[who]}"} if who else {}
            return httpx.post(f"{gw.url}/agents/{agent}", json=body, headers=headers, timeout=20)

        r = call("weather-agent-v6", "PLANNING_AGENT_SA")
        assert r.status_code == 200 and r.json()["result"]["status"]["state"] == "completed", r.text
        r = call("booking-agent", "PLANNING_AGENT_SA")
        assert r.status_code == 403 and r.json()["error"]["data"]["type"] == "forbidden", r.text
        assert call("booking-agent", "ORCHESTRATOR_AGENT_SA").status_code == 200
        assert call("booking-agent", None).status_code == 401
    finally:
        for a in agents.values():
            a.stop()


# -- make run -----------------------------------------------------------------------------------
def _descendants(pid: int) -> dict[int, str]:
    """pid -> command line of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out[p] = _cmdline(p)
        todo.extend(children.get(p, []))
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@pytest.mark.skipif(shutil.which("make") is None or not Path("/proc").is_dir(), reason="needs make and /proc")
@pytest.mark.timeout(120)
def test_make_run_stops_cleanly_on_ctrl_c(tmp_path):
    """``make run`` (install skipped) on the quickstart, on free ports: a SIGINT to its
    process group, as the terminal sends on Ctrl-C, stops the gateway (after it drains),
    its MCP servers and the demo upstream, removes .demo.pid and prints no traceback."""
    demo_port, llm_port, a2a_port = free_port(), free_port(), free_port()
    cfg = with_free_ports(QUICKSTART)
    for r in cfg["binds"][0]["listeners"][0]["routes"]:
        for b in r.get("backends", []):
            if b.get("host") == "127.0.0.1:9001":
                b["host"] = f"127.0.0.1:{demo_port}"
            if b.get("host") == "127.0.0.1:9003":
                b["host"] = f"127.0.0.1:{a2a_port}"
            for t in (b.get("mcp") or {}).get("targets", []):
                t["stdio"]["cmd"] = sys.executable
    for m in cfg["llm"]["models"]:
        m["params"]["baseUrl"] = m["params"]["baseUrl"].replace("127.0.0.1:9002", f"127.0.0.1:{llm_port}")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "quickstart.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    gw_port = cfg["binds"][0]["port"]
    ready_port = int(cfg["config"]["readinessAddr"].rpartition(":")[2])
    out = open(tmp_path / "make.out", "wb")
    make = subprocess.Popen(
        ["make", "-f", str(REPO_ROOT / "Makefile"), "-o", "install", "run", f"PYTHON={sys.executable}"]
        + [f"DEMO_PORT={demo_port}", f"DEMO_LLM_PORT={llm_port}", f"DEMO_A2A_PORT={a2a_port}"],
        cwd=str(tmp_path),
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:

        def up(port: int, path: str) -> bool:
            if make.poll() is not None:
                raise AssertionError(f"make exited: {(tmp_path / 'make.out').read_text()}")
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200

        wait_for(lambda: up(demo_port, "/"), timeout=30, message="the demo upstream")
        wait_for(lambda: up(ready_port, "/healthz/ready"), timeout=30, message="the gateway")
        assert httpx.get(f"http://127.0.0.1:{gw_port}/echo/x", timeout=5).status_code == 200
        # the demo A2A agent behind /a2a, the demo OpenAI-compatible server behind the LLM port
        wait_for(lambda: up(gw_port, "/a2a/.well-known/agent-card.json"), timeout=30, message="the demo agent")
        chat = httpx.post(
            f"http://127.0.0.1:{cfg['llm']['port']}/v1/chat/completions",
            json={"model": "demo", "messages": [{"role": "user", "content": "ping"}]},
            timeout=10,
        )
        assert chat.status_code == 200 and "ping" in chat.json()["choices"][0]["message"]["content"], chat.text
        # the web UI on the admin address
        admin_port = int(cfg["config"]["adminAddr"].rpartition(":")[2])
        assert up(admin_port, "/ui/")
        assert (tmp_path / ".demo.pid").is_file()
        # an MCP session: the gateway's stdio MCP servers are running too
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        h = {"accept": "application/json, text/event-stream"}
        r = httpx.post(f"http://127.0.0.1:{gw_port}/mcp", json=init, headers=h, timeout=30)
        assert r.status_code == 200, r.text
        procs = _descendants(make.pid)
        for demo in ("agentgw_demo.echo", "agentgw_demo.openai_server", "agentgw_demo.a2a_agent"):
            assert any(demo in c for c in procs.values()), (demo, procs)
        assert sum("agentgw_demo.mcp_server" in c for c in procs.values()) == 3, procs

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C
        make.wait(30)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(10)
        out.close()
    output = (tmp_path / "make.out").read_text()
    assert "Traceback" not in output, output
    noise = [line for line in output.splitlines() if line.startswith(("make:", "sh:", "/bin/sh:", "cat:", "kill:"))]
    assert not noise, output
    assert not (tmp_path / ".demo.pid").exists(), output
    deadline = time.monotonic() + 5  # reaped by now; a moment for /proc to agree
    left = {p: c for p, c in procs.items() if _cmdline(p) == c}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {p: c for p, c in procs.items() if _cmdline(p) == c}
    assert not left, f"still running after Ctrl-C: {left}\n{output}"
