"""Instructions per proxied request, counted by callgrind: a figure that does not move with
the host's noise.

wrk ratios on a shared VM swing by ±10 % between runs of the same code, which hides changes
of a few per cent. This script runs one real ``agentgw`` process under
``valgrind --tool=callgrind`` (user-space instructions only; the kernel's share is not
counted), sends it requests one at a time over one keep-alive connection, and reports the
instructions the process executed per request between two counter snapshots taken with
``callgrind_control``. Start-up and warm-up fall outside the window; one request per
event-loop turn keeps the count repeatable to a fraction of a per cent.

    python bench/instructions.py                       # plain route, 3 request headers
    python bench/instructions.py --route policies      # header modifier + local rate limit
    python bench/instructions.py --route a2a           # message/send through `a2a: {}`
    python bench/instructions.py --route llm           # chat completion through `llm:` (OpenAI)
    python bench/instructions.py --route global-ratelimit  # a never-hit globalRateLimit (Redis)
    python bench/instructions.py --headers 12 --requests 3000
    python bench/instructions.py --route plain --access-log text   # with the access log on
    python bench/instructions.py --config my.yaml --port 8080 --path /v1/chat/completions

Needs ``valgrind`` (``apt-get install valgrind``) and nginx; ``global-ratelimit`` also
needs ``redis-server`` (started here; every request is then one Redis round trip). The
upstream is the benches' nginx with a fixed JSON answer: the ``http`` bench's 1 KiB
document, a completed A2A task, or the ``llm`` bench's chat completion.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402
import run as scenarios  # noqa: E402

A2A_ANSWER = (
    b'{"jsonrpc":"2.0","id":"bench-1","result":{"id":"f9643b48c4544308869cd2d8549654f6",'
    b'"contextId":"bench-c1","status":{"state":"completed","timestamp":"2026-11-23T19:30:48Z"},'
    b'"artifacts":[{"artifactId":"21ee94f888fb424e8995aa9263143482","parts":[{"kind":"text",'
    b'"text":"Hello World"}]}],"kind":"task"}}'
)


def drive(conn: http.client.HTTPConnection, path: str, headers: list[tuple[str, str]], body: bytes, n: int) -> None:
    """``n`` requests, one at a time, on one keep-alive connection, with exactly Host,
    ``headers`` and Content-Length (http.client adds nothing else this way)."""
    for _ in range(n):
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit(f"gateway answered {r.status}: {data[:300]!r}")


def callgrind_dump(control: str, pid: int, out: Path) -> tuple[int, Path]:
    """Dump the running counters (which zeroes them); return the instructions the dump
    holds and its file."""
    before = set(out.parent.glob(out.name + "*"))
    subprocess.run([control, "-d", str(pid)], check=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        new = sorted(set(out.parent.glob(out.name + "*")) - before, key=lambda p: p.stat().st_mtime)
        for p in new:
            m = re.search(r"^totals:\s*(\d+)", p.read_text(errors="replace"), re.M)
            if m:
                return int(m.group(1)), p
        time.sleep(0.2)
    raise SystemExit("callgrind did not write a dump")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--route",
        choices=("plain", "policies", "a2a", "llm", "global-ratelimit"),
        default="plain",
        help="the bench route to measure (ignored with --config)",
    )
    ap.add_argument("--config", help="measure this config instead (its bind port is --port)")
    ap.add_argument("--port", type=int, help="the bind port of --config")
    ap.add_argument("--path", default="/bench", help="request path (plain, policies and --config)")
    ap.add_argument("--headers", type=int, default=0, help="extra request headers beyond the 3 wrk sends")
    ap.add_argument("--requests", type=int, default=2000, help="requests in the counted window")
    ap.add_argument("--warmup", type=int, default=500, help="requests before the window")
    ap.add_argument("--body", type=Path, help="request body file (default: the http bench's 1 KiB JSON)")
    ap.add_argument(
        "--keep-dump",
        type=Path,
        metavar="FILE",
        help="copy the window's callgrind dump here (read it with callgrind_annotate)",
    )
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="environment for agentgw")
    ap.add_argument(
        "--access-log",
        choices=("text", "json"),
        help="with the access log on in this format (the bench routes run with logging.level warn: no access log)",
    )
    args = ap.parse_args(argv)

    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if not valgrind or not control:
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    lib.ensure_tools(["nginx", "redis-server"] if args.route == "global-ratelimit" and not args.config else ["nginx"])
    body, answer, path = lib.json_body(scenarios.BODY_SIZE), lib.json_body(scenarios.BODY_SIZE), args.path
    if args.route == "a2a":
        body, answer, path = scenarios.A2A_REQUEST, A2A_ANSWER, "/"
    elif args.route == "llm":
        body, answer, path = scenarios.LLM_REQUEST, scenarios.LLM_RESPONSE, "/v1/chat/completions"
    if args.body:
        body = args.body.read_bytes()
    with tempfile.TemporaryDirectory(prefix="agentgw-cg-") as tmp, lib.ProcessGroup(Path(tmp)) as group:
        wd = Path(tmp)
        up_port = lib.free_port()
        lib.start_nginx(
            group, "upstream", lib.write_nginx_upstream(wd / "nginx-up", "upstream", up_port, answer), up_port, None
        )
        if args.config:
            if not args.port:
                ap.error("--config needs --port")
            cfg, port, ready = Path(args.config).resolve(), args.port, None
        else:
            ports = dict(zip(("admin", "stats", "readiness", "bind"), lib.free_ports(4)))
            cfg = wd / "gw.yaml"
            if args.route == "llm":
                cfg.write_text(scenarios.llm_yaml(ports, up_port))
            elif args.route == "global-ratelimit":
                redis_port = lib.free_port()
                scenarios.start_redis(group, wd, redis_port, None)
                cfg.write_text(scenarios.agentgw_yaml(ports, up_port, "redis", scenarios.redis_policy_yaml(redis_port)))
            else:
                policies = {"plain": "", "policies": scenarios.POLICIES_YAML, "a2a": scenarios.A2A_POLICY_YAML}[
                    args.route
                ]
                cfg.write_text(scenarios.agentgw_yaml(ports, up_port, args.route, policies))
            port, ready = ports["bind"], ports["readiness"]
            if args.access_log:
                text = cfg.read_text()
                assert "logging: {level: warn}" in text
                cfg.write_text(text.replace("logging: {level: warn}", f"logging: {{level: info, format: {args.access_log}}}"))
        out = wd / "callgrind.out"
        env = {**lib.python_env_with_repo_src(), "PYTHONHASHSEED": "0"}
        env.update(kv.split("=", 1) for kv in args.env)
        gw = group.start(
            "agentgw",
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "agentgw",
                "run",
                "-f",
                str(cfg),
            ],
            env=env,
        )
        if ready:
            lib.wait_http(f"http://127.0.0.1:{ready}/healthz/ready", 200, timeout=300, proc=gw)
        lib.wait_tcp(port, timeout=300, proc=gw)
        # wrk's three request headers (Host, Content-Type, Content-Length), then the extras
        headers = [("Content-Type", "application/json")]
        headers += [(f"X-Extra-{i}", f"value-{i:04d}-abcdefghij") for i in range(args.headers)]
        conn = http.client.HTTPConnection(lib.LOOPBACK, port, timeout=120)
        drive(conn, path, headers, body, args.warmup)
        callgrind_dump(control, gw.pid, out)  # a dump also zeroes the counters
        drive(conn, path, headers, body, args.requests)
        window, dump = callgrind_dump(control, gw.pid, out)
        if args.keep_dump:
            shutil.copy(dump, args.keep_dump)
        conn.close()
    per = window / args.requests
    what = args.config or f"{args.route} route"
    print(
        f"{what}, {3 + args.headers} request headers, {len(body)} B body: "
        f"{per / 1000:.1f} k instructions per request ({args.requests} requests)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
