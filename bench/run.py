#!/usr/bin/env python3
"""agentgw benchmarks.

    python bench/run.py http [--duration 10] [--connections 32] [--repeat N] [--quick]

Each subcommand is a scenario: it stands up its loopback targets (pinned to CPUs),
loads each one with wrk in interleaved rounds, prints a markdown table plus its
acceptance bars, and records raw results in bench/out/<scenario>-<timestamp>.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import auth_bench  # noqa: E402
import lib  # noqa: E402
import peers  # noqa: E402
from lib import BenchError, LoadSpec, ProcessGroup, Target  # noqa: E402

# ---------------------------------------------------------------------------
# Shared options
# ---------------------------------------------------------------------------


def add_load_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("load")
    g.add_argument("--duration", type=float, default=None, help="measured seconds per run (default 10; --quick: 3)")
    g.add_argument("--warmup", type=float, default=None, help="warm-up seconds before each run (default 2; --quick: 1)")
    g.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    g.add_argument(
        "--repeat", type=int, default=None, help="interleaved rounds; medians per target are reported (default 1)"
    )
    g.add_argument("--quick", action="store_true", help="short smoke benchmark: 3 s runs, 1 s warm-up, 1 round")
    g.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each run wait up to S seconds for the machine to be idle (default 0: don't wait)",
    )
    c = p.add_argument_group("placement")
    c.add_argument("--upstream-cpu", default="0", help="CPU list for the upstream (default 0)")
    c.add_argument("--proxy-cpu", default="1", help="CPU list for each proxy under test (default 1)")
    c.add_argument("--wrk-cpu", default="0", help="CPU list for wrk (default 0)")
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", type=Path, default=lib.OUT_DIR, help="where the JSON record goes (default bench/out)")
    o.add_argument("--keep", action="store_true", help="keep the temp work dir (configs, process logs)")
    o.add_argument("--no-install", action="store_true", help="do not apt-get install missing nginx/wrk")


def load_spec(args: argparse.Namespace, script: Path | None) -> LoadSpec:
    return LoadSpec(
        duration_s=args.duration if args.duration is not None else (3.0 if args.quick else 10.0),
        warmup_s=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        connections=args.connections,
        threads=1,
        script=script,
        wrk_cpu=args.wrk_cpu,
        wait_quiet_s=args.wait_quiet,
    )


def rounds(args: argparse.Namespace) -> int:
    return args.repeat if args.repeat is not None else 1


def check_cpus(*cpu_lists: str) -> None:
    have = sorted(os.sched_getaffinity(0))
    for cl in cpu_lists:
        for part in cl.split(","):
            lo, _, hi = part.partition("-")
            for c in range(int(lo), int(hi or lo) + 1):
                if c not in have:
                    raise BenchError(
                        f"CPU {c} is not available (usable CPUs: {have}); adjust --upstream-cpu/--proxy-cpu/--wrk-cpu"
                    )
    if len(have) < 2:
        lib.log("WARNING: fewer than 2 CPUs: proxies share a CPU with wrk and the upstream")


def deadline_for(n_targets: int, spec: LoadSpec, n_rounds: int) -> float:
    per_run = spec.warmup_s + spec.duration_s + spec.wait_quiet_s + 20  # + wrk start/stop, sampling slack
    return 180 + n_targets * n_rounds * per_run


# ---------------------------------------------------------------------------
# agentgw
# ---------------------------------------------------------------------------


def agentgw_yaml(ports: dict[str, int], upstream_port: int, route: str, policies: str = "") -> str:
    """Config in the agentgateway schema: one bind, one listener, one route to the upstream."""
    return f"""\
config:
  adminAddr: {lib.LOOPBACK}:{ports["admin"]}
  statsAddr: {lib.LOOPBACK}:{ports["stats"]}
  readinessAddr: {lib.LOOPBACK}:{ports["readiness"]}
  logging: {{level: warn}}
binds:
- port: {ports["bind"]}
  listeners:
  - name: bench
    routes:
    - name: {route}
{policies}      backends:
      - host: {lib.LOOPBACK}:{upstream_port}
"""


POLICIES_YAML = """\
      policies:
        requestHeaderModifier:
          add:
            x-bench: "1"
        localRateLimit:
        - maxTokens: 100000000
          tokensPerFill: 100000000
          fillInterval: 1s
"""


AGENTGW_CMD = f"{shlex.quote(sys.executable)} -m agentgw run -f {{config}}"


def start_agentgw(
    group: ProcessGroup,
    workdir: Path,
    name: str,
    yaml_text: str,
    ports: dict[str, int],
    cpu: str,
    cmd: str = AGENTGW_CMD,
    timeout: float = 30.0,
) -> lib.Proc:
    """Start agentgw (pinned) with a generated config; wait for /healthz/ready and the bind port."""
    cfg = workdir / f"{name}.yaml"
    cfg.write_text(yaml_text)
    argv = [a.replace("{config}", str(cfg)) for a in shlex.split(cmd)]
    p = group.start(name, argv, cpu=cpu, env=lib.python_env_with_repo_src(), cwd=lib.REPO_DIR)
    lib.wait_http(f"http://{lib.LOOPBACK}:{ports['readiness']}/healthz/ready", 200, timeout=timeout, proc=p)
    lib.wait_tcp(ports["bind"], timeout=timeout, proc=p)
    return p


# ---------------------------------------------------------------------------
# Scenario: http
# ---------------------------------------------------------------------------

HTTP_TARGETS = ("direct", "nginx", "agentgw-plain", "agentgw-policies")
HTTP_BARS = [
    lib.Bar("plain", "agentgw-plain", "nginx", 0.60),
    lib.Bar("policies", "agentgw-policies", "nginx", 0.45),
]
BODY_SIZE = 1024


def http_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    p.add_argument(
        "--targets",
        default=",".join(HTTP_TARGETS),
        help=f"comma-separated subset of {','.join(HTTP_TARGETS)} (default: all)",
    )
    p.add_argument(
        "--agentgw-cmd",
        default=AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path "
        "(default: the working tree's `python -m agentgw run -f {config}`)",
    )


def run_http(args: argparse.Namespace) -> int:
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(wanted) - set(HTTP_TARGETS)
    if unknown or not wanted:
        raise BenchError(f"unknown targets {sorted(unknown)}; choose from {', '.join(HTTP_TARGETS)}")
    wanted = [t for t in HTTP_TARGETS if t in wanted]
    use_agentgw = any(t.startswith("agentgw") for t in wanted)

    lib.ensure_tools(["nginx", "wrk", "taskset"], install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    if use_agentgw and args.agentgw_cmd == AGENTGW_CMD:
        ok, why = lib.agentgw_available()
        if not ok:
            raise BenchError(
                f"`python -m agentgw run` is not usable in this tree ({why}); "
                f"to measure only the references use --targets direct,nginx"
            )

    n_rounds = rounds(args)
    req_body = lib.json_body(BODY_SIZE, tag="request")
    resp_body = lib.json_body(BODY_SIZE, tag="response")

    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec = load_spec(args, lib.write_post_lua(wd / "post.lua", req_body))
        with lib.signals_raise(deadline_for(len(wanted), spec, n_rounds)):
            up_port, px_port = lib.free_ports(2)
            targets: list[Target] = []

            lib.log(f"upstream nginx on :{up_port} (CPU {args.upstream_cpu})")
            conf = lib.write_nginx_upstream(wd, "upstream", up_port, resp_body)
            lib.start_nginx(group, "upstream", conf, up_port, args.upstream_cpu)
            direct_url = f"http://{lib.LOOPBACK}:{up_port}/"
            lib.smoke_post(direct_url, req_body, BODY_SIZE, what="direct upstream")
            if "direct" in wanted:
                targets.append(Target("direct", direct_url))

            if "nginx" in wanted:
                lib.log(f"nginx proxy on :{px_port} (CPU {args.proxy_cpu})")
                conf = lib.write_nginx_proxy(wd, "proxy", px_port, up_port, keepalive=64)
                p = lib.start_nginx(group, "proxy", conf, px_port, args.proxy_cpu)
                url = f"http://{lib.LOOPBACK}:{px_port}/"
                lib.smoke_post(url, req_body, BODY_SIZE, proc=p, what="nginx proxy")
                targets.append(Target("nginx", url, p))

            access_log_note = None
            for name, route, pol in (("agentgw-plain", "plain", ""), ("agentgw-policies", "policies", POLICIES_YAML)):
                if name not in wanted:
                    continue
                ports = dict(zip(("admin", "stats", "readiness", "bind"), lib.free_ports(4)))
                lib.log(f"{name} on :{ports['bind']} (CPU {args.proxy_cpu})")
                p = start_agentgw(
                    group,
                    wd,
                    name,
                    agentgw_yaml(ports, up_port, route, pol),
                    ports,
                    args.proxy_cpu,
                    cmd=args.agentgw_cmd,
                )
                url = f"http://{lib.LOOPBACK}:{ports['bind']}/"
                lib.smoke_post(url, req_body, BODY_SIZE, proc=p, what=name)
                targets.append(Target(name, url, p, notes={"ports": ports, "route": route}))
                access_log_note = "logging.level=warn (no access log configured)"

            lib.log(
                f"{n_rounds} round(s) × {len(targets)} target(s): wrk -t1 -c{spec.connections} "
                f"-d{spec.duration_s:g}s --latency POST {BODY_SIZE} B (warm-up {spec.warmup_s:g}s)"
            )
            runs = lib.interleaved_rounds(targets, spec, n_rounds, group)

    summary = lib.summarize(runs, [t.name for t in targets])
    bars = [b.evaluate(summary) for b in HTTP_BARS if b.numerator in summary and b.denominator in summary]

    # Did agentgw write anything per request (an access log) during the measured runs?
    access_log_on = None
    agw_runs = [r for r in runs if r.target.startswith("agentgw") and r.log_bytes is not None]
    if agw_runs:
        access_log_on = any(r.log_bytes >= r.requests > 0 for r in agw_runs)
        log_bytes = sum(r.log_bytes for r in agw_runs)
        access_log_note = (
            f"{access_log_note}; agentgw wrote {log_bytes} B of log output during the measured "
            f"runs -> access logging {'appears ON' if access_log_on else 'off'}"
        )

    print()
    print(
        f"## HTTP proxy — {n_rounds} round(s), wrk -t1 -c{spec.connections} -d{spec.duration_s:g}s --latency, "
        f"POST {BODY_SIZE} B JSON → 200 + {BODY_SIZE} B JSON"
    )
    print(
        f"CPUs: upstream {args.upstream_cpu}, proxy {args.proxy_cpu}, wrk {args.wrk_cpu}; "
        f"medians of clean runs; CPU/RSS = proxy process tree (nginx: master + worker)"
    )
    print()
    print(lib.markdown_table(summary))
    print()
    if "nginx" in summary:
        for name in ("agentgw-plain", "agentgw-policies", "direct"):
            s = summary.get(name)
            if s and s["rps"] and summary["nginx"]["rps"]:
                print(f"- {name}/nginx req/s ratio: {s['rps'] / summary['nginx']['rps']:.2f}×")
    if bars:
        print(lib.bars_report(bars))
    else:
        print("- bars: not evaluated (needs nginx and agentgw targets)")
    if access_log_note:
        print(f"- access log: {access_log_note}")
    noise = max((x.foreign_cpu or 0.0) for x in runs) if runs else 0.0
    warn = " — WARNING: something else was running; figures are unreliable" if noise > lib.FOREIGN_CPU_WARN else ""
    print(f"- machine noise: other processes used up to {noise:.2f} CPU during a measured run{warn}")
    print(
        "- policies route: requestHeaderModifier add x-bench, localRateLimit 1e8 tokens/1s (never hit); "
        "metrics always on"
    )

    payload: dict[str, Any] = {
        "scenario": "http",
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "load": {
            "tool": "wrk",
            "threads": spec.threads,
            "connections": spec.connections,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "rounds": n_rounds,
            "wait_quiet_s": spec.wait_quiet_s,
            "method": "POST",
            "request_body_bytes": BODY_SIZE,
            "response_body_bytes": BODY_SIZE,
            "content_type": "application/json",
        },
        "placement": {"upstream": args.upstream_cpu, "proxy": args.proxy_cpu, "wrk": args.wrk_cpu},
        "targets": {t.name: {"url": t.url, **t.notes} for t in targets},
        "agentgw": {
            "command": args.agentgw_cmd,
            "access_log_on": access_log_on,
            "access_log_note": access_log_note,
            "policies_yaml": POLICIES_YAML,
        }
        if use_agentgw
        else None,
        "runs": runs,
        "summary": summary,
        "bars": bars,
    }
    path = lib.record_json("http", payload, args.out_dir)
    print(f"\nraw results: {path}")
    if any(b["result"] != "PASS" for b in bars):
        return 1
    return 0


# ---------------------------------------------------------------------------
# Scenario: a2a
# ---------------------------------------------------------------------------

A2A_TARGETS = ("direct", "agentgw-plain", "agentgw-a2a")
A2A_POLICY_YAML = "      policies:\n        a2a: {}\n"  # the route policy under test (agentgw_yaml's `policies`)
A2A_BAR_MS = 1.0  # agentgw may add at most this much to the p50 latency of message/send
A2A_REQUEST = (
    b'{"jsonrpc":"2.0","id":"bench-1","method":"message/send","params":{"message":{"role":"user",'
    b'"messageId":"bench-m1","contextId":"bench-c1","parts":[{"kind":"text","text":"hello"}]}}}'
)


def a2a_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    p.add_argument(
        "--concurrency",
        default="1,32",
        help="comma-separated wrk connection counts to measure (default 1,32: sequential and 32-concurrent)",
    )
    p.add_argument(
        "--agentgw-cmd",
        default=AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path",
    )


def run_a2a(args: argparse.Namespace) -> int:
    """message/send to the shipped demo A2A agent, direct vs through an ``a2a: {}`` route
    (request parsed, response observed for the task state, metrics and access-log fields
    computed), sequential and concurrent; bar: p50(agentgw) - p50(direct) <= 1 ms."""
    lib.ensure_tools(["wrk", "taskset"], install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    if args.agentgw_cmd == AGENTGW_CMD:
        ok, why = lib.agentgw_available()
        if not ok:
            raise BenchError(f"`python -m agentgw run` is not usable in this tree ({why})")
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    n_rounds = rounds(args)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    runs_by_level: dict[int, list] = {}
    all_runs: list = []
    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec0 = load_spec(args, lib.write_post_lua(wd / "post.lua", A2A_REQUEST))
        with lib.signals_raise(deadline_for(len(A2A_TARGETS) * len(levels), spec0, n_rounds)):
            agent_port = lib.free_port()
            lib.log(f"demo A2A agent on :{agent_port} (CPU {args.upstream_cpu})")
            agent = group.start(
                "agent",
                [sys.executable, "-m", "agentgw_demo.a2a_agent", "--port", str(agent_port)],
                cpu=args.upstream_cpu,
                env=lib.python_env_with_repo_src(),
                cwd=lib.REPO_DIR,
            )
            lib.wait_tcp(agent_port, proc=agent)
            direct_url = f"http://{lib.LOOPBACK}:{agent_port}/"
            lib.smoke_post(direct_url, A2A_REQUEST, proc=agent, what="demo agent")
            targets = [Target("direct", direct_url, agent)]
            # agentgw-plain: the same route without ``a2a`` (what the A2A processing adds is the difference)
            for name, pol in (("agentgw-plain", ""), ("agentgw-a2a", A2A_POLICY_YAML)):
                ports = dict(zip(("admin", "stats", "readiness", "bind"), lib.free_ports(4)))
                lib.log(f"{name} on :{ports['bind']} (CPU {args.proxy_cpu})")
                p = start_agentgw(
                    group,
                    wd,
                    name,
                    agentgw_yaml(ports, agent_port, "bench-agent", pol),
                    ports,
                    args.proxy_cpu,
                    cmd=args.agentgw_cmd,
                )
                gw_url = f"http://{lib.LOOPBACK}:{ports['bind']}/"
                lib.smoke_post(gw_url, A2A_REQUEST, proc=p, what=name)
                targets.append(Target(name, gw_url, p))
            for c in levels:
                spec = LoadSpec(**{**spec0.__dict__, "connections": c})
                lib.log(f"{n_rounds} round(s): wrk -t1 -c{c} -d{spec.duration_s:g}s --latency POST message/send")
                runs = lib.interleaved_rounds(targets, spec, n_rounds, group)
                all_runs += [{"connections": c, **r.__dict__} for r in runs]
                runs_by_level[c] = runs
                results[c] = lib.summarize(runs, [t.name for t in targets])

    print()
    print(f"## A2A message/send — demo agent direct vs through agentgw (a2a: {{}}), {n_rounds} round(s)")
    print()
    bars = []
    for c, summary in results.items():
        print(f"### {'sequential' if c == 1 else f'{c}-concurrent'} (wrk -c{c})")
        print()
        print(lib.markdown_table(summary))
        g, pl = summary["agentgw-a2a"]["p50_ms"], summary["agentgw-plain"]["p50_ms"]
        if pl is not None and g is not None:
            print(f"\n- of which A2A processing (agentgw-a2a - agentgw-plain): {lib.fmt(g - pl, 3)} ms")
        bars.append(
            lib.p50_added_bar(f"p50 delta c={c}", runs_by_level[c], summary, "direct", "agentgw-a2a", A2A_BAR_MS)
        )
        print()
    payload = {
        "scenario": "a2a",
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "request": A2A_REQUEST.decode(),
        "rounds": n_rounds,
        "runs": all_runs,
        "summary": {str(c): s for c, s in results.items()},
        "bars": bars,
    }
    path = lib.record_json("a2a", payload, args.out_dir)
    print(f"raw results: {path}")
    return 0 if all(b["result"] == "PASS" for b in bars) else 1


# ---------------------------------------------------------------------------
# Scenario: mcp
# ---------------------------------------------------------------------------

MCP_CALL = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
MCP_TOOLS = ("echo", "echo_async")  # a plain ``def`` tool (the SDK's thread pool) or an ``async def`` one
MCP_BAR_MS = 1.0
MCP_RATIO_BAR = 0.5


def mcp_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    p.add_argument(
        "--concurrency",
        default="1,32",
        help="comma-separated wrk connection counts (default 1,32: sequential and 32-concurrent)",
    )
    p.add_argument(
        "--agentgw-cmd",
        default=AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path",
    )
    p.add_argument(
        "--tool",
        choices=MCP_TOOLS,
        default="echo",
        help="the tool called: echo (a plain def, run in the SDK's worker threads) or echo_async",
    )
    p.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="with concurrent sessions: each session waits between calls, as an agent would, a "
        "random time of this mean (uniform in [0, 2x], drawn per call, so sessions do not "
        "move in step; default 0: back to back, which saturates the server)",
    )
    p.add_argument(
        "--no-nginx",
        action="store_true",
        help="leave out the reference arm: nginx proxying the same server (on --proxy-cpu)",
    )
    p.add_argument(
        "--peers",
        default="",
        metavar="LIST",
        help="other MCP gateways to measure in the same rounds, comma-separated: contextforge "
        f"(ContextForge {peers.CONTEXTFORGE_VERSION}, installed once into bench/.venvs/contextforge); default none",
    )
    add_ports_arg(p)


def _mcp_session(url: str, call: bytes = MCP_CALL) -> str:
    """initialize + notifications/initialized; returns the Mcp-Session-Id."""
    import json as _json
    import urllib.request

    h = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    with urllib.request.urlopen(urllib.request.Request(url, _json.dumps(init).encode(), h), timeout=30) as r:
        sid = r.headers["mcp-session-id"]
        r.read()
    h["mcp-session-id"] = sid
    h["mcp-protocol-version"] = "2025-06-18"
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    with urllib.request.urlopen(urllib.request.Request(url, _json.dumps(note).encode(), h), timeout=30) as r:
        r.read()
    with urllib.request.urlopen(urllib.request.Request(url, call, h), timeout=30) as r:
        body = r.read()
        if b"hello" not in body:
            raise BenchError(f"tools/call smoke test failed at {url}: {body[:300]!r}")
    return sid


def _mcp_lua(path: Path, sid: str, call: bytes = MCP_CALL) -> Path:
    body = call.decode().replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Accept"] = "application/json, text/event-stream"\n'
        f'wrk.headers["Mcp-Session-Id"] = "{sid}"\n'
        'wrk.headers["Mcp-Protocol-Version"] = "2025-06-18"\n'
    )
    return path


def _mcp_sessions_lua(path: Path, sids: list[str], call: bytes = MCP_CALL, think_ms: float = 0.0) -> Path:
    """One MCP session per wrk thread (run with -tN -cN): N concurrent *sessions*, each
    calling sequentially on its own connection, as N agents would.

    With ``think_ms``, each waits before its next call (wrk's ``delay()``: not part of
    the measured latency) a random time, uniform in [0, 2 * think_ms], from its own
    seed. A fixed wait would keep the sessions in step: all N start together, so all N
    calls would reach the server at once, every round, and each would queue behind the
    others as if the server were saturated.
    """
    body = call.decode().replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        (f"function delay() return math.random() * {2 * think_ms:g} end\n" if think_ms > 0 else "")
        + "local sids = {"
        + ", ".join(f'"{s}"' for s in sids)
        + "}\n"
        "local next_sid = 1\n"
        "function setup(thread)\n"
        "  thread:set('sid', sids[next_sid])\n"
        "  thread:set('seed', next_sid)\n"
        "  next_sid = next_sid + 1\n"
        "end\n"
        "function init(args)\n"
        "  math.randomseed(seed * 7919 + os.time())\n"
        f'  req = wrk.format("POST", nil, {{["Content-Type"] = "application/json", '
        '["Accept"] = "application/json, text/event-stream", ["Mcp-Session-Id"] = sid, '
        f'["Mcp-Protocol-Version"] = "2025-06-18"}}, "{body}")\n'
        "end\n"
        "function request() return req end\n"
    )
    return path


def _print_reference(runs: list, ref: str, target: str) -> None:
    """Informational lines, not bars: what the reference proxy adds to the same server in
    the same rounds, and the target against it (medians of per-round paired deltas)."""
    for base, other, what in (
        ("direct", ref, f"p50 added by {ref} (reference)"),
        (ref, target, f"p50 {target} - {ref}"),
    ):
        pairs = lib.paired_deltas(runs, base, other)
        if pairs:
            print(
                f"- {what}: {lib.fmt(statistics.median(pairs), 3)} ms "
                f"(median of {len(pairs)} paired rounds; per round {', '.join(lib.fmt(x, 2) for x in pairs)})"
            )
    via = [
        r.also_cpu_us_per_req["mcp-server"] for r in runs if r.target == ref and "mcp-server" in r.also_cpu_us_per_req
    ]
    if via:
        print(f"- MCP server CPU per call through {ref}: {statistics.median(via):,.0f} µs")


PEER_WRK_TIMEOUT_S = 10.0  # wrk's per-request timeout for peer arms (2 s for the others)


def _wrk_runner(spec: LoadSpec, timeout_s: float) -> lib.Runner:
    def run(t: Target, seconds: float, warmup: bool) -> lib.WrkResult:
        return lib.run_wrk(
            t.url, spec.script, seconds, spec.connections, spec.threads, spec.wrk_cpu, timeout_s=timeout_s
        )

    return run


def run_mcp(args: argparse.Namespace) -> int:
    """tools/call on a streamable-HTTP MCPServer (the Python SDK's FastMCP), direct vs through
    an mcp backend; bars: p50 added <= 1 ms (sequential and concurrent), req/s >= 0.5x direct."""
    lib.ensure_tools(["wrk", "taskset"] + ([] if args.no_nginx else ["nginx"]), install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    n_rounds = rounds(args)
    peer_names = peers.parse_peers(args.peers, peers.MCP_PEERS)
    if peer_names and args.think_ms > 0:
        raise BenchError("--think-ms is not supported with --peers")
    n_arms = (2 if args.no_nginx else 3) + len(peer_names)
    call = MCP_CALL.replace(b'"name":"echo"', f'"name":"{args.tool}"'.encode())
    lo, hi = lib.parse_port_range(args.ports)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    runs_by_level: dict[int, list] = {}
    all_runs: list = []
    peer_results: dict[str, Any] = {}
    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec0 = load_spec(args, None)
        with lib.signals_raise(deadline_for(n_arms * len(levels), spec0, n_rounds) + 300 * len(peer_names)):
            up_port, *more_ports = lib.ports_in_range(7, lo, hi)
            port_pool = iter(more_ports)
            lib.log(f"MCPServer (streamable HTTP) on :{up_port} (CPU {args.upstream_cpu})")
            up = group.start(
                "mcp-server",
                [sys.executable, "-m", "tests.mcp.fast_server", "--name", "bench", "--http", str(up_port)],
                cpu=args.upstream_cpu,
                env=lib.python_env_with_repo_src(),
                cwd=lib.REPO_DIR,
            )
            lib.wait_tcp(up_port, timeout=30, proc=up)
            direct_url = f"http://{lib.LOOPBACK}:{up_port}/mcp"
            ports = {k: next(port_pool) for k in ("admin", "stats", "readiness", "bind")}
            yaml_text = f"""\
config:
  adminAddr: {lib.LOOPBACK}:{ports["admin"]}
  statsAddr: {lib.LOOPBACK}:{ports["stats"]}
  readinessAddr: {lib.LOOPBACK}:{ports["readiness"]}
  logging: {{level: warn}}
binds:
- port: {ports["bind"]}
  listeners:
  - name: bench
    routes:
    - name: mcp
      backends:
      - mcp:
          targets:
          - name: bench
            mcp: {{host: "http://{lib.LOOPBACK}:{up_port}/mcp"}}
"""
            lib.log(f"agentgw-mcp on :{ports['bind']} (CPU {args.proxy_cpu})")
            gw = start_agentgw(group, wd, "agentgw-mcp", yaml_text, ports, args.proxy_cpu, cmd=args.agentgw_cmd)
            gw_url = f"http://{lib.LOOPBACK}:{ports['bind']}/mcp"
            endpoints = [("direct", direct_url, up), ("agentgw-mcp", gw_url, gw)]
            if not args.no_nginx:  # the reference: what a proxy hop costs this server, made by nginx
                ngx_port = next(port_pool)
                lib.log(f"nginx-mcp on :{ngx_port} (CPU {args.proxy_cpu})")
                conf = lib.write_nginx_proxy(wd, "nginx-mcp", ngx_port, up_port, keepalive=64, host="$http_host")
                ngx = lib.start_nginx(group, "nginx-mcp", conf, ngx_port, args.proxy_cpu)
                endpoints.append(("nginx-mcp", f"http://{lib.LOOPBACK}:{ngx_port}/mcp", ngx))
            cf_token, cf_call = "", b""
            if "contextforge" in peer_names:
                cf_port = next(port_pool)
                lib.log(f"contextforge {peers.CONTEXTFORGE_VERSION} on :{cf_port} (CPU {args.proxy_cpu})")
                cf, cf_url, cf_token, cf_tool = peers.start_contextforge(
                    group, wd, "contextforge", cf_port, args.proxy_cpu, direct_url, args.tool
                )
                # ContextForge exposes the tool under its own name (gateway name + separator)
                cf_call = call.replace(f'"name":"{args.tool}"'.encode(), f'"name":"{cf_tool}"'.encode())
                peers.smoke_mcp_call(cf_url, cf_call, cf_token, "contextforge")
                endpoints.append(("contextforge", cf_url, cf))
            for c in levels:
                targets = []
                for name, url, proc in endpoints:
                    if name == "contextforge":  # stateless: one script for every thread
                        script = peers.contextforge_lua(wd / f"{name}-{c}.lua", cf_call, cf_token)
                    elif c == 1:
                        script = _mcp_lua(wd / f"{name}.lua", _mcp_session(url, call), call)
                    else:  # c concurrent sessions, one per wrk thread
                        script = _mcp_sessions_lua(
                            wd / f"{name}-{c}.lua", [_mcp_session(url, call) for _ in range(c)], call, args.think_ms
                        )
                    # the server's own CPU per call in both arms: is the bottleneck doing the same work?
                    targets.append((Target(name, url, proc, also={} if proc is up else {"mcp-server": up}), script))
                runs = []
                for rnd in range(n_rounds):
                    order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
                    for t, script in order:
                        spec = LoadSpec(**{**spec0.__dict__, "connections": c, "threads": c, "script": script})
                        lib.log(f"round {rnd + 1}: {t.name} wrk -c{c} -d{spec.duration_s:g}s tools/call")
                        runner = None
                        if t.name in peer_names:  # a slow peer: wait up to 10 s for an answer, not 2 s
                            runner = _wrk_runner(spec, PEER_WRK_TIMEOUT_S)
                        runs.append(lib.measure(t, spec, rnd, group, runner))
                all_runs += [{"connections": c, **r.__dict__} for r in runs]
                runs_by_level[c] = runs
                results[c] = lib.summarize(runs, [t.name for t, _ in targets])

    print()
    ref = "" if args.no_nginx else " (and through nginx, for reference)"
    print(
        f"## MCP tools/call `{args.tool}` — MCPServer direct vs through agentgw (mcp backend){ref}, {n_rounds} round(s)"
    )
    print()
    bars = []
    for c, summary in results.items():
        paced = f", {args.think_ms:g} ms between a session's calls" if args.think_ms > 0 else ""
        print(
            f"### {'sequential (wrk -c1)' if c == 1 else f'{c} concurrent sessions (wrk -t{c} -c{c}, one session per thread{paced})'}"
        )
        print()
        print(lib.markdown_table(summary))
        server_cpu = [r.cpu_us_per_req for r in runs_by_level[c] if r.target == "direct" and r.cpu_us_per_req]
        server_cpu_via = [
            r.also_cpu_us_per_req["mcp-server"]
            for r in runs_by_level[c]
            if r.target == "agentgw-mcp" and "mcp-server" in r.also_cpu_us_per_req
        ]
        if server_cpu and server_cpu_via:
            print(
                f"\n- MCP server CPU per call: {statistics.median(server_cpu):,.0f} µs direct, "
                f"{statistics.median(server_cpu_via):,.0f} µs through agentgw"
            )
        bars.append(
            lib.p50_added_bar(f"p50 added c={c}", runs_by_level[c], summary, "direct", "agentgw-mcp", MCP_BAR_MS)
        )
        if "nginx-mcp" in summary:
            _print_reference(runs_by_level[c], "nginx-mcp", "agentgw-mcp")
        dr, gr = summary["direct"].get("rps"), summary["agentgw-mcp"].get("rps")
        ratio = gr / dr if dr and gr else None
        okr = ratio is not None and ratio >= MCP_RATIO_BAR
        bars.append(
            {
                "label": f"req/s ratio c={c}",
                "ratio": ratio,
                "bar": MCP_RATIO_BAR,
                "result": "PASS" if okr else ("N/A" if ratio is None else "FAIL"),
            }
        )
        print(f"- req/s agentgw/direct: {lib.fmt(ratio, 2)}x (bar >= {MCP_RATIO_BAR}x): {bars[-1]['result']}")
        if peer_names:
            peer_results[str(c)] = _peer_lines(runs_by_level[c], summary, peer_names, "agentgw-mcp")
        print()
    payload = {
        "scenario": "mcp",
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "request": call.decode(),
        "think_ms": args.think_ms,
        "rounds": n_rounds,
        "runs": all_runs,
        "summary": {str(c): s for c, s in results.items()},
        "bars": bars,
        "peers": {"versions": {p: peers.version_of(p) for p in peer_names}, "results": peer_results},
    }
    path = lib.record_json("mcp", payload, args.out_dir)
    print(f"raw results: {path}")
    return 0 if all(b["result"] == "PASS" for b in bars) else 1


# ---------------------------------------------------------------------------
# Scenario registry
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Scenario: llm
# ---------------------------------------------------------------------------

LLM_REQUEST = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},'
    b'{"role":"user","content":"Say hello to the benchmark in one short sentence, please."}],'
    b'"max_tokens":64,"temperature":0.2}'
)
LLM_RESPONSE = (
    b'{"id":"chatcmpl-bench0001","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark! Nice to meet you."},'
    b'"finish_reason":"stop","logprobs":null}],'
    b'"usage":{"prompt_tokens":28,"completion_tokens":9,"total_tokens":37}}'
)
LLM_BAR_MS = 1.0
LLM_TARGETS = ("direct", "agentgw-llm")


def llm_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    p.add_argument(
        "--concurrency",
        default="1,32",
        help="comma-separated wrk connection counts to measure (default 1,32: sequential and 32-concurrent)",
    )
    p.add_argument(
        "--stream-requests",
        type=int,
        default=None,
        help="streamed requests per target for the time-to-first-token comparison (default 300; --quick: 60)",
    )
    p.add_argument(
        "--agentgw-cmd",
        default=AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path",
    )
    p.add_argument(
        "--peers",
        default="",
        metavar="LIST",
        help="other gateways to measure beside agentgw in the same rounds, comma-separated: litellm "
        f"(LiteLLM proxy {peers.LITELLM_VERSION}, installed once into bench/.venvs/litellm); default none",
    )
    add_ports_arg(p)


def llm_yaml(ports: dict[str, int], upstream_port: int) -> str:
    """The ``llm:`` shorthand with one OpenAI model on the fake upstream (key from config)."""
    return f"""\
config:
  adminAddr: {lib.LOOPBACK}:{ports["admin"]}
  statsAddr: {lib.LOOPBACK}:{ports["stats"]}
  readinessAddr: {lib.LOOPBACK}:{ports["readiness"]}
  logging: {{level: warn}}
llm:
  port: {ports["bind"]}
  models:
  - name: gpt-4o-mini
    provider: openAI
    params: {{baseUrl: "http://{lib.LOOPBACK}:{upstream_port}/v1", apiKey: sk-bench}}
"""


def _ttft_ms(port: int, n: int, body: bytes) -> list[float]:
    """Sequential streamed chat completions on one keep-alive connection: ms from sending
    the request to the first SSE event's bytes; each stream is read to its end."""
    import socket
    import time as _t

    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {lib.LOOPBACK}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-client\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((lib.LOOPBACK, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out: list[float] = []
    try:
        for _ in range(n):
            t0 = _t.perf_counter()
            sock.sendall(head + body)
            buf = b""
            first = None
            while True:
                data = sock.recv(65536)
                if not data:
                    raise BenchError("connection closed mid-stream")
                buf += data
                if first is None and b"data:" in buf:
                    first = (_t.perf_counter() - t0) * 1000
                if buf.endswith(b"0\r\n\r\n") and b"[DONE]" in buf:
                    break
            out.append(first)
    finally:
        sock.close()
    return out


def _ratio(x: float | None) -> str:
    """A ratio with two significant digits at least (0.0056, 0.11, 1.02)."""
    if x is None:
        return "–"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def _peer_lines(
    runs: list, summary: dict[str, dict[str, Any]], peer_names: list[str], gw: str = "agentgw-llm"
) -> dict[str, Any]:
    """Print, for agentgw and each peer, the p50 added over direct (median of per-round paired
    differences once three rounds pair up, else the difference of medians, as for the bar) and
    req/s as a ratio to direct; then each peer against agentgw. Information, not bars."""
    out: dict[str, Any] = {}
    d = summary["direct"]
    # pair quiet rounds; on a busy machine (fewer than three quiet pairs) pair the clean ones
    quiet = all(len(lib.paired_deltas(runs, "direct", n)) >= 3 for n in [gw, *peer_names])
    kind = "quiet" if quiet else "clean (quiet or noisy)"
    for name in [gw, *peer_names]:
        s = summary[name]
        pairs = lib.paired_deltas(runs, "direct", name, quiet_only=quiet)
        of_medians = s["p50_ms"] - d["p50_ms"] if s["p50_ms"] is not None and d["p50_ms"] is not None else None
        added = statistics.median(pairs) if len(pairs) >= 3 else of_medians
        ratio = s["rps"] / d["rps"] if s["rps"] and d["rps"] else None
        out[name] = {"p50_added_ms": added, "paired_deltas_ms": pairs, "rps_ratio_to_direct": ratio}
    base = out[gw]
    for name in [gw, *peer_names]:
        o = out[name]
        how = (
            f"median of {len(o['paired_deltas_ms'])} paired {kind} rounds; per round "
            + ", ".join(lib.fmt(x, 2) for x in o["paired_deltas_ms"])
            if len(o["paired_deltas_ms"]) >= 3
            else "difference of medians"
        )
        extra = ""
        if name != gw:
            x = o["p50_added_ms"] / base["p50_added_ms"] if o["p50_added_ms"] and base["p50_added_ms"] else None
            y = (
                o["rps_ratio_to_direct"] / base["rps_ratio_to_direct"]
                if o["rps_ratio_to_direct"] and base["rps_ratio_to_direct"]
                else None
            )
            extra = f"; vs agentgw: {lib.fmt(x, 1)}× the p50 added, {_ratio(y)}× the req/s"
            o["p50_added_vs_agentgw"], o["rps_vs_agentgw"] = x, y
        print(
            f"- {name}: p50 added {lib.fmt(o['p50_added_ms'], 3)} ms ({how}), "
            f"req/s {_ratio(o['rps_ratio_to_direct'])}× direct{extra}"
        )
    return out


def run_llm(args: argparse.Namespace) -> int:
    """Chat completions OpenAI→OpenAI: a fixed-answer upstream direct vs through the
    ``llm:`` shorthand (body parsed for model/stream, key swapped, usage read for the
    token metrics), sequential and 32-concurrent; then streaming time to first token.
    Bars: p50(agentgw) - p50(direct) <= 1 ms; median TTFT delta <= 1 ms."""

    lib.ensure_tools(["nginx", "wrk", "taskset"], install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    if args.agentgw_cmd == AGENTGW_CMD:
        ok, why = lib.agentgw_available()
        if not ok:
            raise BenchError(f"`python -m agentgw run` is not usable in this tree ({why})")
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    n_rounds = rounds(args)
    n_stream = args.stream_requests or (60 if args.quick else 300)
    peer_names = peers.parse_peers(args.peers)
    lo, hi = lib.parse_port_range(args.ports)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    runs_by_level: dict[int, list] = {}
    all_runs: list = []
    ttft: dict[str, list[float]] = {"direct": [], "agentgw-llm": [], **{p: [] for p in peer_names}}
    stream_ports: dict[str, int] = {}
    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec0 = load_spec(args, lib.write_post_lua(wd / "post.lua", LLM_REQUEST))
        n_targets = len(LLM_TARGETS) + len(peer_names)
        with lib.signals_raise(deadline_for(n_targets * len(levels) + 2, spec0, n_rounds) + 300 * len(peer_names)):
            up_port, sse_port, *more_ports = lib.ports_in_range(10 + len(peer_names), lo, hi)
            port_pool = iter(more_ports)
            lib.log(f"fake OpenAI upstream (nginx, fixed chat.completion) on :{up_port} (CPU {args.upstream_cpu})")
            conf = lib.write_nginx_upstream(wd / "nginx-up", "upstream", up_port, LLM_RESPONSE)
            up = lib.start_nginx(group, "upstream", conf, up_port, args.upstream_cpu)
            direct_url = f"http://{lib.LOOPBACK}:{up_port}/v1/chat/completions"
            lib.smoke_post(direct_url, LLM_REQUEST, len(LLM_RESPONSE), proc=up, what="upstream")
            ports = {k: next(port_pool) for k in ("admin", "stats", "readiness", "bind")}
            lib.log(f"agentgw-llm on :{ports['bind']} (CPU {args.proxy_cpu})")
            gw = start_agentgw(
                group, wd, "agentgw-llm", llm_yaml(ports, up_port), ports, args.proxy_cpu, cmd=args.agentgw_cmd
            )
            gw_url = f"http://{lib.LOOPBACK}:{ports['bind']}/v1/chat/completions"
            lib.smoke_post(gw_url, LLM_REQUEST, len(LLM_RESPONSE), proc=gw, what="agentgw-llm")
            targets = [Target("direct", direct_url, up), Target("agentgw-llm", gw_url, gw)]
            if "litellm" in peer_names:
                ll_port = next(port_pool)
                lib.log(f"litellm {peers.LITELLM_VERSION} proxy on :{ll_port} (CPU {args.proxy_cpu})")
                ll = peers.start_litellm(
                    group,
                    wd,
                    "litellm",
                    {
                        "gpt-4o-mini": f"http://{lib.LOOPBACK}:{up_port}/v1",
                        # the streaming upstream (started below), under its own model name
                        "gpt-4o-mini-stream": f"http://{lib.LOOPBACK}:{sse_port}/v1",
                    },
                    ll_port,
                    args.proxy_cpu,
                )
                ll_url = f"http://{lib.LOOPBACK}:{ll_port}/v1/chat/completions"
                peers.smoke_chat(ll_url, LLM_REQUEST, ll, "litellm")
                targets.append(Target("litellm", ll_url, ll))
                stream_ports["litellm"] = ll_port
            for c in levels:
                spec = LoadSpec(**{**spec0.__dict__, "connections": c})
                lib.log(f"{n_rounds} round(s): wrk -t1 -c{c} -d{spec.duration_s:g}s --latency POST chat/completions")
                runs = lib.interleaved_rounds(targets, spec, n_rounds, group)
                all_runs += [{"connections": c, **r.__dict__} for r in runs]
                runs_by_level[c] = runs
                results[c] = lib.summarize(runs, [t.name for t in targets])
            # streaming: the demo OpenAI-compatible server, direct vs through a second agentgw
            lib.log(f"streaming upstream (agentgw_demo.openai_server) on :{sse_port}")
            sse = group.start(
                "sse-upstream",
                [sys.executable, "-m", "agentgw_demo.openai_server", "--port", str(sse_port)],
                cpu=args.upstream_cpu,
                env=lib.python_env_with_repo_src(),
                cwd=lib.REPO_DIR,
            )
            lib.wait_tcp(sse_port, proc=sse)
            ports2 = {k: next(port_pool) for k in ("admin", "stats", "readiness", "bind")}
            gw2 = start_agentgw(
                group,
                wd,
                "agentgw-llm-stream",
                llm_yaml(ports2, sse_port),
                ports2,
                args.proxy_cpu,
                cmd=args.agentgw_cmd,
            )
            stream_body = LLM_REQUEST[:-1] + b',"stream":true}'
            # a peer serves the streaming upstream under the model name "gpt-4o-mini-stream"
            peer_body = stream_body.replace(b'"gpt-4o-mini"', b'"gpt-4o-mini-stream"', 1)
            stream_targets = [("direct", sse_port, stream_body), ("agentgw-llm", ports2["bind"], stream_body)]
            stream_targets += [(p, stream_ports[p], peer_body) for p in peer_names]
            for _name, port, body in stream_targets:
                _ttft_ms(port, 10, body)  # warm-up
            for rnd in range(max(1, n_rounds)):
                k = rnd % len(stream_targets)
                for name, port, body in stream_targets[k:] + stream_targets[:k]:
                    ttft[name] += _ttft_ms(port, n_stream, body)
            del gw2

    print()
    print(f"## LLM chat completions (OpenAI→OpenAI) — direct vs through agentgw `llm:`, {n_rounds} round(s)")
    if peer_names:
        print(f"peers in the same rounds: {', '.join(f'{p} {peers.version_of(p)}' for p in peer_names)}")
    print()
    bars = []
    peer_results: dict[str, Any] = {}
    for c, summary in results.items():
        print(f"### {'sequential' if c == 1 else f'{c}-concurrent'} (wrk -c{c})")
        print()
        print(lib.markdown_table(summary))
        bars.append(
            lib.p50_added_bar(f"p50 delta c={c}", runs_by_level[c], summary, "direct", "agentgw-llm", LLM_BAR_MS)
        )
        if peer_names:
            peer_results[str(c)] = _peer_lines(runs_by_level[c], summary, peer_names)
        print()
    md, mg = statistics.median(ttft["direct"]), statistics.median(ttft["agentgw-llm"])
    p90 = {k: sorted(v)[int(len(v) * 0.9) - 1] for k, v in ttft.items()}
    tdelta = mg - md
    bars.append(
        {
            "label": "stream TTFT median delta",
            "delta_ms": tdelta,
            "bar_ms": LLM_BAR_MS,
            "result": "PASS" if tdelta <= LLM_BAR_MS else "FAIL",
        }
    )
    print("### streaming: time to first token (sequential, one keep-alive connection)")
    print()
    print("| target | requests | median ms | p90 ms |")
    print("|---|---|---|---|")
    for k in ttft:
        print(f"| {k} | {len(ttft[k])} | {statistics.median(ttft[k]):.3f} | {p90[k]:.3f} |")
    print(f"\n- TTFT median delta (agentgw - direct): {tdelta:.3f} ms (bar <= {LLM_BAR_MS:g} ms): {bars[-1]['result']}")
    for p in peer_names:
        pd = statistics.median(ttft[p]) - md
        peer_results.setdefault("ttft_added_ms", {})[p] = pd
        ratio = f", {pd / tdelta:.1f}× agentgw's" if tdelta > 0 else ""
        print(f"- TTFT median delta ({p} - direct): {pd:.3f} ms (no bar{ratio})")
    print()
    payload = {
        "scenario": "llm",
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "request": LLM_REQUEST.decode(),
        "rounds": n_rounds,
        "runs": all_runs,
        "ttft_ms": ttft,
        "summary": {str(c): s for c, s in results.items()},
        "bars": bars,
        "peers": {
            "versions": {p: peers.version_of(p) for p in peer_names},
            "litellm_config": peers.litellm_yaml({"gpt-4o-mini": "<upstream>/v1", "gpt-4o-mini-stream": "<sse>/v1"})
            if "litellm" in peer_names
            else None,
            "results": peer_results,
        },
    }
    path = lib.record_json("llm", payload, args.out_dir)
    print(f"raw results: {path}")
    return 0 if all(b["result"] == "PASS" for b in bars) else 1


# ---------------------------------------------------------------------------
# Scenario: redis (globalRateLimit vs the same route without)
# ---------------------------------------------------------------------------

REDIS_TARGETS = ("agentgw-plain", "agentgw-redis")
REDIS_BARS = [lib.Bar("redis", "agentgw-redis", "agentgw-plain", 0.75)]  # at most 25% fewer req/s


def redis_policy_yaml(redis_port: int) -> str:
    return f"""\
      policies:
        globalRateLimit:
          redis: {{url: "redis://{lib.LOOPBACK}:{redis_port}/0", timeout: 100ms}}
          descriptors:
          - entries: [{{key: generic_key, value: '"bench"'}}]
            rateLimit: {{requestsPerUnit: 1000000000, unit: HOUR}}
"""


def start_redis(group: ProcessGroup, workdir: Path, port: int, cpu: str | int | None) -> lib.Proc:
    """A throwaway ``redis-server`` on the loopback (no persistence), once it accepts."""
    argv = ["redis-server", "--port", str(port), "--bind", lib.LOOPBACK, "--save", "", "--appendonly", "no"]
    p = group.start("redis", [*argv, "--dir", str(workdir)], cpu=cpu)
    lib.wait_tcp(port, proc=p)
    return p


def redis_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    p.add_argument(
        "--agentgw-cmd",
        default=AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path",
    )
    p.add_argument("--redis-cpu", default=None, help="CPU list for redis-server (default: the upstream's)")


def run_redis(args: argparse.Namespace) -> int:
    lib.ensure_tools(["nginx", "wrk", "taskset", "redis-server"], install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    n_rounds = rounds(args)
    req_body = lib.json_body(BODY_SIZE, tag="request")
    resp_body = lib.json_body(BODY_SIZE, tag="response")
    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec = load_spec(args, lib.write_post_lua(wd / "post.lua", req_body))
        with lib.signals_raise(deadline_for(len(REDIS_TARGETS), spec, n_rounds)):
            up_port, redis_port = lib.free_ports(2)
            conf = lib.write_nginx_upstream(wd, "upstream", up_port, resp_body)
            lib.start_nginx(group, "upstream", conf, up_port, args.upstream_cpu)
            lib.log(f"redis-server on :{redis_port} (CPU {args.redis_cpu or args.upstream_cpu})")
            start_redis(group, wd, redis_port, args.redis_cpu or args.upstream_cpu)
            targets: list[Target] = []
            for name, route, pol in (
                ("agentgw-plain", "plain", ""),
                ("agentgw-redis", "redis", redis_policy_yaml(redis_port)),
            ):
                ports = dict(zip(("admin", "stats", "readiness", "bind"), lib.free_ports(4)))
                lib.log(f"{name} on :{ports['bind']} (CPU {args.proxy_cpu})")
                p = start_agentgw(
                    group,
                    wd,
                    name,
                    agentgw_yaml(ports, up_port, route, pol),
                    ports,
                    args.proxy_cpu,
                    cmd=args.agentgw_cmd,
                )
                url = f"http://{lib.LOOPBACK}:{ports['bind']}/"
                lib.smoke_post(url, req_body, BODY_SIZE, proc=p, what=name)
                targets.append(Target(name, url, p, notes={"ports": ports, "route": route}))
            runs = lib.interleaved_rounds(targets, spec, n_rounds, group)
    summary = lib.summarize(runs, [t.name for t in targets])
    bars = [b.evaluate(summary) for b in REDIS_BARS]
    print()
    print(f"## globalRateLimit (Redis) — {n_rounds} round(s), wrk -t1 -c{spec.connections} -d{spec.duration_s:g}s")
    print()
    print(lib.markdown_table(summary))
    print()
    print(lib.bars_report(bars))
    print(
        "- redis route: one generic_key descriptor, 1e9/hour (never hit); every request is checked in Redis "
        "(checks of one event-loop tick share one EVALSHA round trip)"
    )
    payload = {
        "scenario": "redis",
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "load": {
            "tool": "wrk",
            "connections": spec.connections,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "rounds": n_rounds,
        },
        "placement": {
            "upstream": args.upstream_cpu,
            "proxy": args.proxy_cpu,
            "wrk": args.wrk_cpu,
            "redis": args.redis_cpu or args.upstream_cpu,
        },
        "runs": runs,
        "summary": summary,
        "bars": bars,
    }
    path = lib.record_json("redis", payload, args.out_dir)
    print(f"raw results: {path}")
    return 0 if all(b["result"] == "PASS" for b in bars) else 1


# name -> (help, add_arguments, run). To add a scenario: write add_arguments/run
# (reuse add_load_args, lib.start_nginx, start_agentgw, lib.interleaved_rounds,
# lib.summarize, lib.markdown_table, lib.Bar, lib.record_json) and register it here.
# ---------------------------------------------------------------------------
# Scenario: nagle
# ---------------------------------------------------------------------------

NAGLE_TARGETS = ("direct", "nginx", "agentgw-plain")
#: an upstream as Python's http.server is: HTTP/1.1 keep-alive, no TCP_NODELAY, the head
#: and the body in two small writes (the second waits for the first's ACK: Nagle)
NAGLE_UPSTREAM = """\
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b'{"ok": true, "note": "head and body in separate writes"}'


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()  # write 1: the head
        self.wfile.write(BODY)  # write 2: the body

    do_GET = do_POST = _answer


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""
NAGLE_BAR_MS = 5.0  # p50 of a sequential request: far below the 40 ms delayed-ACK stall


def nagle_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    p.set_defaults(connections=1)
    p.add_argument("--agentgw-cmd", default=AGENTGW_CMD, help="command that starts agentgw ({config}: its config)")


def run_nagle(args: argparse.Namespace) -> int:
    lib.ensure_tools(["nginx", "wrk", "taskset"], install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    n_rounds = rounds(args)
    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec = load_spec(args, None)
        with lib.signals_raise(deadline_for(len(NAGLE_TARGETS), spec, n_rounds)):
            up_port, px_port = lib.free_ports(2)
            script = wd / "nagle_upstream.py"
            script.write_text(NAGLE_UPSTREAM)
            up = group.start("upstream", [sys.executable, str(script), up_port], cpu=args.upstream_cpu)
            lib.wait_tcp(up_port, proc=up)
            targets = [Target("direct", f"http://{lib.LOOPBACK}:{up_port}/")]
            conf = lib.write_nginx_proxy(wd, "proxy", px_port, up_port, keepalive=64)
            p = lib.start_nginx(group, "proxy", conf, px_port, args.proxy_cpu)
            targets.append(Target("nginx", f"http://{lib.LOOPBACK}:{px_port}/", p))
            ports = dict(zip(("admin", "stats", "readiness", "bind"), lib.free_ports(4)))
            p = start_agentgw(
                group, wd, "agentgw-plain", agentgw_yaml(ports, up_port, "plain"), ports, args.proxy_cpu, cmd=args.agentgw_cmd
            )
            targets.append(Target("agentgw-plain", f"http://{lib.LOOPBACK}:{ports['bind']}/", p))
            lib.log(
                f"{n_rounds} round(s) × {len(targets)} target(s): wrk -t1 -c{spec.connections} "
                f"-d{spec.duration_s:g}s --latency GET, upstream writing head and body separately without TCP_NODELAY"
            )
            runs = lib.interleaved_rounds(targets, spec, n_rounds, group)
    summary = lib.summarize(runs, [t.name for t in targets])
    print()
    print(f"## Nagle upstream — {n_rounds} round(s), wrk -t1 -c{spec.connections} -d{spec.duration_s:g}s --latency GET")
    print("The upstream (Python's http.server shape) sends its head and its body in two writes without TCP_NODELAY.")
    print()
    print(lib.markdown_table(summary))
    print()
    agw = summary.get("agentgw-plain", {}).get("p50_ms")
    ngx = summary.get("nginx", {}).get("p50_ms")
    ok = agw is not None and agw <= NAGLE_BAR_MS
    print(f"- agentgw p50 {lib.fmt(agw, 2)} ms, nginx p50 {lib.fmt(ngx, 2)} ms; bar: agentgw p50 <= {NAGLE_BAR_MS:g} ms: {'PASS' if ok else 'FAIL'}")
    payload: dict[str, Any] = {
        "scenario": "nagle",
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "load": {"tool": "wrk", "connections": spec.connections, "duration_s": spec.duration_s, "rounds": n_rounds},
        "runs": runs,
        "summary": summary,
    }
    path = lib.record_json("nagle", payload, args.out_dir)
    print(f"\nraw results: {path}")
    return 0 if ok else 1


# ---------------------------------------------------------------------------
# Shared by h2 and grpc: ports from a fixed range, a table with the mean and p90
# ---------------------------------------------------------------------------

PORT_RANGE = "18400-18479"


def add_ports_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ports",
        default=PORT_RANGE,
        metavar="LO-HI",
        help=f"take every listening port from this range (default {PORT_RANGE})",
    )


def _median_field(runs: list, name: str, attr: str, key: str | None = None) -> float | None:
    """Median of a run attribute (or of one key of a dict attribute) over the runs
    summarize() would use for this target: quiet clean ones, else clean, else all."""
    mine = [r for r in runs if r.target == name]
    use = [r for r in mine if r.quiet] or [r for r in mine if r.clean] or mine
    vals = []
    for r in use:
        v = getattr(r, attr)
        if key is not None:
            v = (v or {}).get(key)
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def latency_table(summary: dict[str, dict[str, Any]], runs: list) -> str:
    """lib.markdown_table with the mean and p90 columns (h2load and the gRPC client give both)."""
    lines = [
        "| target | req/s | mean ms | p50 ms | p90 ms | p99 ms | CPU µs/req | RSS MiB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, s in summary.items():
        err = str(s["errors"])
        if s["flagged"]:
            err += f" (FLAGGED: {s['runs'] - s['clean_runs']}/{s['runs']} runs had errors)"
        if s.get("noisy_runs"):
            err += f" ({s['noisy_runs']}/{s['runs']} runs noisy)"
        mean = _median_field(runs, name, "latency_avg_ms")
        p90 = _median_field(runs, name, "percentiles_ms", "90")
        lines.append(
            f"| {name} | {lib.fmt(s['rps'], 0, True)} | {lib.fmt(mean, 3)} | {lib.fmt(s['p50_ms'], 3)} "
            f"| {lib.fmt(p90, 3)} | {lib.fmt(s['p99_ms'], 3)} | {lib.fmt(s['cpu_us_per_req'], 1)} "
            f"| {lib.fmt(s['rss_mib'], 1)} | {err} |"
        )
    return "\n".join(lines)


def _ratio_lines(summary: dict[str, dict[str, Any]], num: str, den: str) -> list[str]:
    a, b = summary.get(num), summary.get(den)
    if not a or not b:
        return []
    out = []
    if a["rps"] and b["rps"]:
        out.append(f"- {num}/{den} req/s: {a['rps'] / b['rps']:.2f}×")
    if a["cpu_us_per_req"] and b["cpu_us_per_req"]:
        out.append(f"- {num}/{den} CPU per request: {a['cpu_us_per_req'] / b['cpu_us_per_req']:.2f}×")
    return out


def _noise_line(runs: list) -> str:
    noise = max((x.foreign_cpu or 0.0) for x in runs) if runs else 0.0
    warn = " — WARNING: something else was running; figures are unreliable" if noise > lib.FOREIGN_CPU_WARN else ""
    return f"- machine noise: other processes used up to {noise:.2f} CPU during a measured run{warn}"


def _access_log_line(runs: list) -> str | None:
    agw = [r for r in runs if r.target.startswith("agentgw") and r.log_bytes is not None]
    if not agw:
        return None
    on = any(r.log_bytes >= r.requests > 0 for r in agw)
    return (
        f"- access log: logging.level=warn, no access log configured; agentgw wrote {sum(r.log_bytes for r in agw)} B "
        f"of log output during the measured runs -> access logging {'appears ON' if on else 'off'}"
    )


# ---------------------------------------------------------------------------
# Scenario: h2 (HTTP/2 multiplexed throughput: h2c in front, HTTP/1.1 upstream)
# ---------------------------------------------------------------------------

H2_TARGETS = ("direct", "nginx", "agentgw")


def h2_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    add_ports_arg(p)
    p.add_argument("--clients", type=int, default=4, help="h2load connections (-c, default 4)")
    p.add_argument("--streams", type=int, default=32, help="h2load concurrent streams per connection (-m, default 32)")
    p.add_argument(
        "--targets",
        default=",".join(H2_TARGETS),
        help=f"comma-separated subset of {','.join(H2_TARGETS)} (default: all)",
    )
    p.add_argument(
        "--agentgw-cmd",
        default=AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path",
    )


def run_h2(args: argparse.Namespace) -> int:
    """HTTP/2 with many streams in flight: h2load (h2c, prior knowledge) POSTing 1 KiB to
    the http bench's upstream (nginx ``return 200``, 1 KiB), through nginx (``listen
    http2``, HTTP/1.1 keep-alive pool behind) and through agentgw (plain listener); direct
    = h2load to the upstream's own h2c listener (no proxy: the ceiling)."""
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    if set(wanted) - set(H2_TARGETS) or not wanted:
        raise BenchError(
            f"unknown targets {sorted(set(wanted) - set(H2_TARGETS))}; choose from {', '.join(H2_TARGETS)}"
        )
    wanted = [t for t in H2_TARGETS if t in wanted]
    lib.ensure_tools(["nginx", "h2load", "taskset"], install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    if "agentgw" in wanted and args.agentgw_cmd == AGENTGW_CMD:
        ok, why = lib.agentgw_available()
        if not ok:
            raise BenchError(f"`python -m agentgw run` is not usable in this tree ({why})")
    n_rounds = rounds(args)
    lo, hi = lib.parse_port_range(args.ports)
    req_body = lib.json_body(BODY_SIZE, tag="request")
    resp_body = lib.json_body(BODY_SIZE, tag="response")
    headers = ["content-type: application/json"]
    load_desc = (
        f"h2load -t1 -c{args.clients} -m{args.streams} -D<s>, POST {BODY_SIZE} B JSON → 200 + {BODY_SIZE} B JSON"
    )

    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec = load_spec(args, None)
        data = wd / "body.json"
        data.write_bytes(req_body)
        h2log = wd / "h2load-requests.tsv"

        def runner(t: Target, seconds: float, warmup: bool) -> lib.WrkResult:
            return lib.run_h2load(
                t.url,
                seconds,
                args.clients,
                args.streams,
                cpu=args.wrk_cpu,
                data=data,
                headers=headers,
                log_file=None if warmup else h2log,
            )

        with lib.signals_raise(deadline_for(len(wanted), spec, n_rounds)):
            up_port, up_h2_port, px_port, *agw_ports = lib.ports_in_range(7, lo, hi)
            targets: list[Target] = []
            lib.log(f"upstream nginx on :{up_port} (HTTP/1.1) and :{up_h2_port} (h2c), CPU {args.upstream_cpu}")
            conf = lib.write_nginx_upstream(wd, "upstream", up_port, resp_body, h2c_port=up_h2_port)
            up = lib.start_nginx(group, "upstream", conf, up_port, args.upstream_cpu)
            lib.smoke_post(f"http://{lib.LOOPBACK}:{up_port}/", req_body, BODY_SIZE, what="upstream (HTTP/1.1)")
            if "direct" in wanted:
                url = f"http://{lib.LOOPBACK}:{up_h2_port}/"
                lib.smoke_h2(url, data, BODY_SIZE, headers, proc=up, what="upstream (h2c)")
                targets.append(Target("direct", url))
            if "nginx" in wanted:
                lib.log(f"nginx h2c proxy on :{px_port} (CPU {args.proxy_cpu})")
                conf = lib.write_nginx_proxy(wd, "proxy", px_port, up_port, keepalive=64, http2=True)
                p = lib.start_nginx(group, "proxy", conf, px_port, args.proxy_cpu)
                url = f"http://{lib.LOOPBACK}:{px_port}/"
                lib.smoke_h2(url, data, BODY_SIZE, headers, proc=p, what="nginx h2c proxy")
                targets.append(Target("nginx", url, p))
            if "agentgw" in wanted:
                ports = dict(zip(("admin", "stats", "readiness", "bind"), agw_ports))
                lib.log(f"agentgw on :{ports['bind']} (CPU {args.proxy_cpu})")
                p = start_agentgw(
                    group,
                    wd,
                    "agentgw",
                    agentgw_yaml(ports, up_port, "plain"),
                    ports,
                    args.proxy_cpu,
                    cmd=args.agentgw_cmd,
                )
                url = f"http://{lib.LOOPBACK}:{ports['bind']}/"
                lib.smoke_h2(url, data, BODY_SIZE, headers, proc=p, what="agentgw (h2c)")
                targets.append(Target("agentgw", url, p, notes={"ports": ports}))
            lib.log(f"{n_rounds} round(s) × {len(targets)} target(s): {load_desc} (warm-up {spec.warmup_s:g}s)")
            runs = lib.interleaved_rounds(targets, spec, n_rounds, group, runner)

    summary = lib.summarize(runs, [t.name for t in targets])
    print()
    print(f"## HTTP/2 multiplexed — {n_rounds} round(s), {load_desc.replace('<s>', f'{spec.duration_s:g}')}")
    print(
        f"CPUs: upstream {args.upstream_cpu}, proxy {args.proxy_cpu}, h2load {args.wrk_cpu}; medians of clean runs; "
        "latency from h2load's per-request log; CPU/RSS = proxy process tree (nginx: master + worker)"
    )
    print()
    print(latency_table(summary, runs))
    print()
    for line in _ratio_lines(summary, "agentgw", "nginx") + _ratio_lines(summary, "nginx", "direct"):
        print(line)
    for what, attr in (("req/s", "rps"), ("CPU per request", "cpu_us_per_req")):
        # per round, from quiet pairs; on a busy machine (no quiet pair) from clean ones
        for label, ok in (("quiet", lambda r: r.quiet), ("clean, noisy included", lambda r: r.clean)):
            pairs = [
                getattr(a, attr) / getattr(b, attr)
                for a in runs
                for b in runs
                if a.round == b.round and a.target == "agentgw" and b.target == "nginx" and ok(a) and ok(b)
                if getattr(a, attr) and getattr(b, attr)
            ]
            if pairs:
                print(
                    f"- agentgw/nginx {what} per round ({label}): {', '.join(f'{x:.2f}' for x in pairs)}; "
                    f"median {statistics.median(pairs):.2f}×"
                )
                break
    al = _access_log_line(runs)
    if al:
        print(al)
    print(_noise_line(runs))
    payload: dict[str, Any] = {
        "scenario": "h2",
        "argv": sys.argv,
        "environment": {
            **lib.environment_info(),
            "h2load": lib.tool_version([lib.which("h2load") or "h2load", "--version"]),
        },
        "load": {
            "tool": "h2load",
            "threads": 1,
            "clients": args.clients,
            "streams": args.streams,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "rounds": n_rounds,
            "method": "POST",
            "request_body_bytes": BODY_SIZE,
            "response_body_bytes": BODY_SIZE,
        },
        "placement": {"upstream": args.upstream_cpu, "proxy": args.proxy_cpu, "h2load": args.wrk_cpu},
        "targets": {t.name: {"url": t.url, **t.notes} for t in targets},
        "runs": [{k: v for k, v in r.__dict__.items()} for r in runs],
        "summary": summary,
    }
    path = lib.record_json("h2", payload, args.out_dir)
    print(f"\nraw results: {path}")
    return 0 if all(r.clean for r in runs) else 1


# ---------------------------------------------------------------------------
# Scenario: grpc (unary calls: direct, nginx grpc_pass, agentgw auto HTTP/2)
# ---------------------------------------------------------------------------

GRPC_TARGETS = ("direct", "nginx", "agentgw")
GRPC_LOADS = ("seq", "aio", "h2load")
GRPC_BAR_MS = 0.5  # agentgw may add at most this much to the p50 of a sequential unary call
GRPC_SCRIPT = lib.BENCH_DIR / "grpc_bench.py"


def grpc_args(p: argparse.ArgumentParser) -> None:
    add_load_args(p)
    add_ports_arg(p)
    p.add_argument(
        "--loads",
        default=",".join(GRPC_LOADS),
        help="comma-separated: seq (sequential calls, Python grpcio, the p50 bar), aio (--concurrency calls in "
        "flight, grpc.aio, one channel), h2load (h2load -c1 -m<concurrency> sending gRPC frames); default all",
    )
    p.add_argument(
        "--calls", type=int, default=None, help="recorded sequential calls per run (default 2000; --quick: 500)"
    )
    p.add_argument("--warmup-calls", type=int, default=200, help="sequential calls before recording (default 200)")
    p.add_argument("--concurrency", type=int, default=32, help="calls in flight for aio and h2load (default 32)")
    p.add_argument(
        "--server-mode",
        choices=("sync", "aio"),
        default="sync",
        help="the grpcio server: sync (thread pool, default: the faster of the two here) or aio",
    )
    p.add_argument(
        "--agentgw-cmd",
        default=AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path",
    )


def _grpc_client(argv: list[str], timeout: float) -> lib.WrkResult:
    """Run bench/grpc_bench.py client (pinned by the caller's argv) and read its JSON line."""
    import json
    import subprocess

    try:
        p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lib._child_setup,
            env=lib.python_env_with_repo_src(),
        )
    except OSError as e:
        raise BenchError(f"cannot start the gRPC client: {e}") from None
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise BenchError(f"gRPC client did not finish within {timeout:.0f}s") from None
    except BaseException:
        p.kill()
        p.wait()
        raise
    try:
        d = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"gRPC client exit {p.returncode}, no result:\n{out[-1000:]}\n{err[-2000:]}") from None
    r = lib.WrkResult(raw=out + err)
    r.requests = d["calls"]
    r.duration_s = d["elapsed_s"]
    r.rps = d["rps"]
    r.latency_avg_ms = d["mean_ms"]
    r.latency_max_ms = d["max_ms"]
    r.percentiles_ms = {k: v for k, v in d["percentiles_ms"].items() if v is not None}
    r.socket_errors = {"rpc": d["errors"]}
    r.exit_code = p.returncode
    if "cpu_user_s" in d:
        r.cpu_window = (d["cpu_user_s"], d["cpu_sys_s"])
    if d["errors"] or not d["calls"]:
        lib.log(f"gRPC client: {d['calls']} calls, {d['errors']} errors (first: {d.get('first_error')})")
    return r


def run_grpc(args: argparse.Namespace) -> int:
    """Unary gRPC calls to a grpcio server (generic handler, raw 64-byte messages echoed):
    direct, through nginx (h2c ``grpc_pass``) and through agentgw (plain listener, backend
    without http.version: HTTP/2 chosen for the gRPC call). Sequential calls give the
    p50 added (bar: agentgw ≤ +0.5 ms over direct); concurrent calls give req/s."""
    loads = [x.strip() for x in args.loads.split(",") if x.strip()]
    if set(loads) - set(GRPC_LOADS) or not loads:
        raise BenchError(f"unknown loads {sorted(set(loads) - set(GRPC_LOADS))}; choose from {', '.join(GRPC_LOADS)}")
    tools = ["nginx", "taskset"] + (["h2load"] if "h2load" in loads else [])
    lib.ensure_tools(tools, install=not args.no_install)
    check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    if args.agentgw_cmd == AGENTGW_CMD:
        ok, why = lib.agentgw_available()
        if not ok:
            raise BenchError(f"`python -m agentgw run` is not usable in this tree ({why})")
    try:
        import grpc  # noqa: F401
    except ImportError:
        raise BenchError("grpcio is not installed (pip install grpcio grpcio-health-checking)") from None
    n_rounds = rounds(args)
    n_calls = args.calls or (500 if args.quick else 2000)
    lo, hi = lib.parse_port_range(args.ports)
    taskset = lib.which("taskset") or "taskset"
    client = [taskset, "-c", str(args.wrk_cpu), sys.executable, str(GRPC_SCRIPT), "client"]
    from grpc_bench import METHOD, PAYLOAD

    results: dict[str, dict[str, dict[str, Any]]] = {}
    runs_by_load: dict[str, list] = {}
    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec0 = load_spec(args, None)
        frame = wd / "grpc-request.bin"
        frame.write_bytes(b"\x00" + len(PAYLOAD).to_bytes(4, "big") + PAYLOAD)
        h2_headers = ["content-type: application/grpc", "te: trailers"]

        def py_runner(mode: str) -> lib.Runner:
            def run(t: Target, seconds: float, warmup: bool) -> lib.WrkResult:
                argv = [*client, "--target", f"{lib.LOOPBACK}:{t.notes['port']}"]
                if t.proc is not None:
                    argv += ["--cpu-pid", str(t.proc.pid)]
                if mode == "seq":
                    argv += ["--calls", str(n_calls), "--warmup-calls", str(args.warmup_calls)]
                    limit = 60 + n_calls * 0.05
                else:
                    argv += [
                        "--concurrency",
                        str(args.concurrency),
                        "--duration-s",
                        f"{spec0.duration_s:g}",
                        "--warmup-s",
                        f"{spec0.warmup_s:g}",
                    ]
                    limit = 60 + spec0.duration_s + spec0.warmup_s
                return _grpc_client(argv, limit)

            return run

        def h2_runner(t: Target, seconds: float, warmup: bool) -> lib.WrkResult:
            return lib.run_h2load(
                f"http://{lib.LOOPBACK}:{t.notes['port']}{METHOD}",
                seconds,
                1,
                args.concurrency,
                cpu=args.wrk_cpu,
                data=frame,
                headers=h2_headers,
                log_file=None if warmup else wd / "h2load-requests.tsv",
            )

        with lib.signals_raise(deadline_for(len(GRPC_TARGETS) * len(loads), spec0, n_rounds)):
            srv_port, px_port, *agw_ports = lib.ports_in_range(6, lo, hi)
            lib.log(f"grpcio server ({args.server_mode}) on :{srv_port} (CPU {args.upstream_cpu})")
            srv = group.start(
                "grpc-server",
                [sys.executable, GRPC_SCRIPT, "server", "--port", srv_port, "--mode", args.server_mode],
                cpu=args.upstream_cpu,
                env=lib.python_env_with_repo_src(),
            )
            lib.wait_tcp(srv_port, timeout=30, proc=srv)
            targets = [Target("direct", f"grpc://{lib.LOOPBACK}:{srv_port}", None, notes={"port": srv_port})]
            lib.log(f"nginx grpc_pass proxy on :{px_port} (CPU {args.proxy_cpu})")
            conf = lib.write_nginx_grpc_proxy(wd, "nginx-grpc", px_port, srv_port, keepalive=64)
            ngx = lib.start_nginx(group, "nginx-grpc", conf, px_port, args.proxy_cpu)
            targets.append(Target("nginx", f"grpc://{lib.LOOPBACK}:{px_port}", ngx, notes={"port": px_port}))
            ports = dict(zip(("admin", "stats", "readiness", "bind"), agw_ports))
            lib.log(f"agentgw on :{ports['bind']} (CPU {args.proxy_cpu})")
            gw = start_agentgw(
                group, wd, "agentgw", agentgw_yaml(ports, srv_port, "grpc"), ports, args.proxy_cpu, cmd=args.agentgw_cmd
            )
            targets.append(
                Target("agentgw", f"grpc://{lib.LOOPBACK}:{ports['bind']}", gw, notes={"port": ports["bind"]})
            )
            for t in targets:  # smoke: a few calls through each, checked by the client
                r = _grpc_client(
                    [*client, "--target", f"{lib.LOOPBACK}:{t.notes['port']}", "--calls", "5", "--warmup-calls", "1"],
                    60,
                )
                if not r.clean:
                    raise BenchError(f"{t.name}: gRPC smoke calls failed:\n{r.raw[-1500:]}")
            for load in loads:
                if load == "h2load":
                    spec, runner = spec0, h2_runner
                    desc = f"h2load -t1 -c1 -m{args.concurrency} -D{spec.duration_s:g} gRPC unary (warm-up {spec.warmup_s:g}s)"
                elif load == "aio":
                    spec, runner = LoadSpec(**{**spec0.__dict__, "warmup_s": 0.0}), py_runner("aio")
                    desc = f"grpc.aio, {args.concurrency} calls in flight on one channel, {spec0.duration_s:g}s after {spec0.warmup_s:g}s warm-up"
                else:
                    spec, runner = LoadSpec(**{**spec0.__dict__, "warmup_s": 0.0}), py_runner("seq")
                    desc = f"sequential blocking calls, {n_calls} recorded after {args.warmup_calls} warm-up"
                lib.log(f"{load}: {n_rounds} round(s) × {len(targets)} target(s): {desc}")
                runs = lib.interleaved_rounds(targets, spec, n_rounds, group, runner)
                runs_by_load[load] = runs
                results[load] = {"desc": desc, "summary": lib.summarize(runs, [t.name for t in targets])}

    print()
    print(
        f"## gRPC unary — grpcio server ({args.server_mode}), 64-byte raw messages echoed; direct, nginx grpc_pass, "
        f"agentgw (auto HTTP/2); {n_rounds} round(s)"
    )
    print(
        f"CPUs: server {args.upstream_cpu}, proxy {args.proxy_cpu}, client {args.wrk_cpu}; medians of clean runs; "
        "CPU/RSS = proxy process tree, sampled by the client around its recorded calls (h2load: around the run)"
    )
    bars = []
    for load in loads:
        summary = results[load]["summary"]
        runs = runs_by_load[load]
        print()
        print(f"### {load}: {results[load]['desc']}")
        print()
        print(latency_table(summary, runs))
        if load == "seq":
            bars.append(lib.p50_added_bar("p50 added, sequential", runs, summary, "direct", "agentgw", GRPC_BAR_MS))
            quiet = len(lib.paired_deltas(runs, "direct", "agentgw")) >= 3
            for base, other in (("direct", "agentgw"), ("direct", "nginx"), ("nginx", "agentgw")):
                if quiet and (base, other) == ("direct", "agentgw"):
                    continue  # (the bar line above already is the quiet paired median)
                # on a busy machine (too few quiet rounds) pair the clean rounds, noisy or not
                pairs = lib.paired_deltas(runs, base, other, quiet_only=quiet)
                if pairs:
                    print(
                        f"- p50 {other} - {base}: {lib.fmt(statistics.median(pairs), 3)} ms (median of {len(pairs)} "
                        f"paired {'quiet' if quiet else 'clean (quiet or noisy)'} rounds; "
                        f"per round {', '.join(lib.fmt(x, 3) for x in pairs)})"
                    )
        else:
            print()
        for line in _ratio_lines(summary, "agentgw", "nginx") + _ratio_lines(summary, "agentgw", "direct"):
            print(line)
    all_runs = [r for load in loads for r in runs_by_load[load]]
    al = _access_log_line(all_runs)
    if al:
        print(al)
    print(_noise_line(all_runs))
    payload = {
        "scenario": "grpc",
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "server_mode": args.server_mode,
        "calls": n_calls,
        "concurrency": args.concurrency,
        "rounds": n_rounds,
        "runs": [{"load": load, **r.__dict__} for load in loads for r in runs_by_load[load]],
        "summary": {load: results[load] for load in loads},
        "bars": bars,
    }
    path = lib.record_json("grpc", payload, args.out_dir)
    print(f"\nraw results: {path}")
    return 0 if all(b["result"] == "PASS" for b in bars) else 1


SCENARIOS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "http": ("plain HTTP reverse proxy vs nginx (direct, nginx, agentgw plain/policies)", http_args, run_http),
    "mcp": ("MCP tools/call through an mcp backend vs direct, sequential and 32-concurrent", mcp_args, run_mcp),
    "nagle": (
        "an upstream writing head and body separately without TCP_NODELAY: direct, nginx, agentgw (p50)",
        nagle_args,
        run_nagle,
    ),
    "llm": (
        "LLM chat completions through the llm: shorthand vs direct, sequential/32-concurrent, plus streaming TTFT",
        llm_args,
        run_llm,
    ),
    "a2a": (
        "A2A message/send through agentgw vs direct, sequential and 32-concurrent (p50 delta bar)",
        a2a_args,
        run_a2a,
    ),
    "jwt": (
        "jwtAuth and a 3-rule CEL authorization vs the same route without (bars: >= 0.85x plain)",
        lambda p: auth_bench.add_arguments(p, sys.modules[__name__]),
        lambda a: auth_bench.run(a, sys.modules[__name__], "jwt"),
    ),
    "cel": (
        "a 3-rule CEL authorization vs the same route without (bar: >= 0.85x plain)",
        lambda p: auth_bench.add_arguments(p, sys.modules[__name__]),
        lambda a: auth_bench.run(a, sys.modules[__name__], "cel"),
    ),
    "redis": ("globalRateLimit (Redis) vs the same route without (bar: >= 0.75x plain)", redis_args, run_redis),
    "h2": (
        "HTTP/2 multiplexed (h2load -c4 -m32, h2c) to an HTTP/1.1 upstream: direct, nginx, agentgw",
        h2_args,
        run_h2,
    ),
    "grpc": (
        "gRPC unary: direct, nginx grpc_pass, agentgw (auto HTTP/2); sequential p50 added (bar <= 0.5 ms), "
        "32 in flight req/s",
        grpc_args,
        run_grpc,
    ),
}

# Planned scenarios (not implemented yet); listed so the CLI shows where they go.
PLANNED: dict[str, str] = {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="scenario", metavar="SCENARIO", required=True)
    for name, (help_, add, _) in SCENARIOS.items():
        add(sub.add_parser(name, help=help_))
    for name, help_ in PLANNED.items():
        sub.add_parser(name, help=f"(planned, not implemented) {help_}")
    args = ap.parse_args(argv)

    if args.scenario in PLANNED:
        print(f"scenario '{args.scenario}' is planned but not implemented yet", file=sys.stderr)
        return 2
    try:
        return SCENARIOS[args.scenario][2](args)
    except BenchError as e:
        print(f"\nbench: ERROR: {e}", file=sys.stderr)
        return 2
    except lib.Interrupted as e:
        print(f"\nbench: stopped: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
