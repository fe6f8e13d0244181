"""agentgateway's ``examples/llm-basic``, run as its README runs it, against a real agentgw.

README: requests for the ``smart`` model go to OpenAI as ``gpt-5.5``; requests for models
prefixed ``anthropic/`` go to Anthropic with the prefix removed. The two README requests
(``POST /v1/chat/completions`` for ``smart``, ``POST /v1/messages`` for
``anthropic/claude-3-5-haiku-latest``) are made with the official ``openai`` and
``anthropic`` SDK clients, and once more as the README's curl sends them (no key of the
caller), against the schema-checking provider fakes (``tests/llm/fakes.py``).

Changed from the vendored ``config.yaml``, and why:

* ``llm.port`` 4000 -> a free port; ``config.readinessAddr`` / ``config.statsAddr`` -> free
  ports and ``config.adminAddr`` added on a free port (the fixed ports may be taken here and
  the harness needs all three addresses).
* ``params.baseUrl`` added to both models, pointing at the provider fake (OpenAI at
  ``<fake>/v1``, Anthropic at ``<fake>``): the public API hosts are not reachable in tests.
* ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` are set in the gateway's environment to the
  fake's test keys; the config's ``$OPENAI_API_KEY`` / ``$ANTHROPIC_API_KEY`` stay as written.

Everything else (``frontendPolicies``, model names, ``params.model``, the CEL
``transformation``) is as vendored.
"""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml

from tests.llm import fakes as F
from tests.llm.conftest import Fakes, fake_server
from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "llm-basic" / "config.yaml"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def fakes():
    with fake_server("tests.llm.fakes") as (port, proc):
        yield Fakes(port, proc)


def _config(fake_url: str) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    models = {m["name"]: m for m in cfg["llm"]["models"]}
    # the example as vendored
    assert cfg["llm"]["port"] == 4000
    assert models["smart"]["provider"] == "openAI"
    assert models["smart"]["params"] == {"model": "gpt-5.5", "apiKey": "$OPENAI_API_KEY"}
    assert models["anthropic/*"]["provider"] == "anthropic"
    assert models["anthropic/*"]["params"] == {"apiKey": "$ANTHROPIC_API_KEY"}
    assert models["anthropic/*"]["transformation"] == {"model": 'llmRequest.model.stripPrefix("anthropic/")'}
    # the changes (see the module docstring)
    cfg["llm"]["port"] = free_port()
    cfg["config"].update({f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")})
    models["smart"]["params"]["baseUrl"] = fake_url + "/v1"
    models["anthropic/*"]["params"]["baseUrl"] = fake_url
    return cfg


@pytest.fixture(scope="module")
def gw(module_harness, fakes):
    cfg = _config(fakes.url)
    g = module_harness.gateway(cfg, env={"OPENAI_API_KEY": F.OPENAI_KEY, "ANTHROPIC_API_KEY": F.ANTHROPIC_KEY})
    g.llm_url = f"http://127.0.0.1:{cfg['llm']['port']}"
    return g


@pytest.fixture
def seen(fakes):
    """The requests the fakes receive during one test (all of them schema-valid)."""
    fakes.reset()
    yield fakes
    fakes.assert_valid()


def test_smart_is_sent_to_openai_as_gpt_5_5(gw, seen):
    client = openai.OpenAI(base_url=gw.llm_url + "/v1", api_key="not-the-provider-key", max_retries=0, timeout=20)
    r = client.chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "Say hello from the smart model"}]
    )
    assert r.choices[0].message.content == "echo: Say hello from the smart model"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (F.IN_TOKENS, F.OUT_TOKENS)
    (sent,) = seen.log()
    assert (sent["kind"], sent["path"]) == ("openai", "/v1/chat/completions")
    assert sent["body"]["model"] == "gpt-5.5"
    assert sent["body"]["messages"] == [{"role": "user", "content": "Say hello from the smart model"}]
    # the configured key ($OPENAI_API_KEY), not the caller's
    assert sent["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"


def test_smart_as_the_readme_curl_sends_it(gw, seen):
    r = httpx.post(
        gw.llm_url + "/v1/chat/completions",
        headers={"Content-Type": "application/json"},
        json={"model": "smart", "messages": [{"role": "user", "content": "Say hello from the smart model"}]},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"]["role"] == "assistant"
    assert doc["choices"][0]["message"]["content"] == "echo: Say hello from the smart model"
    (sent,) = seen.log()
    assert sent["body"]["model"] == "gpt-5.5" and sent["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"


def test_anthropic_prefix_is_stripped_before_forwarding(gw, seen):
    client = anthropic.Anthropic(base_url=gw.llm_url, api_key="not-the-provider-key", max_retries=0, timeout=20)
    msg = client.messages.create(
        model="anthropic/claude-3-5-haiku-latest",
        max_tokens=64,
        messages=[{"role": "user", "content": "Say hello from Anthropic"}],
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert [b.text for b in msg.content if b.type == "text"] == ["echo: Say hello from Anthropic"]
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (F.IN_TOKENS, F.OUT_TOKENS)
    (sent,) = seen.log()
    assert (sent["kind"], sent["path"]) == ("anthropic", "/v1/messages")
    assert sent["body"]["model"] == "claude-3-5-haiku-latest"
    assert sent["body"]["max_tokens"] == 64
    assert sent["body"]["messages"] == [{"role": "user", "content": "Say hello from Anthropic"}]
    # the configured key ($ANTHROPIC_API_KEY), not the caller's
    assert sent["headers"]["x-api-key"] == F.ANTHROPIC_KEY


def test_anthropic_as_the_readme_curl_sends_it(gw, seen):
    r = httpx.post(
        gw.llm_url + "/v1/messages",
        headers={"Content-Type": "application/json"},
        json={
            "model": "anthropic/claude-3-5-haiku-latest",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello from Anthropic"}],
        },
        timeout=20,
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["type"] == "message"
    assert doc["content"] == [{"type": "text", "text": "echo: Say hello from Anthropic"}]
    (sent,) = seen.log()
    assert sent["body"]["model"] == "claude-3-5-haiku-latest" and sent["headers"]["x-api-key"] == F.ANTHROPIC_KEY


def test_a_model_matching_no_entry_is_not_forwarded(gw, seen):
    client = openai.OpenAI(base_url=gw.llm_url + "/v1", api_key="x", max_retries=0, timeout=20)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert 400 <= exc.value.status_code < 500, exc.value
    print(exc.value.status_code, exc.value.body)
    assert seen.log() == []
