"""Scenarios ``jwt`` and ``cel``: the cost of identity and authorization on the request path.

Same upstream, load and placement as ``http`` (nginx upstream on CPU0 with wrk, each
agentgw alone on CPU1, one process). Targets, each a separate agentgw process:

* ``agentgw-plain`` -- one route, no policies;
* ``agentgw-jwt``   -- the same route with ``jwtAuth`` (strict, RS256, inline JWKS,
  ``claimToHeaders`` sub -> x-agent-identity);
* ``agentgw-cel``   -- the same route with ``authorization`` and 3 CEL rules (one each
  of ``require``, ``deny``, ``allow``) over method, path, a header.

Every request of every target carries the same ``Authorization: Bearer <RS256 JWT>``
(valid for an hour) and ``x-tenant: acme``, so the only difference is the policy. wrk
repeats one token, so ``jwtAuth`` answers from its verified-token cache (by design: a
client reuses its token until it expires), and the CEL rule set from its decision memo
(the same method/path/header values); the uncached costs are reported separately by
``bench/cel_engines.py`` and in bench/RESULTS.md.

Bars (same run): jwt >= 0.85 x plain req/s; cel >= 0.85 x plain req/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import lib
from lib import BenchError, ProcessGroup, Target

TARGETS = ("agentgw-plain", "agentgw-jwt", "agentgw-cel")
BARS = [
    lib.Bar("jwt", "agentgw-jwt", "agentgw-plain", 0.85),
    lib.Bar("cel", "agentgw-cel", "agentgw-plain", 0.85),
]
BODY_SIZE = 1024
ISSUER = "https://bench.agentgw"


def _token() -> tuple[str, str]:
    """(JWKS JSON, token) for a fresh RS256 key."""
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": "bench", "use": "sig"})
    now = int(time.time())
    tok = jwt.encode(
        {"alg": "RS256", "kid": "bench"},
        {"iss": ISSUER, "aud": "agentgw", "sub": "bench-agent", "iat": now, "exp": now + 3600},
        key,
    )
    return json.dumps(KeySet([key]).as_dict(private=False)), tok


def _policies(kind: str, jwks: str) -> str:
    if kind == "jwt":
        return (
            "      policies:\n"
            "        jwtAuth:\n"
            "          mode: strict\n"
            f"          issuer: {ISSUER}\n"
            "          audiences: [agentgw]\n"
            f"          jwks: {json.dumps(jwks)}\n"
            "          claimToHeaders: [{claim: sub, header: x-agent-identity}]\n"
        )
    if kind == "cel":
        return (
            "      policies:\n"
            "        authorization:\n"
            '          require: [\'request.headers["x-tenant"] == "acme"\']\n'
            "          deny: ['request.path.startsWith(\"/admin\")']\n"
            '          allow: [\'request.method == "POST" || request.method == "GET"\']\n'
        )
    return ""


def write_lua(path, body: bytes, token: str):
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["x-tenant"] = "acme"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
    )
    return path


def add_arguments(p: argparse.ArgumentParser, run_mod) -> None:
    run_mod.add_load_args(p)
    p.add_argument("--targets", default=None, help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument(
        "--agentgw-cmd",
        default=run_mod.AGENTGW_CMD,
        help="command that starts agentgw; {config} is replaced by the generated config path",
    )


def run(args: argparse.Namespace, run_mod, scenario: str) -> int:
    default = {"jwt": TARGETS, "cel": ("agentgw-plain", "agentgw-cel")}[scenario]
    wanted = [t.strip() for t in (args.targets or ",".join(default)).split(",") if t.strip()]
    if set(wanted) - set(TARGETS):
        raise BenchError(f"unknown targets {sorted(set(wanted) - set(TARGETS))}; choose from {', '.join(TARGETS)}")
    wanted = [t for t in TARGETS if t in wanted]
    lib.ensure_tools(["nginx", "wrk", "taskset"], install=not args.no_install)
    run_mod.check_cpus(args.upstream_cpu, args.proxy_cpu, args.wrk_cpu)
    if args.agentgw_cmd == run_mod.AGENTGW_CMD:
        ok, why = lib.agentgw_available()
        if not ok:
            raise BenchError(f"`python -m agentgw run` is not usable in this tree ({why})")
    n_rounds = run_mod.rounds(args)
    req_body = lib.json_body(BODY_SIZE, tag="request")
    resp_body = lib.json_body(BODY_SIZE, tag="response")
    jwks, token = _token()
    headers = {"Authorization": f"Bearer {token}", "x-tenant": "acme", "Content-Type": "application/json"}

    with lib.work_dir(keep=args.keep) as wd, ProcessGroup(wd) as group:
        spec = run_mod.load_spec(args, write_lua(wd / "auth.lua", req_body, token))
        with lib.signals_raise(run_mod.deadline_for(len(wanted), spec, n_rounds)):
            up_port = lib.free_port()
            lib.log(f"upstream nginx on :{up_port} (CPU {args.upstream_cpu})")
            conf = lib.write_nginx_upstream(wd, "upstream", up_port, resp_body)
            lib.start_nginx(group, "upstream", conf, up_port, args.upstream_cpu)
            targets: list[Target] = []
            for name in wanted:
                kind = name.split("-", 1)[1]
                ports = dict(zip(("admin", "stats", "readiness", "bind"), lib.free_ports(4)))
                lib.log(f"{name} on :{ports['bind']} (CPU {args.proxy_cpu})")
                yaml_text = run_mod.agentgw_yaml(ports, up_port, kind, _policies(kind, jwks))
                p = run_mod.start_agentgw(group, wd, name, yaml_text, ports, args.proxy_cpu, cmd=args.agentgw_cmd)
                url = f"http://{lib.LOOPBACK}:{ports['bind']}/"
                _smoke(url, req_body, headers, name)
                targets.append(Target(name, url, p, notes={"ports": ports, "policy": kind}))
            lib.log(
                f"{n_rounds} round(s) × {len(targets)} target(s): wrk -t1 -c{spec.connections} "
                f"-d{spec.duration_s:g}s --latency POST {BODY_SIZE} B with a bearer JWT"
            )
            runs = lib.interleaved_rounds(targets, spec, n_rounds, group)

    summary = lib.summarize(runs, [t.name for t in targets])
    bars = [b.evaluate(summary) for b in BARS if b.numerator in summary and b.denominator in summary]
    print()
    print(
        f"## {scenario} — {n_rounds} round(s), wrk -t1 -c{spec.connections} -d{spec.duration_s:g}s --latency, "
        f"POST {BODY_SIZE} B JSON with Authorization: Bearer <RS256 JWT>"
    )
    print(f"CPUs: upstream {args.upstream_cpu}, proxy {args.proxy_cpu}, wrk {args.wrk_cpu}; medians of clean runs")
    print()
    print(lib.markdown_table(summary))
    print()
    plain = summary.get("agentgw-plain", {}).get("rps")
    for name in ("agentgw-jwt", "agentgw-cel"):
        s = summary.get(name)
        if s and s.get("rps") and plain:
            print(
                f"- {name}/agentgw-plain req/s ratio: {s['rps'] / plain:.3f}× ({(1 - s['rps'] / plain) * 100:.1f}% lower)"
            )
    print(lib.bars_report(bars) if bars else "- bars: not evaluated (needs agentgw-plain and a policy target)")
    noise = max((x.foreign_cpu or 0.0) for x in runs) if runs else 0.0
    warn = " — WARNING: something else was running; figures are unreliable" if noise > lib.FOREIGN_CPU_WARN else ""
    print(f"- machine noise: other processes used up to {noise:.2f} CPU during a measured run{warn}")
    payload: dict[str, Any] = {
        "scenario": scenario,
        "argv": sys.argv,
        "environment": lib.environment_info(),
        "load": {
            "tool": "wrk",
            "threads": spec.threads,
            "connections": spec.connections,
            "duration_s": spec.duration_s,
            "warmup_s": spec.warmup_s,
            "rounds": n_rounds,
            "method": "POST",
            "request_body_bytes": BODY_SIZE,
            "response_body_bytes": BODY_SIZE,
        },
        "placement": {"upstream": args.upstream_cpu, "proxy": args.proxy_cpu, "wrk": args.wrk_cpu},
        "targets": {t.name: {"url": t.url, **t.notes} for t in targets},
        "policies_yaml": {k: _policies(k, "<jwks>") for k in ("jwt", "cel")},
        "runs": runs,
        "summary": summary,
        "bars": bars,
    }
    path = lib.record_json(scenario, payload, args.out_dir)
    print(f"\nraw results: {path}")
    return 1 if any(b["result"] != "PASS" for b in bars) else 0


def _smoke(url: str, body: bytes, headers: dict, what: str) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status != 200 or len(r.read()) != BODY_SIZE:
                raise BenchError(f"{what}: smoke POST answered {r.status}")
    except urllib.error.HTTPError as e:
        raise BenchError(f"{what}: smoke POST answered {e.code}: {e.read()[:200]!r}") from None
