"""Model-level tests: real config files, shapes, exactly-one-of rules, durations, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentgw.config import (
    ConfigError,
    Duration,
    LocalConfig,
    effective_limits,
    load_config_file,
    load_config_text,
    parse_duration,
)

FIXTURES = Path(__file__).parent / "fixtures"
ENV = {"OPENAI_API_KEY": "sk-openai-test-value", "ANTHROPIC_API_KEY": "sk-ant-test-value"}


def load(name: str) -> LocalConfig:
    return load_config_file(FIXTURES / name, env=ENV)


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config_text(text, env=env or {})
    return ei.value.errors


def route_yaml(route: str, indent: int = 4) -> str:
    """Wrap a route body (YAML, written at column 0) into a minimal file."""
    pad = " " * (indent + 2)
    body = "\n".join((pad + line) if line else line for line in route.strip("\n").splitlines())
    body = " " * indent + "- " + body.lstrip()
    return "binds:\n- port: 3000\n  listeners:\n  - routes:\n" + body + "\n"


# --------------------------------------------------------------------------
# Real-world files
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_every_fixture_loads(name):
    cfg = load(name)
    assert isinstance(cfg, LocalConfig)


def test_basic_mcp_stdio():
    cfg = load("basic.yaml")
    route = cfg.binds[0].listeners[0].routes[0]
    assert cfg.binds[0].port == 3000
    assert cfg.binds[0].listeners[0].protocol == "HTTP"
    assert route.policies.cors.expose_headers == ["Mcp-Session-Id"]
    target = route.backends[0].mcp.targets[0]
    assert target.name == "everything"
    assert target.stdio.cmd == "npx"
    assert target.stdio.args == ["@modelcontextprotocol/server-everything"]
    assert route.backends[0].weight == 1
    assert route.matches is None
    assert route.effective_matches()[0].path.path_prefix == "/"


def test_authorization_example():
    pol = load("authorization.yaml").binds[0].listeners[0].routes[0].policies
    assert pol.jwt_auth.issuer == "agentgateway.dev"
    assert pol.jwt_auth.audiences == ["test.agentgateway.dev"]
    assert pol.jwt_auth.jwks.file == "./manifests/jwt/pub-key"
    assert pol.jwt_auth.mode == "optional"
    assert pol.backend_auth.passthrough is not None
    assert len(pol.mcp_authorization.rules) == 3


def test_apikey_hashed_example():
    keys = load("apikey-hashed.yaml").binds[0].listeners[0].routes[0].policies.api_key
    assert keys.mode == "strict"
    assert keys.keys[0].key_hash.startswith("sha256:")
    assert keys.keys[0].metadata == {"group": "sales"}
    assert keys.keys[1].key == "k-plaintext-456"


def test_aws_agentcore_example():
    route = load("aws-agentcore.yaml").binds[0].listeners[0].routes[0]
    assert route.matches[0].path.path_prefix == "/supply-chain-agent"
    assert route.policies.jwt_auth.jwks.url.endswith("/jwks.json")
    be = route.backends[0]
    assert be.aws.agent_core.agent_runtime_arn.startswith("arn:aws:bedrock-agentcore:")
    assert be.policies.transformations.request.set["X-Amzn-Bedrock-AgentCore-Runtime-User-Id"] == "jwt.sub"


def test_a2a_and_frontend_access_log():
    cfg = load("a2a.yaml")
    a2a = cfg.binds[0].listeners[0].routes[0].policies.a2a
    assert a2a is not None and a2a.agent is None  # `a2a: {}` marks the route as A2A
    assert cfg.frontend_policies.access_log.add == {"backend": "backend"}


def test_frontend_policy_legacy_aliases():
    cfg = load_config_text("frontendPolicies:\n  logging:\n    filter: 'true'\n  proxy: {}\n", env={})
    assert cfg.frontend_policies.access_log.filter == "true"
    assert cfg.frontend_policies.proxy_protocol == {}


def test_ai_backend_example():
    route = load("ai-models.yaml").binds[0].listeners[0].routes[0]
    assert route.backends[0].ai.name == "openai"
    assert route.backends[0].ai.provider == {"openAI": {}}
    assert route.policies.ai["routes"]["/v1/models"] == "Models"


def test_llm_shorthand():
    cfg = load("llm.yaml")
    assert cfg.llm.port == 4000
    smart, anthropic, local = cfg.llm.models
    assert smart.provider == "openAI"
    assert smart.params.model == "gpt-4o"
    assert smart.params.api_key == "sk-openai-test-value"
    assert anthropic.name == "anthropic/*"
    assert anthropic.params.api_key == "sk-ant-test-value"
    assert local.provider.custom == {"formats": [{"type": "completions"}]}
    assert local.params.base_url == "http://vllm.internal:8000/v1"
    limits = cfg.llm.policies.local_rate_limit
    assert [rl.type for rl in limits] == ["requests", "tokens"]
    assert limits[1].fill_interval == 60.0
    assert cfg.llm.policies.jwt_auth.jwks.file == "./jwks.json"
    assert cfg.frontend_policies.http.max_buffer_size == 4 * 1024 * 1024
    assert cfg.config.readiness_addr == "127.0.0.1:19001"


def test_mcp_shorthand():
    cfg = load("mcp-shorthand.yaml")
    mcp = cfg.mcp
    assert mcp.port == 3000
    assert mcp.stateful_mode == "stateless"
    assert mcp.prefix_mode == "always"
    stdio, remote, petstore = mcp.targets
    assert stdio.stdio.env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_stdio_env_secret"}
    assert remote.mcp.host == "https://mcp.example.com/mcp"
    assert remote.policies.backend_auth.key == "remote-mcp-bearer-secret"
    assert petstore.openapi.port == 443
    assert petstore.openapi.schema_.file == "./openapi.json"
    assert mcp.policies.mcp_authorization.rules == ['mcp.tool.name != "delete"']


def test_full_example_fields():
    cfg = load("full.yaml")
    c = cfg.config
    assert c.admin_addr == "localhost:15000"
    assert c.stats_addr == ":15020"
    assert c.readiness_addr == "off"  # bare YAML `off` is a boolean; still means off
    assert c.worker_threads == "4"
    assert c.connection_termination_deadline == 30.0
    assert c.mcp.session_ttl == 1800.0
    assert c.tracing.random_sampling == "true"
    assert c.tracing.otlp_protocol == "grpc"
    assert c.backend.keepalives.time == 180.0

    public = cfg.binds[0].listeners[0]
    assert public.policies.basic_auth.mode == "strict"
    assert public.policies.basic_auth.htpasswd == "alice:$apr1$abc$htpasswd-inline-secret"
    api, old, teapot, svc = public.routes
    p = api.policies
    assert p.timeout.request_timeout == 30.0
    assert p.timeout.backend_request_timeout == 10.0
    assert p.retry.attempts == 3 and p.retry.backoff == 0.1 and p.retry.codes == [502, 503]
    assert p.local_rate_limit[0].max_tokens == 100
    assert p.url_rewrite.path.prefix == "/"
    assert p.url_rewrite.authority.host == "api.internal"
    assert p.ext_authz.host == "authz.internal:9000"
    assert p.ext_authz.timeout == pytest.approx(0.2)
    assert p.backend_tls.insecure_host is True
    assert api.matches[0].headers[0].value.regex == "^[a-z]+$"
    assert api.matches[0].query[0].value.exact == "1"
    assert api.backends[0].backend == "upstream-api" and api.backends[0].weight == 3
    assert api.backends[1].host == "https://api.example.org"
    assert old.policies.request_redirect.status == 301
    assert old.policies.request_redirect.path.full == "/new"
    assert teapot.policies.direct_response.status == 418
    assert teapot.policies.direct_response.body == "I'm a teapot"
    assert svc.backends[0].service.name.hostname == "svc.default.svc.cluster.local"

    tls_listener = cfg.binds[1].listeners[0]
    assert tls_listener.protocol == "HTTPS"
    assert tls_listener.tls.min_tls_version == "TLS_V1_2"
    tcp = cfg.binds[2].listeners[0]
    assert tcp.tcp_routes[0].backends[0].host == "db.internal:5432"

    assert cfg.backends[0].name == "upstream-api"
    assert cfg.backends[0].policies.backend_auth.key.location.header.name == "x-api-key"
    assert cfg.backends[1].ai.policies.backend_auth.aws.region == "us-east-1"
    assert cfg.policies[0].policy.cors.max_age == 600.0


# --------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("1m", 60.0),
        ("2h", 7200.0),
        ("1.5s", 1.5),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("250ns", 250e-9),
        ("1h30m", 5400.0),
        ("1h2m3s4ms", 3723.004),
        ("0", 0.0),
        (" 5s ", 5.0),
        ("1d", 86400.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "10 s", "1x", "-5s", "1h-30m", "1.2.3s", "abc"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_fields_are_float_seconds_but_dump_original_text():
    cfg = load_config_text(
        route_yaml("""
policies:
  timeout: {requestTimeout: 1m30s}
backends: [{host: "a:1"}]
"""),
        env={},
    )
    t = cfg.binds[0].listeners[0].routes[0].policies.timeout.request_timeout
    assert isinstance(t, Duration) and isinstance(t, float)
    assert t == 90.0 and t.raw == "1m30s"
    dumped = cfg.model_dump(mode="json")
    assert dumped["binds"][0]["listeners"][0]["routes"][0]["policies"]["timeout"]["requestTimeout"] == "1m30s"


def test_duration_without_unit_is_an_error_naming_the_field():
    errs = errors_of(
        route_yaml("""
policies:
  retry: {attempts: 2, backoff: 100}
""")
    )
    assert errs == [
        "binds[0].listeners[0].routes[0].policies.retry.backoff: "
        "duration 100 has no unit; write it as a string like '100s' or '100ms'"
    ]


# --------------------------------------------------------------------------
# Unknown keys and exactly-one-of
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,path,hint",
    [
        ("bogus: 1\n", "bogus", None),
        ("config:\n  adminAdr: 127.0.0.1:1\n", "config.adminAdr", "adminAddr"),
        ("binds:\n- port: 1\n  listeners:\n  - routes: []\n    colour: red\n", "binds[0].listeners[0].colour", None),
        (
            route_yaml("policies:\n  rateLimit: []\n"),
            "binds[0].listeners[0].routes[0].policies.rateLimit",
            "localRateLimit",
        ),
        # snake_case spelling of a camelCase key is not accepted, but pointed at
        (
            route_yaml("policies:\n  backend_tls: {}\n"),
            "binds[0].listeners[0].routes[0].policies.backend_tls",
            "backendTLS",
        ),
        (
            route_yaml("policies:\n  cors: {allowOrigin: ['*']}\n"),
            "binds[0].listeners[0].routes[0].policies.cors.allowOrigin",
            "allowOrigins",
        ),
        (
            route_yaml("backends:\n- host: a:1\n  wieght: 2\n"),
            "binds[0].listeners[0].routes[0].backends[0].wieght",
            "weight",
        ),
        # the closest key of the object at that place: a jwtAuth inside a union, a map's values
        (
            route_yaml("policies:\n  jwtAuth: {issuer: i, audience: [a], jwks: '{}'}\n"),
            "binds[0].listeners[0].routes[0].policies.jwtAuth.audience",
            "audiences",
        ),
        ("binds: []\nbackend: []\n", "backend", "backends"),
    ],
)
def test_unknown_keys_rejected(text, path, hint):
    suffix = f"; did you mean {hint!r}?" if hint else ""  # no hint when no key is close
    assert errors_of(text) == [f"{path}: unknown field{suffix}"]


def test_path_match_exactly_one():
    base = "binds[0].listeners[0].routes[0].matches[0].path"
    errs = errors_of(route_yaml("matches:\n- path: {exact: /a, pathPrefix: /b}\n"))
    assert errs == [f"{base}: exactly one of exact, pathPrefix, regex must be set (got: exact, pathPrefix)"]
    errs = errors_of(route_yaml("matches:\n- path: {}\n"))
    assert errs == [f"{base}: exactly one of exact, pathPrefix, regex must be set (got: none)"]


def test_header_and_query_value_exactly_one():
    errs = errors_of(
        route_yaml("""
matches:
- headers: [{name: x-a, value: {exact: a, regex: b}}]
  query: [{name: q, value: {}}]
""")
    )
    assert errs == [
        "binds[0].listeners[0].routes[0].matches[0].headers[0].value: "
        "exactly one of exact, regex must be set (got: exact, regex)",
        "binds[0].listeners[0].routes[0].matches[0].query[0].value: "
        "exactly one of exact, regex must be set (got: none)",
    ]


def test_backend_exactly_one_kind():
    errs = errors_of(route_yaml("backends:\n- {host: 'a:1', backend: named}\n- {weight: 2}\n"))
    assert errs == [
        "binds[0].listeners[0].routes[0].backends[0]: exactly one of host, service, backend, mcp, ai, "
        "aws, a2a, dynamic, routeGroup must be set (got: host, backend)",
        "binds[0].listeners[0].routes[0].backends[1]: exactly one of host, service, backend, mcp, ai, "
        "aws, a2a, dynamic, routeGroup must be set (got: none)",
    ]


def test_mcp_target_exactly_one_transport():
    errs = errors_of(
        route_yaml("""
backends:
- mcp:
    targets:
    - name: t
      stdio: {cmd: x}
      sse: {host: "http://a/sse"}
""")
    )
    assert errs == [
        "binds[0].listeners[0].routes[0].backends[0].mcp.targets[0]: "
        "exactly one of sse, mcp, stdio, openapi must be set (got: sse, stdio)"
    ]


def test_mcp_host_port_path_rules():
    errs = errors_of(
        route_yaml("""
backends:
- mcp:
    targets:
    - name: a
      mcp: {host: localhost, port: 3000}
    - name: b
      sse: {port: 3000}
""")
    )
    assert errs == [
        "binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].mcp: "
        "if port or path is set, both must be set; otherwise, use only host",
        "binds[0].listeners[0].routes[0].backends[0].mcp.targets[1].sse: host is required when port is set",
    ]


def test_backend_auth_and_rewrite_exactly_one():
    errs = errors_of(
        route_yaml("""
policies:
  backendAuth: {passthrough: {}, key: abc}
  urlRewrite:
    authority: {host: a, port: 80}
""")
    )
    assert errs == [
        "binds[0].listeners[0].routes[0].policies.urlRewrite.authority: "
        "exactly one of full, host, port must be set (got: host, port)",
        "binds[0].listeners[0].routes[0].policies.backendAuth: at most one of passthrough, key, gcp, aws, azure, "
        "jwtSign, oauthTokenExchange, crossAppAccess must be set (got: passthrough, key)",
    ]


def test_backend_auth_needs_a_kind_or_credentials():
    errs = errors_of(route_yaml("policies:\n  backendAuth: {}\n"))
    assert errs == [
        "binds[0].listeners[0].routes[0].policies.backendAuth: one of passthrough, key, gcp, aws, azure, jwtSign, "
        "oauthTokenExchange, crossAppAccess, credentials must be set"
    ]
    cfg = load_config_text(
        route_yaml("policies:\n  backendAuth: {credentials: [{location: {header: {name: x-k}}, key: v}]}\n"), env={}
    )
    assert cfg.binds[0].listeners[0].routes[0].policies.backend_auth.credentials[0].key == "v"


def test_url_rewrite_authority_auto_string():
    cfg = load_config_text(route_yaml("policies:\n  urlRewrite: {authority: auto}\n"), env={})
    assert cfg.binds[0].listeners[0].routes[0].policies.url_rewrite.authority == "auto"


def test_apikey_entry_exactly_one():
    errs = errors_of(route_yaml("policies:\n  apiKey: {keys: [{metadata: {a: 1}}]}\n"))
    assert errs == [
        "binds[0].listeners[0].routes[0].policies.apiKey.keys[0]: exactly one of key, keyHash must be set (got: none)"
    ]


def test_jwt_providers_form_and_shape_errors():
    cfg = load_config_text(
        route_yaml("""
policies:
  jwtAuth:
    mode: strict
    providers:
    - issuer: a
      jwks: {url: "https://a/jwks"}
    - issuer: b
      jwks: '{"keys": []}'
"""),
        env={},
    )
    jwt = cfg.binds[0].listeners[0].routes[0].policies.jwt_auth
    assert jwt.mode == "strict"
    assert jwt.providers[1].jwks == '{"keys": []}'
    errs = errors_of(route_yaml("policies:\n  jwtAuth: {mode: strict}\n"))
    assert errs == ["binds[0].listeners[0].routes[0].policies.jwtAuth: either issuer or providers must be set"]
    errs = errors_of(route_yaml("policies:\n  jwtAuth: {issuer: x, mode: lenient}\n"))
    assert errs[0].startswith("binds[0].listeners[0].routes[0].policies.jwtAuth.mode: Input should be")


# --------------------------------------------------------------------------
# Regexes
# --------------------------------------------------------------------------


def test_bad_regex_is_a_config_error_naming_its_path():
    errs = errors_of(
        route_yaml("""
matches:
- path: {regex: "/(a"}
- headers: [{name: x, value: {regex: "[z-a]"}}]
""")
    )
    assert len(errs) == 2
    assert errs[0].startswith("binds[0].listeners[0].routes[0].matches[0].path.regex: invalid regex '/(a'")
    assert errs[1].startswith("binds[0].listeners[0].routes[0].matches[1].headers[0].value.regex: invalid regex")


def test_legacy_regex_tuple_form():
    cfg = load_config_text(route_yaml("matches:\n- path: {regex: ['^/a$', 0]}\n"), env={})
    assert cfg.binds[0].listeners[0].routes[0].matches[0].path.regex == "^/a$"


# --------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------


def test_local_rate_limit_is_a_list():
    errs = errors_of(route_yaml("policies:\n  localRateLimit: {maxTokens: 1, fillInterval: 1s}\n"))
    assert errs == ["binds[0].listeners[0].routes[0].policies.localRateLimit: expected a list or {conditional: [...]}"]


def test_local_rate_limit_conditional_form_and_bucket_rules():
    cfg = load_config_text(
        route_yaml("""
policies:
  localRateLimit:
    conditional:
    - condition: 'request.headers["x-tier"] == "free"'
      maxTokens: 10
      tokensPerFill: 1
      fillInterval: 1s
    - maxTokens: 100
      tokensPerFill: 10
      fillInterval: 1s
      type: tokens
"""),
        env={},
    )
    rl = cfg.binds[0].listeners[0].routes[0].policies.local_rate_limit
    assert rl.conditional[0].condition.startswith("request.headers")
    assert rl.conditional[1].type == "tokens"
    errs = errors_of(
        route_yaml("""
policies:
  localRateLimit:
  - {maxTokens: 1, tokensPerFill: 5, fillInterval: 1s}
  - {maxTokens: 1, fillInterval: 1s, type: bytes}
""")
    )
    assert errs[0] == (
        "binds[0].listeners[0].routes[0].policies.localRateLimit[0]: maxTokens cannot be less than tokensPerFill"
    )
    assert errs[1].startswith("binds[0].listeners[0].routes[0].policies.localRateLimit[1].type: Input should be")


def test_conditional_fallback_must_be_last():
    errs = errors_of(
        route_yaml("""
policies:
  directResponse:
    conditional:
    - {status: 404}
    - {condition: 'true', status: 200}
""")
    )
    assert errs == [
        "binds[0].listeners[0].routes[0].policies.directResponse.conditional: "
        "conditional policy entries without condition must be last"
    ]


def test_direct_response_body_forms():
    cfg = load_config_text(
        route_yaml("""
policies:
  directResponse: {body: [104, 105], status: 200, headers: {content-type: text/plain}}
"""),
        env={},
    )
    dr = cfg.binds[0].listeners[0].routes[0].policies.direct_response
    assert dr.body == "hi" and dr.headers == {"content-type": "text/plain"}
    errs = errors_of(route_yaml("policies:\n  directResponse: {body: x}\n"))
    assert errs == ["binds[0].listeners[0].routes[0].policies.directResponse.status: required field is missing"]


def test_cors_retry_timeout_shapes():
    cfg = load_config_text(
        route_yaml("""
policies:
  cors:
    allowCredentials: true
    allowMethods: [GET, POST]
    allowOrigins: ["https://a.example"]
    maxAge: 1h
  retry: {attempts: 2, codes: [503]}
  timeout: {backendRequestTimeout: 250ms}
"""),
        env={},
    )
    p = cfg.binds[0].listeners[0].routes[0].policies
    assert p.cors.allow_credentials and p.cors.max_age == 3600.0
    assert p.retry.backoff is None and p.timeout.request_timeout is None
    assert p.timeout.backend_request_timeout == 0.25
    errs = errors_of(route_yaml("policies:\n  retry: {codes: [42]}\n"))
    assert errs == ["binds[0].listeners[0].routes[0].policies.retry.codes: invalid HTTP status code 42"]


def test_basic_auth_htpasswd_file_form():
    cfg = load_config_text(route_yaml("policies:\n  basicAuth: {htpasswd: {file: ./.htpasswd}, realm: r}\n"), env={})
    ba = cfg.binds[0].listeners[0].routes[0].policies.basic_auth
    assert ba.htpasswd.file == "./.htpasswd" and ba.mode == "optional"


def test_listener_protocol_requirements():
    errs = errors_of("binds:\n- port: 1\n  listeners:\n  - protocol: HTTPS\n    routes: []\n  - protocol: TCP\n")
    assert errs == [
        "binds[0].listeners[0]: HTTPS listener requires 'tls'",
        "binds[0].listeners[1]: protocol TCP requires 'tcpRoutes'",
    ]


def test_listener_tls_versions():
    errs = errors_of("""
binds:
- port: 1
  listeners:
  - protocol: HTTPS
    tls: {cert: c, key: k, minTLSVersion: TLS_V2}
    routes: []
""")
    assert errs[0].startswith("binds[0].listeners[0].tls.minTLSVersion: Input should be")


def test_listener_level_policies_are_limited():
    errs = errors_of("binds:\n- port: 1\n  listeners:\n  - routes: []\n    policies: {timeout: {requestTimeout: 1s}}\n")
    assert errs == ["binds[0].listeners[0].policies.timeout: unknown field"]


# --------------------------------------------------------------------------
# `config:` section
# --------------------------------------------------------------------------


def test_config_defaults():
    c = load_config_text("{}", env={}).config
    assert c.admin_addr == "127.0.0.1:15000"
    assert c.stats_addr == "0.0.0.0:15020"
    assert c.readiness_addr == "0.0.0.0:15021"


@pytest.mark.parametrize("addr", ["127.0.0.1:1", "localhost:15000", ":15020", "off", "[::1]:9000", "unix:/tmp/a.sock"])
def test_addresses_accepted(addr):
    cfg = load_config_text(f"config:\n  adminAddr: '{addr}'\n", env={})
    assert cfg.config.admin_addr == addr


@pytest.mark.parametrize("addr", ["example.com:80", "127.0.0.1", "1.2.3.4:99999", "on"])
def test_addresses_rejected(addr):
    errs = errors_of(f"config:\n  statsAddr: '{addr}'\n")
    assert len(errs) == 1 and errs[0].startswith("config.statsAddr: invalid address")


def test_session_key_must_be_32_hex_bytes():
    errs = errors_of("config:\n  session: {key: abcd}\n")
    assert errs == ["config.session.key: session key must be 32 bytes (64 hex characters), got 2 bytes"]


def test_operational_knobs_accepted():
    cfg = load_config_text(
        """
config:
  xdsAddress: https://istiod:15010
  caAddress: https://istiod:15012
  dns: {lookupFamily: V4Only}
  hbone: {windowSize: 1}
  enableIpv6: false
""",
        env={},
    )
    assert cfg.config.xds_address == "https://istiod:15010"


# --------------------------------------------------------------------------
# Cross-references, shorthands, limits
# --------------------------------------------------------------------------


def test_duplicate_backend_names_and_ports():
    errs = errors_of("""
backends:
- {name: a, host: "x:1"}
- {name: a, host: "y:1"}
""")
    assert errs == ["(root): duplicate backend name(s): a"]
    errs = errors_of("binds:\n- {port: 3000, listeners: []}\nmcp:\n  targets: []\n")
    assert errs == ["(root): mcp.port 3000 already used by binds[0]"]


def test_llm_model_validation():
    errs = errors_of("""
llm:
  models:
  - {name: a, provider: openai}
  - {name: b, provider: bedrock}
  - {name: "x*y", provider: anthropic}
  - {name: d, provider: nosuchprovider}
  - {name: e, provider: mistral}
""")
    assert errs == [
        "llm.models[1]: bedrock requires params.awsRegion",
        "llm.models[2].name: model name wildcard must be either at the beginning or the end: 'x*y'",
        "llm.models[3].provider: unknown provider 'nosuchprovider'; expected one of openAI, anthropic, gemini, "
        "vertex, bedrock, azure, copilot, cohere, ollama, baseten, cerebras, deepinfra, deepseek, groq, "
        "huggingface, mistral, openrouter, togetherai, xai, fireworks, {custom: ...} or "
        "{reference: <llm.providers name>}",
    ]  # mistral is one of agentgateway's provider presets
    cfg = load_config_text("llm:\n  models:\n  - {name: a, provider: openai}\n", env={})
    assert cfg.llm.models[0].provider == "openAI"  # normalised spelling
    assert cfg.llm.port == 4000


def test_llm_policies_reject_route_only_policies():
    errs = errors_of("llm:\n  models: []\n  policies: {urlRewrite: {}}\n")
    assert errs == ["llm.policies.urlRewrite: unknown field"]  # (cors is an llm policy too)


def test_targeted_policy_must_hold_one_policy():
    errs = errors_of("""
policies:
- name: p
  target: {gateway: {gatewayName: default, gatewayNamespace: default}}
  policy: {cors: {}, csrf: {}}
""")
    assert errs == ["policies[0].policy: 'policy' must contain exactly 1 policy"]


def test_effective_limits_defaults():
    lim = effective_limits(load_config_text("{}", env={}))
    assert lim.max_header_bytes == 65536
    assert lim.max_body_bytes == 10 * 1024 * 1024
    assert lim.header_read_timeout == 10.0
    assert lim.idle_timeout == 300.0
    assert lim.max_connections == 10000
    assert lim.max_header_count == 100
    assert lim.request_body_timeout == 60.0


def test_effective_limits_from_config():
    lim = effective_limits(load("full.yaml"))
    assert (lim.max_header_bytes, lim.header_read_timeout, lim.max_connections) == (32768, 5.0, 2048)
    assert lim.idle_timeout == 120.0  # frontendPolicies.http.http1IdleTimeout
    assert lim.max_header_count == 200  # frontendPolicies.http.http1MaxHeaders
    assert effective_limits(load("llm.yaml")).max_body_bytes == 4 * 1024 * 1024  # maxBufferSize


def test_limits_reject_nonsense():
    errs = errors_of("config:\n  limits: {maxHeaderBytes: 10, maxConnections: 0}\n")
    assert errs[0].startswith("config.limits.maxHeaderBytes: Input should be greater than or equal to 1024")
    assert errs[1].startswith("config.limits.maxConnections: Input should be greater than or equal to 1")
