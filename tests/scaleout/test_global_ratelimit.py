"""``globalRateLimit``: one limit across processes, counted in a real Redis."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx

from tests.support.harness import gateway_config, metric_sum, parse_metrics, route


def _limit(redis_url: str, descriptors: list, **kw) -> dict:
    return {"globalRateLimit": {"redis": {"url": redis_url, "timeout": "200ms"}, "descriptors": descriptors, **kw}}


def _desc(value: str, n: int, unit: str = "HOUR", key: str = "generic_key", **kw) -> dict:
    return {"entries": [{"key": key, "value": value}], "rateLimit": {"requestsPerUnit": n, "unit": unit}, **kw}


async def _burst(urls: list[str], n_each: int, headers=None) -> list[int]:
    conn = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:

        async def one(url):
            async with s.get(url, headers=headers) as r:
                await r.read()
                return r.status

        return await asyncio.gather(*[one(u) for _ in range(n_each) for u in urls])


def test_two_processes_share_one_limit(harness, redis_server):
    """300 concurrent requests across two gateway processes, limit 100: exactly 100 pass."""
    up = harness.upstream("up")
    pol = _limit(redis_server.url, [_desc('"counter"', 100)])
    warm = _limit(redis_server.url, [_desc('"warm"', 1000)])
    routes = [
        route("api", [up.host], prefix="/x", policies=pol),
        route("warm", [up.host], prefix="/warm", policies=warm),
    ]
    gws = [harness.gateway(gateway_config(routes)) for _ in range(2)]
    for g in gws:  # connect each process to Redis (and load the script) first
        assert httpx.get(f"{g.url}/warm").status_code == 200
    statuses = asyncio.run(_burst([f"{g.url}/x" for g in gws], 150))
    assert statuses.count(200) == 100, {s: statuses.count(s) for s in set(statuses)}
    assert statuses.count(429) == 200
    # both processes answered some of the 100 (the limit is shared, not split)
    allowed = [
        metric_sum(parse_metrics(g.metrics_text()), "agentgw_ratelimit_checks_total", result="allowed") - 1 for g in gws
    ]  # minus the warm-up request
    assert sum(allowed) == 100 and all(a > 0 for a in allowed), allowed
    r = httpx.get(f"{gws[0].url}/x")
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 3600
    assert r.headers["x-ratelimit-limit"] == "100"


def test_descriptor_values_from_cel(harness, redis_server):
    """A per-user descriptor (request header) and the AgentCore 5/minute generic key."""
    up = harness.upstream("up")
    pol = _limit(redis_server.url, [_desc('request.headers["x-user"]', 3, key="user")])
    gw = harness.gateway(
        gateway_config(
            [
                route("users", [up.host], prefix="/u", policies=pol),
                route(
                    "agentcore",
                    [up.host],
                    prefix="/tasks",
                    policies=_limit(redis_server.url, [_desc('"counter"', 5, unit="MINUTE")]),
                ),
            ]
        )
    )
    with httpx.Client(base_url=gw.url) as c:
        a = [c.get("/u", headers={"x-user": "alice"}).status_code for _ in range(5)]
        b = [c.get("/u", headers={"x-user": "bob"}).status_code for _ in range(4)]
        anon = [c.get("/u").status_code for _ in range(6)]  # no value: the descriptor doesn't apply
        tasks = [c.post("/tasks/send", json={"i": i}).status_code for i in range(8)]
    assert a == [200, 200, 200, 429, 429]
    assert b == [200, 200, 200, 429]
    assert anon == [200] * 6
    assert tasks == [200] * 5 + [429] * 3
    keys = redis_server.command("KEYS", "*")
    assert b"alice" in keys and b"bob" in keys


def test_redis_down_failure_modes_and_recovery(harness, redis_server):
    up = harness.upstream("up")
    d = [_desc('request.headers["x-k"]', 3, key="k")]
    gw = harness.gateway(
        gateway_config(
            [
                route("open", [up.host], prefix="/open", policies=_limit(redis_server.url, d, failureMode="failOpen")),
                route(
                    "closed",
                    [up.host],
                    prefix="/closed",
                    policies=_limit(redis_server.url, d, failureMode="failClosed"),
                ),
            ]
        )
    )
    with httpx.Client(base_url=gw.url, timeout=5) as c:
        assert [c.get("/open", headers={"x-k": "a"}).status_code for _ in range(4)] == [200, 200, 200, 429]
        redis_server.kill()
        t0 = time.monotonic()
        opened = [c.get("/open", headers={"x-k": "b"}).status_code for _ in range(5)]
        closed = [c.get("/closed", headers={"x-k": "b"}) for _ in range(5)]
        elapsed = time.monotonic() - t0
        assert opened == [200] * 5
        assert [r.status_code for r in closed] == [503] * 5
        assert closed[0].json()["error"]["type"] == "rate_limit_unavailable"
        assert elapsed < 5, f"10 requests with Redis down took {elapsed:.1f}s"
        m = parse_metrics(gw.metrics_text())
        assert metric_sum(m, "agentgw_ratelimit_checks_total", result="failed_open") == 5
        assert metric_sum(m, "agentgw_ratelimit_checks_total", result="failed_closed") == 5
        assert (metric_sum(m, "agentgw_ratelimit_errors_total", limiter="redis") or 0) >= 1
        assert "redis rate limiter unavailable" in gw.stderr_text()
        redis_server.start()  # same port, empty data
        deadline = time.monotonic() + 10
        while c.get("/closed", headers={"x-k": "probe"}).status_code == 503:
            assert time.monotonic() < deadline, "no recovery after Redis came back"
            time.sleep(0.1)
        assert [c.get("/closed", headers={"x-k": "c"}).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_sliding_window(harness, redis_server):
    """A sliding window counts the previous window's requests, weighted."""
    up = harness.upstream("up")
    pol = _limit(redis_server.url, [_desc('"s"', 4, unit="SECOND")], window="sliding")
    gw = harness.gateway(gateway_config([route("s", [up.host], policies=pol)]))
    with httpx.Client(base_url=gw.url) as c:
        # align to the start of a second, then use up the window
        time.sleep(1.0 - (time.time() % 1.0) + 0.02)
        first = [c.get("/").status_code for _ in range(6)]
        assert first == [200] * 4 + [429] * 2
        # early in the next second most of the previous window still counts
        time.sleep(1.0 - (time.time() % 1.0) + 0.1)
        assert c.get("/").status_code == 429
        time.sleep(2.2)  # two windows later: clean
        assert c.get("/").status_code == 200


def test_per_tool_limit_on_mcp(harness, redis_server):
    """The EKS guide's `execute_code` at N per minute, as a global descriptor on mcp.tool.name."""
    from tests.observability.otlp import TinyMcpServer

    target = TinyMcpServer()
    try:
        d = [_desc("mcp.tool.name", 2, unit="MINUTE", key="tool-name", when='mcp.tool.name == "echo"')]
        cfg = gateway_config(
            [
                {
                    "name": "mcp",
                    "policies": _limit(redis_server.url, d),
                    "backends": [
                        {"mcp": {"targets": [{"name": "t", "mcp": {"host": f"http://127.0.0.1:{target.port}/mcp"}}]}}
                    ],
                }
            ]
        )
        gws = [harness.gateway(cfg) for _ in range(2)]  # two replicas, one limit
        h = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        answers = []
        for i in range(4):
            gw = gws[i % 2]
            with httpx.Client(base_url=gw.url, headers=h, timeout=10) as c:
                r = c.post(
                    "/mcp",
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-06-18",
                            "capabilities": {},
                            "clientInfo": {"name": "t", "version": "1"},
                        },
                    },
                )
                sid = r.headers["mcp-session-id"]
                c.post(
                    "/mcp",
                    headers={"mcp-session-id": sid},
                    json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                )
                r = c.post(
                    "/mcp",
                    headers={"mcp-session-id": sid},
                    json={
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "tools/call",
                        "params": {"name": "echo", "arguments": {}},
                    },
                )
                answers.append(r.json())
        ok = [a for a in answers if "result" in a]
        limited = [a for a in answers if "error" in a]
        assert len(ok) == 2 and len(limited) == 2, answers
        assert "rate limit exceeded for tool 'echo'" in limited[0]["error"]["message"]
        # initialize and tools/list are not tool calls: never limited by the tool descriptor
        assert b"tools/call" not in redis_server.command("KEYS", "*")
    finally:
        target.stop()


def test_llm_token_limit_and_genai_span(harness, redis_server):
    """type: tokens on llm.model: usage is charged after each answer; the span has GenAI attributes."""
    import subprocess
    import sys

    from tests.observability.otlp import HttpReceiver
    from tests.support.harness import free_port, wait_for

    demo_port, llm_port = free_port(), free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "agentgw_demo.openai_server", "--port", str(demo_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rec = HttpReceiver()
    try:
        cfg = gateway_config([])
        cfg.pop("binds")
        cfg["config"]["tracing"] = {
            "otlpEndpoint": f"http://127.0.0.1:{rec.port}",
            "otlpProtocol": "http",
            "randomSampling": True,
        }
        cfg["llm"] = {
            "port": llm_port,
            "models": [
                {
                    "name": "local",
                    "provider": "openAI",
                    "params": {"model": "demo-echo", "baseUrl": f"http://127.0.0.1:{demo_port}/v1"},
                }
            ],
            "policies": _limit(redis_server.url, [_desc("llm.model", 30, key="model", type="tokens")]),
        }
        harness.gateway(cfg)
        wait_for(lambda: _up(demo_port), timeout=10, message="demo LLM server")
        body = {"model": "local", "messages": [{"role": "user", "content": "x" * 40}]}
        codes = []
        for _ in range(4):
            r = httpx.post(f"http://127.0.0.1:{llm_port}/v1/chat/completions", json=body, timeout=10)
            codes.append(r.status_code)
            time.sleep(0.1)  # the usage charge is sent right after each answer
        assert codes[:2] == [200, 200] and codes[2:] == [429, 429], codes
        assert b"local" in redis_server.command("KEYS", "*")
        spans = rec.wait(2)
        chat = [s for s in spans if s["name"] == "chat demo-echo"]
        assert chat, [s["name"] for s in spans]
        a = chat[0]["attrs"]
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "demo-echo"
        assert a["gen_ai.usage.input_tokens"] >= 10 and a["gen_ai.usage.output_tokens"] >= 1
    finally:
        demo.kill()
        demo.wait(5)
        rec.stop()


def _up(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_body_is_forwarded_after_the_check(harness, redis_server):
    """The request waits for Redis without a task and then goes upstream from the
    answer's callback: the upstream gets the exact body, and a limited request never
    reaches it."""
    import hashlib

    up = harness.upstream("up")
    gw = harness.gateway(
        gateway_config(
            [
                route("api", [up.host], prefix="/echo", policies=_limit(redis_server.url, [_desc('"body"', 3)])),
            ]
        )
    )
    body = bytes(range(256)) * 40
    with httpx.Client(base_url=gw.url, timeout=5) as c:
        for _ in range(3):
            r = c.post("/echo/x", content=body, headers={"content-type": "application/octet-stream"})
            assert r.status_code == 200
            assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
        r = c.post("/echo/x", content=body)
        assert r.status_code == 429
    m = parse_metrics(gw.metrics_text())
    assert metric_sum(m, "agentgw_ratelimit_checks_total", result="allowed") == 3
    assert metric_sum(m, "agentgw_ratelimit_checks_total", result="limited") == 1


def test_client_leaving_while_the_check_is_out(harness):
    """Redis accepts but never answers: a client that gives up first leaves nothing
    behind; the check still times out into its failure mode and the gateway serves on."""
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held: list = []
    stop = threading.Event()

    def accept():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])  # read nothing, answer nothing
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        up = harness.upstream("up")
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}"
        gw = harness.gateway(
            gateway_config(
                [
                    route(
                        "limited",
                        [up.host],
                        prefix="/limited",
                        policies=_limit(url, [_desc('"x"', 100)], failureMode="failOpen"),
                    ),
                    route("free", [up.host], prefix="/free"),
                ]
            )
        )
        with httpx.Client(base_url=gw.url, timeout=0.05) as c:
            for _ in range(3):
                try:
                    c.get("/limited")
                except httpx.TimeoutException:
                    pass
        time.sleep(0.5)  # past the 200 ms Redis timeout
        with httpx.Client(base_url=gw.url, timeout=5) as c:
            assert c.get("/free").status_code == 200
            assert c.get("/limited").status_code == 200  # fails open after the timeout
        m = parse_metrics(gw.metrics_text())
        assert metric_sum(m, "agentgw_ratelimit_checks_total", result="failed_open") >= 1
        assert "Traceback" not in gw.stderr_text()
        assert "unhandled error" not in gw.stderr_text()
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        silent.close()


def test_url_user_password_and_database(harness, redis_server):
    """An ACL user, the default user's password and the database number in the URL are
    used; a wrong password is a failure (503 under failClosed) that never logs the URL."""
    up = harness.upstream("up")
    redis_server.call(
        ("ACL", "SETUSER", "agw", "on", ">pw-agw", "~*", "+@all"),
        ("CONFIG", "SET", "requirepass", "pw-default"),
    )
    at = f"127.0.0.1:{redis_server.port}"
    d = [_desc('"n"', 2)]
    gw = harness.gateway(
        gateway_config(
            [
                route("acl", [up.host], prefix="/acl", policies=_limit(f"redis://agw:pw-agw@{at}/2", d)),
                route("pass", [up.host], prefix="/pass", policies=_limit(f"redis://:pw-default@{at}/3", d)),
                route(
                    "wrong",
                    [up.host],
                    prefix="/wrong",
                    policies=_limit(f"redis://agw:pw-wrong@{at}/2", d, failureMode="failClosed"),
                ),
            ]
        )
    )
    with httpx.Client(base_url=gw.url, timeout=5) as c:
        assert [c.get("/acl").status_code for _ in range(3)] == [200, 200, 429]
        assert [c.get("/pass").status_code for _ in range(3)] == [200, 200, 429]
        r = c.get("/wrong")
        assert r.status_code == 503 and r.json()["error"]["type"] == "rate_limit_unavailable"
    replies = redis_server.call(
        ("AUTH", "pw-default"), ("SELECT", "2"), ("KEYS", "*"), ("SELECT", "3"), ("KEYS", "*"), ("DBSIZE",)
    )
    db2, db3 = replies[2], replies[4]
    assert len(db2) == 1 and b":acl:" in db2[0], db2
    assert len(db3) == 1 and b":pass:" in db3[0], db3
    assert redis_server.call(("AUTH", "pw-default"), ("DBSIZE",))[1] == 0  # nothing in db 0
    err = gw.stderr_text()
    assert "redis rate limiter unavailable" in err and "pw-" not in err, err


def test_tls_verified_against_the_trust_store(harness, tmp_path):
    """``rediss://``: the server certificate is verified (here against a CA given with
    SSL_CERT_FILE); a gateway that doesn't trust it applies the failure mode."""
    import shutil

    import pytest

    from tests.support.harness import free_port
    from tests.support.redis_server import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-test-deps.sh installs it)")
    tls = harness.tls()
    tls_port = free_port()
    server = RedisServer(
        tmp_path,
        extra_args=(
            "--tls-port",
            str(tls_port),
            "--tls-cert-file",
            str(tls.cert),
            "--tls-key-file",
            str(tls.key),
            "--tls-ca-cert-file",
            str(tls.ca_cert),
            "--tls-auth-clients",
            "no",
        ),
    )
    server.start()
    try:
        up = harness.upstream("up")
        pol = _limit(f"rediss://127.0.0.1:{tls_port}/0", [_desc('"tls"', 2)], failureMode="failClosed")
        trusting = harness.gateway(
            gateway_config([route("tls", [up.host], prefix="/tls", policies=pol)]),
            env={"SSL_CERT_FILE": str(tls.ca_cert)},
        )
        other = harness.gateway(gateway_config([route("tls", [up.host], prefix="/tls", policies=pol)]))
        with httpx.Client(timeout=5) as c:
            assert [c.get(f"{trusting.url}/tls").status_code for _ in range(3)] == [200, 200, 429]
            assert c.get(f"{other.url}/tls").status_code == 503
        assert len(server.call(("KEYS", "*"))[0]) == 1
        assert "CERTIFICATE_VERIFY_FAILED" in other.stderr_text()
    finally:
        server.kill()


def test_routes_sharing_a_redis_keep_their_own_timeouts(harness):
    """Two routes on the same (silent) Redis with 100 ms and 2 s budgets: each waits its own."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        up = harness.upstream("up")
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"

        def pol(timeout: str) -> dict:
            return {
                "globalRateLimit": {
                    "redis": {"url": url, "timeout": timeout},
                    "failureMode": "failClosed",
                    "descriptors": [_desc('"t"', 10)],
                }
            }

        gw = harness.gateway(
            gateway_config(
                [
                    route("short", [up.host], prefix="/short", policies=pol("100ms")),
                    route("long", [up.host], prefix="/long", policies=pol("2s")),
                ]
            )
        )
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            t0 = time.monotonic()
            assert c.get("/short").status_code == 503
            t1 = time.monotonic()
            assert c.get("/long").status_code == 503
            t2 = time.monotonic()
        assert t1 - t0 < 1.5, f"the 100ms route waited {t1 - t0:.2f}s"
        assert t2 - t1 >= 1.9, f"the 2s route waited only {t2 - t1:.2f}s"
    finally:
        silent.close()
