"""Loader tests: error paths, YAML/JSON parsing, environment substitution, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentgw.config import (
    REDACTED,
    ConfigError,
    LocalConfig,
    format_path,
    load_config_file,
    load_config_text,
    redacted_dump,
)

FIXTURES = Path(__file__).parent / "fixtures"

THREE_ROUTES = """
binds:
- port: 3000
  listeners:
  - routes:
    - backends: [{host: "a.internal:80"}]
    - backends: [{host: "b.internal:80"}]
    - backends:
      - host: {host}
"""


def errors_of(text: str, env: dict[str, str] | None = None, **kw) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config_text(text, env=env or {}, **kw)
    return ei.value.errors


# --------------------------------------------------------------------------
# Error paths
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ['"no-port"', '"a b:80"', '"x:0"', '"x:99999"', '"ftp://x"', '"host:port"'])
def test_bad_backend_host_reports_exact_path(bad):
    errs = errors_of(THREE_ROUTES.replace("{host}", bad))
    assert len(errs) == 1
    path, _, msg = errs[0].partition(": ")
    assert path == "binds[0].listeners[0].routes[2].backends[0].host"
    assert msg.startswith("invalid host")


@pytest.mark.parametrize(
    "good", ['"c.internal:8080"', '"10.0.0.1:80"', '"[::1]:8080"', '"https://api.example.com"', '"http://h:81/p"']
)
def test_good_backend_hosts(good):
    cfg = load_config_text(THREE_ROUTES.replace("{host}", good), env={})
    assert cfg.binds[0].listeners[0].routes[2].backends[0].host == json.loads(good)


def test_wrong_type_reports_path():
    errs = errors_of("binds:\n- port: http\n  listeners: []\n")
    assert errs == ["binds[0].port: Input should be a valid integer, unable to parse string as an integer"]
    errs = errors_of("binds: {port: 1}\n")
    assert errs == ["binds: expected a list"]
    errs = errors_of("binds:\n- port: 1\n")
    assert errs == ["binds[0].listeners: required field is missing"]


def test_all_errors_reported_together():
    errs = errors_of("""
config: {adminAddr: nowhere}
binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: bad}]
      extra: 1
""")
    assert errs == [
        "config.adminAddr: invalid address 'nowhere': expected 'ip:port', 'localhost:port', ':port', "
        "'unix:/path' or 'off'",
        "binds[0].listeners[0].routes[0].backends[0].host: invalid host 'bad': expected 'host:port' or an http(s) URL",
        "binds[0].listeners[0].routes[0].extra: unknown field",
    ]


def test_union_branch_tags_do_not_leak_into_paths():
    errs = errors_of("""
binds:
- port: 1
  listeners:
  - routes:
    - policies:
        directResponse:
          conditional:
          - {condition: "true", status: 9000}
        localRateLimit:
        - {fillInterval: 1s, maxTokens: -1}
""")
    assert errs == [
        "binds[0].listeners[0].routes[0].policies.directResponse.conditional[0].status: "
        "Input should be less than or equal to 599",
        "binds[0].listeners[0].routes[0].policies.localRateLimit[0].maxTokens: "
        "Input should be greater than or equal to 0",
    ]


def test_map_keys_in_paths():
    assert format_path(("a", 0, "b")) == "a[0].b"
    assert format_path(("set", "x-api-key")) == "set.x-api-key"
    assert format_path(("routes", "/v1/models")) == 'routes["/v1/models"]'
    assert format_path(("~obj", "a", "~list", 1)) == "a[1]"
    assert format_path(()) == "(root)"


def test_config_error_str_joins_lines():
    err = ConfigError(["a: one", "b: two"])
    assert str(err) == "a: one\nb: two"
    assert err.errors == ["a: one", "b: two"]
    assert isinstance(err, ValueError)


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def test_yaml_syntax_error_is_single_error_with_line_and_column():
    errs = errors_of("binds:\n- port: 1\n  listeners: [\n", source="gw.yaml")
    assert len(errs) == 1
    assert errs[0].startswith("gw.yaml: invalid YAML at line 4, column 1:")


def test_yaml_bad_indentation():
    errs = errors_of("binds:\n  - port: 1\n listeners: []\n", source="x.yaml")
    assert len(errs) == 1 and "invalid YAML at line 3" in errs[0]


def test_yaml_duplicate_keys_rejected():
    errs = errors_of("config: {}\nbinds: []\nconfig: {}\n")
    assert errs == ["<inline>: invalid YAML at line 3, column 1: found duplicate key 'config'"]


def test_root_must_be_mapping():
    assert errors_of("- a\n- b\n") == ["(root): config must be a mapping, got list"]
    assert errors_of("just a string\n") == ["(root): config must be a mapping, got str"]


def test_empty_file_is_an_error():
    # nothing but comments and blank lines: a mistake, or a file caught half-written
    assert errors_of("# nothing here\n\n", source="gw.yaml") == ["gw.yaml: the config is empty"]
    assert errors_of("", source="gw.yaml") == ["gw.yaml: the config is empty"]
    assert load_config_text("{}", env={}) == LocalConfig()  # an explicit empty mapping is a config


def test_json_text_is_sniffed():
    cfg = load_config_text('{"binds": [{"port": 3000, "listeners": [{"routes": []}]}]}', env={})
    assert cfg.binds[0].port == 3000


def test_json_file(tmp_path):
    cfg = load_config_file(FIXTURES / "gateway.json", env={})
    assert cfg.config.admin_addr == "127.0.0.1:15099"
    assert cfg.binds[0].listeners[0].routes[0].policies.timeout.request_timeout == 15.0


def test_json_syntax_error():
    errs = errors_of('{"binds": [}', source="gw.json")
    assert errs == ["gw.json: invalid JSON at line 1, column 12: Expecting value"]


def test_explicit_format_overrides_sniffing():
    errs = errors_of("binds: []\n", fmt="json")
    assert errs[0].startswith("<inline>: invalid JSON")
    assert errors_of("x: 1", fmt="toml") == ["<inline>: unknown config format 'toml' (expected yaml or json)"]


def test_json_extension_used_for_format(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text("binds: []\n")  # YAML content in a .json file is not JSON
    with pytest.raises(ConfigError) as ei:
        load_config_file(p, env={})
    assert ei.value.errors[0].startswith(f"{p}: invalid JSON")


def test_missing_file():
    with pytest.raises(ConfigError) as ei:
        load_config_file("/nonexistent/agentgw.yaml")
    assert ei.value.errors[0].startswith("/nonexistent/agentgw.yaml: cannot read config file")


def test_schema_comment_is_harmless():
    cfg = load_config_text(
        "# yaml-language-server: $schema=https://agentgateway.dev/schema/config\nbinds: []\n", env={}
    )
    assert cfg.binds == []


# --------------------------------------------------------------------------
# Environment substitution
# --------------------------------------------------------------------------

ENV_ROUTE = """
binds:
- port: 3000
  listeners:
  - routes:
    - policies:
        requestHeaderModifier:
          set:
            x-a: "$A"
            x-b: "${B}-suffix"
            x-c: "cost: $$5 and ${A}${B}"
            x-d: "$ alone, $1 digit, trailing $"
      backends:
      - host: "${HOST}:${PORT}"
"""


def test_env_substitution_forms():
    cfg = load_config_text(ENV_ROUTE, env={"A": "alpha", "B": "beta", "HOST": "svc.internal", "PORT": "8080"})
    route = cfg.binds[0].listeners[0].routes[0]
    s = route.policies.request_header_modifier.set
    assert s["x-a"] == "alpha"
    assert s["x-b"] == "beta-suffix"
    assert s["x-c"] == "cost: $5 and alphabeta"
    assert s["x-d"] == "$ alone, $1 digit, trailing $"
    assert route.backends[0].host == "svc.internal:8080"


def test_env_missing_variable_names_variable_and_path():
    errs = errors_of(ENV_ROUTE, env={"A": "alpha", "B": "beta", "HOST": "h"})
    assert errs == ["binds[0].listeners[0].routes[0].backends[0].host: environment variable PORT is not set"]


def test_env_missing_variables_all_reported():
    errs = errors_of(ENV_ROUTE, env={})
    assert (
        "binds[0].listeners[0].routes[0].policies.requestHeaderModifier.set.x-a: environment variable A is not set"
        in errs
    )
    assert "binds[0].listeners[0].routes[0].backends[0].host: environment variable HOST is not set" in errs
    assert "binds[0].listeners[0].routes[0].backends[0].host: environment variable PORT is not set" in errs


def test_env_dollar_dollar_escapes():
    text = ENV_ROUTE.replace('"$A"', '"$$A $${B}"').replace("${A}${B}", "$$$B")
    cfg = load_config_text(text, env={"B": "b", "HOST": "h", "PORT": "1"})
    s = cfg.binds[0].listeners[0].routes[0].policies.request_header_modifier.set
    assert s["x-a"] == "$A ${B}"
    assert s["x-c"] == "cost: $5 and $b"


def test_env_value_cannot_change_yaml_structure():
    # Substitution happens after parsing, so YAML syntax in a value stays text.
    nasty = "x\nbogus: 1\nkey: [oops"
    cfg = load_config_text(ENV_ROUTE, env={"A": nasty, "B": "b", "HOST": "h", "PORT": "1"})
    assert cfg.binds[0].listeners[0].routes[0].policies.request_header_modifier.set["x-a"] == nasty


def test_env_not_applied_to_keys_or_non_strings():
    cfg = load_config_text(
        "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - policies:\n"
        "        requestHeaderModifier:\n          set: {$KEY: v}\n",
        env={},
    )
    assert cfg.binds[0].listeners[0].routes[0].policies.request_header_modifier.set == {"$KEY": "v"}


def test_env_invalid_reference():
    errs = errors_of('config:\n  adminAddr: "${1BAD}"\n')
    assert errs == ["config.adminAddr: invalid environment variable reference '${1BAD}'"]


def test_env_substituted_value_is_then_validated():
    errs = errors_of("config:\n  adminAddr: $ADDR\n", env={"ADDR": "not-an-address"})
    assert errs[0].startswith("config.adminAddr: invalid address 'not-an-address'")


def test_env_defaults_to_process_environment(monkeypatch):
    monkeypatch.setenv("AGENTGW_TEST_ADMIN", "127.0.0.1:15555")
    cfg = load_config_text("config:\n  adminAddr: ${AGENTGW_TEST_ADMIN}\n")
    assert cfg.config.admin_addr == "127.0.0.1:15555"


# --------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------

SECRETS = {
    "OPENAI_API_KEY": "sk-openai-super-secret-1",
    "ANTHROPIC_API_KEY": "sk-ant-super-secret-2",
}

#: Every credential value that appears in the fixtures.
FIXTURE_SECRETS = [
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",  # session key
    "tracing-header-secret",
    "named-backend-key-secret",
    "AKIAEXAMPLEACCESSID",
    "aws-secret-access-key-secret",
    "htpasswd-inline-secret",
    "header-value-secret",
    "route-backend-key-secret",
    "ghp_stdio_env_secret",
    "remote-mcp-bearer-secret",
    "k-plaintext-456",
    "1311f8fc80a7ea28d78dd7723f09c44c1754cd35160ca8e7133ae3d7f636a19a",
    "/etc/agentgw/tls.key",
    *SECRETS.values(),
]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_no_secret_in_redacted_dump(name):
    cfg = load_config_file(FIXTURES / name, env=SECRETS)
    dumped = json.dumps(redacted_dump(cfg))
    for secret in FIXTURE_SECRETS:
        assert secret not in dumped, f"{secret!r} leaked from {name}"


def test_redacted_dump_shape():
    cfg = load_config_file(FIXTURES / "full.yaml", env={})
    d = redacted_dump(cfg)
    c = d["config"]
    assert c["session"]["key"] == REDACTED
    assert c["tracing"]["headers"] == {"x-honeycomb-team": REDACTED}  # which header: kept
    assert c["adminAddr"] == "localhost:15000"  # defaults and plain values kept
    assert c["backend"]["connectTimeout"] == "5s"  # durations dumped as written
    route = d["binds"][0]["listeners"][0]["routes"][0]
    assert route["policies"]["requestHeaderModifier"]["set"] == {"authorization": REDACTED}
    assert route["policies"]["requestHeaderModifier"]["add"] == {"x-gateway": "agentgw"}
    assert route["policies"]["timeout"] == {"requestTimeout": "30s", "backendRequestTimeout": "10s"}
    assert route["backends"][1]["policies"]["backendAuth"] == {"key": REDACTED}
    assert d["binds"][0]["listeners"][0]["policies"]["basicAuth"]["htpasswd"] == REDACTED
    assert d["binds"][1]["listeners"][0]["tls"] == {
        "cert": "/etc/agentgw/tls.crt",
        "key": REDACTED,
        "minTLSVersion": "TLS_V1_2",
    }
    aws = d["backends"][1]["ai"]["policies"]["backendAuth"]["aws"]
    assert aws == {"accessKeyId": REDACTED, "secretAccessKey": REDACTED, "region": "us-east-1"}
    # round-trips as JSON and uses the file's key names
    assert json.loads(json.dumps(d)) == d
    assert "frontendPolicies" in d and "frontend_policies" not in d


def test_redacted_dump_llm_and_mcp():
    d = redacted_dump(load_config_file(FIXTURES / "llm.yaml", env=SECRETS))
    assert d["llm"]["models"][0]["params"]["apiKey"] == REDACTED
    assert d["llm"]["models"][0]["params"]["model"] == "gpt-4o"
    d = redacted_dump(load_config_file(FIXTURES / "mcp-shorthand.yaml", env={}))
    assert d["mcp"]["targets"][0]["stdio"]["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": REDACTED}
    assert d["mcp"]["targets"][0]["stdio"]["cmd"] == "npx"


def test_redaction_backstop_for_free_form_sections():
    cfg = load_config_text(
        """
binds:
- port: 1
  listeners:
  - routes:
    - policies:
        oidc:
          issuer: https://idp
          clientId: gw
          clientSecret: oidc-client-secret-value
          redirectURI: https://gw.example/oauth/callback
        ai:
          defaults: {max_tokens: 100}
      backends:
      - ai:
          name: az
          provider: {azureOpenAI: {model: m}}
          policies:
            backendAuth:
              azure:
                explicitConfig:
                  clientSecret: {tenant_id: t, client_id: c, client_secret: azure-secret-value}
config:
  database:
    url: postgres://gw:db-password-value@db/agentgw
""",
        env={},
    )
    d = redacted_dump(cfg)
    text = json.dumps(d)
    for s in ("oidc-client-secret-value", "azure-secret-value", "db-password-value"):
        assert s not in text
    pol = d["binds"][0]["listeners"][0]["routes"][0]["policies"]
    assert pol["oidc"]["clientId"] == "gw"
    assert pol["ai"]["defaults"] == {"max_tokens": 100}
    assert d["config"]["database"] == {"url": REDACTED}


def test_redacted_dump_does_not_mutate_config():
    cfg = load_config_file(FIXTURES / "full.yaml", env={})
    redacted_dump(cfg)
    assert cfg.config.session.key.startswith("0011")
