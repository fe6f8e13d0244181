"""Golden tests: every seed's manifests and Gateway API example shapes → exact config, status, errors.

Regenerate after an intended change with ``AGENTGW_UPDATE_GOLDEN=1 python -m pytest tests/kube/test_translate.py``
and review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agentgw.compile import compile_config
from agentgw.config import ConfigError, load_config_text
from agentgw.kube.cli import dump_yaml, status_documents
from agentgw.kube.manifests import load_manifests
from agentgw.kube.policy_attachment import CLOSED_RESPONSE
from agentgw.kube.translate import translate

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "fixtures")
GOLDEN = os.path.join(HERE, "golden")
CASES = sorted(d for d in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, d)))
UPDATE = os.environ.get("AGENTGW_UPDATE_GOLDEN") == "1"


class _NoServices:
    pool = None
    on_upstream_error = None


def _outputs(case: str) -> dict[str, str]:
    res = translate(load_manifests(os.path.join(FIXTURES, case)), offline=True)
    out = {}
    for (ns, name), g in sorted(res.gateways.items()):
        out[f"config.{ns}.{name}.yaml"] = dump_yaml(g.config)
        if g.files:
            out[f"files.{ns}.{name}.yaml"] = dump_yaml(g.files)
    out["status.yaml"] = dump_yaml(status_documents(res))
    out["messages.txt"] = "".join(f"error: {e}\n" for e in res.errors) + "".join(f"note: {n}\n" for n in res.notes)
    return out


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    got = _outputs(case)
    d = os.path.join(GOLDEN, case)
    if UPDATE:
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
        for name, text in got.items():
            with open(os.path.join(d, name), "w") as fh:
                fh.write(text)
    want = {f: open(os.path.join(d, f)).read() for f in sorted(os.listdir(d))}
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], f"{case}/{name} differs from the golden file"


@pytest.mark.parametrize("case", CASES)
def test_configs_load_and_compile(case, tmp_path):
    """Every generated config passes the config loader and the compiler (TLS files written beside it)."""
    res = translate(load_manifests(os.path.join(FIXTURES, case)), offline=True)
    for g in res.gateways.values():
        for fname, content in g.files.items():
            (tmp_path / fname).write_text(content)
        cfg = load_config_text(dump_yaml(g.config))
        try:
            compile_config(cfg, _NoServices(), str(tmp_path))
        except ConfigError as exc:
            # the example certificate is a placeholder; everything else must compile
            assert all("cannot load TLS certificate" in e for e in exc.errors), exc.errors


def test_seed_expectations():
    """What the seeds' own checks print: the conditions their jsonpath/kubectl-wait steps read."""
    res = translate(load_manifests(os.path.join(FIXTURES, "seed000_agentcore")), offline=True)
    st = res.status
    gw = st[("gateway.networking.k8s.io", "Gateway", "agentgateway-system", "agentgateway")]
    assert {c["type"]: c["status"] for c in gw["conditions"]} == {"Accepted": "True", "Programmed": "True"}
    be = st[("agentgateway.dev", "AgentgatewayBackend", "agentgateway-system", "agentcore-backend")]
    assert be["conditions"][0]["reason"] == "Accepted"
    rt = st[("gateway.networking.k8s.io", "HTTPRoute", "agentgateway-system", "agentcore")]
    assert [c["reason"] for c in rt["parents"][0]["conditions"] if c["type"] == "ResolvedRefs"] == ["ResolvedRefs"]
    route = res.gateways[("agentgateway-system", "agentgateway")].config["binds"][0]["listeners"][0]["routes"][0]
    assert route["policies"]["localRateLimit"] == [{"maxTokens": 5, "tokensPerFill": 5, "fillInterval": "1m"}]
    assert route["policies"]["jwtAuth"]["mode"] == "strict"


def test_broken_references_are_reported():
    res = translate(load_manifests(os.path.join(FIXTURES, "broken_refs")), offline=True)
    text = "\n".join(res.errors)
    for needle in (
        "Service apps/does-not-exist not found",
        "reference to namespace other is not permitted by any ReferenceGrant",
        "unsupported backend kind example.com/Widget",
        "Gateway apps/no-such-gateway not found",
        "Accepted=NotAllowedByListeners",
        "Accepted=NoMatchingListenerHostname",
        "Accepted=UnsupportedProtocol",
        "Accepted=TargetNotFound",
        "Accepted=RefNotPermitted",
    ):
        assert needle in text, needle
    # the Gateway of another controller is left alone: no status, no config
    assert ("apps", "not-ours") not in res.gateways
    assert ("gateway.networking.k8s.io", "Gateway", "apps", "not-ours") not in res.status
    # rules whose only backend is broken answer 500, as Gateway API requires
    routes = res.gateways[("apps", "gw")].config["binds"][0]["listeners"][0]["routes"]
    assert {r["policies"]["directResponse"]["status"] for r in routes} == {500}


def test_reference_grant_permits_cross_namespace_backend():
    # without the refused rate-limit policy, which closes the routes it targets
    objs = [
        o for o in load_manifests(os.path.join(FIXTURES, "broken_refs")) if o["kind"] != "EnterpriseAgentgatewayPolicy"
    ]
    grant = {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "allow", "namespace": "other"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "apps"}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }
    res = translate(objs + [grant], offline=True)
    routes = res.gateways[("apps", "gw")].config["binds"][0]["listeners"][0]["routes"]
    cross = next(r for r in routes if r["matches"][0]["path"] == {"pathPrefix": "/cross"})
    assert cross["backends"] == [
        {"service": {"name": {"namespace": "other", "hostname": "other-svc.other.svc.cluster.local"}, "port": 80}}
    ]


def test_policy_precedence_rule_over_route_over_gateway():
    def pol(name, ts, target, traffic):
        return {
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayPolicy",
            "metadata": {"name": name, "namespace": "ns", "creationTimestamp": ts},
            "spec": {"targetRefs": [target], "traffic": traffic},
        }

    gwref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}
    rtref = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}
    objs = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "x", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"ports": [{"port": 80}]},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [
                    {
                        "name": "a",
                        "backendRefs": [{"name": "s", "port": 80}],
                        "matches": [{"path": {"type": "Exact", "value": "/a"}}],
                    },
                    {"name": "b", "backendRefs": [{"name": "s", "port": 80}], "timeouts": {"request": "9s"}},
                ],
            },
        },
        pol("gw-old", "2026-01-01T00:00:00Z", gwref, {"timeouts": {"request": "1s"}, "retry": {"attempts": 2}}),
        pol("gw-new", "2026-02-01T00:00:00Z", gwref, {"timeouts": {"request": "2s"}}),
        pol("route", "2026-03-01T00:00:00Z", rtref, {"timeouts": {"request": "3s"}}),
        pol("rule-a", "2026-03-01T00:00:00Z", {**rtref, "sectionName": "a"}, {"timeouts": {"request": "4s"}}),
    ]
    res = translate(objs, offline=True)
    routes = res.gateways[("ns", "gw")].config["binds"][0]["listeners"][0]["routes"]
    by_rule = {r["ruleName"]: r["policies"] for r in routes}
    assert by_rule["a"] == {"timeout": {"requestTimeout": "4s"}, "retry": {"attempts": 2}}
    assert by_rule["b"] == {
        "timeout": {"requestTimeout": "9s"},
        "retry": {"attempts": 2},
    }  # the rule's own timeouts win


def test_cli_translate_prints_config_and_fails_on_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "..", "..", "src")}
    ok = subprocess.run(
        [sys.executable, "-m", "agentgw", "k8s", "translate", "-f", os.path.join(FIXTURES, "seed003_ack_a2a")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "demo-a2a-agent-server.default.svc.cluster.local" in ok.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentgw",
            "k8s",
            "translate",
            "-f",
            os.path.join(FIXTURES, "broken_refs"),
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "error: HTTPRoute apps/broken" in bad.stderr
    assert (tmp_path / "apps.gw" / "config.yaml").exists()


def test_rate_limit_config_with_redis_becomes_global_rate_limit(tmp_path):
    objs = load_manifests(os.path.join(FIXTURES, "seed000_agentcore"))
    res = translate(objs, offline=True, redis_url="redis://redis.agentgw-system.svc:6379/0")
    g = res.gateways[("agentgateway-system", "agentgateway")]
    pol = g.config["binds"][0]["listeners"][0]["routes"][0]["policies"]
    assert "localRateLimit" not in pol
    assert pol["globalRateLimit"] == {
        "redis": {"url": "redis://redis.agentgw-system.svc:6379/0"},
        "descriptors": [
            {
                "entries": [{"key": "generic_key", "value": '"counter"'}],
                "rateLimit": {"requestsPerUnit": 5, "unit": "MINUTE"},
                "type": "requests",
            }
        ],
    }
    compile_config(load_config_text(dump_yaml(g.config)), _NoServices(), str(tmp_path))
    # nested descriptors: per client address within a header value
    rlc = next(o for o in objs if o["kind"] == "RateLimitConfig")
    rlc["spec"]["raw"] = {
        "descriptors": [
            {
                "key": "x-tenant",
                "descriptors": [{"key": "remote_address", "rateLimit": {"requestsPerUnit": 2, "unit": "SECOND"}}],
            }
        ],
        "rateLimits": [
            {
                "actions": [
                    {"requestHeaders": {"headerName": "X-Tenant", "descriptorKey": "x-tenant"}},
                    {"remoteAddress": {}},
                ]
            }
        ],
    }
    res = translate(objs, offline=True, redis_url="redis://r:6379/0")
    pol = res.gateways[("agentgateway-system", "agentgateway")].config["binds"][0]["listeners"][0]["routes"][0][
        "policies"
    ]
    assert pol["globalRateLimit"]["descriptors"] == [
        {
            "entries": [
                {"key": "x-tenant", "value": 'request.headers["x-tenant"]'},
                {"key": "remote_address", "value": "source.address"},
            ],
            "rateLimit": {"requestsPerUnit": 2, "unit": "SECOND"},
            "type": "requests",
        }
    ]
    assert not res.errors


def test_secrets_resolved_for_jwks_api_keys_and_basic_auth():
    jwks = '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k1"}]}'
    objs = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "x", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"backendRefs": [{"group": "agentgateway.dev", "kind": "AgentgatewayBackend", "name": "b"}]}],
            },
        },
        {
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayBackend",
            "metadata": {"name": "b", "namespace": "ns"},
            "spec": {"static": {"host": "10.0.0.1", "port": 80}},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "jwks", "namespace": "ns"},
            "data": {"jwks": __import__("base64").b64encode(jwks.encode()).decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys", "namespace": "ns"},
            "stringData": {"ci": '{"key": "k-ci", "metadata": {"team": "ci"}}'},
        },
        {
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"}],
                "traffic": {
                    "jwtAuthentication": {
                        "mode": "Optional",
                        "providers": [{"issuer": "me", "jwks": {"secretRef": {"name": "jwks"}}}],
                    },
                    "apiKeyAuthentication": {"secretRef": {"name": "keys"}},
                },
            },
        },
    ]
    res = translate(objs, offline=True)
    assert not res.errors, res.errors
    pol = res.gateways[("ns", "gw")].config["binds"][0]["listeners"][0]["routes"][0]["policies"]
    assert pol["jwtAuth"] == {"mode": "optional", "providers": [{"issuer": "me", "jwks": jwks}]}
    assert pol["apiKey"] == {"mode": "strict", "keys": [{"key": "k-ci", "metadata": {"name": "ci", "team": "ci"}}]}
    load_config_text(dump_yaml(res.gateways[("ns", "gw")].config))
    # a missing Secret is reported on the policy; the policy is not applied, and the route it
    # would protect answers 500 instead of serving without it
    res = translate([o for o in objs if o["metadata"]["name"] != "keys"], offline=True)
    assert any("AgentgatewayPolicy ns/p: Accepted=Invalid" in e and "Secret ns/keys not found" in e for e in res.errors)
    route = res.gateways[("ns", "gw")].config["binds"][0]["listeners"][0]["routes"][0]
    assert route["policies"] == {"directResponse": CLOSED_RESPONSE} and "backends" not in route


def test_backend_http_version_http1_and_http2_are_carried_over_and_others_refused(tmp_path):
    """``policies.http.version``: HTTP1 and HTTP2 (either spelling) are carried over and
    compile on a static backend; a version agentgw does not speak (HTTP3) makes the backend
    not accepted at translation, with the field in its status; HTTP2 where the proxy does
    not speak it (an AI backend) is refused by the proxy's check, on the backend."""

    def objs(version, spec=None):
        return [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "ns"},
                "spec": {"gatewayClassName": "x", "listeners": [{"name": "l", "port": 80, "protocol": "HTTP"}]},
            },
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "r", "namespace": "ns"},
                "spec": {
                    "parentRefs": [{"name": "gw"}],
                    "rules": [
                        {"backendRefs": [{"group": "agentgateway.dev", "kind": "AgentgatewayBackend", "name": "b"}]}
                    ],
                },
            },
            {
                "apiVersion": "agentgateway.dev/v1alpha1",
                "kind": "AgentgatewayBackend",
                "metadata": {"name": "b", "namespace": "ns"},
                "spec": {
                    **(spec or {"static": {"host": "10.0.0.1", "port": 80}}),
                    "policies": {"http": {"version": version, "requestTimeout": "5s"}},
                },
            },
        ]

    for version in ("HTTP1", "HTTP2", "HTTP/2.0"):
        res = translate(objs(version), offline=True)
        assert not res.errors
        cfg = res.gateways[("ns", "gw")].config
        assert cfg["binds"][0]["listeners"][0]["routes"][0]["backends"][0]["policies"] == {
            "http": {"requestTimeout": "5s", "version": version}
        }
        compile_config(load_config_text(dump_yaml(cfg)), _NoServices(), str(tmp_path))

    res = translate(objs("HTTP3"), offline=True)
    msg = "spec.policies.http.version: HTTP3 to backends is not supported by agentgw"
    assert any(e.startswith("AgentgatewayBackend ns/b: Accepted=Invalid: " + msg) for e in res.errors), res.errors
    assert msg in dump_yaml(status_documents(res))
    route = res.gateways[("ns", "gw")].config["binds"][0]["listeners"][0]["routes"][0]
    assert "backends" not in route and route["policies"]["directResponse"]["status"] == 500

    from agentgw.kube.check import translate_checked

    ai = {"ai": {"provider": {"openai": {"model": "gpt-4o-mini"}}}}
    res = translate_checked(objs("HTTP2", ai), offline=True)
    st = res.status[("agentgateway.dev", "AgentgatewayBackend", "ns", "b")]["conditions"][0]
    assert (st["status"], st["reason"]) == ("False", "Invalid") and "policies.http.version" in st["message"], st
