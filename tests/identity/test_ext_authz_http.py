"""extAuthz over HTTP as agentgateway's examples use it, through a real gateway:

* ``traffic-oauth2-proxy``: CEL ``path`` and ``addRequestHeaders``, ``redirect`` to the
  sign-in page on 401, ``metadata`` from the answer's headers read by the access log as
  ``extauthz.*``, ``includeResponseHeaders``;
* ``traffic-token-exchange/extauthz``: the authorizer is a token endpoint; ``body`` and
  ``:method`` build an RFC 8693 request, ``metadata`` reads the issued token
  (``json``, ``unvalidatedJwtPayload``), ``transformations`` put it on the upstream
  request, and ``cache`` keeps it (``ttl: extauthz.expires - 5``).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.harness import gateway_config, route

from .oauth_fakes import TE, TokenEndpoint
from .support import _Handler, _Server, echo_headers


class OAuth2Proxy(_Server):
    """oauth2-proxy's ``/oauth2/auth``: 202 with ``X-Auth-Request-User``/``-Email`` for a
    signed-in session cookie, 401 otherwise."""

    def __init__(self):
        class H(_Handler):
            def _any(self):
                self._record()
                cookie = self.headers.get("cookie") or ""
                if self.path != "/oauth2/auth":
                    self._send(404, b"")
                elif "_oauth2_proxy=alice-session" in cookie:
                    self._send(
                        202,
                        b"",
                        {"x-auth-request-user": "alice", "x-auth-request-email": "alice@example.com", "gap-auth": "x"},
                    )
                else:
                    self._send(401, b"Unauthorized", {"content-type": "text/plain"})

            do_GET = do_POST = _any

        super().__init__(H)


def _log_lines(gw, n: int) -> list[dict]:
    deadline = time.monotonic() + 5
    lines: list[dict] = []
    while time.monotonic() < deadline:
        lines = [json.loads(ln) for ln in gw.stdout_text().splitlines() if '"msg":"request"' in ln]
        if len(lines) >= n:
            break
        time.sleep(0.05)
    return lines


def test_oauth2_proxy_redirects_to_sign_in_and_logs_the_user(harness):
    up = harness.upstream("app")
    proxy = OAuth2Proxy()
    try:
        cfg = gateway_config(
            [
                route(
                    "application",
                    [up.host],
                    policies={
                        "extAuthz": {
                            "host": proxy.host,
                            "includeRequestHeaders": ["cookie"],
                            "protocol": {
                                "http": {
                                    "path": '"/oauth2/auth"',
                                    "redirect": '"/oauth2/start?rd=" + request.path',
                                    "metadata": {
                                        "githubUser": 'response.headers["x-auth-request-user"]',
                                        "githubEmail": 'response.headers["x-auth-request-email"]',
                                    },
                                    "addRequestHeaders": {"x-forwarded-host": "request.host"},
                                    "includeResponseHeaders": ["x-auth-request-user"],
                                }
                            },
                        }
                    },
                )
            ]
        )
        cfg["frontendPolicies"] = {
            "accessLog": {"add": {"github.user": "extauthz.githubUser", "github.email": "extauthz.githubEmail"}}
        }
        gw = harness.gateway(cfg)
        with httpx.Client(base_url=gw.url, timeout=10) as c:
            r = c.get("/dashboard/x?q=1")
            assert r.status_code == 302 and r.headers["location"] == "/oauth2/start?rd=/dashboard/x", r.text
            r = c.get("/dashboard", headers={"cookie": "_oauth2_proxy=alice-session; theme=dark"})
            assert r.status_code == 200, r.text
            h = echo_headers(r)
            assert h["x-auth-request-user"] == ["alice"] and "gap-auth" not in h
        sent = proxy.requests[-1]
        assert sent["method"] == "GET" and sent["path"] == "/oauth2/auth"
        assert sent["headers"]["x-forwarded-host"] == f"127.0.0.1:{gw.ports[0]}"
        assert sent["headers"]["cookie"] == "_oauth2_proxy=alice-session; theme=dark"
        lines = _log_lines(gw, 2)
        assert [ln["status"] for ln in lines] == [302, 200]
        assert "github.user" not in lines[0]
        assert lines[1]["github.user"] == "alice" and lines[1]["github.email"] == "alice@example.com"
    finally:
        proxy.close()


BODY = """form.encode({
  "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
  "subject_token": request.headers["authorization"].split(" ")[1],
  "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
  "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
  "audience": "target-client"
})"""

META = {
    "grant": '"token-exchange"',
    "token": "json(response.body).access_token",
    "subject": "unvalidatedJwtPayload(json(response.body).access_token).sub",
    "audience": "unvalidatedJwtPayload(json(response.body).access_token).aud",
    "expires": "unvalidatedJwtPayload(json(response.body).access_token).exp",
}


@pytest.fixture
def keycloak():
    kc = TokenEndpoint({"requester-client": "requester-secret"}, expires_in=120)
    kc.jwt_tokens = True
    yield kc
    kc.close()


def test_token_exchange_through_ext_authz_is_cached_by_the_client_token(harness, keycloak):
    up = harness.upstream("api")

    def authz(key: str, body: str, grant: str) -> dict:
        return {
            "extAuthz": {
                "host": keycloak.host,
                "cache": {"key": [key], "ttl": "extauthz.expires - 5", "maxEntries": 1024},
                "protocol": {
                    "http": {
                        "path": '"/realms/backend-oauth/protocol/openid-connect/token"',
                        "addRequestHeaders": {
                            "content-type": '"application/x-www-form-urlencoded"',
                            "authorization": '"Basic " + base64.encode("requester-client:requester-secret")',
                            ":method": '"POST"',
                        },
                        "body": body,
                        "metadata": {**META, "grant": f'"{grant}"'},
                    }
                },
            },
            "transformations": {"request": {"set": {"authorization": '"Bearer " + extauthz.token'}}},
        }

    cc_body = 'form.encode({"grant_type": "client_credentials", "audience": "target-client"})'
    cfg = gateway_config(
        [
            route(
                "token-exchange",
                [up.host],
                prefix="/exchange",
                policies=authz('request.headers["authorization"]', BODY, "token-exchange"),
            ),
            route(
                "client-credentials",
                [up.host],
                prefix="/client-credentials",
                policies=authz('"client-credentials:target-client"', cc_body, "client-credentials"),
            ),
        ]
    )
    cfg["frontendPolicies"] = {
        "accessLog": {
            "add": {
                "backend_oauth.grant": "extauthz.grant",
                "backend_oauth.subject": "extauthz.subject",
                "backend_oauth.audience": "extauthz.audience",
            }
        }
    }
    gw = harness.gateway(cfg)
    keycloak.valid_subjects |= {"alice-token", "bob-token"}
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.get("/exchange/orders", headers={"authorization": "Bearer alice-token"})
        assert r.status_code == 200, r.text
        (auth,) = echo_headers(r)["authorization"]
        token = auth.removeprefix("Bearer ")
        assert keycloak.issued[token]["subject"] == "alice-token"
        sent = keycloak.requests[0]
        assert sent["method"] == "POST" and sent["path"] == "/realms/backend-oauth/protocol/openid-connect/token"
        assert keycloak.forms()[0] == {
            "grant_type": [TE],
            "subject_token": ["alice-token"],
            "subject_token_type": ["urn:ietf:params:oauth:token-type:access_token"],
            "requested_token_type": ["urn:ietf:params:oauth:token-type:access_token"],
            "audience": ["target-client"],
        }
        # the same client token: the cached answer, no second call; another: a new exchange
        r = c.get("/exchange/orders/2", headers={"authorization": "Bearer alice-token"})
        assert echo_headers(r)["authorization"] == [auth]
        assert len(keycloak.requests) == 1
        r = c.get("/exchange/orders", headers={"authorization": "Bearer bob-token"})
        assert r.status_code == 200 and echo_headers(r)["authorization"] != [auth]
        assert len(keycloak.requests) == 2
        # a token the server refuses: its answer is the client's (no upstream call)
        r = c.get("/exchange/orders", headers={"authorization": "Bearer mallory-token"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # client credentials: one token for everyone, cached under a constant key
        for _ in range(2):
            r = c.get("/client-credentials/x")
            assert r.status_code == 200, r.text
        assert keycloak.forms()[-1] == {"grant_type": ["client_credentials"], "audience": ["target-client"]}
        assert len(keycloak.requests) == 4
    lines = _log_lines(gw, 6)
    assert lines[0]["backend_oauth.grant"] == "token-exchange"
    assert lines[0]["backend_oauth.subject"] == "user-of-alice-token"
    assert lines[0]["backend_oauth.audience"] == "target-client"
    assert lines[1]["backend_oauth.subject"] == "user-of-alice-token"  # from the cache
    assert lines[-1]["backend_oauth.grant"] == "client-credentials"
