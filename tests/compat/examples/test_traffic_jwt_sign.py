"""agentgateway's traffic-jwt-sign example, run as its README runs it.

The vendored ``examples/traffic-jwt-sign/config.yaml`` is loaded unchanged except:

* ``binds[0].port`` 3000 -> a free port (tests run side by side on one machine);
* the route's backend ``127.0.0.1:8080`` (httpbin in the README) -> the project's echo
  upstream, which answers ``/headers`` with the request headers it received, as httpbin
  does (a fixed port may be taken here);
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports (the harness waits for
  readiness there).

The signing key, ``alg``, ``kid``, ``claims`` (including ``aud: http://127.0.0.1:8080``,
which is only a claim value), ``ttl`` and the companion header stay as written.

README steps checked:

* "curl -s 127.0.0.1:3000/headers ... The echoed ``Authorization`` header carries a fresh
  JWT": the upstream got ``Authorization: Bearer <JWT>``; its signature verifies with the
  public half of the config's demo key, its header is ``ES256`` with ``kid: demo-key-1``;
* "Decode its claims": ``iss``/``sub``/``aud`` are the configured claims;
* "``iat``/``exp`` are set by the signer (``ttl`` ... 300s) ... cannot be configured as
  claims, nor can ``nbf``. ... ``iat`` is backdated by 10 seconds; ``exp`` remains the
  signing time plus ``ttl``": ``exp - iat == 310``, ``iat`` is now - 10, no ``nbf``;
* "Every request gets a new token": a request in a later second gets a token with a later
  ``iat``/``exp``;
* "Static companion headers ... are plain request header modifications, shown in the
  config": the upstream got ``x-demo-authorization-token-type: KEYPAIR_JWT``;
* "written to the ``Authorization`` header": a client's own ``Authorization`` is replaced
  by the signed token, not forwarded next to it;
* "``iat``/``exp`` ... cannot be configured as claims, nor can ``nbf``": the example with a
  configured ``iat`` or ``nbf`` claim does not load.

Not checked (a gap, see the report): the README's note "File-based keys are watched, so
rotating the key on disk reloads it without a restart" -- agentgw reads a ``signingKey``
file when the config is (re)loaded and watches only the config file itself.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import httpx
import pytest
import yaml
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.support.harness import dump_yaml, echo_header, free_port, run_cli

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-jwt-sign" / "config.yaml"


def _config(upstream_host: str) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    assert cfg["binds"][0]["port"] == 3000
    cfg["binds"][0]["port"] = free_port()
    route = cfg["binds"][0]["listeners"][0]["routes"][0]
    assert route["backends"] == [{"host": "127.0.0.1:8080"}]
    route["backends"][0]["host"] = upstream_host
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg


def _jwt_sign(cfg: dict) -> dict:
    return cfg["binds"][0]["listeners"][0]["routes"][0]["policies"]["backendAuth"]["jwtSign"]


@pytest.fixture(scope="module")
def example(module_harness):
    up = module_harness.upstream("httpbin")
    cfg = _config(up.host)
    gw = module_harness.gateway(cfg)
    # the upstream is registered with the public half of the signing key
    public = ECKey.import_key(ECKey.import_key(_jwt_sign(cfg)["signingKey"]).as_dict(private=False))
    with httpx.Client(base_url=gw.url, timeout=15) as client:
        yield client, public


def _headers(client: httpx.Client, **headers: str) -> dict:
    r = client.get("/headers", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/headers"
    return r.json()


def _token(echo: dict) -> str:
    (auth,) = echo_header(echo, "authorization")
    scheme, _, token = auth.partition(" ")
    assert scheme == "Bearer", auth
    return token


def test_the_upstream_receives_a_signed_jwt_with_the_configured_claims(example):
    client, public = example
    before = int(time.time())
    echo = _headers(client)
    after = int(time.time())
    tok = jwt.decode(_token(echo), public, algorithms=["ES256"])  # verifies the signature
    assert tok.header == {"alg": "ES256", "typ": "JWT", "kid": "demo-key-1"}
    claims = tok.claims
    assert claims["iss"] == "MYACCOUNT.MYUSER.SHA256:public-key-fingerprint"
    assert claims["sub"] == "MYACCOUNT.MYUSER"
    assert claims["aud"] == "http://127.0.0.1:8080"
    # iat backdated by 10 seconds, exp = signing time + ttl (300s), no nbf
    assert before - 10 <= claims["iat"] <= after - 10
    assert claims["exp"] - claims["iat"] == 310
    assert set(claims) == {"iss", "sub", "aud", "iat", "exp"}
    # the companion header from requestHeaderModifier
    assert echo_header(echo, "x-demo-authorization-token-type") == ["KEYPAIR_JWT"]


def test_every_request_gets_a_fresh_token(example):
    client, public = example
    first = jwt.decode(_token(_headers(client)), public, algorithms=["ES256"]).claims
    # the next second: iat/exp move with the signing time
    time.sleep(max(0.0, first["iat"] + 10 + 1 - time.time()) + 0.05)
    second = jwt.decode(_token(_headers(client)), public, algorithms=["ES256"]).claims
    assert second["iat"] > first["iat"] and second["exp"] > first["exp"]
    assert second["exp"] - second["iat"] == 310


def test_a_clients_own_authorization_is_replaced_by_the_signed_token(example):
    client, public = example
    echo = _headers(client, authorization="Bearer the-clients-token")
    tok = jwt.decode(_token(echo), public, algorithms=["ES256"])
    assert tok.claims["sub"] == "MYACCOUNT.MYUSER"
    assert "the-clients-token" not in str(echo["headers"])


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
def test_signer_owned_claims_cannot_be_configured(tmp_path, claim):
    cfg = _config("127.0.0.1:9")
    bad = copy.deepcopy(cfg)
    _jwt_sign(bad)["claims"][claim] = 1
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(bad))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and f"jwtSign.claims.{claim}" in r.stdout + r.stderr, r.stdout + r.stderr
