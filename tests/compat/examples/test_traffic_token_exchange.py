"""agentgateway's traffic-token-exchange examples (``oauth-rfc8693``, ``jwt-authz-grant``,
``extauthz``), run as their READMEs run them.

Each README's docker-compose stack is stood in locally:

* Keycloak on ``:7080`` -> ``tests/support/keycloak.py`` on a free port, with the READMEs'
  realms, clients and users: realm ``backend-oauth`` (``initial-client`` /
  ``initial-secret``, ``requester-client`` / ``requester-secret``, ``target-client``; user
  ``testuser`` / ``testpass``, whose tokens from ``initial-client`` have ``aud
  requester-client`` as the README's table shows) and, for ``jwt-authz-grant``, realm ``idp``
  (``idp-app`` / ``idp-secret``, user ``idpuser`` / ``idppass``, an audience mapper adding
  the ``backend-oauth`` issuer) that ``backend-oauth`` trusts for RFC 7523 with ``idpuser``
  linked, as its ``jwtbearer-import`` realms are;
* the echo upstream on ``:18080`` -> the project's echo upstream (it reflects the request
  headers);
* ``jwt-authz-grant``'s ``mock_token.py`` on ``:7090`` -> the same mock in this process: it
  records the form and answers ``mock-jwt-bearer-access-token`` to every POST.

Each vendored ``config.yaml`` is loaded unchanged except: the bind's port 3000 -> a free
port; ``localhost:7080`` / ``localhost:7090`` / ``localhost:18080`` -> the stand-ins'
addresses; ``config: {}`` -> the admin, stats and readiness addresses on free ports.
Everything else (grants, client auth, audiences, scopes, ``additionalParams``, the extAuthz
CEL, cache and access-log fields) stays as written.

README steps checked:

* oauth-rfc8693: "Mint a user token from Keycloak" (password grant) -> "curl
  http://localhost:3000/exchange -H 'authorization: Bearer $SUBJECT_TOKEN'": the gateway
  POSTs to the token endpoint as ``requester-client`` with ``clientSecretBasic`` an RFC 8693
  exchange (``subject_token``, ``requested_token_type ...:access_token``, ``audience
  target-client``) and forwards that token: the decoded table, inbound ``aud
  requester-client`` / ``azp initial-client``, forwarded ``aud target-client`` / ``azp
  requester-client`` / ``sub`` the user id; "tokens are cached per request (subject ...)";
* jwt-authz-grant Example 1: ``/jwt-bearer`` sends ``grant_type ...:jwt-bearer``,
  ``assertion`` the inbound token, ``audience target-client`` to the mock, the upstream
  receives ``Bearer mock-jwt-bearer-access-token``;
* Example 2: ``/obo`` sends the Entra on-behalf-of form: ``client_id``/``client_secret`` in
  the body, ``requested_token_use=on_behalf_of``, ``scope
  https://graph.microsoft.com/.default``, the assertion, and no Authorization header;
* Example 3: an assertion from realm ``idp`` presented at ``/jwt-bearer-kc`` -> "HTTP 200;
  upstream receives a backend-oauth token (aud=target-client)", with the table's ``iss`` /
  ``aud`` / ``azp`` for assertion and exchanged token;
* "``requestedTokenType`` / ``actorToken`` are rejected at config load for this grant";
* extauthz: ``/exchange`` (RFC 8693 by hand) and ``/client-credentials`` (RFC 6749) forward
  with the acquired token, and "the access log includes ``backend_oauth.grant=...
  backend_oauth.subject=... backend_oauth.audience="target-client"``"; the extAuthz cache
  answers a repeated request without the token endpoint.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
import yaml

from tests.identity.support import echo_headers
from tests.support.harness import dump_yaml, free_port, run_cli, wait_for
from tests.support.keycloak import ACCESS, JB, TE, Keycloak, Realm, payload

EXAMPLES = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-token-exchange"
TOKEN_PATH = "/realms/backend-oauth/protocol/openid-connect/token"


class MockToken:
    """``mock_token.py``: records each POST (path, Authorization, form) and answers the
    static ``mock-jwt-bearer-access-token``."""

    def __init__(self):
        self.seen: list[dict] = []
        owner = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                owner.seen.append(
                    {"path": self.path, "authz": self.headers.get("authorization"), "form": dict(parse_qsl(raw))}
                )
                body = json.dumps(
                    {"access_token": "mock-jwt-bearer-access-token", "token_type": "Bearer", "expires_in": 300}
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def stack(module_harness):
    idp = Realm("idp", {"idp-app": "idp-secret"}, {"idpuser": "idppass"})
    backend = Realm(
        "backend-oauth",
        {"initial-client": "initial-secret", "requester-client": "requester-secret", "target-client": "target-secret"},
        {"testuser": "testpass", "idpuser": "not-used"},
        extra_aud={"initial-client": "requester-client"},
        trust=["idp"],
        links={"idp-idpuser-id": "idpuser"},
    )
    kc = Keycloak(idp, backend)
    idp.extra_aud["idp-app"] = [backend.issuer]  # the audience mapper on idp-app
    mock = MockToken()
    echo = module_harness.upstream("echo")
    yield module_harness, kc, mock, echo
    kc.close()
    mock.close()


def _load(name: str, port: int) -> dict:
    cfg = yaml.safe_load((EXAMPLES / name / "config.yaml").read_text())
    assert cfg["config"] == {} and cfg["binds"][0]["port"] == 3000
    cfg["binds"][0]["port"] = port
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg


def _routes(cfg: dict) -> dict:
    return {r["name"]: r for r in cfg["binds"][0]["listeners"][0]["routes"]}


def _retarget(route: dict, echo: str, token_hosts: dict[str, str]) -> dict:
    (backend,) = route["backends"]
    assert backend["host"] == "localhost:18080"
    backend["host"] = echo
    ex = backend["policies"]["backendAuth"]["oauthTokenExchange"]
    ex["host"] = token_hosts[ex["host"]]
    return ex


def _user_token(kc: Keycloak, realm: str = "backend-oauth", client=("initial-client", "initial-secret"), user=None):
    user = user or ("testuser", "testpass")
    r = httpx.post(
        f"{kc.base}/realms/{realm}/protocol/openid-connect/token",
        auth=client,
        data={"grant_type": "password", "username": user[0], "password": user[1]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _forwarded(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    (auth,) = echo_headers(resp)["authorization"]
    assert auth.startswith("Bearer ")
    return auth.removeprefix("Bearer ")


# --------------------------------------------------------------------------------------
# oauth-rfc8693
# --------------------------------------------------------------------------------------
def test_rfc8693_exchanges_the_user_token_for_a_target_client_token(stack):
    harness, kc, _mock, echo = stack
    port = free_port()
    cfg = _load("oauth-rfc8693", port)
    routes = _routes(cfg)
    assert list(routes) == ["token-exchange"]
    assert routes["token-exchange"]["matches"] == [{"path": {"pathPrefix": "/exchange"}}]
    ex = _retarget(routes["token-exchange"], echo.host, {"localhost:7080": kc.host})
    assert ex == {
        "host": kc.host,
        "path": TOKEN_PATH,
        "clientAuth": {
            "clientId": "requester-client",
            "clientSecret": "requester-secret",
            "method": "clientSecretBasic",
        },
        "audiences": ["target-client"],
    }
    harness.gateway(cfg)

    subject = _user_token(kc)
    inbound = payload(subject)
    assert (inbound["aud"], inbound["azp"]) == ("requester-client", "initial-client")
    before = len(kc.requests)
    r = httpx.get(f"http://localhost:{port}/exchange", headers={"authorization": f"Bearer {subject}"}, timeout=10)
    forwarded = _forwarded(r)
    assert forwarded != subject
    out = payload(forwarded)
    assert (out["aud"], out["azp"], out["sub"]) == ("target-client", "requester-client", inbound["sub"])
    assert out["iss"] == f"{kc.base}/realms/backend-oauth"
    # the request the gateway made: requester-client by Basic, RFC 8693 form
    (req,) = kc.requests[before:]
    assert req["path"] == TOKEN_PATH
    assert req["headers"]["authorization"] == "Basic " + base64.b64encode(b"requester-client:requester-secret").decode()
    form = kc.forms()[before]
    assert form == {
        "grant_type": [TE],
        "subject_token": [subject],
        "subject_token_type": [ACCESS],
        "requested_token_type": [ACCESS],
        "audience": ["target-client"],
    }, form
    # cached per subject: the same user again costs no exchange; another token does
    r = httpx.get(f"http://localhost:{port}/exchange/again", headers={"authorization": f"Bearer {subject}"}, timeout=10)
    assert _forwarded(r) == forwarded and len(kc.requests) == before + 1
    other = _user_token(kc)
    r = httpx.get(f"http://localhost:{port}/exchange", headers={"authorization": f"Bearer {other}"}, timeout=10)
    assert _forwarded(r) != forwarded and len(kc.requests) == before + 3
    # a token the authorization server does not accept is not forwarded
    r = httpx.get(f"http://localhost:{port}/exchange", headers={"authorization": "Bearer forged"}, timeout=10)
    assert r.status_code == 400 and "forged" not in r.text


# --------------------------------------------------------------------------------------
# jwt-authz-grant
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jwt_grant(stack):
    harness, kc, mock, echo = stack
    port = free_port()
    cfg = _load("jwt-authz-grant", port)
    routes = _routes(cfg)
    assert list(routes) == ["ms-obo", "jwt-bearer-mock", "jwt-bearer-keycloak"]
    hosts = {"localhost:7080": kc.host, "localhost:7090": mock.host}
    obo = _retarget(routes["ms-obo"], echo.host, hosts)
    assert obo == {
        "host": mock.host,
        "path": "/token",
        "grantType": "jwtBearer",
        "clientAuth": {
            "clientId": "my-app-client-id",
            "clientSecret": "my-app-client-secret",
            "method": "clientSecretPost",
        },
        "scopes": ["https://graph.microsoft.com/.default"],
        "additionalParams": {"requested_token_use": '"on_behalf_of"'},
    }
    assert _retarget(routes["jwt-bearer-mock"], echo.host, hosts) == {
        "host": mock.host,
        "path": "/token",
        "grantType": "jwtBearer",
        "audiences": ["target-client"],
    }
    kc_ex = _retarget(routes["jwt-bearer-keycloak"], echo.host, hosts)
    assert kc_ex["host"] == kc.host and kc_ex["path"] == TOKEN_PATH and kc_ex["grantType"] == "jwtBearer"
    harness.gateway(cfg)
    return f"http://localhost:{port}", kc, mock, cfg


def test_jwt_bearer_request_shape(jwt_grant):
    base, kc, mock, _ = jwt_grant
    subject = _user_token(kc)
    mock.seen.clear()
    r = httpx.get(f"{base}/jwt-bearer", headers={"authorization": f"Bearer {subject}"}, timeout=10)
    assert _forwarded(r) == "mock-jwt-bearer-access-token"
    (seen,) = mock.seen
    assert seen["path"] == "/token"
    assert seen["form"] == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": subject,
        "audience": "target-client",
    }, seen


def test_microsoft_on_behalf_of_request_shape(jwt_grant):
    base, kc, mock, _ = jwt_grant
    subject = _user_token(kc)
    mock.seen.clear()
    r = httpx.get(f"{base}/obo", headers={"authorization": f"Bearer {subject}"}, timeout=10)
    assert _forwarded(r) == "mock-jwt-bearer-access-token"
    (seen,) = mock.seen
    assert seen["authz"] is None  # clientSecretPost: the credentials are in the body
    assert seen["form"] == {
        "client_id": "my-app-client-id",
        "client_secret": "my-app-client-secret",
        "grant_type": JB,
        "requested_token_use": "on_behalf_of",
        "scope": "https://graph.microsoft.com/.default",
        "assertion": subject,
    }, seen


def test_full_exchange_against_the_two_realm_keycloak(jwt_grant):
    base, kc, mock, _ = jwt_grant
    assertion = _user_token(kc, "idp", ("idp-app", "idp-secret"), ("idpuser", "idppass"))
    a = payload(assertion)
    assert a["iss"] == f"{kc.base}/realms/idp" and a["aud"] == [f"{kc.base}/realms/backend-oauth"]
    assert a["azp"] == "idp-app"
    mock.seen.clear()
    before = len(kc.requests)
    r = httpx.get(f"{base}/jwt-bearer-kc", headers={"authorization": f"Bearer {assertion}"}, timeout=10)
    out = payload(_forwarded(r))
    assert (out["iss"], out["aud"], out["azp"]) == (
        f"{kc.base}/realms/backend-oauth",
        "target-client",
        "requester-client",
    )
    assert out["preferred_username"] == "idpuser"  # the linked backend-oauth user
    assert not mock.seen  # /jwt-bearer-kc is its own route, not /jwt-bearer's
    form = kc.forms()[before]
    assert form == {"grant_type": [JB], "assertion": [assertion], "audience": ["target-client"]}, form
    # a user token of backend-oauth itself is no trusted assertion: Keycloak refuses, 400
    own = _user_token(kc)
    r = httpx.get(f"{base}/jwt-bearer-kc", headers={"authorization": f"Bearer {own}"}, timeout=10)
    assert r.status_code == 400


@pytest.mark.parametrize(
    "extra",
    [
        {"requestedTokenType": "urn:ietf:params:oauth:token-type:access_token"},
        {"actorToken": {"source": {"header": {"name": "x-actor-token"}}, "tokenType": ACCESS}},
    ],
)
def test_jwt_bearer_refuses_requested_token_type_and_actor_token_at_load(tmp_path, extra):
    cfg = _load("jwt-authz-grant", free_port())
    ex = _routes(cfg)["jwt-bearer-mock"]["backends"][0]["policies"]["backendAuth"]["oauthTokenExchange"]
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(cfg))
    assert run_cli("validate", "-f", str(path)).returncode == 0
    ex.update(extra)
    path.write_text(dump_yaml(cfg))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and next(iter(extra)) in r.stdout + r.stderr, r.stdout + r.stderr


# --------------------------------------------------------------------------------------
# extauthz
# --------------------------------------------------------------------------------------
def test_extauthz_builds_both_token_requests_and_logs_them(stack):
    harness, kc, _mock, echo = stack
    port = free_port()
    cfg = _load("extauthz", port)
    assert cfg["frontendPolicies"]["accessLog"]["add"] == {
        "backend_oauth.grant": "extauthz.grant",
        "backend_oauth.subject": "extauthz.subject",
        "backend_oauth.audience": "extauthz.audience",
    }
    routes = _routes(cfg)
    assert list(routes) == ["token-exchange", "client-credentials"]
    for route in routes.values():
        assert route["backends"] == [{"host": "localhost:18080"}]
        route["backends"][0]["host"] = echo.host
        assert route["policies"]["extAuthz"]["host"] == "localhost:7080"
        route["policies"]["extAuthz"]["host"] = kc.host
    gw = harness.gateway(cfg)
    base = f"http://localhost:{port}"

    subject = _user_token(kc)
    before = len(kc.requests)
    r = httpx.get(f"{base}/exchange", headers={"authorization": f"Bearer {subject}"}, timeout=10)
    exchanged = payload(_forwarded(r))
    assert (exchanged["aud"], exchanged["azp"]) == ("target-client", "requester-client")
    assert exchanged["sub"] == payload(subject)["sub"]
    form = kc.forms()[before]
    assert form == {
        "grant_type": [TE],
        "subject_token": [subject],
        "subject_token_type": [ACCESS],
        "requested_token_type": [ACCESS],
        "audience": ["target-client"],
    }, form
    assert kc.requests[before]["path"] == TOKEN_PATH

    r = httpx.get(f"{base}/client-credentials", timeout=10)
    cc = payload(_forwarded(r))
    assert (cc["aud"], cc["azp"], cc["sub"]) == (
        "target-client",
        "requester-client",
        "service-account-requester-client",
    )
    assert kc.forms()[before + 1] == {"grant_type": ["client_credentials"], "audience": ["target-client"]}

    # cached (by the Authorization header / a fixed key): no new token requests
    r = httpx.get(f"{base}/exchange?again=1", headers={"authorization": f"Bearer {subject}"}, timeout=10)
    assert r.status_code == 200 and payload(_forwarded(r)) == exchanged
    assert httpx.get(f"{base}/client-credentials?again=1", timeout=10).status_code == 200
    assert len(kc.requests) == before + 2

    def logged(path: str):
        for line in gw.stdout_text().splitlines():
            if " request " in line and f"path={path}" in line:
                # the README prints string values quoted; agentgw quotes only those with
                # spaces or quotes in them: compare the values
                pairs = re.findall(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S*)', line)
                return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}
        return None

    ex = wait_for(lambda: logged("/exchange"), timeout=5, message="the /exchange access-log line")
    assert ex["backend_oauth.grant"] == "token-exchange", ex
    assert ex["backend_oauth.subject"] == exchanged["sub"], ex
    assert ex["backend_oauth.audience"] == "target-client", ex
    cc_line = wait_for(lambda: logged("/client-credentials"), timeout=5, message="the /client-credentials line")
    assert cc_line["backend_oauth.grant"] == "client-credentials", cc_line
    assert cc_line["backend_oauth.subject"] == "service-account-requester-client", cc_line
    assert cc_line["backend_oauth.audience"] == "target-client", cc_line
