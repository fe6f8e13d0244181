"""Optional peer arms: other gateways measured beside agentgw in the same run.

Each peer is installed, at an exact pinned version, into its own virtual environment under
``bench/.venvs/<peer>`` (git-ignored) the first time a scenario is asked to measure it, and
that environment is reused afterwards (reinstalled only when the pinned version changes).
Nothing here runs unless a scenario is given ``--peers``.

* ``litellm``: LiteLLM's proxy (``litellm[proxy]``), one ``model_list`` entry per upstream,
  ``openai/<model>`` with the upstream's base URL and a dummy key; no database, no telemetry,
  no master key (clients are not authenticated, as on agentgw's ``llm:`` route in the ``llm``
  scenario; LiteLLM refuses that unless told ``dangerously_permit_weak_or_unset_master_key``),
  one uvicorn worker.
* ``contextforge``: IBM's MCP gateway (``mcp-contextforge-gateway``), SQLite, one worker, the
  MCP server registered through its admin API, rate limits off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lib
from lib import BenchError, ProcessGroup

VENVS_DIR = lib.BENCH_DIR / ".venvs"

#: LiteLLM's proxy. 1.108.0 is the newest release whose ``[proxy]`` extra resolves from PyPI
#: (later releases pin a ``litellm-proxy`` / ``litellm-proxy-extras`` build that is not published).
LITELLM_DIST = "litellm"
LITELLM_VERSION = "1.108.0"
LITELLM_REQUIREMENT = f"litellm[proxy]=={LITELLM_VERSION}"

PEERS = ("litellm",)


def parse_peers(text: str | None, allowed: tuple[str, ...] = PEERS) -> list[str]:
    wanted = [p.strip() for p in (text or "").split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(allowed))
    if unknown:
        raise BenchError(f"unknown peers {unknown}; choose from {', '.join(allowed)}")
    return [p for p in allowed if p in wanted]


def _installed_version(python: Path, dist: str) -> str | None:
    try:
        r = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_venv(name: str, dist: str, version: str, requirement: str, timeout: float = 1800) -> Path:
    """``bench/.venvs/<name>`` with ``requirement`` installed; returns its bin directory.

    Reused as is when ``dist`` is already installed there at ``version``."""
    venv = VENVS_DIR / name
    python = venv / "bin" / "python"
    if python.exists() and _installed_version(python, dist) == version:
        return venv / "bin"
    steps = []
    if not python.exists():
        steps.append([sys.executable, "-m", "venv", str(venv)])
    steps.append([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", requirement])
    lib.log(f"installing {requirement} into {venv} (once; reused afterwards) ...")
    for cmd in steps:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"'{' '.join(cmd)}' timed out after {timeout:.0f}s") from None
        if r.returncode != 0:
            tail = "\n".join(line for line in r.stderr.splitlines() if not line.startswith("WARNING"))[-2000:]
            raise BenchError(f"'{' '.join(cmd)}' failed (exit {r.returncode}):\n{tail}")
    got = _installed_version(python, dist)
    if got != version:
        raise BenchError(f"{venv}: {dist} {got} installed, expected {version}")
    lib.log(f"{dist} {version} installed")
    return venv / "bin"


# ---------------------------------------------------------------------------
# LiteLLM proxy
# ---------------------------------------------------------------------------


def litellm_yaml(models: dict[str, str], upstream_model: str = "gpt-4o-mini") -> str:
    """``models``: client-facing model name -> OpenAI-compatible base URL (ending in /v1)."""
    entries = "".join(
        f"""\
- model_name: {name}
  litellm_params:
    model: openai/{upstream_model}
    api_base: {base}
    api_key: sk-bench
"""
        for name, base in models.items()
    )
    return f"""\
model_list:
{entries}litellm_settings:
  telemetry: false
  set_verbose: false
  json_logs: false
general_settings:
  # no client authentication, as agentgw's `llm:` route here (it swaps in the configured key)
  dangerously_permit_weak_or_unset_master_key: true
  disable_spend_logs: true
  disable_error_logs: true
"""


def litellm_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH", "REDIS_HOST", "REDIS_URL")}
    env.update(
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no download of the model price list at start-up
        DISABLE_ADMIN_UI="True",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_litellm(
    group: ProcessGroup,
    workdir: Path,
    name: str,
    models: dict[str, str],
    port: int,
    cpu: str,
    timeout: float = 180.0,
) -> lib.Proc:
    """Install (once) and start ``litellm --config ... --port ...`` pinned to ``cpu``; wait
    until ``/health/liveliness`` answers 200."""
    bindir = ensure_venv("litellm", LITELLM_DIST, LITELLM_VERSION, LITELLM_REQUIREMENT)
    cfg = workdir / f"{name}.yaml"
    cfg.write_text(litellm_yaml(models))
    argv = [
        bindir / "litellm",
        "--config",
        cfg,
        "--host",
        lib.LOOPBACK,
        "--port",
        port,
        "--num_workers",
        "1",
    ]
    p = group.start(name, argv, cpu=cpu, env=litellm_env(), cwd=workdir)
    lib.wait_http(f"http://{lib.LOOPBACK}:{port}/health/liveliness", 200, timeout=timeout, proc=p)
    return p


def smoke_chat(url: str, body: bytes, proc: lib.Proc | None, what: str) -> None:
    """One chat completion: 2xx with a ``choices`` array (a peer re-serialises the answer,
    so its length differs from the upstream's)."""
    try:
        code, data = lib.http_request(
            url, method="POST", body=body, headers={"Content-Type": "application/json"}, timeout=30.0
        )
    except OSError as e:
        raise BenchError(f"{what}: smoke POST failed: {e}") from None
    if not 200 <= code < 300 or b'"choices"' not in data:
        tail = f"\n--- last log lines of {proc.name} ---\n{proc.log_tail()}" if proc else ""
        raise BenchError(f"{what}: smoke POST returned HTTP {code}: {data[:300]!r}{tail}")


def version_of(peer: str) -> str:
    return {"litellm": LITELLM_VERSION, "contextforge": CONTEXTFORGE_VERSION}[peer]


# ---------------------------------------------------------------------------
# ContextForge (IBM's MCP gateway)
# ---------------------------------------------------------------------------

#: ContextForge's PyPI distribution is ``mcp-contextforge-gateway`` (``mcp-contextgateway``
#: does not exist); this is its newest release.
CONTEXTFORGE_DIST = "mcp-contextforge-gateway"
CONTEXTFORGE_VERSION = "1.0.7.post20260921"
CONTEXTFORGE_REQUIREMENT = f"{CONTEXTFORGE_DIST}=={CONTEXTFORGE_VERSION}"
CONTEXTFORGE_ADMIN = "admin@example.com"  # its default platform admin, created at start-up

MCP_PEERS = ("contextforge",)


def contextforge_env(workdir: Path, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH", "REDIS_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'contextforge.db'}",
        JWT_SECRET_KEY=secret,
        AUTH_ENCRYPTION_SECRET=secret,
        PLATFORM_ADMIN_EMAIL=CONTEXTFORGE_ADMIN,
        PLATFORM_ADMIN_PASSWORD="Bench-" + secret[:24],
        BASIC_AUTH_PASSWORD="Bench-" + secret[:24],
        MCPGATEWAY_ADMIN_API_ENABLED="true",  # to register the upstream server
        MCPGATEWAY_UI_ENABLED="false",
        LOG_LEVEL="ERROR",
        CACHE_TYPE="memory",
        OBSERVABILITY_ENABLED="false",
        PLUGINS_ENABLED="false",
        SSRF_ALLOW_LOCALHOST="true",  # the upstream is on 127.0.0.1
        SSRF_PROTECTION_ENABLED="false",
        # its rate limits (100 MCP calls a minute per user by default) would refuse the load
        RATE_LIMITING_ENABLED="false",
        TOOL_RATE_LIMIT="100000000",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_contextforge(
    group: ProcessGroup,
    workdir: Path,
    name: str,
    port: int,
    cpu: str,
    upstream_url: str,
    tool: str,
    timeout: float = 240.0,
) -> tuple[lib.Proc, str, str, str]:
    """Install (once) and start ContextForge (``mcpgateway``, one uvicorn worker, SQLite) pinned
    to ``cpu``; register ``upstream_url`` as a streamable-HTTP gateway named ``bench``.

    Returns (process, its MCP URL, a bearer token for the platform admin, the gateway's
    name for ``tool``)."""
    import json
    import secrets

    bindir = ensure_venv("contextforge", CONTEXTFORGE_DIST, CONTEXTFORGE_VERSION, CONTEXTFORGE_REQUIREMENT)
    secret = secrets.token_urlsafe(48)
    env = contextforge_env(workdir, secret)
    p = group.start(
        name,
        [bindir / "mcpgateway", "--host", lib.LOOPBACK, "--port", port, "--workers", "1"],
        cpu=cpu,
        env=env,
        cwd=workdir,
    )
    base = f"http://{lib.LOOPBACK}:{port}"
    lib.wait_http(f"{base}/health", 200, timeout=timeout, proc=p)
    r = subprocess.run(
        [
            bindir / "python",
            "-m",
            "mcpgateway.utils.create_jwt_token",
            "--username",
            CONTEXTFORGE_ADMIN,
            "--exp",
            "600",
            "--secret",
            secret,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=workdir,
    )
    token = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode != 0 or not token.startswith("ey"):
        raise BenchError(f"contextforge: cannot create a token (exit {r.returncode}): {r.stderr[-1000:]}")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    reg = json.dumps({"name": "bench", "url": upstream_url, "transport": "STREAMABLEHTTP"}).encode()
    code, data = lib.http_request(f"{base}/gateways", method="POST", body=reg, headers=auth, timeout=60)
    if code not in (200, 201):
        raise BenchError(
            f"contextforge: registering {upstream_url} returned HTTP {code}: {data[:300]!r}\n{p.log_tail()}"
        )
    code, data = lib.http_request(f"{base}/tools", headers=auth, timeout=30)
    try:
        names = {t["originalName"]: t["name"] for t in json.loads(data)}
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"contextforge: /tools returned HTTP {code}: {data[:300]!r}") from None
    if tool not in names:
        raise BenchError(f"contextforge: tool {tool!r} not among the registered tools {sorted(names)}")
    return p, f"{base}/mcp/", token, names[tool]


def contextforge_lua(path: Path, call: bytes, token: str) -> Path:
    """wrk script for ContextForge's MCP endpoint: stateless streamable HTTP (it answers
    ``initialize`` without a session id), so every thread sends the same request."""
    body = call.decode().replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Accept"] = "application/json, text/event-stream"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Mcp-Protocol-Version"] = "2025-06-18"\n'
    )
    return path


def smoke_mcp_call(url: str, call: bytes, token: str, what: str) -> None:
    h = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}",
        "Mcp-Protocol-Version": "2025-06-18",
    }
    code, data = lib.http_request(url, method="POST", body=call, headers=h, timeout=60)
    if code != 200 or b"hello" not in data:
        raise BenchError(f"{what}: tools/call smoke test returned HTTP {code}: {data[:300]!r}")
