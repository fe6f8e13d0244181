"""The ``llm:`` model table as agentgateway configs write it, through a real gateway:
named providers (``llm.providers`` + ``provider: {reference}``), virtual models
(weighted, conditional, failover), ``visibility: internal`` and the provider presets
(``groq``, ``cohere``, ``ollama``...), with the schema-checking provider fakes behind."""

from __future__ import annotations

import collections
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from agentgw.compile import _NothingServed, compile_config_file
from agentgw.engine.http import Headers
from tests.llm import fakes as F
from tests.support.harness import REPO_ROOT, free_port, subprocess_env, wait_for
from tests.support.postgres import PostgresServer

COMPAT = REPO_ROOT / "tests" / "compat" / "agentgateway"


def _addrs() -> dict:
    return {
        "adminAddr": f"127.0.0.1:{free_port()}",
        "statsAddr": f"127.0.0.1:{free_port()}",
        "readinessAddr": f"127.0.0.1:{free_port()}",
    }


def _cost_routing(fake_url: str) -> dict:
    """examples/llm-cost-routing as shipped, its provider address and keys pointed at the
    fake; the premium tier's provider model renamed so that it can be told from balanced."""
    cfg = yaml.safe_load((COMPAT / "examples/llm-cost-routing/config.yaml").read_text())["llm"]
    for mdl in cfg["models"]:
        mdl["params"].update(baseUrl=fake_url + "/v1", apiKey=F.OPENAI_KEY)
        if mdl["name"] == "premium-model":
            mdl["params"]["model"] = "gpt-4o-premium"
    return cfg


def _openai(fake_url: str, model: str | None = None, **kw) -> dict:
    params = {"baseUrl": fake_url + "/v1", "apiKey": F.OPENAI_KEY}
    if model:
        params["model"] = model
    return {"provider": "openAI", "params": params, **kw}


@pytest.fixture(scope="module")
def gw(module_harness, fakes):
    url = fakes.url
    llm = _cost_routing(url)
    llm["port"] = port = free_port()
    llm["providers"] = [
        {
            "name": "shared",
            "provider": "openAI",
            "params": {"baseUrl": url + "/v1", "apiKey": F.OPENAI_KEY, "model": "gpt-shared"},
            "defaults": {
                "defaults": {"seed": 7, "temperature": 0.5},
                "overrides": {"top_p": 0.25},
                "requestHeaders": {"set": {"x-shared": "yes"}},
            },
        }
    ]
    llm["models"] += [
        {"name": "ref-model", "provider": {"reference": "shared"}, "params": {"model": "gpt-ref"}},
        {"name": "ref-default", "provider": {"reference": "shared"}, "defaults": {"seed": 9}},
        {"name": "flaky", "visibility": "internal", **_openai(url, "fail-500")},
        {"name": "limited", "visibility": "internal", **_openai(url, "fail-429")},
        {
            "name": "steady",
            "visibility": "internal",
            "provider": "anthropic",
            "params": {"model": "claude-backup", "baseUrl": url, "apiKey": F.ANTHROPIC_KEY},
        },
        {"name": "tiered/*", "visibility": "internal", **_openai(url)},
        # outlier detection: a failing first entry, evicted, and a backup
        {"name": "sick", **_openai(url, "fail-500"), "health": {"eviction": {"duration": "60s"}}},
        {
            "name": "sick",
            "provider": "anthropic",
            "params": {"model": "claude-backup", "baseUrl": url, "apiKey": F.ANTHROPIC_KEY},
        },
        {
            "name": "throttled",
            **_openai(url, "fail-429"),
            "health": {
                "unhealthyExpression": "response.code >= 500 || response.code == 429",
                "eviction": {"duration": "60s", "consecutiveFailures": 2},
            },
        },
        {"name": "throttled", **_openai(url, "gpt-backup")},
        {"name": "lonely", **_openai(url, "fail-500"), "health": {"eviction": {"duration": "60s"}}},
        {"name": "public-direct", **_openai(url, "gpt-direct")},
        {"name": "cohere-chat", "provider": "cohere", "params": {"baseUrl": url, "apiKey": F.OPENAI_KEY}},
        {
            "name": "groq-chat",
            "provider": "groq",
            "params": {"baseUrl": url + "/openai/v1", "apiKey": F.OPENAI_KEY, "model": "llama-3.1-8b-instant"},
        },
    ]
    llm["virtualModels"] += [
        {
            "name": "header-routed",
            "routing": {
                "conditional": {
                    "targets": [
                        {"when": 'request.headers["x-tier"] == "gold"', "model": "premium-model"},
                        {"when": 'json(request.body).route == "code"', "model": "balanced-model"},
                    ]
                }
            },
        },
        {
            "name": "resilient",
            "routing": {
                "failover": {
                    "targets": [
                        {"model": "steady", "priority": 1},
                        {"model": "flaky", "priority": 0},
                        {"model": "limited", "priority": 0},
                    ]
                }
            },
        },
        {
            "name": "split",
            "routing": {
                "weighted": {
                    "targets": [
                        {"model": "tiered/a", "weight": 1},
                        {"model": "tiered/b", "weight": 1},
                        {"model": "tiered/never", "weight": 0},
                    ]
                }
            },
        },
    ]
    g = module_harness.gateway({"config": _addrs(), "llm": llm})
    g.llm_url = f"http://127.0.0.1:{port}"
    return g


@pytest.fixture
def oa(gw, fakes):
    fakes.reset()
    yield openai.OpenAI(base_url=gw.llm_url + "/v1", api_key="client-key", max_retries=0, timeout=20)
    fakes.assert_valid()


def _chat(oa, model, text="hello", **kw):
    return oa.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def _post(gw, body: dict, headers=None) -> httpx.Response:
    return httpx.post(gw.llm_url + "/v1/chat/completions", json=body, headers=headers or {}, timeout=20)


# -- the cost-routing example ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "sent"),
    [
        ({"max_tokens": 256}, "gpt-4o-mini"),  # no tier: a small budget is economy
        ({}, "gpt-4o-mini"),  # no budget: default(..., 1024) <= 1024
        ({"max_tokens": 3000}, "gpt-4o"),  # balanced by budget
        ({"max_tokens": 9000}, "gpt-4o-premium"),  # the fallback
        ({"max_tokens": 9000, "metadata": {"cost_tier": "economy"}}, "gpt-4o-mini"),  # the tier wins
        ({"max_tokens": 256, "metadata": {"cost_tier": "premium"}}, "gpt-4o-premium"),  # unknown tier → fallback
        ({"max_tokens": 256, "metadata": {"cost_tier": "balanced"}}, "gpt-4o"),
    ],
)
def test_cost_routing_example_picks_the_tier(oa, fakes, extra, sent):
    r = _chat(oa, "smart-model", "summarize this", **extra)
    assert r.choices[0].message.content == "echo: summarize this"
    e = fakes.last("openai")
    assert e["body"]["model"] == sent
    assert e["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"
    assert e["body"].get("metadata") == extra.get("metadata")  # the request goes on as sent


def test_internal_models_are_neither_callable_nor_listed(gw, oa, fakes):
    for name in ("economy-model", "premium-model", "flaky", "tiered/a"):
        r = _post(gw, {"model": name, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404, (name, r.text)
        assert r.json()["error"]["type"] == "model_not_found"
    assert fakes.log() == []
    listed = {m.id for m in oa.models.list().data}
    assert listed >= {"smart-model", "header-routed", "resilient", "split", "ref-model", "public-direct"}
    assert not listed & {"economy-model", "balanced-model", "premium-model", "flaky", "limited", "steady"}
    # a public model stays callable by name
    assert _chat(oa, "public-direct").choices[0].message.content == "echo: hello"
    assert fakes.last("openai")["body"]["model"] == "gpt-direct"


# -- conditional ----------------------------------------------------------------------------
def test_conditional_on_a_header_and_on_the_body(gw, fakes):
    fakes.reset()
    msgs = [{"role": "user", "content": "hi"}]
    r = _post(gw, {"model": "header-routed", "messages": msgs}, {"x-tier": "gold"})
    assert r.status_code == 200, r.text
    assert fakes.last("openai")["body"]["model"] == "gpt-4o-premium"
    r = _post(gw, {"model": "header-routed", "messages": msgs, "route": "code"})
    # the body's own `route` key reaches the condition; the fake rejects unknown keys, so
    # the upstream answer is the fake's 400 naming it: what matters is where it went
    assert fakes.last()["body"]["model"] == "gpt-4o"
    assert fakes.last()["body"]["route"] == "code"
    fakes.reset()
    r = _post(gw, {"model": "header-routed", "messages": msgs}, {"x-tier": "silver"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "virtual_model_no_matching_target"
    assert fakes.log() == []


# -- failover -------------------------------------------------------------------------------
def test_failover_tries_the_next_priority_on_5xx_and_429(oa, fakes):
    r = _chat(oa, "resilient", "still there?")
    assert r.choices[0].message.content == "echo: still there?"
    log = fakes.log()
    tried = [(e["kind"], e["body"]["model"]) for e in log]
    # both priority-0 targets (in either order), then the priority-1 one, which answers
    assert sorted(tried[:2]) == [("openai", "fail-429"), ("openai", "fail-500")]
    assert tried[2:] == [("anthropic", "claude-backup")]
    assert log[2]["headers"]["x-api-key"] == F.ANTHROPIC_KEY


def test_failover_streams_from_the_target_that_answers(oa, fakes):
    chunks = list(
        oa.chat.completions.create(model="resilient", messages=[{"role": "user", "content": "stream it"}], stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream it"
    assert fakes.last()["kind"] == "anthropic"


# -- weighted -------------------------------------------------------------------------------
def test_weighted_spreads_over_targets_and_skips_weight_zero(oa, fakes):
    for _ in range(40):
        _chat(oa, "split")
    sent = collections.Counter(e["body"]["model"] for e in fakes.log())
    # `tiered/*` gets the target's name with the wildcard's prefix stripped
    assert set(sent) == {"a", "b"}, sent
    assert sum(sent.values()) == 40


# -- health --------------------------------------------------------------------------------
def _tried(fakes) -> list[str]:
    return [e["body"]["model"] for e in fakes.log()]


def test_an_unhealthy_entry_is_evicted_and_skipped(oa, fakes):
    assert _chat(oa, "sick").choices[0].message.content == "echo: hello"
    assert _tried(fakes) == ["fail-500", "claude-backup"]
    fakes.reset()
    for _ in range(3):  # evicted for 60 s: the backup at once
        _chat(oa, "sick")
    assert _tried(fakes) == ["claude-backup"] * 3


def test_eviction_after_consecutive_failures_by_expression(oa, fakes):
    _chat(oa, "throttled")
    _chat(oa, "throttled")  # the second 429 in a row evicts
    assert _tried(fakes) == ["fail-429", "gpt-backup"] * 2
    fakes.reset()
    _chat(oa, "throttled")
    assert _tried(fakes) == ["gpt-backup"]


def test_an_entry_evicted_with_no_alternative_is_still_tried(gw, fakes):
    fakes.reset()
    msgs = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        r = _post(gw, {"model": "lonely", "messages": msgs})
        assert r.status_code == 500, r.text
        assert r.json()["error"]["message"] == "fake exploded"
    assert _tried(fakes) == ["fail-500", "fail-500"]


# -- llm.providers --------------------------------------------------------------------------
def test_a_model_takes_its_referenced_provider_and_defaults(oa, fakes):
    _chat(oa, "ref-model")
    e = fakes.last("openai")
    assert e["body"]["model"] == "gpt-ref"  # the model's params.model wins
    assert (e["body"]["seed"], e["body"]["temperature"], e["body"]["top_p"]) == (7, 0.5, 0.25)
    assert e["headers"]["x-shared"] == "yes"
    assert e["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"
    _chat(oa, "ref-default", temperature=0.9)
    e = fakes.last("openai")
    assert e["body"]["model"] == "gpt-shared"  # the provider's params.model
    assert e["body"]["seed"] == 9  # the model's own default wins over the provider's
    assert e["body"]["temperature"] == 0.9  # a default never overrides the request


# -- presets --------------------------------------------------------------------------------
def test_preset_providers_use_their_paths_and_bearer_keys(oa, fakes):
    r = _chat(oa, "cohere-chat", "bonjour")
    assert r.choices[0].message.content == "echo: bonjour"
    e = fakes.last()
    assert (e["kind"], e["path"]) == ("cohere", "/compatibility/v1/chat/completions")
    assert e["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"
    emb = oa.embeddings.create(model="cohere-chat", input="x")
    assert len(emb.data[0].embedding) == 3
    assert fakes.last()["path"] == "/compatibility/v1/embeddings"
    r = _chat(oa, "groq-chat")
    e = fakes.last()
    assert (e["kind"], e["path"], e["body"]["model"]) == ("groq", "/openai/v1/chat/completions", "llama-3.1-8b-instant")
    # an API the service does not speak: Groq has no embeddings
    with pytest.raises(openai.BadRequestError, match="does not offer embeddings"):
        oa.embeddings.create(model="groq-chat", input="x")


PRESET_ADDRESSES = {
    "groq": ("api.groq.com", 443, "/openai/v1/chat/completions"),
    "fireworks": ("api.fireworks.ai", 443, "/inference/v1/chat/completions"),
    "mistral": ("api.mistral.ai", 443, "/v1/chat/completions"),
    "deepseek": ("api.deepseek.com", 443, "/v1/chat/completions"),
    "openrouter": ("openrouter.ai", 443, "/api/v1/chat/completions"),
    "xai": ("api.x.ai", 443, "/v1/chat/completions"),
    "cohere": ("api.cohere.ai", 443, "/compatibility/v1/chat/completions"),
    "togetherai": ("api.together.xyz", 443, "/v1/chat/completions"),
    "deepinfra": ("api.deepinfra.com", 443, "/v1/openai/chat/completions"),
    "cerebras": ("api.cerebras.ai", 443, "/v1/chat/completions"),
    "baseten": ("inference.baseten.co", 443, "/v1/chat/completions"),
    "huggingface": ("router.huggingface.co", 443, "/v1/chat/completions"),
    "ollama": ("localhost", 11434, "/v1/chat/completions"),
}


@pytest.mark.parametrize("preset", sorted(PRESET_ADDRESSES))
def test_preset_default_addresses(tmp_path, preset):
    """The address each preset names when the config gives none (its public endpoint;
    plain HTTP only for a local Ollama)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"llm": {"models": [{"name": "m", "provider": preset}]}}))
    rt = compile_config_file(str(cfg), _NothingServed())
    match = rt.binds[4000].listeners[0].routes.match("POST", "localhost", "/v1/chat/completions", Headers([]), "")
    p = match.route.backend.table.entries[0].candidate.provider
    host, port, path = PRESET_ADDRESSES[preset]
    assert (p.target.host, p.target.port) == (host, port)
    assert (p.target.ssl is not None) == (preset != "ollama")
    assert p.native_path("completions", False, "m") == path
    assert p.system == preset


# -- the llm-ollama-postgres example -------------------------------------------------------
def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the stand-in binds (TIME_WAIT is no owner)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_ollama_example_reaches_the_local_server_and_logs_to_postgres(harness, tmp_path):
    """examples/llm-ollama-postgres against a stand-in Ollama on localhost:11434, the
    preset's address, and a real PostgreSQL with the example's user, password and
    database (on a free port): the request is answered and logged as a row."""
    if not _port_free(11434):
        pytest.skip("port 11434 is taken on this machine")
    pg = PostgresServer(free_port(), "agentgateway", "agentgateway", "agentgateway")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.llm.fakes", "--port", "11434", "--no-auth"],
        env=subprocess_env(),
        cwd=str(REPO_ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", 11434), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the Ollama stand-in did not start"
                time.sleep(0.05)
        cfg = yaml.safe_load(Path(COMPAT / "examples/llm-ollama-postgres/config.yaml").read_text())
        url = cfg["config"]["database"]["url"]
        assert url == "postgresql://agentgateway:agentgateway@localhost:5432/agentgateway"
        cfg["config"]["database"]["url"] = url.replace(":5432/", f":{pg.port}/")
        cfg["config"].update(_addrs())
        cfg["llm"]["port"] = port = free_port()
        harness.gateway(cfg)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "Say hello from Ollama"}]},
            timeout=20,
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "echo: Say hello from Ollama"
        seen = httpx.get("http://127.0.0.1:11434/_log", timeout=5).json()
        assert [(e["path"], e["body"]["model"], e["error"]) for e in seen] == [
            ("/v1/chat/completions", "llama3.2", None)
        ]
        usage = r.json()["usage"]

        def logged():
            return pg.sql(None, "SELECT * FROM request_logs") if _has_table(pg) else []

        rows = wait_for(logged, timeout=10, message="the request's row in request_logs")
        (row,) = rows
        assert row["http_status"] == 200 and row["error"] is None
        assert (row["gen_ai_operation_name"], row["gen_ai_provider_name"], row["gen_ai_request_model"]) == (
            "chat",
            "ollama",
            "llama3.2",
        )
        assert row["gen_ai_response_model"] == r.json()["model"]  # the model that answered
        assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["prompt_tokens"] + usage["completion_tokens"],
        )
        assert row["user_agent_name"] == "python-httpx" and row["has_payload"] is False
        assert row["completed_at"] >= row["started_at"] and row["duration_ms"] >= 0
        attrs = json.loads(row["attributes_json"])
        assert attrs["path"] == "/v1/chat/completions" and attrs["status"] == 200
        assert pg.sql(None, "SELECT count(*) AS n FROM request_log_payloads") == [{"n": 0}]
    finally:
        pg.stop()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _has_table(pg) -> bool:
    return bool(pg.sql(None, "SELECT 1 FROM information_schema.tables WHERE table_name = 'request_logs'"))


# -- refused at load ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("llm", "error"),
    [
        (
            {"models": [{"name": "a", "provider": {"reference": "missing"}}]},
            "llm.models[0].provider.reference: no provider named 'missing'",
        ),
        (
            {
                "providers": [{"name": "p", "provider": "openAI"}],
                "models": [{"name": "a", "provider": {"reference": "p"}, "params": {"apiKey": "k"}}],
            },
            "may only set params.model",
        ),
        (
            {
                "providers": [
                    {"name": "p", "provider": "openAI", "defaults": {"health": {"eviction": {"healthThreshold": 0.5}}}}
                ],
                "models": [{"name": "a", "provider": {"reference": "p"}}],
            },
            "llm.providers[0].defaults.health.eviction.healthThreshold: not supported",
        ),
        (
            {
                "models": [{"name": "a", "provider": "openAI"}],
                "virtualModels": [{"name": "v", "routing": {"weighted": {"targets": [{"model": "b"}]}}}],
            },
            "llm.virtualModels[0].routing.weighted.targets[0].model: 'b' matches no llm.models entry",
        ),
        (
            {
                "models": [{"name": "a", "provider": "openAI"}],
                "virtualModels": [
                    {"name": "v", "routing": {"conditional": {"targets": [{"model": "a"}, {"model": "a"}]}}}
                ],
            },
            "must be the last one",
        ),
        (
            {
                "models": [{"name": "a", "provider": "openAI"}],
                "virtualModels": [
                    {"name": "v", "routing": {"conditional": {"targets": [{"when": "nope.x == 1", "model": "a"}]}}}
                ],
            },
            "llm.virtualModels[0].routing.conditional.targets[0].when: invalid CEL expression",
        ),
        (
            {
                "models": [{"name": "a", "provider": "openAI"}],
                "virtualModels": [
                    {
                        "name": "v",
                        "routing": {
                            "weighted": {"targets": [{"model": "a"}]},
                            "failover": {"targets": [{"model": "a", "priority": 0}]},
                        },
                    }
                ],
            },
            "llm.virtualModels[0].routing",
        ),
        (
            {
                "models": [{"name": "a", "provider": "openAI", "guardrails": {"request": [{"regex": {"rules": []}}]}}],
                "virtualModels": [{"name": "v", "routing": {"failover": {"targets": [{"model": "a", "priority": 0}]}}}],
            },
            "failover target whose model has guardrails is not supported",
        ),
    ],
)
def test_refused_at_load(tmp_path, llm, error):
    from agentgw.config import ConfigError

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"llm": llm}))
    with pytest.raises(ConfigError) as exc:
        compile_config_file(str(cfg), _NothingServed())
    assert error in str(exc.value)


# -- agentgateway's own virtual-model configs -----------------------------------------------
def _fixture(name: str, fake_url: str) -> dict:
    """One of agentgateway's llm_virtual_model_*_config.yaml, its providers pointed at the fakes."""
    llm = yaml.safe_load((COMPAT / "crates/agentgateway/src/types/local_tests" / name).read_text())["llm"]
    for mdl in llm["models"]:
        prm = mdl.setdefault("params", {})
        if mdl["provider"] == "anthropic":
            prm.update(baseUrl=fake_url, apiKey=F.ANTHROPIC_KEY)
        else:
            prm.update(baseUrl=fake_url + "/v1", apiKey=F.OPENAI_KEY)
    llm["port"] = free_port()
    return llm


def test_agentgateway_failover_config(harness, fakes):
    """llm_virtual_model_failover_config.yaml: `resilient` tries openai/gpt-5-mini, then one
    of the two anthropic targets (priority 1), whose `transformation` strips the prefix;
    the anthropic entry is internal."""
    llm = _fixture("llm_virtual_model_failover_config.yaml", fakes.url)
    llm["models"][0]["params"]["model"] = "fail-500"  # the first target fails
    harness.gateway({"config": _addrs(), "llm": llm})
    fakes.reset()
    url = f"http://127.0.0.1:{llm['port']}/v1/chat/completions"
    msgs = [{"role": "user", "content": "hi"}]
    r = httpx.post(url, json={"model": "resilient", "messages": msgs}, timeout=20)
    assert r.status_code == 200, r.text
    tried = [(e["kind"], e["body"]["model"]) for e in fakes.log()]
    assert tried[0] == ("openai", "fail-500")
    assert tried[1] in (("anthropic", "haiku"), ("anthropic", "sonnet"))
    assert len(tried) == 2
    r = httpx.post(url, json={"model": "anthropic/haiku", "messages": msgs}, timeout=20)
    assert r.status_code == 404  # internal
    listed = {m["id"] for m in httpx.get(f"http://127.0.0.1:{llm['port']}/v1/models", timeout=20).json()["data"]}
    assert listed == {"openai/gpt-5-mini", "resilient"}


def test_agentgateway_weighted_config(harness, fakes):
    """llm_virtual_model_config.yaml: `fast` spreads 60/30/10 over anthropic/haiku,
    openai/gpt-5-mini and fallback-small (the internal `*` entry); every model is internal."""
    llm = _fixture("llm_virtual_model_config.yaml", fakes.url)
    harness.gateway({"config": _addrs(), "llm": llm})
    fakes.reset()
    url = f"http://127.0.0.1:{llm['port']}/v1/chat/completions"
    with httpx.Client(timeout=20) as client:
        for _ in range(60):
            r = client.post(url, json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200, r.text
        r = client.post(url, json={"model": "openai/gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404
    seen = collections.Counter((e["kind"], e["body"]["model"]) for e in fakes.log())
    assert set(seen) <= {("anthropic", "haiku"), ("openai", "gpt-5-mini"), ("openai", "fallback-small")}
    assert seen[("anthropic", "haiku")] > seen[("openai", "fallback-small")]  # 60 against 10
    assert sum(seen.values()) == 60
    fakes.assert_valid()


def test_agentgateway_conditional_config(harness, fakes):
    """llm_virtual_model_conditional_config.yaml: `smart` routes on a field of the body
    (`json(request.body).route`), `foo/*` entries get their prefix stripped; a request
    matching no condition takes the fallback."""
    llm = _fixture("llm_virtual_model_conditional_config.yaml", fakes.url)
    harness.gateway({"config": _addrs(), "llm": llm})
    url = f"http://127.0.0.1:{llm['port']}/v1/chat/completions"
    msgs = [{"role": "user", "content": "hi"}]
    sent = {}
    for route in ("code", "fast", None):
        fakes.reset()
        body = {"model": "smart", "messages": msgs, **({"route": route} if route else {})}
        httpx.post(url, json=body, timeout=20)
        # (OpenAI refuses a `route` field, as the fake does: where the request went is the point)
        sent[route] = fakes.last("openai")["body"]["model"]
    # an exact entry without params.model sends the name as chosen (as agentgateway does)
    assert sent == {"code": "bar", "fast": "openai/gpt-5-mini", None: "baz"}


def test_agentgateway_provider_reference_config(harness, fakes):
    """llm_provider_reference_config.yaml: models that reference `llm.providers` take their
    provider, params and defaults (`params.model` of the model wins)."""
    llm = yaml.safe_load(
        (COMPAT / "crates/agentgateway/src/types/local_tests/llm_provider_reference_config.yaml").read_text()
    )["llm"]
    shared, custom = llm["providers"]
    shared["params"].update(baseUrl=fakes.url, apiKey=F.ANTHROPIC_KEY)
    custom["params"].update(baseUrl=fakes.url + "/v1", apiKey=F.OPENAI_KEY)
    llm["port"] = port = free_port()
    harness.gateway({"config": _addrs(), "llm": llm})
    fakes.reset()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    msgs = [{"role": "user", "content": "hi"}]
    r = httpx.post(url, json={"model": "anthropic/claude-x", "messages": msgs}, timeout=20)
    assert r.status_code == 200, r.text
    e = fakes.last("anthropic")
    assert e["body"]["model"] == "claude-sonnet-4-5-20250929"  # the model's params.model
    assert e["headers"]["x-api-key"] == F.ANTHROPIC_KEY  # the provider's key
    r = httpx.post(url, json={"model": "example/small", "messages": msgs}, timeout=20)
    assert r.status_code == 200, r.text
    e = fakes.last("openai")
    assert e["path"] == "/v1/chat/completions"
    assert e["headers"]["authorization"] == f"Bearer {F.OPENAI_KEY}"
    fakes.assert_valid()
