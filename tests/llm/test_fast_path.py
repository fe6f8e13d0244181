"""Non-streamed LLM calls on a warm connection take the task-free path
(``AiBackendSet.try_fast``): served from the upstream connection's callbacks. Everything
the task path does must hold there too: failover on 5xx, 429 and timeouts, provider
errors in the client's API shape, a body that arrives after its head, a broken
provider answer, a client that leaves, and no per-request reference cycles.

Each case makes several calls in a row on one route, so all but the first find an idle
pooled connection to the provider and go the task-free way.
"""

from __future__ import annotations

import socket
import struct
import time

import openai
import pytest

from tests.llm import fakes as F
from tests.support.gc_probe import PROBE, cyclic_garbage, tasks_created
from tests.support.harness import gateway_config, wait_for

KEY = {"backendAuth": {"key": F.OPENAI_KEY}}


def _openai(fakes, model: str) -> dict:
    return {
        "name": f"openai-{model}",
        "provider": {"openAI": {"model": model}},
        "hostOverride": f"127.0.0.1:{fakes.port}",
        "policies": KEY,
    }


def _route(name: str, *groups: list[dict], policies: dict | None = None) -> dict:
    r = {
        "name": name,
        "matches": [{"path": {"pathPrefix": f"/{name}"}}],
        "backends": [{"ai": {"groups": [{"providers": g} for g in groups]}}],
    }
    if policies:
        r["policies"] = policies
    return r


@pytest.fixture(scope="module")
def gw(module_harness, fakes):
    claude = {
        "name": "claude",
        "provider": {"anthropic": {"model": "claude-x"}},
        "hostOverride": f"127.0.0.1:{fakes.port}",
        "policies": {"backendAuth": {"key": F.ANTHROPIC_KEY}},
    }
    routes = [
        _route("ok", [_openai(fakes, "gpt-4o")]),
        _route("late", [_openai(fakes, "slow-body")]),
        _route("down", [_openai(fakes, "fail-500")], [claude]),
        _route("limited", [_openai(fakes, "fail-429")]),
        _route("broken", [_openai(fakes, "bad-json")]),
        _route("slow", [_openai(fakes, "slow")], [claude], policies={"timeout": {"backendRequestTimeout": "300ms"}}),
        _route("hang", [_openai(fakes, "slow")]),
        _route("stuck", [_openai(fakes, "slow")], policies={"timeout": {"backendRequestTimeout": "300ms"}}),
        _route("translated", [claude]),
        _route(
            "shaped",
            [_openai(fakes, "gpt-4o")],
            policies={
                "ai": {
                    "modelAliases": {"fast": "gpt-4o-mini"},
                    "prompts": {"prepend": [{"role": "system", "content": "house rules"}]},
                }
            },
        ),
        _route("huge", [_openai(fakes, "huge")], [claude]),
        _route("huge-only", [_openai(fakes, "huge")]),
    ]
    return module_harness.gateway(gateway_config(routes), command=PROBE)


@pytest.fixture(autouse=True)
def _reset(fakes):
    fakes.reset()
    yield
    fakes.assert_valid()


def _client(gw, prefix: str, **kw) -> openai.OpenAI:
    """A client to use in a ``with`` block: its connection closes at the end, so that a
    test's exchanges are over (and their garbage, if any, is there) when the next begins."""
    return openai.OpenAI(base_url=f"{gw.url}/{prefix}/v1", api_key="client-key", max_retries=0, timeout=20, **kw)


def _ask(c: openai.OpenAI, text: str):
    return c.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])


def test_warm_calls_answer_and_count_tokens(gw, fakes):
    with _client(gw, "ok", default_headers={"OpenAI-Organization": "org-7", "X-Private": "not for the provider"}) as c:
        before = gw.metric("agentgw_gen_ai_client_token_usage_count", model="gpt-4o", type="output") or 0
        for i in range(6):
            r = _ask(c, f"q{i}")
            assert r.choices[0].message.content == f"echo: q{i}"
            assert r.usage.completion_tokens > 0
        assert [e["body"]["messages"][0]["content"] for e in fakes.log()] == [f"q{i}" for i in range(6)]
        for e in fakes.log():
            assert e["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"  # never the client's key
            assert e["headers"]["openai-organization"] == "org-7"  # forwarded, as OpenAI documents it
            assert "x-private" not in e["headers"]
            assert e["headers"]["host"] == f"127.0.0.1:{fakes.port}"
        assert gw.metric("agentgw_gen_ai_client_token_usage_count", model="gpt-4o", type="output") == before + 6


def test_a_body_that_comes_after_its_head(gw, fakes):
    with _client(gw, "late") as c:
        for i in range(3):
            assert _ask(c, f"late{i}").choices[0].message.content == f"echo: late{i}"


def test_warm_calls_fail_over_on_5xx(gw, fakes):
    with _client(gw, "down") as c:
        for i in range(4):
            r = _ask(c, f"d{i}")
            assert r.choices[0].message.content == f"echo: d{i}"
        assert [e["kind"] for e in fakes.log()] == ["openai", "anthropic"] * 4
        assert gw.metric("agentgw_gen_ai_failovers_total", provider="openai-fail-500", reason="500") >= 4


def test_warm_calls_fail_over_on_timeout(gw, fakes):
    with _client(gw, "slow") as c:
        for i in range(3):
            t = time.monotonic()
            r = _ask(c, f"s{i}")
            assert r.choices[0].message.content == f"echo: s{i}"
            assert time.monotonic() - t < 2.0
        assert [e["kind"] for e in fakes.log()] == ["openai", "anthropic"] * 3


def test_a_provider_error_reaches_the_client_in_its_shape(gw, fakes):
    with _client(gw, "limited") as c:
        for _ in range(3):
            with pytest.raises(openai.RateLimitError) as ei:
                _ask(c, "q")
            assert ei.value.body["message"] == "rate limited by fake"  # the provider's own error body


def _all_502(gw, prefix: str, says: str) -> None:
    """Three calls on one client (the first cold, the rest warm), each a 502 in OpenAI's
    error shape whose message contains ``says``."""
    with _client(gw, prefix) as c:
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as ei:
                _ask(c, "q")
            assert ei.value.status_code == 502
            assert says in ei.value.body["message"]


def test_a_broken_provider_answer_is_a_502_in_openai_shape(gw, fakes):
    _all_502(gw, "broken", "invalid JSON")


def test_an_answer_past_the_size_limit_fails_over(gw, fakes):
    # The task-free path holds no more than the limit (64 MiB), reads the rest to keep the
    # connection, and fails over as the task path does (the first call is the cold one).
    with _client(gw, "huge") as c:
        for i in range(3):
            assert _ask(c, f"h{i}").choices[0].message.content == f"echo: h{i}"
    assert [e["kind"] for e in fakes.log()] == ["openai", "anthropic"] * 3
    assert (
        gw.metric("agentgw_gen_ai_failovers_total", provider="openai-huge", reason="upstream_response_too_large") >= 3
    )


def test_an_answer_past_the_size_limit_with_nowhere_to_fail_over_is_a_502(gw, fakes):
    _all_502(gw, "huge-only", "exceeds")


def test_policy_shaping_applies_once_cold_and_warm(gw, fakes):
    """Aliases and prompts shape the request once: on a cold call, which goes on in a
    task from the shaped request, and on warm ones, served without a task."""
    with _client(gw, "shaped") as c:
        for i in range(3):
            r = c.chat.completions.create(model="fast", messages=[{"role": "user", "content": f"s{i}"}])
            assert r.choices[0].message.content == f"[system: house rules] echo: s{i}"
    sent = [e["body"] for e in fakes.log() if e["kind"] == "openai"]
    assert len(sent) == 3
    for b in sent:
        assert b["model"] == "gpt-4o"  # the provider's own model, whatever the alias
        assert [m["content"] for m in b["messages"]] == ["house rules", b["messages"][1]["content"]]
        assert len(b["messages"]) == 2


def test_translated_calls_go_the_same_way(gw, fakes):
    with _client(gw, "translated") as c:
        for i in range(3):
            r = _ask(c, f"t{i}")
            assert r.choices[0].message.content == f"echo: t{i}"
            assert r.choices[0].finish_reason == "stop"
        assert [e["kind"] for e in fakes.log()] == ["anthropic"] * 3


def test_a_client_that_leaves_frees_the_call(gw, fakes):
    """A client that leaves while the provider works ends the call at once: it is
    counted (status 0) then, not when the provider answers 3 s later, and the gateway
    serves on."""
    with _client(gw, "ok") as c:
        _ask(c, "warm")  # a pooled connection to the fake: the "hang" calls go the fast way

    def left() -> float:
        return gw.metric("agentgw_requests_total", route="hang", status="0") or 0.0

    before = left()
    body = b'{"model":"m","messages":[{"role":"user","content":"bye"}]}'
    t0 = time.monotonic()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", gw.port)) as s:
            # closed with a reset, as a client that goes away does (a FIN alone is a
            # half-close: the gateway would still answer it)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(
                b"POST /hang/v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            time.sleep(0.1)
    wait_for(lambda: left() == before + 3, timeout=2.0, message="the calls of clients that left, counted")
    assert time.monotonic() - t0 < 2.5  # well before the provider's 3 s
    with _client(gw, "ok") as c:
        assert _ask(c, "still here").choices[0].message.content == "echo: still here"


def test_a_timeout_with_nowhere_to_fail_over_is_a_504(gw, fakes):
    with _client(gw, "stuck") as c:
        for _ in range(3):
            t = time.monotonic()
            with pytest.raises(openai.APIStatusError) as ei:
                _ask(c, "q")
            assert ei.value.status_code == 504
            assert time.monotonic() - t < 2.0


@pytest.mark.parametrize(
    "prefix, in_a_task",
    [("ok", False), ("late", False), ("translated", False), ("down", True), ("limited", True)],
)
def test_warm_calls_take_no_task_unless_they_fail(gw, fakes, prefix, in_a_task):
    """What makes the path fast, checked: a warm call that succeeds creates no asyncio
    task; one whose provider fails continues in one (to fail over, or to read the error)."""
    with _client(gw, prefix) as c:
        try:
            _ask(c, "warm")
        except openai.APIStatusError:
            pass
        cyclic_garbage(gw)  # (writes the task count)
        before = tasks_created(gw)
        n = 10
        for _ in range(n):
            try:
                _ask(c, "q")
            except openai.APIStatusError:
                pass
        cyclic_garbage(gw)
    made = tasks_created(gw) - before
    assert made == (n if in_a_task else 0), f"{prefix}: {made} tasks for {n} calls"


@pytest.mark.parametrize("prefix", ["ok", "late", "down", "limited", "broken", "slow", "stuck"])
def test_no_cyclic_garbage(gw, fakes, prefix):
    def calls(n: int) -> None:
        with _client(gw, prefix) as c:
            for _ in range(n):
                try:
                    _ask(c, "gc")
                except openai.APIStatusError:
                    pass
        time.sleep(0.2)  # the gateway sees the connection close: all of it is garbage by now

    calls(1)  # warm up: first-use caches are not per-request garbage
    cyclic_garbage(gw)
    n = 8 if prefix in ("slow", "stuck") else 40
    calls(n)
    garbage = cyclic_garbage(gw)
    # a cycle per request would leave at least ~10 objects per request
    assert sum(garbage.values()) < max(n // 4, 3), f"{prefix}: objects left to the cyclic collector: {garbage}"
