"""agentgateway's traffic-oidc example, run as its README runs it.

The README's Keycloak (realm ``agentgateway`` from ``agentgateway-realm.json``: the
confidential client ``agentgateway-browser`` / ``agentgateway-secret`` with redirect URI
``http://localhost:3000/oauth/callback`` and scopes ``profile``/``email``, user
``testuser``) is stood in by a real OpenID provider (``oidc-provider`` from npm, see
``tests/support/oidc.py``) with the same client, secret, scopes and user; its login page
signs ``testuser`` in without a form. The upstream app (``hashicorp/http-echo`` on
``:18080``) is the project's echo upstream.

The vendored ``examples/traffic-oidc/config.yaml`` is loaded unchanged except:

* ``binds[0].port`` 3000 -> a free port, and ``redirectURI``
  ``http://localhost:3000/oauth/callback`` -> the same URL with that port (the callback
  must reach this gateway; host and path stay as written);
* ``oidc.issuer`` ``http://localhost:7080/realms/agentgateway`` -> the stand-in provider's
  issuer URL;
* the backend ``localhost:18080`` -> the echo upstream's address;
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

The access-log fields (``user.id: jwt.sub``, ``user.email: jwt.email``), the client id
and secret and the scopes stay as written. ``OIDC_COOKIE_SECRET`` is made as the README
makes it (``os.urandom(32).hex()``).

README steps checked:

* "Export the required browser-auth cookie secret, then start agentgateway": without
  ``OIDC_COOKIE_SECRET`` the example does not load; with it, it starts;
* "Open ``http://localhost:3000`` in a browser. The gateway redirects to Keycloak": the
  first request is a 302 to the provider's authorization endpoint for client
  ``agentgateway-browser``, the configured callback, scopes ``openid profile email``,
  the code flow with PKCE; the app is not reached;
* "completes the code flow itself, and then returns to the protected upstream app": the
  browser following the redirects (provider login, the gateway's ``/oauth/callback`` on
  the same route) ends at the page it asked for, served by the app, and the session
  cookie serves the app from then on without the provider;
* "the standard JWT claims surface (``jwt.sub``, ``jwt.email``) in access logs after
  login": the access-log line of a logged-in request has ``user.id=testuser`` and
  ``user.email`` the user's email;
* the callback path without a login transaction is refused, and a forged session cookie
  is no session (it is sent to the provider again).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from tests.support.harness import dump_yaml, free_port, subprocess_env, wait_for
from tests.support.oidc import OidcProvider

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-oidc" / "config.yaml"
CLIENT_ID, CLIENT_SECRET = "agentgateway-browser", "agentgateway-secret"


def _config(issuer: str, app: str, port: int) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    assert cfg["binds"][0]["port"] == 3000
    cfg["binds"][0]["port"] = port
    route = cfg["binds"][0]["listeners"][0]["routes"][0]
    oidc = route["policies"]["oidc"]
    assert oidc["issuer"] == "http://localhost:7080/realms/agentgateway"
    oidc["issuer"] = issuer
    assert oidc["redirectURI"] == "http://localhost:3000/oauth/callback"
    oidc["redirectURI"] = f"http://localhost:{port}/oauth/callback"
    assert route["backends"] == [{"host": "localhost:18080"}]
    route["backends"][0]["host"] = app
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg


@pytest.fixture(scope="module")
def example(module_harness, tmp_path_factory):
    app = module_harness.upstream("app")
    port = free_port()
    redirect = f"http://localhost:{port}/oauth/callback"
    provider = OidcProvider(
        tmp_path_factory.mktemp("keycloak"),
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [redirect],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
        scopes=["openid", "profile", "email"],
        claims={"openid": ["sub"], "profile": ["name"], "email": ["email", "email_verified"]},
        account="testuser",
    )
    try:
        cfg = _config(provider.issuer, app.host, port)
        secret = os.urandom(32).hex()  # as the README makes OIDC_COOKIE_SECRET
        gw = module_harness.gateway(cfg, env={"OIDC_COOKIE_SECRET": secret})
        yield gw, app, provider, f"http://localhost:{port}"
    finally:
        provider.close()


def test_the_cookie_secret_is_required(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(_config("http://127.0.0.1:9", "127.0.0.1:9", free_port())))
    env = subprocess_env()
    env.pop("OIDC_COOKIE_SECRET", None)
    argv = [sys.executable, "-m", "agentgw", "validate", "-f", str(path)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode != 0 and "OIDC_COOKIE_SECRET" in r.stdout + r.stderr, r.stdout + r.stderr
    env["OIDC_COOKIE_SECRET"] = os.urandom(32).hex()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_browser_is_sent_to_the_provider_then_back_to_the_app(example):
    gw, app, provider, base = example
    before = app.count("/")
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        first = browser.get(f"{base}/")
        assert first.status_code == 302, first.text
        assert app.count("/") == before  # not logged in: the app is not reached
        auth = urlsplit(first.headers["location"])
        assert f"{auth.scheme}://{auth.netloc}" == provider.issuer
        q = parse_qs(auth.query)
        assert q["response_type"] == ["code"] and q["client_id"] == [CLIENT_ID]
        assert q["redirect_uri"] == [f"{base}/oauth/callback"]
        assert q["scope"] == ["openid profile email"]
        assert q["code_challenge_method"] == ["S256"] and q["code_challenge"] and q["state"]
        # the login, as a browser follows it: provider, its login, the gateway's callback
        r = browser.get(first.headers["location"], follow_redirects=True)
        hops = [str(h.url) for h in r.history]
        assert any(h.startswith(f"{base}/oauth/callback?") for h in hops), hops
        assert r.status_code == 200, r.text
        assert r.url == f"{base}/"  # back where the user started, at the app
        assert r.json()["upstream"] == "app" and r.json()["path"] == "/"
        assert app.count("/") == before + 1
        # the session now serves the app without the provider
        again = browser.get(f"{base}/dashboard?tab=2")
        assert again.status_code == 200, again.text
        assert again.json()["upstream"] == "app" and again.json()["path"] == "/dashboard"

    # jwt.sub / jwt.email in the access log after login
    def logged():
        for line in gw.stdout_text().splitlines():
            if " request " in line and "path=/dashboard?tab=2" in line:
                return dict(re.findall(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S*)', line))
        return None

    fields = wait_for(logged, timeout=5, message="the access-log line of /dashboard")
    assert fields["user.id"] == "testuser", fields
    assert fields["user.email"] == "testuser@example.com", fields
    assert fields["route"] == "app" and fields["status"] == "200", fields


def test_no_session_no_app(example):
    _gw, app, provider, base = example
    before = app.count("/private")
    r = httpx.get(f"{base}/private", cookies={"agw_oidc_s_0000": "forged"}, timeout=10)
    assert r.status_code == 302 and r.headers["location"].startswith(provider.issuer)
    # the callback answers only the login it started
    r = httpx.get(f"{base}/oauth/callback?code=abc&state=forged.state", timeout=10)
    assert r.status_code == 400, r.text
    assert app.count("/private") == before and app.count("/oauth/callback") == 0
