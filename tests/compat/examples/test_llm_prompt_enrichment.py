"""agentgateway's ``examples/llm-prompt-enrichment``, run as its README runs it, against a
real agentgw.

README: the configuration appends a system prompt telling the LLM to respond with emojis
only; the caller's ``Authorization: Bearer $OPENAI_API_KEY`` is what authenticates to
OpenAI (the config has no key of its own). The README's request (``POST
/v1/chat/completions``, ``gpt-5-nano``, "write a haiku about ai") is made with the official
``openai`` SDK and once more as the README's curl sends it, against the schema-checking
OpenAI fake (``tests/llm/fakes.py``), which shows the enriched prompt as OpenAI receives it
and answers ``[system: <system prompt>] echo: <user text>``. The config also routes
``/v1/responses``; that route is checked the same way.

Changed from the vendored ``config.yaml``, and why:

* ``binds[0].port`` 3000 -> a free port; a ``config`` block added with ``adminAddr`` /
  ``statsAddr`` / ``readinessAddr`` on free ports (the harness needs them; the defaults may
  be taken here).
* ``hostOverride: 127.0.0.1:<fake port>`` added to the ``openai`` AI backend: the public
  API host is not reachable in tests. The backend's ``provider: {openAI: {}}`` is untouched.

The caller's key is the OpenAI fake's test key (the README's ``$OPENAI_API_KEY``).
Everything else (routes, ``ai.routes``, ``ai.prompts``) is as vendored.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.llm import fakes as F
from tests.llm.conftest import Fakes, fake_server
from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "llm-prompt-enrichment" / "config.yaml"
SYSTEM = "Respond with emojis only"
PROMPT = "write a haiku about ai"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def fakes():
    with fake_server("tests.llm.fakes") as (port, proc):
        yield Fakes(port, proc)


def _config(fake_port: int) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    (bind,) = cfg["binds"]
    (listener,) = bind["listeners"]
    (rt,) = listener["routes"]
    (backend,) = rt["backends"]
    # the example as vendored
    assert bind["port"] == 3000 and "config" not in cfg
    assert backend == {"ai": {"name": "openai", "provider": {"openAI": {}}}}
    assert rt["policies"]["ai"] == {
        "routes": {"/v1/chat/completions": "completions", "/v1/responses": "responses"},
        "prompts": {"append": [{"role": "system", "content": SYSTEM}]},
    }
    # the changes (see the module docstring)
    bind["port"] = free_port()
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    backend["ai"]["hostOverride"] = f"127.0.0.1:{fake_port}"
    return cfg


@pytest.fixture(scope="module")
def gw(module_harness, fakes):
    return module_harness.gateway(_config(fakes.port))


@pytest.fixture
def seen(fakes):
    """The requests the fake receives during one test (all of them schema-valid)."""
    fakes.reset()
    yield fakes
    fakes.assert_valid()


def _client(gw) -> openai.OpenAI:
    # the README passes the caller's own OpenAI key through the gateway
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=F.OPENAI_KEY, max_retries=0, timeout=20)


def test_the_system_prompt_is_appended_to_chat_completions(gw, seen):
    r = _client(gw).chat.completions.create(model="gpt-5-nano", messages=[{"role": "user", "content": PROMPT}])
    # the model answered under the appended instruction
    assert r.choices[0].message.content == f"[system: {SYSTEM}] echo: {PROMPT}"
    (sent,) = seen.log()
    assert (sent["kind"], sent["path"]) == ("openai", "/v1/chat/completions")
    assert sent["body"]["model"] == "gpt-5-nano"
    # appended: after the caller's messages, with the configured role
    assert sent["body"]["messages"] == [{"role": "user", "content": PROMPT}, {"role": "system", "content": SYSTEM}]
    # the caller's key reached OpenAI
    assert sent["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"


def test_the_readme_curl(gw, seen):
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {F.OPENAI_KEY}"},
        json={"model": "gpt-5-nano", "messages": [{"role": "user", "content": PROMPT}]},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == f"[system: {SYSTEM}] echo: {PROMPT}"
    (sent,) = seen.log()
    assert [m["role"] for m in sent["body"]["messages"]] == ["user", "system"]
    assert sent["body"]["messages"][-1]["content"] == SYSTEM


def test_the_caller_system_prompt_is_kept_and_the_enrichment_comes_last(gw, seen):
    msgs = [{"role": "system", "content": "You are a poet."}, {"role": "user", "content": PROMPT}]
    r = _client(gw).chat.completions.create(model="gpt-5-nano", messages=msgs)
    assert r.choices[0].message.content == f"[system: {SYSTEM}] echo: {PROMPT}"
    (sent,) = seen.log()
    assert sent["body"]["messages"] == [*msgs, {"role": "system", "content": SYSTEM}]


def test_a_streamed_chat_is_enriched_too(gw, seen):
    stream = _client(gw).chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == f"[system: {SYSTEM}] echo: {PROMPT}"
    (sent,) = seen.log()
    assert sent["body"]["stream"] is True
    assert sent["body"]["messages"][-1] == {"role": "system", "content": SYSTEM}


def test_the_responses_route_is_enriched(gw, seen):
    resp = _client(gw).responses.create(model="gpt-5-nano", input=PROMPT)
    assert resp.status == "completed" and resp.output_text.startswith("native:")
    (sent,) = seen.log()
    assert (sent["kind"], sent["path"]) == ("openai", "/v1/responses")
    items = sent["body"]["input"]
    # the caller's text input became a user item, followed by the appended system item
    assert isinstance(items, list) and len(items) == 2, items
    assert [i.get("role") for i in items] == ["user", "system"]

    def text(item):
        c = item["content"]
        return c if isinstance(c, str) else "".join(p.get("text", "") for p in c)

    assert (text(items[0]), text(items[1])) == (PROMPT, SYSTEM)
    assert sent["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"
