"""``backendAuth`` on HTTP routes through a real gateway: static keys and ``credentials``
(agentgateway's ``backend_auth_credentials_config.yaml``), ``jwtSign`` (its
``traffic-jwt-sign`` example), ``oauthTokenExchange`` (RFC 8693 and the RFC 7523
``jwtBearer`` grant of its ``traffic-token-exchange`` examples), ``crossAppAccess`` (the
ID-JAG flow of ``traffic-cross-app-access``), ``passthrough`` after ``jwtAuth``.

The token endpoints are local fakes that check each request as the RFCs specify
(``oauth_fakes.py``); the upstream echo shows what the backend received."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.support.harness import closed_port, gateway_config, route

from .oauth_fakes import ID_JAG, JB, TE, TokenEndpoint
from .support import echo_headers, new_ec, public_jwks, sign

IDP_ISSUER = "https://idp.test"


@pytest.fixture(scope="module")
def env(module_harness, tmp_path_factory):
    up = module_harness.upstream("backend-auth")
    # jwtSign: an ES256 key in a file, as the example's comment recommends
    sk = ec.generate_private_key(ec.SECP256R1())
    d = tmp_path_factory.mktemp("keys")
    key_file = d / "signing-key.pem"
    key_file.write_bytes(
        sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (d / "dd-key").write_text("from-a-file\n")
    # token endpoints
    te = TokenEndpoint({"requester-client": "requester secret/+"})
    mock = TokenEndpoint({"my-app-client-id": "my-app-client-secret"}, expires_in=None)
    idp = TokenEndpoint({"agent-client": "agent-secret"}, mode="idp")
    ras = TokenEndpoint({"resource-client": "resource-secret"}, mode="ras")
    user_key = new_ec("user-key")
    idp.id_token_keys = KeySet([user_key])
    ras.trusted_idp = (idp.issuer, KeySet([ECKey.import_key(idp.key.as_dict(private=False))]))
    dead = f"127.0.0.1:{closed_port()}"
    exchange = {
        "host": te.host,
        "path": "/realms/backend-oauth/protocol/openid-connect/token",
        "clientAuth": {
            "clientId": "requester-client",
            "clientSecret": "requester secret/+",
            "method": "clientSecretBasic",
        },
        "audiences": ["target-client"],
    }
    routes = [
        # the credentials config, verbatim but for the backend address
        {
            "name": "datadog",
            "matches": [{"path": {"pathPrefix": "/dd"}}],
            "backends": [
                {
                    "host": up.host,
                    "policies": {
                        "backendAuth": {
                            "credentials": [
                                {"location": {"header": {"name": "dd-api-key"}}, "key": "primary-api-key"},
                                {
                                    "location": {"header": {"name": "dd-application-key"}},
                                    "key": {"file": str(d / "dd-key")},
                                },
                                {
                                    "location": {"header": {"name": "x-auth-token", "prefix": "Bearer "}},
                                    "key": "token-value",
                                },
                            ]
                        }
                    },
                }
            ],
        },
        {
            "name": "combined",
            "matches": [{"path": {"pathPrefix": "/combined"}}],
            "policies": {"backendAuth": {"key": "route-level-loses"}},
            "backends": [
                {
                    "host": up.host,
                    "policies": {
                        "backendAuth": {
                            "key": {"value": "primary-creds"},
                            "credentials": [
                                {"location": {"header": {"name": "x-auth-email"}}, "key": "user@example.com"},
                                {"location": {"queryParameter": {"name": "api_key"}}, "key": "q s&1"},
                            ],
                        }
                    },
                }
            ],
        },
        route(
            "jwt-sign",
            [up.host],
            prefix="/sign",
            policies={
                "backendAuth": {
                    "jwtSign": {
                        "signingKey": {"file": str(key_file)},
                        "alg": "ES256",
                        "kid": "demo-key-1",
                        "claims": {
                            "iss": "MYACCOUNT.MYUSER.SHA256:fp",
                            "sub": "MYACCOUNT.MYUSER",
                            "aud": "http://127.0.0.1:8080",
                            "n": [1, 2],
                        },
                        "ttl": "300s",
                    }
                },
                "requestHeaderModifier": {
                    "set": {"x-demo-authorization-token-type": "KEYPAIR_JWT", "authorization": "x"}
                },
            },
        ),
        route(
            "exchange",
            [{"host": up.host, "policies": {"backendAuth": {"oauthTokenExchange": exchange}}}],
            prefix="/exchange",
        ),
        route(
            "obo",
            [
                {
                    "host": up.host,
                    "policies": {
                        "backendAuth": {
                            "oauthTokenExchange": {
                                "host": mock.host,
                                "path": "/token",
                                "grantType": "jwtBearer",
                                "clientAuth": {
                                    "clientId": "my-app-client-id",
                                    "clientSecret": "my-app-client-secret",
                                    "method": "clientSecretPost",
                                },
                                "scopes": ["https://graph.microsoft.com/.default", "offline_access"],
                                "additionalParams": {
                                    "requested_token_use": '"on_behalf_of"',
                                    "tenant": 'request.headers["x-tenant"]',
                                },
                                "cache": {"maxEntries": 0},
                            }
                        }
                    },
                }
            ],
            prefix="/obo",
        ),
        route(
            "xaa",
            [up.host],
            prefix="/xaa",
            policies={
                "jwtAuth": {
                    "issuer": IDP_ISSUER,
                    "audiences": ["agent-client"],
                    "jwks": json.dumps(public_jwks(user_key)),
                },
                "backendAuth": {
                    "crossAppAccess": {
                        "subjectToken": {"source": {"expression": "jwt.rawToken.unredacted()"}},
                        "identityProvider": {
                            "host": idp.host,
                            "path": "/realms/idjag-demo/protocol/openid-connect/token",
                            "clientAuth": {
                                "clientId": "agent-client",
                                "method": "clientSecretBasic",
                                "clientSecret": "agent-secret",
                            },
                        },
                        "resourceAuthorizationServer": {
                            "host": f"http://{ras.host}",
                            "path": "/token",
                            "clientAuth": {
                                "clientId": "resource-client",
                                "method": "clientSecretPost",
                                "clientSecret": "resource-secret",
                            },
                        },
                        "audience": ras.issuer,
                        "resources": ["https://api.resource.test"],
                        "scopes": ["todos.read"],
                    }
                },
            },
        ),
        route(
            "passthrough",
            [up.host],
            prefix="/pass",
            policies={
                "jwtAuth": {
                    "issuer": IDP_ISSUER,
                    "audiences": ["agent-client"],
                    "jwks": json.dumps(public_jwks(user_key)),
                },
                "backendAuth": {"passthrough": {"location": {"header": {"name": "x-user-token"}}}},
            },
        ),
        route(
            "dead",
            [{"host": up.host, "policies": {"backendAuth": {"oauthTokenExchange": {"host": dead}}}}],
            prefix="/dead",
        ),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    c = httpx.Client(base_url=gw.url, timeout=15)
    yield {
        "c": c,
        "pub": sk.public_key(),
        "te": te,
        "mock": mock,
        "idp": idp,
        "ras": ras,
        "user_key": user_key,
    }
    c.close()
    for s in (te, mock, idp, ras):
        s.close()


def id_token(env, sub: str = "alice", ttl: int = 600) -> str:
    now = int(time.time())
    return sign(
        env["user_key"],
        {"iss": IDP_ISSUER, "aud": "agent-client", "sub": sub, "iat": now, "exp": now + ttl},
        alg="ES256",
    )


def test_credentials_go_where_each_location_says(env):
    c = env["c"]
    r = c.get("/dd/x", headers={"dd-api-key": "the-clients-own"})
    assert r.status_code == 200, r.text
    h = echo_headers(r)
    assert h["dd-api-key"] == ["primary-api-key"]  # replaced, not added
    assert h["dd-application-key"] == ["from-a-file"]
    assert h["x-auth-token"] == ["Bearer token-value"]
    assert "authorization" not in h
    # a backend's own backendAuth replaces the route's; key and credentials together
    r = c.get("/combined/x?a=1&api_key=client")
    assert r.status_code == 200, r.text
    h = echo_headers(r)
    assert h["authorization"] == ["Bearer primary-creds"]
    assert h["x-auth-email"] == ["user@example.com"]
    assert r.json()["query"] == "a=1&api_key=q%20s%261", r.json()


def test_jwt_sign_mints_a_token_per_request_the_backend_can_verify(env):
    c = env["c"]
    r = c.get("/sign/x", headers={"authorization": "Bearer client-token"})
    assert r.status_code == 200, r.text
    h = echo_headers(r)
    assert h["x-demo-authorization-token-type"] == ["KEYPAIR_JWT"]
    (auth,) = h["authorization"]  # written after the header edits: the signed token wins
    assert auth.startswith("Bearer ")
    pem = env["pub"].public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    tok = jwt.decode(auth[7:], ECKey.import_key(pem), algorithms=["ES256"])
    assert tok.header == {"alg": "ES256", "typ": "JWT", "kid": "demo-key-1"}
    cl = tok.claims
    assert (cl["iss"], cl["sub"], cl["aud"], cl["n"]) == (
        "MYACCOUNT.MYUSER.SHA256:fp",
        "MYACCOUNT.MYUSER",
        "http://127.0.0.1:8080",
        [1, 2],
    )
    assert cl["exp"] - cl["iat"] == 310 and abs(cl["iat"] + 10 - time.time()) < 30
    assert "nbf" not in cl


def test_token_exchange_sends_rfc8693_and_caches_by_subject(env):
    c, te = env["c"], env["te"]
    te.valid_subjects |= {"user-token-1", "user-token-2"}
    before = len(te.requests)
    r = c.get("/exchange/x", headers={"authorization": "Bearer user-token-1"})
    assert r.status_code == 200, r.text
    (auth,) = echo_headers(r)["authorization"]
    token = auth.removeprefix("Bearer ")
    issued = te.issued[token]
    assert issued["client"] == "requester-client" and issued["subject"] == "user-token-1"
    sent = te.requests[before]
    assert sent["path"] == "/realms/backend-oauth/protocol/openid-connect/token"
    assert sent["headers"]["accept"] == "application/json"
    form = te.forms()[before]
    assert form == {
        "grant_type": [TE],
        "subject_token": ["user-token-1"],
        "subject_token_type": ["urn:ietf:params:oauth:token-type:access_token"],
        # sent unless configured otherwise, as agentgateway's oauth-rfc8693 README says
        "requested_token_type": ["urn:ietf:params:oauth:token-type:access_token"],
        "audience": ["target-client"],
    }
    # the same subject again: from the cache; another subject: a new exchange
    r2 = c.get("/exchange/y", headers={"authorization": "Bearer user-token-1"})
    assert echo_headers(r2)["authorization"] == [auth]
    assert len(te.requests) == before + 1
    r3 = c.get("/exchange/y", headers={"authorization": "Bearer user-token-2"})
    assert r3.status_code == 200 and echo_headers(r3)["authorization"] != [auth]
    assert len(te.requests) == before + 2


def test_token_exchange_refusals(env):
    c, te = env["c"], env["te"]
    r = c.get("/exchange/x")  # no subject token: a bad request, as agentgateway answers it
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request"
    assert "www-authenticate" not in r.headers
    r = c.get("/exchange/x", headers={"authorization": "Bearer not-a-token-it-knows"})
    assert r.status_code == 400, r.text
    assert "invalid_grant" in r.json()["error"]["message"] and "not-a-token" not in r.text
    r = c.get("/dead/x", headers={"authorization": "Bearer t"})
    assert r.status_code == 502 and r.json()["error"]["type"] == "backend_auth_failed"
    assert te.requests  # (the fixture's endpoint was the one asked above)


def test_jwt_bearer_grant_with_client_secret_post_and_cel_params(env):
    c, mock = env["c"], env["mock"]
    mock.valid_subjects.add("user-assertion")
    for i in range(2):  # cache disabled: both go to the endpoint
        before = len(mock.requests)
        r = c.get("/obo/me", headers={"authorization": "Bearer user-assertion", "x-tenant": f"t{i}"})
        assert r.status_code == 200, r.text
        assert len(mock.requests) == before + 1
        form = mock.forms()[before]
        assert "authorization" not in mock.requests[before]["headers"]
        assert form == {
            "grant_type": [JB],
            "assertion": ["user-assertion"],
            "scope": ["https://graph.microsoft.com/.default offline_access"],
            "requested_token_use": ["on_behalf_of"],
            "tenant": [f"t{i}"],
            "client_id": ["my-app-client-id"],
            "client_secret": ["my-app-client-secret"],
        }
        (auth,) = echo_headers(r)["authorization"]
        assert mock.issued[auth.removeprefix("Bearer ")]["subject"] == "user-assertion"


def test_cross_app_access_trades_the_validated_id_token_for_the_resource_token(env):
    c, idp, ras = env["c"], env["idp"], env["ras"]
    tok = id_token(env)
    b_idp, b_ras = len(idp.requests), len(ras.requests)
    r = c.get("/xaa/todos", headers={"authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    (auth,) = echo_headers(r)["authorization"]
    issued = ras.issued[auth.removeprefix("Bearer ")]
    assert issued["sub"] == "alice" and issued["scope"] == "todos.read"
    assert issued["jag"]["resource"] == "https://api.resource.test"
    f1 = idp.forms()[b_idp]
    assert f1["grant_type"] == [TE] and f1["subject_token"] == [tok]
    assert f1["subject_token_type"] == ["urn:ietf:params:oauth:token-type:id_token"]
    assert f1["requested_token_type"] == [ID_JAG] and f1["audience"] == [ras.issuer]
    assert f1["scope"] == ["todos.read"] and f1["resource"] == ["https://api.resource.test"]
    assert idp.requests[b_idp]["path"] == "/realms/idjag-demo/protocol/openid-connect/token"
    f2 = ras.forms()[b_ras]
    assert f2["grant_type"] == [JB] and f2["scope"] == ["todos.read"]
    assert f2["client_id"] == ["resource-client"] and idp.issued[f2["assertion"][0]]["sub"] == "alice"
    # cached: the same user's next call asks neither server
    r = c.get("/xaa/todos", headers={"authorization": f"Bearer {tok}"})
    assert echo_headers(r)["authorization"] == [auth]
    assert (len(idp.requests), len(ras.requests)) == (b_idp + 1, b_ras + 1)
    # no token: jwtAuth (optional mode) lets it through, the exchange has no subject
    assert c.get("/xaa/todos").status_code == 400
    # a token jwtAuth refuses never reaches the identity provider
    bad = sign(
        new_ec("other"),
        {"iss": IDP_ISSUER, "aud": "agent-client", "sub": "mallory", "exp": int(time.time()) + 60},
        alg="ES256",
    )
    assert c.get("/xaa/todos", headers={"authorization": f"Bearer {bad}"}).status_code == 401
    assert len(idp.requests) == b_idp + 1


def test_passthrough_forwards_the_token_jwt_auth_validated(env):
    c = env["c"]
    tok = id_token(env, sub="bob")
    r = c.get("/pass/x", headers={"authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    h = echo_headers(r)
    assert h["x-user-token"] == [tok] and "authorization" not in h
    r = c.get("/pass/x")  # nothing validated: nothing forwarded
    assert r.status_code == 200 and "x-user-token" not in echo_headers(r)


def test_private_key_jwt_client_actor_token_and_other_locations(harness, tmp_path):
    """``privateKeyJwt`` client authentication (RFC 7523 2.2: a client assertion the fake
    verifies: signature, iss = sub = client_id, aud, exp, single-use jti; ``x5t#S256`` of
    the configured certificate in its header), an RFC 8693 ``actor_token``, a subject read
    from a cookie, and the token written to a header without prefix."""
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from joserfc.jwk import RSAKey

    up = harness.upstream("pkj")
    te = TokenEndpoint({})
    rk = rsa.generate_private_key(65537, 2048)
    (tmp_path / "client.key").write_bytes(
        rk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-client")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rk.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(rk, hashes.SHA256())
    )
    (tmp_path / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pub = rk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    te.assertion_keys["gw-client"] = KeySet([RSAKey.import_key(pub, parameters={"kid": "gw-key"})])
    te.valid_subjects.add("subj-1")
    try:
        exchange = {
            "host": te.host,
            "path": "/token",
            "clientAuth": {
                "method": "privateKeyJwt",
                "clientId": "gw-client",
                "signingKey": {"file": str(tmp_path / "client.key")},
                "kid": "gw-key",
                "assertionAudience": te.issuer + "/token",
                "certificate": {"file": str(tmp_path / "client.crt")},
                "certificateHeader": "x5t#S256",
            },
            "subjectToken": {
                "source": {"cookie": {"name": "session"}},
                "tokenType": "urn:ietf:params:oauth:token-type:jwt",
            },
            "actorToken": {"source": {"header": {"name": "x-actor-token"}}},
            "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
            "resources": ["https://api.example/"],
            "authorizationLocation": {"header": {"name": "x-backend-token"}},
        }
        gw = harness.gateway(
            gateway_config([route("pkj", [up.host], policies={"backendAuth": {"oauthTokenExchange": exchange}})])
        )
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            hdrs = {"cookie": "theme=dark; session=subj-1", "x-actor-token": "actor-1"}
            r = c.get("/x", headers=hdrs)
            assert r.status_code == 200, r.text
            h = echo_headers(r)
            (tok,) = h["x-backend-token"]
            assert te.issued[tok]["client"] == "gw-client" and te.issued[tok]["subject"] == "subj-1"
            assert h["cookie"] == ["theme=dark"] and "x-actor-token" not in h and "authorization" not in h
            form = te.forms()[0]
            assert form["subject_token_type"] == ["urn:ietf:params:oauth:token-type:jwt"]
            assert form["actor_token"] == ["actor-1"]
            assert form["actor_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
            assert form["requested_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
            assert form["resource"] == ["https://api.example/"]
            header = te.assertion_headers[0]
            thumb = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
            assert header["alg"] == "RS256" and header["kid"] == "gw-key" and header["x5t#S256"] == thumb
            # cached by subject and actor: the same pair asks nothing; another actor asks again
            assert c.get("/x", headers=hdrs).status_code == 200 and len(te.requests) == 1
            r = c.get("/x", headers={**hdrs, "x-actor-token": "actor-2"})
            assert r.status_code == 200 and len(te.requests) == 2 and len(te.seen_jti) == 2
            # no actor token: refused before any call
            r = c.get("/x", headers={"cookie": "session=subj-1"})
            assert r.status_code == 400 and len(te.requests) == 2
    finally:
        te.close()


def test_token_endpoint_over_tls_checks_its_certificate(harness, tmp_path):
    """An ``https://`` token endpoint: verified against ``policies.backendTLS.root``; with
    the system roots alone, a certificate from a private CA is refused (502, no token)."""
    import ssl

    from tests.support.harness import make_tls_files

    tls = make_tls_files(tmp_path / "tls", "localhost")
    te = TokenEndpoint({"c": "s"})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    te.httpd.socket = ctx.wrap_socket(te.httpd.socket, server_side=True)
    te.valid_subjects.add("t1")
    up = harness.upstream("tls-te")
    url = f"https://localhost:{te.port}"
    base = {"host": url, "path": "/token", "clientAuth": {"clientId": "c", "clientSecret": "s"}}
    trusted = {**base, "policies": {"backendTLS": {"root": str(tls.ca_cert)}}}
    try:
        gw = harness.gateway(
            gateway_config(
                [
                    route(
                        "trusted",
                        [up.host],
                        prefix="/trusted",
                        policies={"backendAuth": {"oauthTokenExchange": trusted}},
                    ),
                    route(
                        "system", [up.host], prefix="/system", policies={"backendAuth": {"oauthTokenExchange": base}}
                    ),
                ]
            )
        )
        with httpx.Client(base_url=gw.url, timeout=15) as c:
            r = c.get("/trusted/x", headers={"authorization": "Bearer t1"})
            assert r.status_code == 200, r.text
            (auth,) = echo_headers(r)["authorization"]
            assert te.issued[auth.removeprefix("Bearer ")]["subject"] == "t1"
            assert te.requests[0]["headers"]["host"] == f"localhost:{te.port}"
            r = c.get("/system/x", headers={"authorization": "Bearer t1"})
            assert r.status_code == 502 and r.json()["error"]["type"] == "backend_auth_failed"
            assert len(te.requests) == 1
    finally:
        te.close()


def test_ai_route_passthrough_sends_the_validated_token_to_the_provider(harness):
    """An ``ai`` route with ``jwtAuth`` and ``backendAuth.passthrough``: the provider gets the
    token ``jwtAuth`` validated (and removed from the request) as its Bearer key."""
    from .support import _Handler, _Server

    class Provider(_Server):
        def __init__(self):
            class H(_Handler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get("content-length") or 0))
                    self._record(body)
                    out = {
                        "id": "c1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "gpt-4o",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                    self._send(200, json.dumps(out).encode(), {"content-type": "application/json"})

            super().__init__(H)

    key = new_ec("ai-user")
    prov = Provider()
    try:
        policies = {
            "jwtAuth": {"issuer": IDP_ISSUER, "audiences": ["agent-client"], "jwks": json.dumps(public_jwks(key))},
            "backendAuth": {"passthrough": {}},
        }
        backend = {"ai": {"name": "oa", "provider": {"openAI": {"model": "gpt-4o"}}, "hostOverride": prov.host}}
        gw = harness.gateway(gateway_config([route("llm", [backend], policies=policies)]))
        now = int(time.time())
        tok = sign(
            key, {"iss": IDP_ISSUER, "aud": "agent-client", "sub": "u", "iat": now, "exp": now + 600}, alg="ES256"
        )
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gw.url, timeout=15) as c:
            r = c.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {tok}"})
            assert r.status_code == 200, r.text
        assert prov.requests[-1]["headers"]["authorization"] == f"Bearer {tok}"
    finally:
        prov.close()
