#!/usr/bin/env python3
"""Compare the Python CEL engines on what the ``authorization`` policy does per request.

    python bench/cel_engines.py [--iterations 20000] [--json OUT]

Engines (each optional: a missing one is reported and skipped):

* ``cel-expr-python``            -- bindings to Google's C++ cel-cpp (module ``cel_expr_python``)
* ``common-expression-language`` -- bindings to the Rust ``cel`` crate (module ``cel``)
* ``cel-python``                 -- pure Python (module ``celpy``)

The workload is the one a route with three rules sees: a request map (method, path,
host, ~10 headers), JWT claims (~8, with a list) and API-key metadata are bound and three
rules are evaluated. For each engine it reports compile time per rule, and per-request
time for evaluating the three rules against a context built per request (the context
changes on every request) from (a) the full request/claims maps and (b) only the members
the rules name (what agentgw binds), and (c) evaluation alone on a pre-built context. Single process, single thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

RULES = [
    'request.method == "GET" || request.method == "POST"',
    'jwt.sub == "system:serviceaccount:agents:weather" && "tools" in jwt.groups',
    'request.path.startsWith("/api/") && request.headers["x-tenant"] == "acme"',
]

REQUEST = {
    "method": "POST",
    "path": "/api/v1/tools/call",
    "host": "gw.example.com",
    "headers": {
        "host": "gw.example.com",
        "user-agent": "agent/1.0",
        "accept": "application/json",
        "content-type": "application/json",
        "content-length": "1024",
        "x-tenant": "acme",
        "x-request-id": "5f1c8d1e-6d0a-4d6b-9a61-9f2a1f0c3e77",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "accept-encoding": "gzip",
        "x-forwarded-for": "10.0.0.1",
    },
}
JWT = {
    "iss": "https://kubernetes.default.svc",
    "sub": "system:serviceaccount:agents:weather",
    "aud": ["agent-gateway"],
    "exp": 4102444800,
    "iat": 1700000000,
    "nbf": 1700000000,
    "groups": ["system:serviceaccounts", "tools"],
    "kubernetes.io": {"namespace": "agents"},
}
APIKEY = {"team": "search", "tier": "gold"}
EXPECTED = [True, True, True]
# What the gateway binds for these rules: only the variables and members the rules name
# (see agentgw.cel), built per request from the request and the verified identity.
LAZY = lambda: {  # noqa: E731
    "request": {
        "method": REQUEST["method"],
        "path": REQUEST["path"],
        "headers": {"x-tenant": REQUEST["headers"]["x-tenant"]},
    },
    "jwt": {"sub": JWT["sub"], "groups": JWT["groups"]},
}


def bench_cel_expr_python(n: int) -> dict:
    from cel_expr_python import cel

    dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    env = cel.NewEnv(variables={"request": dyn_map, "jwt": dyn_map, "apiKey": dyn_map, "source": dyn_map})
    t0 = time.perf_counter()
    progs = [env.compile(r) for r in RULES]
    compile_us = (time.perf_counter() - t0) / len(RULES) * 1e6

    def once():
        data = {"request": REQUEST, "jwt": JWT, "apiKey": APIKEY}
        act = env.Activation(data)
        return [p.eval(act).value() for p in progs]

    assert once() == EXPECTED, once()
    act = env.Activation({"request": REQUEST, "jwt": JWT, "apiKey": APIKEY})

    def eval_only():
        return [p.eval(act).value() for p in progs]

    def lazy():
        act = env.Activation(LAZY(), arena=cel.Arena())
        return [p.eval(act).value() for p in progs]

    assert lazy() == EXPECTED
    return {
        "compile_us": compile_us,
        "per_request_us": _time(once, n),
        "lazy_us": _time(lazy, n),
        "eval_only_us": _time(eval_only, n),
    }


def bench_common_expression_language(n: int) -> dict:
    import cel

    t0 = time.perf_counter()
    progs = [cel.compile(r) for r in RULES]
    compile_us = (time.perf_counter() - t0) / len(RULES) * 1e6

    def once():
        ctx = {"request": REQUEST, "jwt": JWT, "apiKey": APIKEY}
        return [p.execute(ctx) for p in progs]

    assert once() == EXPECTED, once()
    ctx = cel.Context({"request": REQUEST, "jwt": JWT, "apiKey": APIKEY})

    def eval_only():
        return [p.execute(ctx) for p in progs]

    def lazy():
        c = cel.Context(LAZY())
        return [p.execute(c) for p in progs]

    assert lazy() == EXPECTED
    return {
        "compile_us": compile_us,
        "per_request_us": _time(once, n),
        "lazy_us": _time(lazy, n),
        "eval_only_us": _time(eval_only, n),
    }


def bench_cel_python(n: int) -> dict:
    import logging

    logging.getLogger("celpy").setLevel(logging.ERROR)
    import celpy

    env = celpy.Environment()
    t0 = time.perf_counter()
    progs = [env.program(env.compile(r)) for r in RULES]
    compile_us = (time.perf_counter() - t0) / len(RULES) * 1e6

    def activation():
        return {
            "request": celpy.json_to_cel(REQUEST),
            "jwt": celpy.json_to_cel(JWT),
            "apiKey": celpy.json_to_cel(APIKEY),
        }

    def once():
        act = activation()
        return [bool(p.evaluate(act)) for p in progs]

    assert once() == EXPECTED, once()
    act = activation()

    def eval_only():
        return [bool(p.evaluate(act)) for p in progs]

    def lazy():
        a = {k: celpy.json_to_cel(v) for k, v in LAZY().items()}
        return [bool(p.evaluate(a)) for p in progs]

    return {
        "compile_us": compile_us,
        "per_request_us": _time(once, max(200, n // 50)),
        "lazy_us": _time(lazy, max(200, n // 50)),
        "eval_only_us": _time(eval_only, max(200, n // 50)),
    }


def _time(fn, n: int) -> float:
    """Median over 5 batches of µs per call."""
    for _ in range(min(n, 500)):
        fn()
    batches = []
    per = max(1, n // 5)
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per):
            fn()
        batches.append((time.perf_counter() - t0) / per * 1e6)
    return statistics.median(batches)


def bench_agentgw_ruleset(n: int) -> dict:
    """agentgw.cel.RuleSet.decide on a request-like object: memo hit and memo miss."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "src"))
    from agentgw.cel import RuleSet

    class Req:
        method = REQUEST["method"]
        headers = list(REQUEST["headers"].items())
        query = ""
        scheme = "http"
        client_addr = "127.0.0.1"
        tls = None
        host = REQUEST["host"]

    class Ctx:
        req = Req()
        path = REQUEST["path"]
        attrs = {"jwt": JWT, "apiKey": APIKEY}

    rs = RuleSet(allow=RULES[:1], require=RULES[1:])
    ctx = Ctx()
    assert rs.decide(ctx) is None

    def miss():
        rs.memo.clear()
        return rs.decide(ctx)

    return {"memo_hit_us": _time(lambda: rs.decide(ctx), n), "memo_miss_us": _time(miss, n)}


ENGINES = {
    "cel-expr-python": ("cel_expr_python", bench_cel_expr_python),
    "common-expression-language": ("cel", bench_common_expression_language),
    "cel-python": ("celpy", bench_cel_python),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    from importlib import metadata

    results = {}
    for name, (_mod, fn) in ENGINES.items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        r = fn(args.iterations)
        r["version"] = version
        results[name] = r
    print(f"Python {platform.python_version()} on {platform.machine()}, 3 rules per request\n")
    print(
        "| engine | version | compile µs/rule | µs/request, full context | µs/request, referenced members only"
        " | µs, eval only (pre-built context) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['version']} | {r['compile_us']:.0f} | {r['per_request_us']:.1f} | {r['lazy_us']:.1f}"
            f" | {r['eval_only_us']:.1f} |"
        )
    try:
        agw = bench_agentgw_ruleset(args.iterations)
    except ImportError as exc:
        agw = None
        print(f"agentgw RuleSet: skipped ({exc})", file=sys.stderr)
    if agw:
        print(
            f"\nagentgw.cel RuleSet.decide (same 3 rules, on cel-expr-python): {agw['memo_hit_us']:.1f} µs when the"
            f" decision is memoised, {agw['memo_miss_us']:.1f} µs when evaluated"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"python": platform.python_version(), "rules": RULES, "results": results, "agentgw": agw}, f, indent=2
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
