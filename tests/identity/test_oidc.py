"""``oidc``: a browser login through a real OpenID provider (oidc-provider), as
agentgateway's traffic-oidc example runs it with Keycloak: the gateway redirects to the
provider, completes the code flow on its callback, and serves the app with a session
cookie; the ID token's claims are ``jwt.*`` in the access log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.harness import free_port, gateway_config, route, wait_for
from tests.support.oidc import OidcProvider

CLIENT_ID, CLIENT_SECRET = "agentgateway-browser", "agentgateway-secret"
COOKIE_SECRET = os.urandom(32).hex()


def Provider(workdir: Path, redirect_uri: str, secret: str = CLIENT_SECRET) -> OidcProvider:
    """The provider of the example: one confidential client, the profile and email claims."""
    return OidcProvider(
        workdir,
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": secret,
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
        scopes=["openid", "profile", "email"],
        claims={"openid": ["sub"], "profile": ["name"], "email": ["email", "email_verified"]},
        account="testuser",
    )


@pytest.fixture
def login(harness, tmp_path):
    """A gateway with the example's oidc route in front of an echo upstream, and its provider."""
    started: list[Provider] = []

    def start(gateway_secret: str = CLIENT_SECRET):
        up = harness.upstream("app")
        port = free_port()
        redirect = f"http://127.0.0.1:{port}/oauth/callback"
        prov = Provider(tmp_path, redirect)
        started.append(prov)
        policies = {
            "oidc": {
                "issuer": prov.issuer,
                "clientId": CLIENT_ID,
                "clientSecret": gateway_secret,
                "redirectURI": redirect,
                "scopes": ["profile", "email"],
            }
        }
        cfg = gateway_config([route("app", [up.host], policies=policies)], port=port)
        cfg["frontendPolicies"] = {"accessLog": {"add": {"user.id": "jwt.sub", "user.email": "jwt.email"}}}
        gw = harness.gateway(cfg, env={"OIDC_COOKIE_SECRET": COOKIE_SECRET})
        return gw, up, prov

    yield start
    for p in started:
        p.close()


def test_browser_login_then_the_session_cookie_serves_the_app(login):
    gw, up, prov = login()
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        first = browser.get(f"{gw.url}/dashboard?tab=1")
        assert first.status_code == 302
        auth = urlsplit(first.headers["location"])
        assert f"{auth.scheme}://{auth.netloc}" == prov.issuer
        q = parse_qs(auth.query)
        assert q["response_type"] == ["code"] and q["client_id"] == [CLIENT_ID]
        assert q["code_challenge_method"] == ["S256"] and q["scope"] == ["openid profile email"]
        assert q["redirect_uri"] == [f"{gw.url}/oauth/callback"] and q["state"] and q["nonce"]
        # the rest of the login, as a browser follows it: provider, interaction, callback
        r = browser.get(first.headers["location"], follow_redirects=True)
        assert r.status_code == 200, r.text
        assert r.url.path == "/dashboard" and r.url.query == b"tab=1"  # back where the user started
        assert r.json()["upstream"] == "app"
        sent = dict((k, v) for k, v in r.json()["headers"])
        assert "agw_oidc_s_" in sent.get("Cookie", sent.get("cookie", ""))
        # the session now serves the app without the provider
        again = browser.get(f"{gw.url}/other")
        assert again.status_code == 200 and again.json()["path"] == "/other"

    def served():
        logs = [json.loads(line) for line in gw.stdout_text().splitlines() if '"msg":"request"' in line]
        return [entry for entry in logs if entry.get("path") == "/other"]

    served = wait_for(served, timeout=5, message="the access-log line of /other")
    assert served[0]["user.id"] == "testuser" and served[0]["user.email"] == "testuser@example.com"


def test_requests_without_a_valid_session_go_to_the_provider(login):
    gw, up, prov = login()
    before = up.count("/x")
    r = httpx.get(f"{gw.url}/x", cookies={"agw_oidc_s_0000": "forged"}, timeout=10)
    assert r.status_code == 302 and r.headers["location"].startswith(prov.issuer)
    with httpx.Client(timeout=20) as browser:
        browser.get(f"{gw.url}/x", follow_redirects=True)
        session = {c.name: c.value for c in browser.cookies.jar if c.name.startswith("agw_oidc_s_")}
    assert session
    name, value = next(iter(session.items()))
    tampered = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    r = httpx.get(f"{gw.url}/x", cookies={name: tampered}, timeout=10)
    assert r.status_code == 302  # a sealed cookie that does not open is no session
    assert up.count("/x") == before + 1  # only the logged-in request reached the app


def test_a_callback_without_its_login_is_refused(login):
    gw, up, _ = login()
    r = httpx.get(f"{gw.url}/oauth/callback?code=abc&state=forged.state", timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "oidc_callback_invalid"


def test_a_token_exchange_the_provider_refuses_fails_the_login(login):
    gw, up, _ = login(gateway_secret="wrong-secret")
    with httpx.Client(timeout=20) as browser:
        r = browser.get(f"{gw.url}/app", follow_redirects=True)
    assert r.status_code == 401
    assert "token endpoint answered 401" in r.json()["error"]["message"]
    assert up.count("/app") == 0


def test_the_cookie_key_is_required(tmp_path):
    from tests.support.harness import dump_yaml, run_cli

    cfg = gateway_config(
        [
            route(
                "app",
                ["127.0.0.1:9"],
                policies={
                    "oidc": {
                        "issuer": "http://127.0.0.1:9",
                        "clientId": "c",
                        "clientSecret": "s",
                        "redirectURI": "http://127.0.0.1:3000/oauth/callback",
                    }
                },
            )
        ]
    )
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "OIDC_COOKIE_SECRET" in r.stderr + r.stdout
