"""agentgateway's ``examples/llm-prompt-guard``, run as its README runs it, against a real
agentgw.

README steps checked:

* the ``SSN`` request (``curl http://localhost:3000`` with an OpenAI chat body naming
  ``SSN``) is rejected with status 400, ``content-type: application/json`` and the
  configured ``content_policy_violation`` body; the second rule (``Social Security``) too;
* the request with an email address is rejected by the second guard (the ``email``
  builtin) with its own body (``pii_detected``);
* neither reaches OpenAI; a request that matches no rule does (with the caller's
  ``Authorization``, the README's ``$OPENAI_API_KEY``, and the backend's model);
* the same through the official ``openai`` SDK (the errors it raises carry the configured
  ``type`` / ``code`` / ``message``);
* "Custom Response Headers / Multiple Header Values": the README's ``rejection`` block
  (``set`` / ``add`` / ``remove``, status 403, its body) in place of the first guard's;
* "Guardrails Webhook": the README's webhook policy (``forwardHeaderMatches`` ``h1`` /
  ``h2``; ``POST /request`` and ``POST /response`` on the target) with the provider fake's
  guardrail webhook as the target.

Changed from the vendored ``config.yaml``, and why:

* ``binds[0].port`` 3000 -> a free port; a ``config`` block added with ``adminAddr`` /
  ``statsAddr`` / ``readinessAddr`` on free ports (the harness needs them; the defaults may
  be taken here).
* ``hostOverride: 127.0.0.1:<fake port>`` added to the ``openai`` AI backend (its
  ``provider`` untouched): the public API host is not reachable in tests.
* For the README's snippets (not part of ``config.yaml``): the snippet put in the
  vendored config's ``policies.ai.promptGuard`` as the README shows it, the webhook's
  ``target.host`` ``127.0.0.1:8000`` -> the fake's address.

Not run: the README's "JSON Error Response" snippet (``regex.action: {reject: {response:
...}}``) is an older shape that agentgateway's current schema (``action: reject|mask`` and
a sibling ``rejection``) no longer takes; the vendored config shows the current shape,
checked above. The webhook's CEL ``headers`` (``:path``, ``x-user``...) are not supported
by agentgw yet (see the report of this test's author).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.llm import fakes as F
from tests.llm.conftest import Fakes, fake_server
from tests.support.harness import free_port

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "llm-prompt-guard" / "config.yaml"

SSN_BODY = {
    "error": {
        "message": "Request rejected: Content contains sensitive information",
        "type": "invalid_request_error",
        "code": "content_policy_violation",
    }
}
EMAIL_BODY = {
    "error": {
        "message": "Response blocked: Contains email",
        "type": "invalid_request_error",
        "code": "pii_detected",
    }
}

# README "Multiple Header Values" (as YAML reads it: the repeated ``add`` key keeps its last value)
HEADERS_SNIPPET = """
rejection:
  status: 403
  headers:
    set:
      content-type: "application/json"
      x-moderation-version: "v1"
    add:
      x-blocked-category: "violence"
      x-blocked-category: "hate"
    remove:
      - server
  body: '{"error": "Forbidden"}'
"""

# README "Guardrails Webhook"
WEBHOOK_SNIPPET = """
policies:
  ai:
    promptGuard:
      request:
      - webhook:
          target:
            host: 127.0.0.1:8000
          # By default, request headers are not forwarded.
          # forwardHeaderMatches specifies a list of header matchers to use
          # to determine the request headers to forward to the webhook
          forwardHeaderMatches:
          - name: h1
            value:
              regex: v1
          - name: h2
            value:
              regex: v2.*
      response:
      - webhook:
          target:
            host: 127.0.0.1:8000
          # set forwardHeaderMatches for to forward response headers
"""

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def fakes():
    with fake_server("tests.llm.fakes") as (port, proc):
        yield Fakes(port, proc)


def _route(cfg: dict) -> dict:
    return cfg["binds"][0]["listeners"][0]["routes"][0]


def _config(fake_port: int) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    (bind,) = cfg["binds"]
    rt = _route(cfg)
    (backend,) = rt["backends"]
    # the example as vendored
    assert bind["port"] == 3000 and "config" not in cfg
    assert backend == {"ai": {"name": "openai", "provider": {"openAI": {"model": "gpt-4o-mini"}}}}
    guards = rt["policies"]["ai"]["promptGuard"]["request"]
    assert [g["regex"] for g in guards] == [
        {"action": "reject", "rules": [{"pattern": "SSN"}, {"pattern": "Social Security"}]},
        {"action": "reject", "rules": [{"builtin": "email"}]},
    ]
    assert [json.loads(g["rejection"]["body"]) for g in guards] == [SSN_BODY, EMAIL_BODY]
    # the changes (see the module docstring)
    bind["port"] = free_port()
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    backend["ai"]["hostOverride"] = f"127.0.0.1:{fake_port}"
    return cfg


@pytest.fixture(scope="module")
def gw(module_harness, fakes):
    # an empty OPENAI_API_KEY: the caller's key is the one the README sends
    return module_harness.gateway(_config(fakes.port), env={"OPENAI_API_KEY": ""})


@pytest.fixture
def seen(fakes):
    """The requests the fake receives during one test (all of them schema-valid)."""
    fakes.reset()
    yield fakes
    fakes.assert_valid()


def _readme_request(url: str, user: str, **headers) -> httpx.Response:
    """The README's curl: ``POST /`` with the caller's OpenAI key."""
    return httpx.post(
        url,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {F.OPENAI_KEY}", **headers},
        json={
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": user},
            ],
        },
        timeout=20,
    )


def _client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=F.OPENAI_KEY, max_retries=0, timeout=20)


@pytest.mark.parametrize("user", ["Is 123-45-6789 a valid SSN", "What is my Social Security number?"])
def test_ssn_request_is_rejected_with_the_configured_body(gw, seen, user):
    r = _readme_request(gw.url, user)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == SSN_BODY
    assert seen.log() == []  # never reached OpenAI


def test_email_request_is_rejected_by_the_second_guard(gw, seen):
    r = _readme_request(gw.url, "My email is test@example.com")
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == EMAIL_BODY
    assert seen.log() == []


def test_a_clean_request_reaches_openai(gw, seen):
    # a number shaped like an SSN is no match: the rules are the literal words
    r = _readme_request(gw.url, "Is 123-45-6789 a valid number")
    assert r.status_code == 200, r.text
    answer = r.json()["choices"][0]["message"]["content"]
    assert answer == "[system: You are a helpful assistant.] echo: Is 123-45-6789 a valid number"
    (sent,) = seen.log()
    assert (sent["kind"], sent["path"]) == ("openai", "/v1/chat/completions")
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"


def test_the_openai_sdk_sees_the_configured_errors(gw, seen):
    c = _client(gw)
    for user, body in (("Is 123-45-6789 a valid SSN", SSN_BODY), ("My email is test@example.com", EMAIL_BODY)):
        with pytest.raises(openai.BadRequestError) as exc:
            c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": user}])
        err = exc.value
        assert err.status_code == 400
        assert (err.type, err.code) == (body["error"]["type"], body["error"]["code"])
        assert body["error"]["message"] in err.message
    ok = c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert ok.choices[0].message.content == "echo: hello"
    assert [e["body"]["messages"][-1]["content"] for e in seen.log()] == ["hello"]


def test_readme_custom_rejection_headers(module_harness, fakes, seen):
    cfg = _config(fakes.port)
    snippet = yaml.safe_load(HEADERS_SNIPPET)
    _route(cfg)["policies"]["ai"]["promptGuard"]["request"][0]["rejection"] = snippet["rejection"]
    gw = module_harness.gateway(cfg, env={"OPENAI_API_KEY": ""})
    r = _readme_request(gw.url, "Is 123-45-6789 a valid SSN")
    assert r.status_code == 403, r.text
    assert r.json() == {"error": "Forbidden"}
    assert r.headers["content-type"] == "application/json"  # set
    assert r.headers["x-moderation-version"] == "v1"  # set
    assert r.headers.get_list("x-blocked-category") == ["hate"]  # add (YAML kept the last)
    assert "server" not in r.headers  # remove
    # the other guard keeps its own rejection
    r = _readme_request(gw.url, "My email is test@example.com")
    assert r.status_code == 400 and r.json() == EMAIL_BODY
    assert seen.log() == []


def _webhook_gateway(module_harness, fakes):
    cfg = _config(fakes.port)
    policies = yaml.safe_load(WEBHOOK_SNIPPET)["policies"]
    for side in ("request", "response"):
        (g,) = policies["ai"]["promptGuard"][side]
        assert g["webhook"]["target"] == {"host": "127.0.0.1:8000"}
        g["webhook"]["target"]["host"] = f"127.0.0.1:{fakes.port}"
    _route(cfg)["policies"] = policies
    return module_harness.gateway(cfg, env={"OPENAI_API_KEY": ""})


@pytest.fixture(scope="module")
def webhook_gw(module_harness, fakes):
    return _webhook_gateway(module_harness, fakes)


def test_readme_webhook_checks_request_and_response(webhook_gw, seen):
    r = _readme_request(webhook_gw.url, "hello there", h1="v1", h2="v2-beta", h3="v3")
    assert r.status_code == 200, r.text
    answer = r.json()["choices"][0]["message"]["content"]
    assert answer == "[system: You are a helpful assistant.] echo: hello there"
    log = seen.log()
    assert [(e["kind"], e["path"]) for e in log] == [
        ("webhook", "/request"),
        ("openai", "/v1/chat/completions"),
        ("webhook", "/response"),
    ]
    req_hook, _, resp_hook = log
    texts = [m["content"] for m in req_hook["body"]["body"]["messages"]]
    assert "hello there" in texts and "You are a helpful assistant." in texts
    assert [c["message"]["content"] for c in resp_hook["body"]["body"]["choices"]] == [answer]
    # forwardHeaderMatches: h1 and h2 (matching their regexes) go to the request webhook only
    assert (req_hook["headers"].get("h1"), req_hook["headers"].get("h2")) == ("v1", "v2-beta")
    assert "h3" not in req_hook["headers"] and "authorization" not in req_hook["headers"]
    assert not {"h1", "h2"} & set(resp_hook["headers"])


def test_readme_webhook_headers_must_match_their_regex(webhook_gw, seen):
    r = _readme_request(webhook_gw.url, "hello", h1="v2", h2="x-v2")
    assert r.status_code == 200, r.text
    req_hook = seen.log()[0]
    assert req_hook["path"] == "/request"
    assert "h1" not in req_hook["headers"] and "h2" not in req_hook["headers"]


def test_readme_webhook_rejects_and_masks(webhook_gw, seen):
    # the webhook rejects: its status and body reach the client, OpenAI is not called
    r = _readme_request(webhook_gw.url, "a forbidden question")
    assert r.status_code == 422, r.text
    assert "webhook says no" in r.text
    assert [e["path"] for e in seen.log()] == ["/request"]
    seen.reset()
    # the webhook masks: OpenAI gets the masked prompt
    r = _readme_request(webhook_gw.url, "tell me the secret-word")
    assert r.status_code == 200, r.text
    sent = next(e for e in seen.log() if e["kind"] == "openai")
    assert sent["body"]["messages"][-1]["content"] == "tell me the [redacted]"
    assert r.json()["choices"][0]["message"]["content"].endswith("echo: tell me the [redacted]")


def test_the_vendored_policy_is_unchanged_by_the_variants():
    """The snippets went into copies: the example file itself is what the first tests ran."""
    a = _config(1)
    b = copy.deepcopy(a)
    assert _route(a)["policies"] == _route(b)["policies"]
