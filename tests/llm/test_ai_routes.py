"""``ai`` backends on ordinary routes: provider groups, timeouts, the ``ai`` policy
(prompt guards incl. the webhook, aliases, prompts), backendAuth passthrough, and token
rate limits; plus the AWS credential source's background refresh."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.llm import fakes as F
from tests.support.harness import REPO_ROOT, free_port, gateway_config, run_cli


def _openai(fake, model, **extra):
    return {
        "name": f"openai-{model}",
        "provider": {"openAI": {"model": model}},
        "hostOverride": f"127.0.0.1:{fake.port}",
        **extra,
    }


@pytest.fixture(scope="module")
def gw(module_harness, fakes):
    key = {"backendAuth": {"key": F.OPENAI_KEY}}
    routes = [
        {
            "name": "groups",
            "matches": [{"path": {"pathPrefix": "/groups"}}],
            "backends": [
                {
                    "ai": {
                        "groups": [
                            {"providers": [{**_openai(fakes, "fail-500"), "policies": key}]},
                            {
                                "providers": [
                                    {
                                        "name": "gem",
                                        "provider": {"gemini": {"model": "gemini-2.0-flash"}},
                                        "hostOverride": f"127.0.0.1:{fakes.port}",
                                        "policies": {"backendAuth": {"key": F.GEMINI_KEY}},
                                    }
                                ]
                            },
                        ]
                    }
                }
            ],
        },
        {
            "name": "slow",
            "matches": [{"path": {"pathPrefix": "/slow"}}],
            "policies": {"timeout": {"backendRequestTimeout": "500ms"}},
            "backends": [
                {
                    "ai": {
                        "groups": [
                            {"providers": [{**_openai(fakes, "slow"), "policies": key}]},
                            {
                                "providers": [
                                    {
                                        "name": "claude",
                                        "provider": {"anthropic": {"model": "claude-x"}},
                                        "hostOverride": f"127.0.0.1:{fakes.port}",
                                        "policies": {"backendAuth": {"key": F.ANTHROPIC_KEY}},
                                    }
                                ]
                            },
                        ]
                    }
                }
            ],
        },
        {
            "name": "guarded",
            "matches": [{"path": {"pathPrefix": "/guarded"}}],
            "policies": {
                "backendAuth": {"key": F.OPENAI_KEY},
                "ai": {
                    "modelAliases": {"fast": "gpt-4o-mini"},
                    "prompts": {"prepend": [{"role": "system", "content": "company policy"}]},
                    "promptGuard": {
                        "request": [
                            {
                                "regex": {"action": "reject", "rules": [{"pattern": "DROP TABLE", "name": "sql"}]},
                                "rejection": {"status": 400, "body": "no SQL please"},
                            },
                            {"webhook": {"target": {"host": f"127.0.0.1:{fakes.port}"}}},
                        ],
                        "response": [
                            {"regex": {"action": "mask", "rules": [{"builtin": "phoneNumber"}]}},
                            {"webhook": {"target": {"host": f"127.0.0.1:{fakes.port}"}}},
                        ],
                    },
                },
            },
            "backends": [{"ai": {"name": "oa", "provider": {"openAI": {}}, "hostOverride": f"127.0.0.1:{fakes.port}"}}],
        },
        {
            "name": "passthrough",
            "matches": [{"path": {"pathPrefix": "/mine"}}],
            "policies": {"backendAuth": {"passthrough": {}}},
            "backends": [
                {
                    "ai": {
                        "name": "oa",
                        "provider": {"openAI": {"model": "gpt-4o"}},
                        "hostOverride": f"127.0.0.1:{fakes.port}",
                    }
                }
            ],
        },
        {
            # no key of the gateway's own: the client's is forwarded, as agentgateway does;
            # ``ai.routes`` names one API, other paths (``/``) are chat completions
            "name": "nokey",
            "matches": [{"path": {"pathPrefix": "/nokey"}}],
            "policies": {"ai": {"routes": {"/v1/messages": "messages"}}},
            "backends": [{"ai": {"name": "oa", "provider": {"openAI": {}}, "hostOverride": f"127.0.0.1:{fakes.port}"}}],
        },
        {
            # the gateway's own credential (apiKey) is consumed, never forwarded
            "name": "gated",
            "matches": [{"path": {"pathPrefix": "/gated"}}],
            "policies": {"apiKey": {"mode": "strict", "keys": [{"key": "gateway-key"}]}},
            "backends": [{"ai": {"name": "oa", "provider": {"openAI": {}}, "hostOverride": f"127.0.0.1:{fakes.port}"}}],
        },
        {
            "name": "limited",
            "matches": [{"path": {"pathPrefix": "/limited"}}],
            "policies": {
                "backendAuth": {"key": F.OPENAI_KEY},
                "localRateLimit": [{"type": "tokens", "maxTokens": 30, "tokensPerFill": 30, "fillInterval": "1h"}],
            },
            "backends": [
                {
                    "ai": {
                        "name": "oa",
                        "provider": {"openAI": {"model": "gpt-4o"}},
                        "hostOverride": f"127.0.0.1:{fakes.port}",
                    }
                }
            ],
        },
    ]
    return module_harness.gateway(gateway_config(routes))


def client(gw, prefix: str, key: str = "client-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/{prefix}/v1", api_key=key, max_retries=0, timeout=20)


@pytest.fixture(autouse=True)
def _reset(fakes):
    fakes.reset()
    yield
    fakes.assert_valid()


def test_groups_fail_over_in_priority_order(gw, fakes):
    r = client(gw, "groups").chat.completions.create(model="anything", messages=[{"role": "user", "content": "q"}])
    assert r.choices[0].message.content == "echo: q"
    assert [e["kind"] for e in fakes.log()] == ["openai", "gemini"]


def test_timeout_fails_over(gw, fakes):
    t = time.monotonic()
    r = client(gw, "slow").chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])
    assert r.choices[0].message.content == "echo: q"
    assert time.monotonic() - t < 2.5
    assert fakes.last()["kind"] == "anthropic"


def test_alias_prompts_and_guards(gw, fakes):
    c = client(gw, "guarded")
    r = c.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "call 415-555-0100 about secret-word"}]
    )
    seen = [e for e in fakes.log() if e["kind"] == "openai"][-1]["body"]
    assert seen["model"] == "gpt-4o-mini"
    assert seen["messages"][0] == {"role": "system", "content": "company policy"}
    assert seen["messages"][1]["content"] == "call 415-555-0100 about [redacted]"  # webhook masked the request
    assert r.choices[0].message.content == "[system: company policy] echo: call <PHONE_NUMBER> about [redacted]"
    hooks = [e for e in fakes.log() if e["kind"] == "webhook"]
    assert [h["path"] for h in hooks] == ["/request", "/response"]
    with pytest.raises(openai.BadRequestError) as ei:
        c.chat.completions.create(model="fast", messages=[{"role": "user", "content": "DROP TABLE users"}])
    assert ei.value.body == "no SQL please"  # the configured rejection body, as written
    with pytest.raises(openai.UnprocessableEntityError) as wi:
        c.chat.completions.create(model="fast", messages=[{"role": "user", "content": "something forbidden"}])
    assert wi.value.body["message"] == "webhook says no"
    assert not [e for e in fakes.log() if e["kind"] == "openai" and "DROP" in str(e["body"])]


def test_stream_response_mask(gw):
    chunks = list(
        client(gw, "guarded").chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "ring 415-555-0100"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[system: company policy] echo: ring <PHONE_NUMBER>"


def test_backend_auth_passthrough(gw, fakes):
    r = client(gw, "mine", key=F.OPENAI_KEY).chat.completions.create(
        model="x", messages=[{"role": "user", "content": "q"}]
    )
    assert r.choices[0].message.content == "echo: q"
    assert fakes.last()["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"
    with pytest.raises(openai.BadRequestError):
        client(gw, "mine", key="wrong").chat.completions.create(model="x", messages=[{"role": "user", "content": "q"}])
    fakes.reset()  # the rejected request was expected to fail the fake's auth check


def test_without_a_key_the_clients_own_key_is_forwarded(gw, fakes):
    r = client(gw, "nokey", key=F.OPENAI_KEY).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "q"}]
    )
    assert r.choices[0].message.content == "echo: q"
    assert fakes.last("openai")["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"


def test_ai_backend_takes_other_paths_as_chat_completions(gw, fakes):
    # agentgateway's examples post chat completions to ``/``; an ``ai.routes`` table that
    # does not name the path leaves it to the known suffixes, then chat completions
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "at the root"}]}
    auth = {"authorization": f"Bearer {F.OPENAI_KEY}"}
    for path in ("/nokey/", "/nokey/v1/chat/completions"):
        r = httpx.post(f"{gw.url}{path}", json=body, headers=auth, timeout=20)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["choices"][0]["message"]["content"] == "echo: at the root"
        assert fakes.last("openai")["path"] == "/v1/chat/completions"


def test_a_credential_the_gateway_consumed_is_not_forwarded(gw, fakes):
    with pytest.raises(openai.AuthenticationError):
        client(gw, "gated", key="not-the-key").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "q"}]
        )
    assert not fakes.log()
    # the gateway's key is accepted and stripped: the provider gets no key at all
    with pytest.raises(openai.BadRequestError):
        client(gw, "gated", key="gateway-key").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "q"}]
        )
    (seen,) = fakes.log()
    assert "authorization" not in seen["headers"] and "gateway-key" not in str(seen["headers"])
    fakes.reset()  # that request was expected to fail the fake's auth check


def test_token_rate_limit_charged_from_usage(gw):
    c = client(gw, "limited")
    c.chat.completions.create(model="x", messages=[{"role": "user", "content": "a"}])  # 18 tokens: 12 left
    c.chat.completions.create(model="x", messages=[{"role": "user", "content": "b"}])  # 18 more: -6
    with pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model="x", messages=[{"role": "user", "content": "c"}])
    assert ei.value.response.headers.get("retry-after")


def test_docs_example_validates():
    p = REPO_ROOT / "examples" / "llm.yaml"
    r = run_cli("validate", "-f", str(p), cwd=REPO_ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_invalid_ai_policy_is_refused(tmp_path: Path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        f"""
binds:
- port: {free_port()}
  listeners:
  - routes:
    - policies:
        ai:
          promptGuard:
            request:
            - regex: {{action: reject, rules: [{{builtin: nonsense}}]}}
      backends:
      - ai: {{name: x, provider: {{openAI: {{model: m}}}}}}
"""
    )
    r = run_cli("run", "-f", str(cfg), timeout=20)
    assert r.returncode != 0
    assert "promptGuard.request[0].regex.rules[0].builtin" in r.stdout + r.stderr


# -- AWS credentials: refreshed in the background, ahead of expiry -------------------------------
def test_aws_credentials_refresh_ahead_without_blocking():
    from botocore.credentials import RefreshableCredentials

    from agentgw.backends.aws.credentials import AwsCredentialSource

    calls = []
    gate = threading.Event()

    def refresh():
        calls.append(time.monotonic())
        if len(calls) > 1:
            assert gate.wait(5)  # a slow STS call
        exp = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=20 if len(calls) == 1 else 60)
        return {"access_key": f"AK{len(calls)}", "secret_key": "s", "token": "t", "expiry_time": exp.isoformat()}

    src = AwsCredentialSource(region="us-east-1")
    src._creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")

    async def run():
        first = await src.get()
        assert first.access_key == "AK1" and len(calls) == 1
        # time passes: 700 s left, inside the refresh-ahead window
        soon = time.time() + 700
        src._snap.expires_at = soon
        src._creds._expiry_time = dt.datetime.fromtimestamp(soon, dt.timezone.utc)
        t = time.monotonic()
        again = await src.get()
        assert again.access_key == "AK1", "the still-valid snapshot must be served"
        assert time.monotonic() - t < 0.5, "a request waited for the refresh"
        await asyncio.sleep(0.1)
        assert len(calls) == 2 and not src._inflight.done(), "no background refresh started"
        gate.set()
        await asyncio.wait_for(asyncio.shield(src._inflight), 5)
        return await src.get()

    latest = asyncio.run(run())
    assert latest.access_key == "AK2" and latest.expires_at > time.time() + 3000
