"""The LLM gateway through a real agentgw process, with the openai and anthropic SDKs as
clients and schema-validating provider fakes behind (see ``fakes.py``)."""

from __future__ import annotations

import base64
import json

import anthropic
import openai
import pytest

from tests.llm import fakes as F
from tests.support.harness import closed_port, free_port

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}

# model name at the gateway -> which fake must see the request
PROVIDERS = {
    "gpt-4o": "openai",
    "claude": "anthropic",
    "anthropic/claude-3-haiku": "anthropic",
    "bedrock-claude": "bedrock",
    "gemini-flash": "gemini",
    "vertex-gemini": "vertex",
    "azure-gpt": "azure",
}


def llm_config(fake_url: str, key_file: str, port: int, stats: int) -> dict:
    aws = {"accessKeyId": F.AWS_KEY_ID, "secretAccessKey": F.AWS_SECRET, "region": F.AWS_REGION}
    return {
        "config": {
            "adminAddr": f"127.0.0.1:{free_port()}",
            "statsAddr": f"127.0.0.1:{stats}",
            "readinessAddr": f"127.0.0.1:{free_port()}",
        },
        "llm": {
            "port": port,
            "models": [
                {
                    "name": "gpt-4o",
                    "provider": "openAI",
                    "params": {"model": "gpt-4o-2024", "baseUrl": fake_url + "/v1", "apiKey": F.OPENAI_KEY},
                },
                {
                    "name": "claude",
                    "provider": "anthropic",
                    "params": {"model": "claude-sonnet-4", "baseUrl": fake_url, "apiKey": {"file": key_file}},
                },
                {"name": "anthropic/*", "provider": "anthropic", "params": {"baseUrl": fake_url}},
                {
                    "name": "bedrock-claude",
                    "provider": "bedrock",
                    "params": {
                        "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                        "awsRegion": F.AWS_REGION,
                        "baseUrl": fake_url,
                    },
                    "auth": {"aws": aws},
                },
                {
                    "name": "bedrock-nocreds",
                    "provider": "bedrock",
                    "params": {"model": "m", "awsRegion": F.AWS_REGION, "baseUrl": fake_url},
                },
                {
                    "name": "gemini-flash",
                    "provider": "gemini",
                    "params": {"model": "gemini-2.0-flash", "baseUrl": fake_url, "apiKey": F.GEMINI_KEY},
                },
                {
                    "name": "vertex-gemini",
                    "provider": "vertex",
                    "params": {
                        "model": "gemini-2.0-flash",
                        "vertexProject": "proj",
                        "vertexRegion": "us-central1",
                        "baseUrl": fake_url,
                        "apiKey": F.VERTEX_TOKEN,
                    },
                },
                {
                    "name": "azure-gpt",
                    "provider": "azure",
                    "params": {
                        "model": "my-deployment",
                        "azureResourceName": "res",
                        "azureResourceType": "openAI",
                        "azureApiVersion": "2024-10-21",
                        "baseUrl": fake_url,
                        "apiKey": F.AZURE_KEY,
                    },
                },
                # failover chains: entries sharing a name are tried in order
                {
                    "name": "chain",
                    "provider": "openAI",
                    "params": {"model": "fail-429", "baseUrl": fake_url + "/v1", "apiKey": F.OPENAI_KEY},
                },
                {
                    "name": "chain",
                    "provider": "anthropic",
                    "params": {"model": "claude-backup", "baseUrl": fake_url, "apiKey": F.ANTHROPIC_KEY},
                },
                {
                    "name": "down",
                    "provider": "openAI",
                    "params": {"model": "x", "baseUrl": f"http://127.0.0.1:{closed_port()}/v1", "apiKey": "k"},
                },
                {
                    "name": "down",
                    "provider": "gemini",
                    "params": {"model": "gemini-2.0-flash", "baseUrl": fake_url, "apiKey": F.GEMINI_KEY},
                },
                {
                    "name": "broken",
                    "provider": "openAI",
                    "params": {"model": "fail-500", "baseUrl": fake_url + "/v1", "apiKey": F.OPENAI_KEY},
                },
                {
                    "name": "broken-claude",
                    "provider": "anthropic",
                    "params": {"model": "fail-500", "baseUrl": fake_url, "apiKey": F.ANTHROPIC_KEY},
                },
                {
                    "name": "tuned",
                    "provider": "openAI",
                    "params": {"model": "gpt-4o-mini", "baseUrl": fake_url + "/v1", "apiKey": F.OPENAI_KEY},
                    "defaults": {"temperature": 0.25, "max_tokens": 64},
                    "overrides": {"max_tokens": 32},
                },
                {
                    "name": "guarded",
                    "provider": "openAI",
                    "params": {"model": "gpt-4o-mini", "baseUrl": fake_url + "/v1", "apiKey": F.OPENAI_KEY},
                    "guardrails": {
                        "request": [{"regex": {"action": "mask", "rules": [{"builtin": "email"}, {"builtin": "ssn"}]}}],
                        "response": [
                            {
                                "regex": {"action": "reject", "rules": [{"builtin": "creditCard"}]},
                                "rejection": {"status": 451, "body": "card number in answer"},
                            }
                        ],
                    },
                },
            ],
        },
    }


@pytest.fixture(scope="module")
def gw(module_harness, fakes, tmp_path_factory):
    d = tmp_path_factory.mktemp("llmkeys")
    key_file = d / "anthropic.key"
    key_file.write_text(F.ANTHROPIC_KEY + "\n")
    port, stats = free_port(), free_port()
    cfg = llm_config(fakes.url, str(key_file), port, stats)
    env = {
        "ANTHROPIC_API_KEY": F.ANTHROPIC_KEY,
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_PROFILE": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(d / "none"),
        "AWS_CONFIG_FILE": str(d / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "",
    }
    g = module_harness.gateway(cfg, env=env)
    g.llm_url = f"http://127.0.0.1:{port}"
    return g


@pytest.fixture
def oa(gw, fakes):
    fakes.reset()
    yield openai.OpenAI(base_url=gw.llm_url + "/v1", api_key="client-secret-key", max_retries=0, timeout=20)
    fakes.assert_valid()


@pytest.fixture
def an(gw, fakes):
    fakes.reset()
    yield anthropic.Anthropic(base_url=gw.llm_url, api_key="client-secret-key", max_retries=0, timeout=20)
    fakes.assert_valid()


def _no_client_key(fakes):
    for e in fakes.log():
        assert "client-secret-key" not in json.dumps(e["headers"]), f"client key forwarded to {e['kind']}"


# -- chat completions, every provider -----------------------------------------------------------
@pytest.mark.parametrize("model", list(PROVIDERS))
def test_chat_completion_every_provider(oa, fakes, model):
    r = oa.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    )
    assert r.choices[0].message.content == "[system: be brief] echo: hello there"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (11, 7, 18)
    assert fakes.last()["kind"] == PROVIDERS[model]
    _no_client_key(fakes)


def test_provider_specific_wire_details(oa, fakes):
    oa.chat.completions.create(model="bedrock-claude", messages=[{"role": "user", "content": "hi"}])
    e = fakes.last("bedrock")
    assert e["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert e["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    oa.chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "hi"}])
    e = fakes.last("azure")
    assert e["path"] == "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    assert e["headers"]["api-key"] == F.AZURE_KEY
    oa.chat.completions.create(model="anthropic/claude-3-haiku", messages=[{"role": "user", "content": "hi"}])
    e = fakes.last("anthropic")
    assert e["body"]["model"] == "claude-3-haiku"  # wildcard prefix stripped
    assert e["headers"]["anthropic-version"] == "2023-06-01"
    oa.chat.completions.create(model="vertex-gemini", messages=[{"role": "user", "content": "hi"}])
    assert (
        fakes.last("vertex")["path"]
        == "/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    )


@pytest.mark.parametrize("model", list(PROVIDERS))
def test_chat_stream_every_provider(oa, fakes, model):
    stream = oa.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[system: sys] echo: one two three"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3, "answer was not streamed in pieces"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert usage and (usage[-1].prompt_tokens, usage[-1].completion_tokens) == (11, 7)
    req = fakes.last(PROVIDERS[model])
    assert (
        req["path"].endswith(("converse-stream", ":streamGenerateContent?alt=sse")) or req["body"].get("stream") is True
    )


def test_stream_without_usage_option_gets_no_usage_chunk(oa, fakes):
    chunks = list(
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a b"}], stream=True)
    )
    assert all(c.choices for c in chunks), "usage-only chunk leaked to a client that did not ask for it"
    # the gateway still asked the provider for usage, for its own accounting
    assert fakes.last("openai")["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", list(PROVIDERS))
def test_tool_call_round_trip(oa, fakes, model, stream):
    msgs = [{"role": "user", "content": "weather in Paris?"}]
    if stream:
        chunks = list(oa.chat.completions.create(model=model, messages=msgs, tools=[WEATHER_TOOL], stream=True))
        calls: dict[int, dict] = {}
        for c in chunks:
            for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                cur = calls.setdefault(tc.index, {"id": None, "name": None, "args": ""})
                cur["id"] = tc.id or cur["id"]
                cur["name"] = (tc.function.name if tc.function else None) or cur["name"]
                cur["args"] += (tc.function.arguments or "") if tc.function else ""
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["tool_calls"]
        assert len(calls) == 1
        call = calls[0]
        call_id, name, args = call["id"], call["name"], call["args"]
    else:
        r = oa.chat.completions.create(model=model, messages=msgs, tools=[WEATHER_TOOL], tool_choice="auto")
        assert r.choices[0].finish_reason == "tool_calls"
        tc = r.choices[0].message.tool_calls[0]
        call_id, name, args = tc.id, tc.function.name, tc.function.arguments
    assert name == "get_weather" and json.loads(args) == {"city": "Paris"} and call_id
    msgs += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
    ]
    r2 = oa.chat.completions.create(model=model, messages=msgs, tools=[WEATHER_TOOL])
    assert r2.choices[0].message.content == "tool said: 18C and sunny"


@pytest.mark.parametrize("model", [m for m in PROVIDERS if m != "azure-gpt"])
def test_image_input(oa, fakes, model):
    r = oa.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "echo: what is this [image]"


def test_bedrock_rejects_remote_image_in_openai_shape(oa):
    with pytest.raises(openai.BadRequestError) as ei:
        oa.chat.completions.create(
            model="bedrock-claude",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
            ],
        )
    assert "base64" in ei.value.body["message"]


# -- Anthropic SDK ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", list(PROVIDERS))
def test_anthropic_messages_every_provider(an, fakes, model):
    msg = an.messages.create(
        model=model, max_tokens=100, system="be brief", messages=[{"role": "user", "content": "hello there"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "[system: be brief] echo: hello there"
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (11, 7)
    _no_client_key(fakes)


@pytest.mark.parametrize("model", list(PROVIDERS))
def test_anthropic_stream_and_tools_every_provider(an, fakes, model):
    tools = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    with an.messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "weather?"}], tools=tools
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    tu = [b for b in final.content if b.type == "tool_use"][0]
    assert tu.name == "get_weather" and tu.input == {"city": "Paris"}
    assert final.usage.output_tokens == 7
    follow = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": tu.id, "name": tu.name, "input": tu.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "rainy"}]},
    ]
    with an.messages.stream(model=model, max_tokens=100, messages=follow, tools=tools) as s:
        text = "".join(s.text_stream)
    assert text == "tool said: rainy"


def test_anthropic_bearer_auth_token(gw, fakes):
    fakes.reset()
    c = anthropic.Anthropic(base_url=gw.llm_url, auth_token="client-bearer", max_retries=0)
    msg = c.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "echo: hi"
    assert "client-bearer" not in json.dumps(fakes.last()["headers"])
    fakes.assert_valid()


def test_anthropic_image(an):
    msg = an.messages.create(
        model="gemini-flash",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "text", "text": "see"},
                ],
            }
        ],
    )
    assert msg.content[0].text == "echo: see [image]"


# -- other APIs ----------------------------------------------------------------------------------
def test_models_list(oa, an):
    ids = [m.id for m in oa.models.list()]
    assert "gpt-4o" in ids and "claude" in ids and "anthropic/*" not in ids
    a_ids = [m.id for m in an.models.list()]
    assert a_ids == ids


def test_embeddings(oa, fakes):
    r = oa.embeddings.create(model="gpt-4o", input=["a", "b"])
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 3
    assert fakes.last("openai")["body"]["model"] == "gpt-4o-2024"
    g = oa.embeddings.create(model="gemini-flash", input="hello", encoding_format="float")
    assert g.data[0].embedding == [0.5, 0.0]
    assert fakes.last("gemini")["path"].endswith(":batchEmbedContents")


def test_responses_api_native_and_translated(oa, fakes):
    r = oa.responses.create(model="gpt-4o", input="hi")
    assert r.output_text == "native: hi"
    assert fakes.last("openai")["path"] == "/v1/responses"
    r = oa.responses.create(model="claude", instructions="sys", input="hi")
    assert r.output_text == "[system: sys] echo: hi"
    assert r.usage.input_tokens == 11 and r.usage.output_tokens == 7
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "w",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    r = oa.responses.create(model="bedrock-claude", input="weather?", tools=[tool])
    call = [o for o in r.output if o.type == "function_call"][0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    r2 = oa.responses.create(
        model="bedrock-claude",
        input=[
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "windy"},
        ],
        tools=[tool],
    )
    assert r2.output_text == "tool said: windy"


def test_responses_api_stream_translated(oa):
    events = list(oa.responses.create(model="gemini-flash", input="a b c", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: a b c"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.usage.output_tokens == 7


# -- failover and errors -------------------------------------------------------------------------
def test_failover_on_429_then_next_provider(oa, fakes, gw):
    r = oa.chat.completions.create(model="chain", messages=[{"role": "user", "content": "x"}])
    assert r.choices[0].message.content == "echo: x"
    kinds = [e["kind"] for e in fakes.log()]
    assert kinds == ["openai", "anthropic"]
    assert gw.metric("agentgw_gen_ai_failovers_total", provider="chain", reason="429") >= 1


def test_failover_on_connect_error_streaming(oa, fakes):
    chunks = list(oa.chat.completions.create(model="down", messages=[{"role": "user", "content": "y"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: y"
    assert fakes.last()["kind"] == "gemini"


def test_all_providers_failed_error_shapes(oa, an):
    with pytest.raises(openai.InternalServerError) as ei:
        oa.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
    assert ei.value.status_code == 500 and "fake exploded" in ei.value.message
    with pytest.raises(anthropic.InternalServerError) as ai:
        an.messages.create(model="broken", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert ai.value.body["type"] == "error" and "fake exploded" in ai.value.body["error"]["message"]
    # Anthropic→Anthropic passes the provider's own error through
    with pytest.raises(anthropic.InternalServerError):
        an.messages.create(model="broken-claude", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_unknown_model_and_bad_requests(oa, an):
    with pytest.raises(openai.NotFoundError) as ei:
        oa.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert ei.value.body["code"] == "model_not_found"
    with pytest.raises(anthropic.NotFoundError) as ai:
        an.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert ai.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bi:
        an.messages.create(model="gpt-4o", max_tokens=None, messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    assert "max_tokens" in bi.value.body["error"]["message"]
    with pytest.raises(openai.BadRequestError) as oi:
        oa.chat.completions.create(model="gpt-4o", messages="not a list")  # type: ignore[arg-type]
    assert oi.value.status_code == 400


def test_bedrock_credential_failure_is_clear_503(oa, gw):
    with pytest.raises(openai.InternalServerError) as ei:
        oa.chat.completions.create(model="bedrock-nocreds", messages=[{"role": "user", "content": "x"}])
    assert ei.value.status_code == 503
    assert "AWS credentials unavailable" in ei.value.message
    assert "AWS credentials unavailable (region " in gw.logs()


# -- defaults, overrides, guards --------------------------------------------------------------
def test_defaults_and_overrides(oa, fakes):
    oa.chat.completions.create(model="tuned", messages=[{"role": "user", "content": "x"}])
    b = fakes.last("openai")["body"]
    assert b["temperature"] == 0.25 and b["max_tokens"] == 32 and b["model"] == "gpt-4o-mini"
    oa.chat.completions.create(
        model="tuned", messages=[{"role": "user", "content": "x"}], temperature=0.9, max_tokens=500
    )
    b = fakes.last("openai")["body"]
    assert b["temperature"] == 0.9 and b["max_tokens"] == 32


def test_guardrails_mask_request_and_reject_response(oa, fakes, an):
    r = oa.chat.completions.create(
        model="guarded", messages=[{"role": "user", "content": "mail bob@example.com ssn 123-45-6789"}]
    )
    sent = fakes.last("openai")["body"]["messages"][0]["content"]
    assert "bob@example.com" not in sent and "123-45-6789" not in sent
    assert sent == "mail <EMAIL_ADDRESS> ssn <SSN>"
    assert r.choices[0].message.content == "echo: mail <EMAIL_ADDRESS> ssn <SSN>"
    with pytest.raises(openai.APIStatusError) as ei:
        oa.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "card 4111 1111 1111 1111"}])
    assert ei.value.status_code == 451 and ei.value.body == "card number in answer"  # as written
    # a streamed answer is cut with an error event when the guard trips
    with pytest.raises(openai.APIError) as se:
        list(
            oa.chat.completions.create(
                model="guarded", messages=[{"role": "user", "content": "card 4111-1111-1111-1111"}], stream=True
            )
        )
    assert "card number" in str(se.value)
    with pytest.raises(anthropic.APIStatusError) as ae:
        an.messages.create(
            model="guarded", max_tokens=10, messages=[{"role": "user", "content": "card 4111 1111 1111 1111"}]
        )
    assert ae.value.status_code == 451 and ae.value.body == "card number in answer"


# -- metrics ------------------------------------------------------------------------------------
def test_token_usage_and_latency_metrics(oa, gw):
    before = (
        gw.metric(
            "agentgw_gen_ai_client_token_usage_sum", model="gemini-2.0-flash", provider="gcp.gemini", type="output"
        )
        or 0
    )
    oa.chat.completions.create(model="gemini-flash", messages=[{"role": "user", "content": "x"}])
    list(oa.chat.completions.create(model="gemini-flash", messages=[{"role": "user", "content": "x"}], stream=True))
    after = gw.metric(
        "agentgw_gen_ai_client_token_usage_sum", model="gemini-2.0-flash", provider="gcp.gemini", type="output"
    )
    assert after - before == 14
    assert (
        gw.metric(
            "agentgw_gen_ai_client_token_usage_count", model="gemini-2.0-flash", provider="gcp.gemini", type="input"
        )
        >= 2
    )
    assert (
        gw.metric("agentgw_gen_ai_time_to_first_token_seconds_count", model="gemini-2.0-flash", provider="gcp.gemini")
        >= 1
    )
    assert (
        gw.metric(
            "agentgw_gen_ai_client_operation_duration_seconds_count",
            model="gemini-2.0-flash",
            provider="gcp.gemini",
            operation="chat",
        )
        >= 2
    )
    # agentgateway's names for the same histograms (its dashboards query these)
    ag = {"gen_ai_request_model": "gemini-2.0-flash", "gen_ai_system": "gcp.gemini"}
    assert gw.metric("agentgateway_gen_ai_client_token_usage_sum", gen_ai_token_type="output", **ag) == after
    assert gw.metric("agentgateway_gen_ai_server_time_to_first_token_count", **ag) == gw.metric(
        "agentgw_gen_ai_time_to_first_token_seconds_count", model="gemini-2.0-flash", provider="gcp.gemini"
    )
    assert gw.metric(
        "agentgateway_gen_ai_server_request_duration_count", gen_ai_operation_name="chat", **ag
    ) == gw.metric(
        "agentgw_gen_ai_client_operation_duration_seconds_count",
        model="gemini-2.0-flash",
        provider="gcp.gemini",
        operation="chat",
    )
