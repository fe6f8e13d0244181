"""A JWKS agentgw cannot verify with is a config error naming the field, not a crash."""

from __future__ import annotations

import json

import pytest

from agentgw.compile import compile_config
from agentgw.config import ConfigError, load_config_text


class _NoServices:
    pool = None
    on_upstream_error = None


def test_jwks_with_only_symmetric_keys_is_refused_with_its_path():
    jwks = json.dumps({"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0", "alg": "HS256"}]})
    cfg = load_config_text(
        json.dumps(
            {
                "binds": [
                    {
                        "port": 18000,
                        "listeners": [
                            {
                                "routes": [
                                    {
                                        "policies": {"jwtAuth": {"issuer": "https://issuer.example", "jwks": jwks}},
                                        "backends": [{"host": "127.0.0.1:9"}],
                                    }
                                ]
                            }
                        ],
                    }
                ]
            }
        ),
        env={},
    )
    with pytest.raises(ConfigError) as ei:
        compile_config(cfg, _NoServices())
    assert ei.value.errors == [
        "binds[0].listeners[0].routes[0].policies.jwtAuth.jwks: cannot load JWKS: not a usable JWKS"
    ]


def test_an_explicitly_empty_jwks_loads_and_refuses_every_token(harness):
    """``jwks: '{"keys": []}'`` (agentgateway's own config tests write it): the config
    loads, and no token can pass; requests without one follow the mode."""
    import httpx

    from tests.support.harness import gateway_config, route

    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc.jwk import RSAKey

    from .support import claims, sign

    up = harness.upstream("up")
    routes = [
        route(m, [up.host], prefix=f"/{m}", policies={"jwtAuth": {"mode": m, "issuer": "https://issuer.example", "jwks": '{"keys":[]}'}})
        for m in ("strict", "optional")
    ]
    gw = harness.gateway(gateway_config(routes))
    key = RSAKey.import_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    token = sign(key, claims(iss="https://issuer.example"))
    for m, none_status in (("strict", 401), ("optional", 200)):
        assert httpx.get(f"{gw.url}/{m}/x", timeout=10).status_code == none_status
        r = httpx.get(f"{gw.url}/{m}/x", headers={"authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 401, m
