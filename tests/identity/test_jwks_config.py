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
