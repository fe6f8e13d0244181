"""Span attributes for LLM calls from CEL, as agentgateway's llm-telemetry tracing examples
write them: ``llm.prompt`` / ``llm.completion`` / token counts, ``flattenRecursive`` into
one attribute per element, ``span.name``; received by an in-test OTLP collector."""

from __future__ import annotations

import httpx
import pytest

from tests.llm import fakes as F
from tests.observability.otlp import HttpReceiver
from tests.support.harness import gateway_config

FIELDS = {
    "span.name": '"openai.chat"',
    "gen_ai.system": "llm.provider",
    "gen_ai.prompt": "flattenRecursive(llm.prompt)",
    "gen_ai.completion": 'flattenRecursive(llm.completion.map(c, {"role":"assistant", "content": c}))',
    "llm.input_messages": 'flattenRecursive(llm.prompt.map(c, {"message": c}))',
    "gen_ai.usage.completion_tokens": "llm.outputTokens",
    "gen_ai.usage.prompt_tokens": "llm.inputTokens",
    "llm.usage.total_tokens": "llm.totalTokens",
    "llm.is_streaming": "llm.streaming",
    "llm.request_model": "llm.requestModel",
    "flat.headers": 'flatten({"a": "1", "b": {"c": 2}})',
    "missing": 'request.headers["x-not-sent"]',
}


@pytest.fixture
def receiver():
    r = HttpReceiver()
    yield r
    r.stop()


@pytest.fixture
def gw(harness, fakes, receiver):
    routes = [
        {
            "name": "gemini",
            "policies": {"backendAuth": {"key": F.GEMINI_KEY}},
            "backends": [
                {
                    "ai": {
                        "name": "gemini",
                        "provider": {"gemini": {"model": "gemini-1.5-flash"}},
                        "hostOverride": f"127.0.0.1:{fakes.port}",
                    }
                }
            ],
        }
    ]
    tracing = {
        "otlpEndpoint": f"http://127.0.0.1:{receiver.port}",
        "otlpProtocol": "http",
        "randomSampling": True,
        "fields": {"add": FIELDS},
    }
    fakes.reset()
    yield harness.gateway(gateway_config(routes, extra_config={"tracing": tracing}))
    fakes.assert_valid()


def _server_span(receiver) -> dict:
    return next(s for s in receiver.wait(2) if s["kind"] == 2)


def test_prompt_completion_and_tokens_flattened(gw, receiver):
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        },
        timeout=20,
    )
    assert r.status_code == 200, r.text
    answer = r.json()["choices"][0]["message"]["content"]
    span = _server_span(receiver)
    assert span["name"] == "openai.chat"
    a = span["attrs"]
    assert a["gen_ai.system"] == "gcp.gemini"
    assert a["gen_ai.prompt.0.role"] == "system" and a["gen_ai.prompt.0.content"] == "be brief"
    assert a["gen_ai.prompt.1.role"] == "user" and a["gen_ai.prompt.1.content"] == "hello"
    assert a["llm.input_messages.1.message.content"] == "hello"
    assert a["gen_ai.completion.0.role"] == "assistant" and a["gen_ai.completion.0.content"] == answer
    assert (a["gen_ai.usage.prompt_tokens"], a["gen_ai.usage.completion_tokens"]) == (F.IN_TOKENS, F.OUT_TOKENS)
    assert a["llm.usage.total_tokens"] == F.IN_TOKENS + F.OUT_TOKENS
    assert a["llm.is_streaming"] is False and a["llm.request_model"] == "gpt-4o"
    # flatten: one level (a nested map stays one JSON attribute)
    assert a["flat.headers.a"] == "1" and a["flat.headers.b"] == '{"c":2}'
    assert "missing" not in a and "span.name" not in a


def test_streamed_completion_is_collected(gw, receiver):
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "tell me"}]},
        timeout=20,
    ) as r:
        body = r.read().decode()
    assert r.status_code == 200 and "data: [DONE]" in body
    a = _server_span(receiver)["attrs"]
    assert a["llm.is_streaming"] is True
    assert a["gen_ai.completion.0.content"] == "echo: tell me"
    assert a["gen_ai.prompt.0.content"] == "tell me"
