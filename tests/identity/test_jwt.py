"""jwtAuth through a real gateway: RFC 7515 vectors, every way a token can be wrong,
modes, token locations, claim headers, and a JWKS server that rotates keys and fails."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from agentgw.policies.jwt_auth import parse_unverified, verify_signature, _import_keyset
from tests.support.harness import gateway_config, route

from .support import (
    RFC7515_A2,
    RFC7515_A3,
    JwksServer,
    b64url,
    claims,
    echo_headers,
    hmac_with_public_key,
    new_ed,
    new_rsa,
    public_jwks,
    rfc_compact,
    rfc_key,
    sign,
    unsigned,
)

RFC_ISS = "https://rfc.test"
REMOTE_ISS = "https://remote.test"
FILE_ISS = "https://file.test"


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa": rfc_key(RFC7515_A2),  # the RFC 7515 A.2 key, no kid
        "ec": rfc_key(RFC7515_A3),  # the RFC 7515 A.3 key, no kid
        "r1": new_rsa("r1"),
        "r2": new_rsa("r2"),
        "ps": new_rsa("ps1"),
        "ed": new_ed("ed1"),
    }


@pytest.fixture(scope="module")
def env(module_harness, keys, tmp_path_factory):
    up = module_harness.upstream("jwt")
    jwks = JwksServer(public_jwks(keys["r1"]))
    d = tmp_path_factory.mktemp("jwks")
    (d / "file.json").write_text(json.dumps(public_jwks(keys["ps"], keys["ed"])))
    providers = [
        {"issuer": RFC_ISS, "audiences": ["agentgw"], "jwks": json.dumps(public_jwks(keys["rsa"], keys["ec"]))},
        {"issuer": REMOTE_ISS, "audiences": ["agentgw"], "jwks": {"url": f"http://{jwks.host}/openid/v1/jwks"}},
        {"issuer": FILE_ISS, "jwks": {"file": str(d / "file.json")}},
    ]
    ident = [{"claim": "sub", "header": "x-agent-identity"}]

    def jwt_route(name, prefix, **kw):
        pol = {"providers": providers, "claimToHeaders": ident}
        pol.update(kw)
        return route(name, [up.host], prefix=prefix, policies={"jwtAuth": pol})

    routes = [
        jwt_route("strict", "/s", mode="strict"),
        jwt_route("optional", "/o", mode="optional"),
        jwt_route("permissive", "/p", mode="permissive"),
        jwt_route("keep", "/k", mode="strict", preserveToken=True),
        jwt_route("query", "/q", mode="strict", location={"queryParameter": {"name": "access_token"}}),
        jwt_route("cookie", "/c", mode="strict", location={"cookie": {"name": "session"}}),
        jwt_route("custom", "/h", mode="strict", location={"header": {"name": "x-token"}}),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    client = httpx.Client(base_url=gw.url, timeout=10)
    yield {"gw": gw, "client": client, "jwks": jwks, "keys": keys, "up": up}
    client.close()
    jwks.close()


def bearer(tok: str) -> dict:
    return {"authorization": f"Bearer {tok}"}


def assert_401(r, token: str | None = None, check: str = "invalid token"):
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer ")
    body = r.json()
    assert body["error"]["type"] == "unauthenticated"
    assert body["error"]["message"] == f"jwtAuth: {check}"
    if token:
        assert token not in r.text
        for part in token.split("."):
            if len(part) > 8:
                assert part not in r.text


# -- RFC vectors ----------------------------------------------------------------------------
def test_rfc7515_vectors_verify_and_tampering_fails():
    for ex in (RFC7515_A2, RFC7515_A3):
        tok = rfc_compact(ex)
        header, payload = parse_unverified(tok)
        assert header["alg"] == ex["alg"]
        ks = _import_keyset(json.dumps({"keys": [{k: v for k, v in ex["key"].items() if k != "d"}]}))
        got = verify_signature(tok, ks.keys[0], ex["alg"])
        assert got == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}
        h, p, s = tok.split(".")
        forged = json.dumps({"iss": "joe", "exp": 4102444800, "http://example.com/is_root": True}).encode()
        with pytest.raises(Exception):
            verify_signature(f"{h}.{b64url(forged)}.{s}", ks.keys[0], ex["alg"])


def test_rfc7515_tokens_are_refused_through_gateway_as_expired(env):
    # The RFC examples are validly signed but expired in 2011 (and name issuer "joe").
    c = env["client"]
    for ex in (RFC7515_A2, RFC7515_A3):
        tok = rfc_compact(ex)
        assert_401(c.get("/s/x", headers=bearer(tok)), tok)


def test_fresh_tokens_signed_with_rfc_keys_pass_and_identity_is_forwarded(env):
    c, keys = env["client"], env["keys"]
    for key, alg in ((keys["rsa"], "RS256"), (keys["ec"], "ES256")):
        tok = sign(key, claims(iss=RFC_ISS, sub=f"agent-{alg}"), alg=alg, kid=None)
        r = c.get("/s/x", headers={**bearer(tok), "x-agent-identity": "forged"})
        assert r.status_code == 200, r.text
        h = echo_headers(r)
        assert h["x-agent-identity"] == [f"agent-{alg}"]
        assert "authorization" not in h  # stripped by default


def test_ps256_and_eddsa_from_file_provider(env):
    c, keys = env["client"], env["keys"]
    for key, alg in ((keys["ps"], "PS256"), (keys["ed"], "EdDSA")):
        tok = sign(key, claims(iss=FILE_ISS, aud=None, sub=alg), alg=alg)
        r = c.get("/s/x", headers=bearer(tok))
        assert r.status_code == 200, (alg, r.text)
        assert echo_headers(r)["x-agent-identity"] == [alg]


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not_yet_valid",
        "wrong_aud",
        "wrong_iss",
        "no_exp",
        "tampered_payload",
        "tampered_sig",
        "alg_none",
        "alg_none_signed",
        "hmac_public_key",
        "wrong_key",
        "garbage",
        "unknown_kid_static",
    ],
)
def test_bad_tokens_are_refused(env, case):
    c, keys = env["client"], env["keys"]
    k = keys["rsa"]
    good = lambda **kw: sign(k, claims(iss=RFC_ISS, **kw), kid=None)  # noqa: E731
    if case == "expired":
        tok = good(ttl=-120)
    elif case == "not_yet_valid":
        tok = good(nbf=int(time.time()) + 300)
    elif case == "wrong_aud":
        tok = good(aud="someone-else")
    elif case == "wrong_iss":
        tok = sign(k, claims(iss="https://evil.test"), kid=None)
    elif case == "no_exp":
        cl = claims(iss=RFC_ISS)
        del cl["exp"]
        tok = sign(k, cl, kid=None)
    elif case == "tampered_payload":
        h, _, s = good().split(".")
        tok = f"{h}.{b64url(json.dumps(claims(iss=RFC_ISS, sub='admin')).encode())}.{s}"
    elif case == "tampered_sig":
        h, p, s = good().split(".")
        tok = f"{h}.{p}.{s[:-4]}{'AAAA' if s[-4:] != 'AAAA' else 'BBBB'}"
    elif case == "alg_none":
        tok = unsigned(claims(iss=RFC_ISS))
    elif case == "alg_none_signed":
        h, p, s = good().split(".")
        tok = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{p}.{s}"
    elif case == "hmac_public_key":
        pem = k.as_pem(private=False)
        tok = hmac_with_public_key(pem, claims(iss=RFC_ISS))
    elif case == "wrong_key":
        tok = sign(keys["r2"], claims(iss=RFC_ISS), kid=None)
    elif case == "garbage":
        tok = "not.a.jwt"
    else:
        tok = sign(keys["r2"], claims(iss=FILE_ISS, aud=None))  # kid r2 not in the file JWKS
    assert_401(c.get("/s/x", headers=bearer(tok)), tok)
    # optional mode refuses a bad token too; permissive lets it through without identity
    assert_401(c.get("/o/x", headers=bearer(tok)), tok)
    r = c.get("/p/x", headers={**bearer(tok), "x-agent-identity": "forged"})
    assert r.status_code == 200
    assert "x-agent-identity" not in echo_headers(r)


def test_clock_skew_is_small(env):
    c, k = env["client"], env["keys"]["rsa"]
    now = int(time.time())
    ok = sign(k, {**claims(iss=RFC_ISS), "exp": now - 5}, kid=None)
    assert c.get("/s/x", headers=bearer(ok)).status_code == 200
    late = sign(k, {**claims(iss=RFC_ISS), "exp": now - 90}, kid=None)
    assert_401(c.get("/s/x", headers=bearer(late)), late)
    soon = sign(k, claims(iss=RFC_ISS, nbf=now + 5), kid=None)
    assert c.get("/s/x", headers=bearer(soon)).status_code == 200


def test_modes_without_token(env):
    c = env["client"]
    r = c.get("/s/x")
    assert_401(r, check="missing credential")
    assert r.headers["www-authenticate"] == 'Bearer realm="agentgw"'
    r = c.get("/o/x", headers={"x-agent-identity": "forged"})
    assert r.status_code == 200
    assert "x-agent-identity" not in echo_headers(r)  # a client can't claim an identity
    assert c.get("/p/x").status_code == 200
    # a different auth scheme is "no token" for jwtAuth
    assert_401(c.get("/s/x", headers={"authorization": "Basic dXNlcjpwdw=="}), check="missing credential")
    # two Authorization headers are ambiguous
    tok = sign(env["keys"]["rsa"], claims(iss=RFC_ISS), kid=None)
    r = c.get("/s/x", headers=[("authorization", f"Bearer {tok}"), ("authorization", "Bearer x")])
    assert_401(r, tok)


def test_token_locations_and_preserve(env):
    c, k = env["client"], env["keys"]["rsa"]
    tok = sign(k, claims(iss=RFC_ISS, sub="loc"), kid=None)
    r = c.get(f"/q/x?a=1&access_token={tok}&b=2")
    assert r.status_code == 200, r.text
    assert "access_token" not in r.json()["query"] and "a=1" in r.json()["query"] and "b=2" in r.json()["query"]
    assert_401(c.get("/q/x", headers=bearer(tok)), check="missing credential")
    r = c.get("/c/x", headers={"cookie": f"theme=dark; session={tok}"})
    assert r.status_code == 200
    assert echo_headers(r)["cookie"] == ["theme=dark"]
    r = c.get("/h/x", headers={"x-token": tok})
    assert r.status_code == 200 and "x-token" not in echo_headers(r)
    r = c.get("/k/x", headers=bearer(tok))
    assert r.status_code == 200 and echo_headers(r)["authorization"] == [f"Bearer {tok}"]
    bad = tok[:-6] + "AAAAAA"
    assert c.get(f"/q/x?access_token={bad}").status_code == 401
    # the access log records the request target: query credentials are redacted there
    gw = env["gw"]
    from tests.support.harness import wait_for

    wait_for(lambda: "access_token=<redacted>" in gw.stdout_text(), timeout=5, message="access log line")
    logs = gw.stdout_text() + gw.stderr_text()
    assert tok not in logs and bad not in logs and tok.split(".")[2] not in logs


def test_repeated_token_keeps_every_check(env):
    """A token seen before is answered from the accepted-credential cache: the same
    stripping, identity headers, duplicate refusal and expiry apply as on first sight."""
    c, k = env["client"], env["keys"]["rsa"]
    tok = sign(k, claims(iss=RFC_ISS, sub="again"), kid=None)
    for _ in range(3):
        r = c.get("/s/x", headers={**bearer(tok), "x-agent-identity": "forged"})
        assert r.status_code == 200, r.text
        h = echo_headers(r)
        assert h["x-agent-identity"] == ["again"] and "authorization" not in h
        r = c.get("/s/x", headers=bearer(tok))
        assert r.status_code == 200 and echo_headers(r)["x-agent-identity"] == ["again"]
        r = c.get("/k/x", headers={**bearer(tok), "x-agent-identity": "forged"})
        h = echo_headers(r)
        assert h["authorization"] == [f"Bearer {tok}"] and h["x-agent-identity"] == ["again"]
        r = c.get("/h/x", headers={"x-token": tok})
        assert r.status_code == 200 and "x-token" not in echo_headers(r)
    # a second copy of the header is still ambiguous for a known token
    assert_401(c.get("/s/x", headers=[("authorization", f"Bearer {tok}"), ("authorization", f"Bearer {tok}")]), tok)
    # a cached token stops working when it expires (exp plus the clock-skew leeway)
    from agentgw.policies.jwt_auth import CLOCK_SKEW

    short = sign(k, {**claims(iss=RFC_ISS, sub="short"), "exp": int(time.time() - CLOCK_SKEW + 3)}, kid=None)
    assert c.get("/s/x", headers=bearer(short)).status_code == 200
    assert c.get("/s/x", headers=bearer(short)).status_code == 200
    time.sleep(4)
    assert_401(c.get("/s/x", headers=bearer(short)), short)


def test_jwks_rotation_and_outage(env):
    c, keys, jwks = env["client"], env["keys"], env["jwks"]
    t1 = sign(keys["r1"], claims(iss=REMOTE_ISS, sub="r1"))
    assert c.get("/s/x", headers=bearer(t1)).status_code == 200
    fetches = jwks.fetches()
    for _ in range(20):  # cached by bytes: no more fetches, same answer
        assert c.get("/s/x", headers=bearer(t1)).status_code == 200
    assert jwks.fetches() == fetches
    # rotate: r1 removed, r2 added; a token naming r2 makes the gateway refetch at once
    jwks.jwks = public_jwks(keys["r2"])
    time.sleep(1.1)  # the refetch-on-unknown-kid rate limit
    t2 = sign(keys["r2"], claims(iss=REMOTE_ISS, sub="r2"))
    r = c.get("/s/x", headers=bearer(t2))
    assert r.status_code == 200, r.text
    assert echo_headers(r)["x-agent-identity"] == ["r2"]
    assert jwks.fetches() == fetches + 1
    # the cached r1 token is dropped with the key set it was verified against
    assert_401(c.get("/s/x", headers=bearer(t1)), t1)
    # outage: known keys keep working, nothing unverifiable gets in
    jwks.available = False
    time.sleep(1.1)
    t2b = sign(keys["r2"], claims(iss=REMOTE_ISS, sub="r2b"))
    assert c.get("/s/x", headers=bearer(t2b)).status_code == 200
    t3 = sign(new_rsa("r3"), claims(iss=REMOTE_ISS, sub="r3"))
    assert_401(c.get("/s/x", headers=bearer(t3)), t3)
    jwks.available = True


def test_jwks_down_at_start_refuses_tokens(harness, keys):
    up = harness.upstream("jwt-down")
    jwks = JwksServer(public_jwks(keys["r1"]))
    jwks.available = False
    try:
        pol = {"mode": "strict", "issuer": REMOTE_ISS, "jwks": {"url": f"http://{jwks.host}/jwks"}}
        gw = harness.gateway(gateway_config([route("r", [up.host], policies={"jwtAuth": pol})]))
        tok = sign(keys["r1"], claims(iss=REMOTE_ISS))
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            assert_401(c.get("/x", headers=bearer(tok)), tok)
            jwks.available = True
            time.sleep(1.1)
            assert c.get("/x", headers=bearer(tok)).status_code == 200
    finally:
        jwks.close()


def test_listener_level_jwt(harness, keys):
    up = harness.upstream("jwt-listener")
    cfg = gateway_config([route("r", [up.host], prefix="/only")])
    cfg["binds"][0]["listeners"][0]["policies"] = {
        "jwtAuth": {"mode": "strict", "issuer": RFC_ISS, "jwks": json.dumps(public_jwks(keys["rsa"]))}
    }
    gw = harness.gateway(cfg)
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        # runs before routing: an unknown path is 401 without a token, 404 with one
        assert_401(c.get("/anything"), check="missing credential")
        tok = sign(keys["rsa"], claims(iss=RFC_ISS), kid=None)
        assert c.get("/anything", headers=bearer(tok)).status_code == 404
        assert c.get("/only/x", headers=bearer(tok)).status_code == 200
