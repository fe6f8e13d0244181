"""serviceAccountAuth (JWKS and TokenReview), apiKey (inline, file, Secret directory,
hashes) and basicAuth (htpasswd files made by Apache's htpasswd)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time

import bcrypt
import httpx
import pytest
import yaml

from tests.support.harness import gateway_config, route, wait_for

from .support import JwksServer, TokenReviewServer, claims, echo_headers, new_rsa, public_jwks, sign

K8S_ISS = "https://kubernetes.default.svc.cluster.local"
SA = "system:serviceaccount:agent-core-infra:weather-agent"


def sa_token(key, sub=SA, aud="agent-gateway", ttl=600, **kw):
    c = claims(iss=K8S_ISS, aud=[aud], sub=sub, ttl=ttl, **kw)
    c["kubernetes.io"] = {"namespace": "agent-core-infra", "serviceaccount": {"name": "weather-agent", "uid": "u-1"}}
    return sign(key, c)


# -- Kubernetes service-account tokens ------------------------------------------------------
@pytest.fixture(scope="module")
def k8s(module_harness, tmp_path_factory):
    up = module_harness.upstream("k8s")
    key = new_rsa("cluster-1")
    jwks = JwksServer(public_jwks(key))
    d = tmp_path_factory.mktemp("k8s")
    gw_token = "gateway-own-sa-token"
    (d / "token").write_text(gw_token + "\n")
    tokens = {
        "opaque-user-token": ("jane@example.com", ["agent-gateway"]),
        "other-aud-token": (SA, ["vault"]),
    }
    tr = TokenReviewServer(tokens, bearer=gw_token)
    routes = [
        route(
            "jwks",
            [up.host],
            prefix="/jwks",
            policies={
                "serviceAccountAuth": {
                    "issuer": K8S_ISS,
                    "audiences": ["agent-gateway"],
                    "jwks": {"url": f"http://{jwks.host}/openid/v1/jwks"},
                    "tokenFile": str(d / "token"),
                    "principalHeader": "x-agent-identity",
                }
            },
        ),
        route(
            "review",
            [up.host],
            prefix="/review",
            policies={
                "serviceAccountAuth": {
                    "tokenReview": f"http://{tr.host}",
                    "audiences": ["agent-gateway"],
                    "tokenFile": str(d / "token"),
                    "principalHeader": "x-agent-identity",
                }
            },
        ),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    c = httpx.Client(base_url=gw.url, timeout=10)
    yield {"c": c, "key": key, "jwks": jwks, "tr": tr}
    c.close()
    jwks.close()
    tr.close()


def test_sa_token_by_jwks(k8s):
    c, key = k8s["c"], k8s["key"]
    r = c.get("/jwks/x", headers={"authorization": f"Bearer {sa_token(key)}", "x-agent-identity": "forged"})
    assert r.status_code == 200, r.text
    assert echo_headers(r)["x-agent-identity"] == [SA]
    # the JWKS fetch carried the gateway's own token
    assert k8s["jwks"].requests[0]["headers"]["authorization"] == "Bearer gateway-own-sa-token"
    for bad in (
        sa_token(key, aud="vault"),
        sa_token(key, sub="jane"),
        sa_token(key, ttl=-120),
        sa_token(new_rsa("cluster-1")),
    ):
        r = c.get("/jwks/x", headers={"authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and bad not in r.text
    assert c.get("/jwks/x").status_code == 401


def test_sa_token_by_token_review_cached_until_expiry(k8s):
    c, tr = k8s["c"], k8s["tr"]
    tok = sa_token(k8s["key"], ttl=3)  # any string works for TokenReview; a JWT gives the cache its exp
    tr.tokens[tok] = (SA, ["agent-gateway"])
    n0 = len(tr.requests)
    for _ in range(5):
        r = c.get("/review/x", headers={"authorization": f"Bearer {tok}"})
        assert r.status_code == 200, r.text
        assert echo_headers(r)["x-agent-identity"] == [SA]
        assert "authorization" not in echo_headers(r)
    assert len(tr.requests) == n0 + 1  # one review, then the cache
    sent = json.loads(tr.requests[n0]["body"])
    assert sent["kind"] == "TokenReview" and sent["spec"] == {"token": tok, "audiences": ["agent-gateway"]}
    assert tr.requests[n0]["headers"]["authorization"] == "Bearer gateway-own-sa-token"
    # not a service account / wrong audience / unknown: 401
    for bad in ("opaque-user-token", "other-aud-token", "nobody"):
        r = c.get("/review/x", headers={"authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "serviceAccountAuth: invalid token"
    # the token expires (exp = 2 s after it was minted): the cache entry goes, the token is refused
    time.sleep(max(0.0, json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "==="))["exp"] - time.time()) + 0.2)
    r = c.get("/review/x", headers={"authorization": f"Bearer {tok}"})
    assert r.status_code == 401


# -- apiKey ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def apikey(module_harness, tmp_path_factory):
    up = module_harness.upstream("apikey")
    d = tmp_path_factory.mktemp("apikey")
    (d / "keys.yaml").write_text(
        yaml.safe_dump(
            [
                {"key": "file-key-1", "metadata": {"team": "search"}},
                {"keyHash": "sha256:" + hashlib.sha256(b"hashed-key").hexdigest(), "metadata": {"team": "hashed"}},
                {"keyHash": bcrypt.hashpw(b"bcrypt-key", bcrypt.gensalt(4)).decode(), "metadata": {"team": "bcrypt"}},
            ]
        )
    )
    secret = d / "secret"
    secret.mkdir()
    (secret / "key1").write_text("key-value-foo")
    (secret / "key2").write_text("key-value-bar\n")
    (secret / "..data").mkdir()  # what a Secret mount looks like
    routes = [
        route(
            "inline",
            [up.host],
            prefix="/inline",
            policies={
                "apiKey": {
                    "mode": "strict",
                    "keys": [{"key": "inline-key-1", "metadata": {"team": "infra", "tier": "gold"}}],
                }
            },
        ),
        route(
            "file",
            [up.host],
            prefix="/file",
            policies={
                "apiKey": {
                    "mode": "strict",
                    "keysFile": str(d / "keys.yaml"),
                    "location": {"header": {"name": "x-api-key"}},
                }
            },
        ),
        route(
            "dir",
            [up.host],
            prefix="/dir",
            policies={
                "apiKey": {"mode": "strict", "keysDir": str(secret)},
                "authorization": {"rules": ['apiKey.name == "key1"']},
            },
        ),
        route("opt", [up.host], prefix="/opt", policies={"apiKey": {"keys": [{"key": "inline-key-1"}]}}),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    c = httpx.Client(base_url=gw.url, timeout=10)
    yield {"c": c, "gw": gw, "secret": secret}
    c.close()


def test_apikey_inline_and_errors(apikey):
    c = apikey["c"]
    r = c.get("/inline/x", headers={"authorization": "Bearer inline-key-1"})
    assert r.status_code == 200 and "authorization" not in echo_headers(r)
    r = c.get("/inline/x")
    assert r.status_code == 401 and r.json()["error"]["message"] == "apiKey: missing credential"
    assert r.headers["www-authenticate"] == 'Bearer realm="agentgw"'
    for bad in ("inline-key-2", "inline-key-1x", "INLINE-KEY-1", "inline-key-"):
        r = c.get("/inline/x", headers={"authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "apiKey: invalid credential"
    # optional: no key passes, a wrong key doesn't
    assert c.get("/opt/x").status_code == 200
    assert c.get("/opt/x", headers={"authorization": "Bearer nope"}).status_code == 401


def test_apikey_file_with_hashes_and_header_location(apikey):
    c = apikey["c"]
    for key in ("file-key-1", "hashed-key", "bcrypt-key", "bcrypt-key"):
        r = c.get("/file/x", headers={"x-api-key": key})
        assert r.status_code == 200, (key, r.text)
        assert "x-api-key" not in echo_headers(r)
    r = c.get("/file/x", headers={"x-api-key": "bcrypt-kex"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'ApiKey realm="agentgw", header="x-api-key"'
    assert c.get("/file/x", headers={"authorization": "Bearer file-key-1"}).status_code == 401


def test_apikey_secret_directory_with_metadata_rule_and_rotation(apikey):
    c, secret = apikey["c"], apikey["secret"]
    assert c.get("/dir/x", headers={"authorization": "Bearer key-value-foo"}).status_code == 200
    r = c.get("/dir/x", headers={"authorization": "Bearer key-value-bar"})  # valid key, rule wants key1
    assert r.status_code == 403 and r.json()["error"]["message"] == "authorization: no allow rule matched"
    (secret / "key1").write_text("rotated-foo")
    wait_for(
        lambda: c.get("/dir/x", headers={"authorization": "Bearer rotated-foo"}).status_code == 200,
        timeout=8,
        message="rotated key accepted",
    )
    assert c.get("/dir/x", headers={"authorization": "Bearer key-value-foo"}).status_code == 401


def test_apikeys_never_in_config_dump_or_logs(apikey):
    gw = apikey["gw"]
    dump = httpx.get(gw.admin_url + "/config_dump", timeout=5).text
    assert "inline-key-1" not in dump and "file-key-1" not in dump
    assert "inline-key-1" not in gw.stdout_text() + gw.stderr_text()
    assert "key-value-foo" not in gw.stdout_text() + gw.stderr_text()


# -- basicAuth ------------------------------------------------------------------------------
HTPASSWD = shutil.which("htpasswd")


@pytest.mark.skipif(HTPASSWD is None, reason="htpasswd (apache2-utils) not installed")
def test_basic_auth_with_real_htpasswd_file(harness, tmp_path):
    f = tmp_path / "htpasswd"
    subprocess.run(
        [HTPASSWD, "-c", "-b", "-B", "-C", "5", str(f), "bella", "bcrypt pw"], check=True, capture_output=True
    )
    subprocess.run([HTPASSWD, "-b", "-m", str(f), "april", "apr1:pw"], check=True, capture_output=True)
    subprocess.run([HTPASSWD, "-b", "-s", str(f), "shane", "sha-pw"], check=True, capture_output=True)
    text = f.read_text()
    assert "$2y$" in text and "$apr1$" in text and "{SHA}" in text
    up = harness.upstream("basic")
    pol = {
        "basicAuth": {"htpasswd": {"file": str(f)}, "realm": "Agents Only", "mode": "strict"},
        "authorization": {"rules": ['basicAuth.username != "shane" || request.method == "GET"']},
    }
    gw = harness.gateway(gateway_config([route("r", [up.host], policies=pol)]))

    def basic(u, p):
        return {"authorization": "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()}

    with httpx.Client(base_url=gw.url, timeout=10) as c:
        for u, p in (("bella", "bcrypt pw"), ("april", "apr1:pw"), ("shane", "sha-pw"), ("bella", "bcrypt pw")):
            r = c.get("/x", headers=basic(u, p))
            assert r.status_code == 200, (u, r.text)
            assert "authorization" not in echo_headers(r)
        assert c.post("/x", headers=basic("shane", "sha-pw")).status_code == 403
        for u, p in (("bella", "wrong"), ("april", "apr1"), ("nobody", "x"), ("shane", "SHA-PW")):
            r = c.get("/x", headers=basic(u, p))
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == 'Basic realm="Agents Only"'
            assert r.json()["error"]["message"] == "basicAuth: invalid credential"
        r = c.get("/x")
        assert r.status_code == 401 and r.json()["error"]["message"] == "basicAuth: missing credential"
        assert c.get("/x", headers={"authorization": "Basic !!!"}).status_code == 401
        dump = httpx.get(gw.admin_url + "/config_dump", timeout=5).text
        assert "$apr1$" not in dump and "{SHA}" not in dump


def test_bad_htpasswd_line_is_a_config_error(tmp_path):
    from tests.support.harness import run_cli

    f = tmp_path / "htpasswd"
    f.write_text("plain:secretpassword\n")
    cfg = gateway_config([route("r", ["127.0.0.1:9"], policies={"basicAuth": {"htpasswd": {"file": str(f)}}})])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = run_cli("validate", "-f", str(tmp_path / "c.yaml"))
    assert r.returncode == 1
    assert "basicAuth.htpasswd: htpasswd line 1: unsupported hash format" in r.stderr
    assert "secretpassword" not in r.stderr
