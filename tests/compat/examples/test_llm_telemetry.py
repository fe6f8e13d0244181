"""agentgateway's llm-telemetry example (``tracing/otel.yaml``, and the provider-specific
``openllmetry.yaml``, ``phoenix.yaml`` and ``langfuse.yaml`` beside it), run as its README
runs it.

Stand-ins: Gemini (``generativelanguage.googleapis.com``) -> the schema-checking provider fake
of ``tests/llm/fakes.py`` (it requires the API key in ``x-goog-api-key`` and no
``Authorization``); Jaeger's OTLP receiver on ``localhost:4317`` (gRPC), and Langfuse's OTLP
HTTP endpoint -> the in-test OTLP receivers of ``tests/observability/otlp.py``, which decode
what the gateway exports.

Each vendored file is loaded unchanged except:

* the bind's port 3000 -> a free port;
* ``tracing.otlpEndpoint`` -> the receiver's address (gRPC ``http://127.0.0.1:<port>``;
  for Langfuse ``http://127.0.0.1:<port>/api/public/otel``, the same path as written);
* the ``gemini`` backend gets ``hostOverride`` -> the fake (the public API is not reachable);
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

``$GEMINI_API_KEY`` stays in the file and is exported to the fake's key; the ``fields.add``
expressions, the sampling, ``headers`` and the provider's ``model: gemini-1.5-flash`` stay
as written.

README steps checked:

* "Send a request to the LLM provider" -- ``curl http://localhost:3000/`` with the README's
  body and its ``Authorization: Bearer $GEMINI_API_KEY``: a chat completion comes back, the
  provider got ``gemini-1.5-flash`` ("overrides the model in requests") with the configured
  key;
* "search for our spans" (Jaeger): the request's trace reaches the OTLP receiver with "the
  OpenTelemetry v1.37.0 specification for span attributes": the SERVER span of the request
  and under it the inference span ``chat gemini-1.5-flash`` (``gen_ai.operation.name``,
  ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` /
  ``output_tokens``, and the recommended ``gen_ai.response.model``: the model the provider
  says answered);
* the provider variants: ``span.name`` ``openai.chat`` and the attributes each file adds
  (OpenLLMetry's ``gen_ai.system``, flattened ``gen_ai.prompt`` / ``gen_ai.completion``,
  ``gen_ai.usage.prompt_tokens`` ...; Phoenix's ``openinference.span.kind`` and
  ``llm.*``; Langfuse over OTLP/HTTP with its ``Authorization`` header);
* the token usage also lands in the gateway's metrics
  (``agentgateway_gen_ai_client_token_usage``).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.llm import fakes as F
from tests.llm.conftest import Fakes, fake_server
from tests.observability.otlp import GrpcReceiver, HttpReceiver
from tests.support.harness import free_port

TRACING = Path(__file__).parents[1] / "agentgateway" / "examples" / "llm-telemetry" / "tracing"
BODY = {"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "Explain how AI works"}]}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def fakes():
    with fake_server("tests.llm.fakes") as (port, proc):
        yield Fakes(port, proc)


def _config(name: str, endpoint: str, fake: str) -> tuple[dict, int]:
    cfg = yaml.safe_load((TRACING / name).read_text())
    tracing = cfg["config"]["tracing"]
    assert tracing["randomSampling"] is True
    written = tracing["otlpEndpoint"]
    if name == "langfuse.yaml":
        assert written == "https://us.cloud.langfuse.com/api/public/otel" and tracing["otlpProtocol"] == "http"
        tracing["otlpEndpoint"] = endpoint + "/api/public/otel"
    else:
        assert written == "http://localhost:4317" and "otlpProtocol" not in tracing
        tracing["otlpEndpoint"] = endpoint
    (bind,) = cfg["binds"]
    assert bind["port"] == 3000
    port = bind["port"] = free_port()
    (route,) = bind["listeners"][0]["routes"]
    assert route["policies"] == {"backendAuth": {"key": "$GEMINI_API_KEY"}}
    (backend,) = route["backends"]
    assert backend["ai"] == {"name": "gemini", "provider": {"gemini": {"model": "gemini-1.5-flash"}}}
    backend["ai"]["hostOverride"] = fake
    cfg["config"].update({f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")})
    return cfg, port


def _ask(port: int) -> dict:
    r = httpx.post(
        f"http://localhost:{port}/",
        json=BODY,
        headers={"content-type": "application/json", "authorization": f"Bearer {F.GEMINI_KEY}"},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _span(receiver) -> dict:
    return next(s for s in receiver.wait(1) if s["kind"] == 2)  # the gateway's server span


def _run(harness, fakes, name: str, receiver, endpoint: str):
    cfg, port = _config(name, endpoint, f"127.0.0.1:{fakes.port}")
    fakes.reset()
    gw = harness.gateway(cfg, env={"GEMINI_API_KEY": F.GEMINI_KEY})
    answer = _ask(port)
    fakes.assert_valid()  # the key in x-goog-api-key, the model in the path, a valid body
    (seen,) = fakes.log()
    return gw, answer, seen, _span(receiver)


@pytest.fixture
def grpc_receiver():
    r = GrpcReceiver()
    yield r
    r.stop()


def test_otel_request_and_its_span(harness, fakes, grpc_receiver):
    gw, answer, seen, span = _run(harness, fakes, "otel.yaml", grpc_receiver, f"http://127.0.0.1:{grpc_receiver.port}")
    assert "gemini-1.5-flash" in seen["path"], seen  # the provider's model overrides the request's
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["role"] == "assistant"
    assert span["name"] == "POST listener0/route0" and span["attrs"]["url.path"] == "/"
    # the inference span of the GenAI conventions: a CLIENT span "chat <model>" in the trace
    (chat,) = [s for s in grpc_receiver.wait(2) if s["kind"] == 3]
    assert chat["trace_id"] == span["trace_id"] and chat["parent"] == span["span_id"]
    assert chat["name"] == "chat gemini-1.5-flash"
    a = chat["attrs"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.request.model"] == "gemini-1.5-flash"
    assert a["gen_ai.response.model"] == "gemini-1.5-flash"  # the answer's modelVersion
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (F.IN_TOKENS, F.OUT_TOKENS)
    # fields.add is empty: no prompt or completion content is exported
    for s in (span, chat):
        assert not any(k.startswith(("gen_ai.prompt", "gen_ai.completion")) for k in s["attrs"]), s
    # the token usage in the metrics as well
    text = gw.metrics_text()
    assert "agentgateway_gen_ai_client_token_usage" in text, text[:2000]
    used = {
        s.labels.get("gen_ai_token_type"): s.value
        for s in gw.metrics()
        if s.name == "agentgateway_gen_ai_client_token_usage_sum"
    }
    assert used == {"input": F.IN_TOKENS, "output": F.OUT_TOKENS}, used


def test_openllmetry_attributes(harness, fakes, grpc_receiver):
    _gw, answer, _seen, span = _run(
        harness, fakes, "openllmetry.yaml", grpc_receiver, f"http://127.0.0.1:{grpc_receiver.port}"
    )
    assert span["name"] == "openai.chat"
    a = span["attrs"]
    assert a["gen_ai.system"] == "gcp.gemini"
    assert a["gen_ai.prompt.0.role"] == "user" and a["gen_ai.prompt.0.content"] == "Explain how AI works"
    content = answer["choices"][0]["message"]["content"]
    assert a["gen_ai.completion.0.role"] == "assistant" and a["gen_ai.completion.0.content"] == content
    assert (a["gen_ai.usage.prompt_tokens"], a["gen_ai.usage.completion_tokens"]) == (F.IN_TOKENS, F.OUT_TOKENS)
    assert a["llm.usage.total_tokens"] == F.IN_TOKENS + F.OUT_TOKENS and a["llm.is_streaming"] is False


def test_phoenix_attributes(harness, fakes, grpc_receiver):
    _gw, answer, _seen, span = _run(
        harness, fakes, "phoenix.yaml", grpc_receiver, f"http://127.0.0.1:{grpc_receiver.port}"
    )
    assert span["name"] == "openai.chat"
    a = span["attrs"]
    assert a["openinference.span.kind"] == "LLM" and a["llm.system"] == "gcp.gemini"
    assert a["llm.input_messages.0.message.role"] == "user"
    assert a["llm.input_messages.0.message.content"] == "Explain how AI works"
    assert a["llm.output_messages.0.content"] == answer["choices"][0]["message"]["content"]
    assert (a["llm.token_count.prompt"], a["llm.token_count.completion"]) == (F.IN_TOKENS, F.OUT_TOKENS)
    assert a["llm.token_count.total"] == F.IN_TOKENS + F.OUT_TOKENS


def test_langfuse_over_otlp_http_with_its_header(harness, fakes):
    receiver = HttpReceiver()
    try:
        _gw, _answer, _seen, span = _run(harness, fakes, "langfuse.yaml", receiver, f"http://127.0.0.1:{receiver.port}")
        assert span["name"] == "openai.chat" and span["attrs"]["gen_ai.system"] == "gcp.gemini"
        assert receiver.paths[0] == "/api/public/otel/v1/traces", receiver.paths
        assert receiver.headers[0]["authorization"] == "Basic xx"
    finally:
        receiver.stop()
