"""AgentCore end to end: a real agentgw process on examples/agentcore/gateway.yaml, IRSA-style
credentials (web identity token file → AssumeRoleWithWebIdentity at a local moto STS), and
a local AgentCore stand-in that recomputes every SigV4 signature and checks the service,
region, ARN path, session header and the temporary credentials' token and expiry."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from urllib.parse import quote

import httpx
import pytest
import yaml

from tests.support.harness import REPO_ROOT, free_port, wait_for

from .conftest import ARN, DEMO_KEY, DEMO_SECRET, StandIn, aws_env, irsa_env

EXAMPLE = REPO_ROOT / "examples" / "agentcore" / "gateway.yaml"
SEED_BODY = {
    "jsonrpc": "2.0",
    "id": "test-1",
    "method": "tasks/send",
    "params": {
        "id": "task-1",
        "message": {
            "role": "user",
            "parts": [{"type": "text", "text": "Hello from Agent Gateway! What can you help me with?"}],
        },
    },
}
ENCODED_PATH = "/runtimes/" + quote(ARN, safe="") + "/invocations"


def example_config(standin_url: str) -> dict:
    """The shipped example with free ports and the stand-in's address; nothing else changed."""
    cfg = yaml.safe_load(EXAMPLE.read_text())
    for k in ("adminAddr", "statsAddr", "readinessAddr"):
        cfg["config"][k] = f"127.0.0.1:{free_port()}"
    for b in cfg["binds"]:
        b["port"] = free_port()
    cfg["backends"][0]["aws"]["agentCore"]["endpoint"] = standin_url
    return cfg


@pytest.fixture(scope="module")
def gw(standin, module_harness, tmp_path_factory):  # stand-in (and STS) outlive the gateway
    env = irsa_env(tmp_path_factory.mktemp("irsa"), standin.sts_port)
    g = module_harness.gateway(example_config(standin.url), env=env)
    return g


def url(gw, stage: int, path: str = "/tasks/send") -> str:
    return f"http://127.0.0.1:{gw.ports[stage]}{path}"


def entries_since(standin, n: int) -> list[dict]:
    return standin.requests()[n:]


def post(u: str, body, headers=None, timeout=20):
    return httpx.post(u, json=body, headers=headers or {}, timeout=timeout)


# -- step 7 -------------------------------------------------------------------------------------
def test_seed_step7_request_is_signed_and_answered(gw, standin):
    n = len(standin.requests())
    r = post(url(gw, 0), SEED_BODY)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["jsonrpc"] == "2.0" and doc["id"] == "test-1"
    task = doc["result"]
    assert task["id"] == "task-1" and task["status"]["state"] == "completed"
    text = task["status"]["message"]["parts"][0]["text"]
    assert "You said: Hello from Agent Gateway! What can you help me with?" in text
    assert task["artifacts"][0]["parts"][0] == {"type": "text", "text": text}
    [seen] = entries_since(standin, n)
    # the stand-in recomputed the signature and found it good, for the right service,
    # region, ARN path, with temporary credentials from the web identity exchange
    assert seen["verified"] is True, seen
    assert seen["path"] == ENCODED_PATH and seen["arn"] == ARN
    assert seen["temporary"] is True and seen["access_key"].startswith(("ASIA", "AKIA", "FSIA"))
    assert 33 <= len(seen["session_id"]) <= 256
    assert seen["payload"]["prompt"] == "Hello from Agent Gateway! What can you help me with?"
    assert seen["payload"]["taskId"] == "task-1"
    assert r.headers["x-amzn-bedrock-agentcore-runtime-session-id"] == seen["session_id"]


def test_conversation_stays_on_one_runtime_session(gw, standin):
    n = len(standin.requests())

    def send(ctx_id, text):
        body = {
            "jsonrpc": "2.0",
            "id": text,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "role": "user",
                    "messageId": text,
                    "contextId": ctx_id,
                    "parts": [{"kind": "text", "text": text}],
                }
            },
        }
        r = post(url(gw, 0, "/"), body)
        assert r.status_code == 200, r.text
        return r.json()["result"]

    a1 = send("conversation-a", "one")
    a2 = send("conversation-a", "two")
    b1 = send("conversation-b", "three")
    seen = entries_since(standin, n)
    assert [e["verified"] for e in seen] == [True] * 3
    assert seen[0]["session_id"] == seen[1]["session_id"] != seen[2]["session_id"]
    assert "turn 2 of this session" in a2["status"]["message"]["parts"][0]["text"]
    assert "turn 1 of this session" in b1["status"]["message"]["parts"][0]["text"]
    assert a1["contextId"] == "conversation-a" and a1["kind"] == "task"


def test_a2a_v1_send_message_gets_a_v1_task(gw, standin):
    body = {
        "jsonrpc": "2.0",
        "id": "v1",
        "method": "SendMessage",
        "params": {
            "message": {
                "role": "ROLE_USER",
                "messageId": "m-v1",
                "contextId": "ctx-v1",
                "parts": [{"text": "hello v1"}],
            }
        },
    }
    r = post(url(gw, 0, "/"), body, headers={"a2a-version": "1.0"})
    assert r.status_code == 200, r.text
    task = r.json()["result"]["task"]
    assert task["contextId"] == "ctx-v1" and task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert task["artifacts"][0]["parts"][0]["text"].endswith("You said: hello v1")
    assert standin.requests()[-1]["payload"]["prompt"] == "hello v1"


def test_message_stream_is_relayed_as_it_arrives(gw, standin):
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "message/stream",
        "params": {
            "message": {
                "kind": "message",
                "role": "user",
                "messageId": "m-stream",
                "contextId": "ctx-stream",
                "parts": [{"kind": "text", "text": "tell me a story"}],
            }
        },
    }
    events, stamps = [], []
    t0 = time.monotonic()
    with httpx.stream("POST", url(gw, 0, "/"), json=body, timeout=20) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        sid = r.headers["x-amzn-bedrock-agentcore-runtime-session-id"]
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                stamps.append(time.monotonic() - t0)
    results = [e["result"] for e in events]
    assert all(e["id"] == 7 for e in events)
    assert results[0]["kind"] == "status-update" and results[0]["status"]["state"] == "working"
    assert (
        results[-1]["kind"] == "status-update"
        and results[-1]["status"]["state"] == "completed"
        and results[-1]["final"]
    )
    chunks = [x for x in results if x["kind"] == "artifact-update"]
    assert len(chunks) > 10  # the agent's words, one event each
    text = "".join(c["artifact"]["parts"][0]["text"] for c in chunks)
    assert text.endswith("You said: tell me a story")
    # relayed as they came (the stand-in pauses 80 ms between words), not buffered
    first_chunk = stamps[results.index(chunks[0])]
    assert stamps[-1] - first_chunk > 0.5, stamps
    seen = standin.requests()[-1]
    assert seen["verified"] and seen["accept"] == "text/event-stream" and seen["session_id"] == sid


def test_agent_card_through_get_agent_card(gw, standin):
    n = len(standin.requests())
    r = httpx.get(url(gw, 0, "/.well-known/agent-card.json"), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "agentcore-standin"
    [seen] = entries_since(standin, n)
    assert seen["verified"] and seen["method"] == "GET"
    assert seen["path"] == ENCODED_PATH + "/.well-known/agent-card.json"


def test_raw_bodies_pass_through_signed(gw, standin):
    n = len(standin.requests())
    sid = "client-chosen-session-0123456789-abcdef"
    r = httpx.post(
        url(gw, 0, "/invocations"),
        content=b'{"prompt": "raw hello"}',
        headers={
            "content-type": "application/json",
            "x-amzn-bedrock-agentcore-runtime-session-id": sid,
            "authorization": "Bearer client-secret-token",
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    # the agent's answer, untouched
    assert r.json() == {
        "result": {
            "role": "assistant",
            "content": [
                {"text": "Hello! I'm the local AgentCore stand-in (turn 1 of this session). You said: raw hello"}
            ],
        }
    }
    r2 = httpx.post(
        url(gw, 0, "/anything"),
        content=b"\x00binary\xff",
        headers={"content-type": "application/octet-stream"},
        timeout=10,
    )
    assert r2.status_code == 200
    seen = entries_since(standin, n)
    assert [e["verified"] for e in seen] == [True, True]
    assert seen[0]["session_id"] == sid  # the client's session header is honoured
    assert seen[1]["payload"] == "\x00binary\ufffd"  # the bytes as sent (decoded by the stand-in)
    assert seen[1]["content_type"] == "application/octet-stream"
    assert r2.json() == {"echo": "\x00binary\ufffd"}
    assert len(seen[1]["session_id"]) >= 33
    assert "client-secret-token" not in json.dumps(seen)  # the client's Authorization never reaches AWS


# -- step 8a / 8b -------------------------------------------------------------------------------
def test_seed_rate_limit_loop_gives_five_200s_then_429s(gw):
    codes = []
    for i in range(1, 9):
        body = {
            "jsonrpc": "2.0",
            "id": str(i),
            "method": "tasks/send",
            "params": {"id": f"t{i}", "message": {"role": "user", "parts": [{"type": "text", "text": "ping"}]}},
        }
        r = post(url(gw, 1), body)
        codes.append(r.status_code)
        if r.status_code == 429:
            err = r.json()
            assert err["id"] == str(i) and err["error"]["data"]["type"] == "rate_limited"
    assert codes == [200] * 5 + [429] * 3


def test_seed_jwt_strict_gives_401_without_token(gw):
    body = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "tasks/send",
        "params": {"id": "t1", "message": {"role": "user", "parts": [{"type": "text", "text": "test"}]}},
    }
    r = post(url(gw, 2), body)
    assert r.status_code == 401
    assert r.json()["error"]["data"]["type"] == "unauthenticated"
    tok = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "agentcore" / "make_token.py")],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout.strip()
    r = post(url(gw, 2), body, headers={"authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["status"]["state"] == "completed"


# -- observability ---------------------------------------------------------------------------
def test_metrics_and_access_log_name_agentcore_never_credentials(gw, standin):
    post(url(gw, 0), SEED_BODY)
    assert gw.metric("agentgw_requests_total", backend="agentcore/agentcore-backend", status="200") >= 1
    entries = wait_for(
        lambda: [e for e in gw.access_log() if e.get("msg") == "request" and e.get("agentcore_runtime_arn")],
        timeout=5,
        message="agentcore access log entries",
    )
    assert all(e["agentcore_runtime_arn"] == ARN and e["backend"] == "agentcore/agentcore-backend" for e in entries)
    out = gw.stdout_text() + gw.stderr_text()
    keys = {e["access_key"] for e in standin.requests() if e.get("access_key")}
    assert keys and not any(k in out for k in keys)
    assert "x-amz-security-token" not in out.lower() and "Signature=" not in out


# -- credentials -------------------------------------------------------------------------------
# Refresh ahead of expiry, with its own stand-in so nothing depends on what ran before: STS
# credentials live REFRESH_LIFE seconds and every STS answer takes REFRESH_STS_DELAY. The
# gateway refreshes short-lived credentials at half their lifetime (15 s before expiry) and
# blocks only within 5 s of it, so a refresh has ~10 s to land: slack for a busy machine.
# A request that waited for STS takes at least REFRESH_STS_DELAY; REFRESH_MAX_LATENCY sits
# well between that and an ordinary request, even a slow one.
REFRESH_LIFE = 30
REFRESH_STS_DELAY = 3.0
REFRESH_MAX_LATENCY = 2.0


@pytest.fixture
def refresh_standin(tmp_path_factory):
    s = StandIn(
        tmp_path_factory.mktemp("refresh-standin"),
        "--arn",
        ARN,
        "--sts-port",
        "0",
        "--sts-duration",
        str(REFRESH_LIFE),
        "--sts-delay",
        str(REFRESH_STS_DELAY),
    )
    yield s
    s.stop()


@pytest.fixture
def refresh_gw(refresh_standin, harness, tmp_path):  # the stand-in (and STS) outlive the gateway
    return harness.gateway(example_config(refresh_standin.url), env=irsa_env(tmp_path, refresh_standin.sts_port))


def message(i: int, context: str) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": i,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "role": "user",
                "messageId": f"r{i}",
                "contextId": context,
                "parts": [{"kind": "text", "text": f"ping {i}"}],
            }
        },
    }


@pytest.mark.timeout(REFRESH_LIFE * 4 + 60)
def test_temporary_credentials_refresh_before_expiry_without_blocking(refresh_gw, refresh_standin):
    """Traffic runs until the credentials the gateway started with have expired: it moves
    to fresh ones ahead of expiry (the stand-in refuses expired ones), no request waits for
    STS, and credentials are refreshed once per half-life, not on every request."""
    # The first request waits for the gateway's initial credential fetch (started at load):
    # not timed. Its credentials are the set whose expiry the traffic below must outlive.
    r = post(url(refresh_gw, 0, "/"), message(0, "refresh"), timeout=60)
    assert r.status_code == 200, r.text
    [first] = refresh_standin.requests()
    assert first["verified"] and first["temporary"], first
    first_expires = first["expires"]
    assert first_expires - time.time() <= REFRESH_LIFE + 1, "the stand-in's STS did not cap the lifetime"

    latencies = []
    i = 0
    while True:
        i += 1
        sent = time.time()
        t = time.monotonic()
        r = post(url(refresh_gw, 0, "/"), message(i, "refresh"), timeout=60)
        latencies.append(time.monotonic() - t)
        assert r.status_code == 200, (i, r.text)
        if sent > first_expires + 1:
            break  # this request was sent after the first credentials had expired
        time.sleep(0.2)

    seen = refresh_standin.requests()
    assert len(seen) == i + 1
    refused = [e for e in seen if not e["verified"]]
    assert not refused, refused[:1]
    assert all(e["temporary"] and e["time"] < e["expires"] for e in seen)
    # later requests carried newer credentials than the (now expired) first set
    assert seen[-1]["access_key"] != first["access_key"] and seen[-1]["expires"] > first_expires
    # STS's answer time never shows in a request
    slow = [(n, round(x, 3)) for n, x in enumerate(latencies, 1) if x >= REFRESH_MAX_LATENCY]
    assert not slow, f"requests that waited (STS takes {REFRESH_STS_DELAY} s): {slow}"
    # refreshed about once per half-life (and each refresh takes REFRESH_STS_DELAY), not per request
    keys = [e["access_key"] for e in seen]
    changes = sum(1 for a, b in itertools.pairwise(keys) if a != b)
    elapsed = seen[-1]["time"] - seen[0]["time"]
    assert 1 <= changes <= 1 + elapsed / (REFRESH_LIFE / 2 - REFRESH_STS_DELAY), (changes, elapsed)
    assert len(set(keys)) == changes + 1  # never back to an older set


def test_credential_failure_is_a_prompt_503_with_the_reason_logged(harness, standin, tmp_path):
    env = irsa_env(tmp_path, standin.sts_port)
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(tmp_path / "missing-token")
    g = harness.gateway(example_config(standin.url), env=env)
    t = time.monotonic()
    r = post(f"http://127.0.0.1:{g.ports[0]}/tasks/send", SEED_BODY)
    assert time.monotonic() - t < 5
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["data"]["type"] == "aws_credentials_unavailable" and "missing-token" in err["message"]
    wait_for(
        lambda: "AWS credentials unavailable (region us-east-1)" in g.stdout_text() + g.stderr_text(),
        timeout=5,
        message="the credential failure in the gateway's log",
    )


def test_refused_signature_is_a_502_naming_agentcores_reason(harness, standin):
    env = aws_env(AWS_ACCESS_KEY_ID="AKIDUNKNOWNTOTHESTANDIN", AWS_SECRET_ACCESS_KEY="nope")
    g = harness.gateway(example_config(standin.url), env=env)
    r = post(f"http://127.0.0.1:{g.ports[0]}/tasks/send", SEED_BODY)
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["data"]["type"] == "UnrecognizedClientException"
    assert "refused the gateway's AWS credentials" in err["message"]
    assert r.json()["id"] == "test-1"


def test_walkthrough_with_static_keys_from_the_environment(harness, standin):
    """docs/agentcore.md section 1: the demo keys in AWS_ACCESS_KEY_ID/SECRET."""
    g = harness.gateway(
        example_config(standin.url), env=aws_env(AWS_ACCESS_KEY_ID=DEMO_KEY, AWS_SECRET_ACCESS_KEY=DEMO_SECRET)
    )
    n = len(standin.requests())
    r = post(f"http://127.0.0.1:{g.ports[0]}/tasks/send", SEED_BODY)
    assert r.status_code == 200, r.text
    [seen] = entries_since(standin, n)
    assert seen["verified"] and seen["access_key"] == DEMO_KEY and seen["temporary"] is False
    assert DEMO_SECRET not in g.stdout_text() + g.stderr_text()


def test_seed_rate_limit_loop_with_the_global_limiter_across_replicas(harness, standin, tmp_path):
    """Step 8a as the workshop runs it (a RateLimitConfig in a shared rate-limit service):
    two gateway replicas counting in one Redis give 5x200 then 429s between them."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/install-test-deps.sh installs it)")
    from tests.support.redis_server import RedisServer

    redis = RedisServer(tmp_path)
    redis.start()
    try:
        env = aws_env(AWS_ACCESS_KEY_ID=DEMO_KEY, AWS_SECRET_ACCESS_KEY=DEMO_SECRET)
        gws = []
        for _ in range(2):
            cfg = example_config(standin.url)
            cfg["binds"][1]["listeners"][0]["routes"][0]["policies"] = {
                "globalRateLimit": {
                    # the default 100 ms for connect + SCRIPT LOAD can run out on a busy test
                    # machine, and failClosed then marks Redis down for the whole loop
                    "redis": {"url": redis.url, "timeout": "2s"},
                    "failureMode": "failClosed",
                    "descriptors": [
                        {
                            "entries": [{"key": "generic_key", "value": '"counter"'}],
                            "rateLimit": {"requestsPerUnit": 5, "unit": "MINUTE"},
                        }
                    ],
                }
            }
            gws.append(harness.gateway(cfg, env=env))
        if time.time() % 60 > 55:  # keep the loop inside one fixed one-minute window
            time.sleep(60.5 - time.time() % 60)
        codes = []
        for i in range(1, 9):
            body = {
                "jsonrpc": "2.0",
                "id": str(i),
                "method": "tasks/send",
                "params": {"id": f"t{i}", "message": {"role": "user", "parts": [{"type": "text", "text": "ping"}]}},
            }
            g = gws[i % 2]  # alternate replicas
            codes.append(post(f"http://127.0.0.1:{g.ports[1]}/tasks/send", body).status_code)
        assert codes == [200] * 5 + [429] * 3
    finally:
        redis.kill()


# -- answer: runtime (the enterprise gateway's workshop shape) -----------------------------------
def test_seed_step7_answer_runtime_gives_the_workshops_shape(harness, standin, tmp_path):
    """Seed 000's step 7 expects the runtime's own answer, ``{"result": {"role":
    "assistant", "content": [{"text": ...}]}}``; ``answer: runtime`` gives clients written
    against that exactly it, for the same A2A request (the default is an A2A task)."""
    cfg = example_config(standin.url)
    cfg["backends"][0]["aws"]["agentCore"]["answer"] = "runtime"
    env = irsa_env(tmp_path, standin.sts_port)
    g = harness.gateway(cfg, env=env)
    r = post(url(g, 0), SEED_BODY)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert list(doc) == ["result"] and doc["result"]["role"] == "assistant"
    (part,) = doc["result"]["content"]
    assert "You said: Hello from Agent Gateway! What can you help me with?" in part["text"]
    assert len(r.headers["x-amzn-bedrock-agentcore-runtime-session-id"]) >= 33
    # streamed: the runtime's own events, as it sent them
    body = dict(SEED_BODY, method="message/stream")
    with httpx.stream("POST", url(g, 0), json=body, timeout=20) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        data = b"".join(s.iter_bytes()).decode()
    words = [json.loads(line[len("data: ") :]) for line in data.splitlines() if line.startswith("data: ")]
    assert "".join(words).endswith("You said: Hello from Agent Gateway! What can you help me with?")
