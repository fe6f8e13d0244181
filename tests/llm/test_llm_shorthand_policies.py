"""The ``llm:`` shorthand's shared policies (``llm.policies.guardrails`` before each
model's own, ``llm.policies.cors``), ``promptCaching`` on models (the cache points the
Anthropic and Bedrock fakes receive, on translated and native calls) and a model's
``transformation`` (CEL over ``llmRequest`` and the request)."""

from __future__ import annotations

import httpx
import pytest

from tests.llm import fakes as F
from tests.support.harness import free_port

ORIGIN = "http://localhost:15000"
CACHING = {"cacheSystem": True, "cacheMessages": True, "minTokens": 1}


@pytest.fixture(scope="module")
def gw(module_harness, fakes, tmp_path_factory):
    port = free_port()
    aws = {"accessKeyId": F.AWS_KEY_ID, "secretAccessKey": F.AWS_SECRET, "region": F.AWS_REGION}
    cfg = {
        "config": {
            "adminAddr": f"127.0.0.1:{free_port()}",
            "statsAddr": f"127.0.0.1:{free_port()}",
            "readinessAddr": f"127.0.0.1:{free_port()}",
        },
        "llm": {
            "port": port,
            "policies": {
                "guardrails": {
                    "request": [
                        {
                            "regex": {"action": "reject", "rules": [{"builtin": "email"}]},
                            "rejection": {"status": 400},
                        }
                    ]
                },
                "cors": {"allowOrigins": [ORIGIN], "allowMethods": ["POST"], "allowHeaders": ["content-type"]},
            },
            "models": [
                {
                    "name": "gpt",
                    "provider": "openAI",
                    "params": {"model": "gpt-4o", "baseUrl": fakes.url + "/v1", "apiKey": F.OPENAI_KEY},
                    "guardrails": {
                        "request": [{"regex": {"action": "reject", "rules": [{"builtin": "creditCard"}]}}],
                        "response": [{"regex": {"action": "mask", "rules": [{"builtin": "phoneNumber"}]}}],
                    },
                },
                {
                    "name": "claude",
                    "provider": "anthropic",
                    "params": {"model": "claude-haiku-4-5", "baseUrl": fakes.url, "apiKey": F.ANTHROPIC_KEY},
                    "promptCaching": CACHING,
                },
                {
                    "name": "claude-big-prompts",
                    "provider": "anthropic",
                    "params": {"model": "claude-haiku-4-5", "baseUrl": fakes.url, "apiKey": F.ANTHROPIC_KEY},
                    "promptCaching": {"cacheMessages": False},  # minTokens 1024 by default
                },
                {
                    "name": "tx",
                    "provider": "openAI",
                    "params": {"baseUrl": fakes.url + "/v1", "apiKey": F.OPENAI_KEY},
                    "overrides": {"temperature": 0.5, "top_p": 0.9},
                    "transformation": {
                        "model": 'llmRequest.model + "-mini"',
                        "user": 'request.headers["x-user"]',
                        "temperature": "llmRequest.no_such_field",  # no value: removed
                    },
                },
                {  # agentgateway's llm-basic example
                    "name": "anthropic/*",
                    "provider": "anthropic",
                    "params": {"baseUrl": fakes.url, "apiKey": F.ANTHROPIC_KEY},
                    "transformation": {"model": 'llmRequest.model.stripPrefix("anthropic/")'},
                },
                {
                    "name": "nova",
                    "provider": "bedrock",
                    "params": {"model": "amazon.nova-pro-v1:0", "awsRegion": F.AWS_REGION, "baseUrl": fakes.url},
                    "auth": {"aws": aws},
                    "promptCaching": {**CACHING, "cacheTools": True},
                },
            ],
        },
    }
    g = module_harness.gateway(cfg)
    g.llm_url = f"http://127.0.0.1:{port}"
    return g


@pytest.fixture(autouse=True)
def _reset(fakes):
    fakes.reset()
    yield
    fakes.assert_valid()


def chat(gw, model: str, messages: list, **extra) -> httpx.Response:
    return httpx.post(
        f"{gw.llm_url}/v1/chat/completions", json={"model": model, "messages": messages, **extra}, timeout=20
    )


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "second question"},
]


# -- llm.policies.guardrails and model guardrails -------------------------------------------------
def test_shared_guardrails_run_before_each_models_own(gw, fakes):
    r = chat(gw, "gpt", [{"role": "user", "content": "mail me at a@example.com"}])
    assert r.status_code == 400  # the shared guard's rejection status
    assert "prompt guard" in r.json()["error"]["message"]
    r = chat(gw, "claude", [{"role": "user", "content": "mail me at a@example.com"}])
    assert r.status_code == 400  # shared: every model
    r = chat(gw, "gpt", [{"role": "user", "content": "card 4111 1111 1111 1111"}])
    assert r.status_code == 403  # the model's own guard, default status
    assert not [e for e in fakes.log() if e["kind"] in ("openai", "anthropic")]
    r = chat(gw, "gpt", [{"role": "user", "content": "call 415-555-0100"}])
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "echo: call <PHONE_NUMBER>"


# -- llm.policies.cors --------------------------------------------------------------------------
def test_cors_preflight_and_response_headers(gw):
    pre = httpx.options(
        f"{gw.llm_url}/v1/chat/completions",
        headers={"origin": ORIGIN, "access-control-request-method": "POST"},
        timeout=10,
    )
    assert pre.status_code in (200, 204)
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in pre.headers["access-control-allow-methods"]
    r = httpx.post(
        f"{gw.llm_url}/v1/chat/completions",
        json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
        headers={"origin": ORIGIN},
        timeout=20,
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(
        f"{gw.llm_url}/v1/chat/completions",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in other.headers


# -- promptCaching ------------------------------------------------------------------------------
def test_anthropic_cache_points_on_a_translated_call(gw, fakes):
    r = chat(gw, "claude", CONVERSATION)
    assert r.status_code == 200, r.text
    body = fakes.last("anthropic")["body"]
    assert body["system"] == [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    msgs = body["messages"]
    # the message before the last one is the cached prefix's end; the new turn is not cached
    assert msgs[-2]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in str(msgs[-1]) and "cache_control" not in str(msgs[0])


def test_anthropic_cache_points_on_a_native_call(gw, fakes):
    r = httpx.post(
        f"{gw.llm_url}/v1/messages",
        headers={"anthropic-version": "2023-06-01"},
        json={
            "model": "claude",
            "max_tokens": 50,
            "system": [{"type": "text", "text": "Be terse."}],
            "messages": [
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
                {"role": "user", "content": "q2"},
            ],
        },
        timeout=20,
    )
    assert r.status_code == 200, r.text
    body = fakes.last("anthropic")["body"]
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][1]["content"] == [{"type": "text", "text": "a1", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][2]["content"] == "q2"


def test_min_tokens_keeps_a_short_system_prompt_uncached(gw, fakes):
    r = chat(gw, "claude-big-prompts", CONVERSATION)
    assert r.status_code == 200, r.text
    body = fakes.last("anthropic")["body"]
    assert "cache_control" not in str(body)


def test_bedrock_cache_points(gw, fakes):
    tools = [
        {
            "type": "function",
            "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    r = chat(gw, "nova", CONVERSATION, tools=tools)
    assert r.status_code == 200, r.text
    body = fakes.last("bedrock")["body"]
    assert body["system"][-1] == {"cachePoint": {"type": "default"}}
    assert body["messages"][-2]["content"][-1] == {"cachePoint": {"type": "default"}}
    assert "cachePoint" not in str(body["messages"][-1])
    assert body["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}


# -- transformation -----------------------------------------------------------------------------
def test_transformation_sets_and_removes_fields(gw, fakes):
    r = httpx.post(
        f"{gw.llm_url}/v1/chat/completions",
        json={"model": "tx", "temperature": 1.5, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-user": "alice"},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    body = fakes.last("openai")["body"]
    assert body["model"] == "tx-mini"
    assert body["user"] == "alice"  # from the request's header
    assert "temperature" not in body  # its expression had no value: removed, over the override
    assert body["top_p"] == 0.9  # the override still applies to what the transformation leaves


def test_transformation_strip_prefix_as_in_llm_basic(gw, fakes):
    r = httpx.post(
        f"{gw.llm_url}/v1/messages",
        headers={"anthropic-version": "2023-06-01"},
        json={"model": "anthropic/claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "q"}]},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    assert fakes.last("anthropic")["body"]["model"] == "claude-haiku-4-5"
