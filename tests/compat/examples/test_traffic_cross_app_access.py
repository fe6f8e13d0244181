"""agentgateway's traffic-cross-app-access example (the ``keycloak/`` demo, the one its README
says to start with: fully local), run as its README runs it.

The README's Keycloak with ID-JAG support (``ceposta/keycloak:id-jag`` on ``:8480``,
configured by ``configure-keycloak.sh``: realm ``idjag-demo``, user ``alice`` / ``alice``,
confidential clients ``agent-client`` / ``agent-secret`` and ``resource-client`` /
``resource-secret``, the resource client's resource-server identifier
``https://resource.idjag.demo``) is stood in by ``tests/support/keycloak.py`` with that realm,
those clients and that user: it validates the ID token it issued, mints the ID-JAG
(``typ oauth-id-jag+jwt``, ``aud`` the resource server, ``client_id resource-client``) on
leg 1 and takes it by jwt-bearer on leg 2. The echo backend (``echo-backend.py`` on
``:9000``, which returns method, path and headers) is the project's echo upstream. The
``xaa-dev`` and ``okta-auth0`` demos need accounts at xaa.dev, Okta and Auth0 and are not
run; their configs differ from this one only in endpoints and credentials.

The vendored ``keycloak/gateway.yaml`` is loaded unchanged except:

* the bind's port 3030 -> a free port;
* ``localhost:8480`` (jwtAuth issuer and JWKS URL, both token endpoints' ``host``) -> the
  stand-in's address; the backend ``localhost:9000`` -> the echo upstream's address;
* ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

``$KC_AGENT_SECRET`` / ``$KC_RESOURCE_SECRET`` stay in the file and are exported as the
README exports them (``agent-secret``, ``resource-secret``); paths, client ids, methods,
``audience``, ``scopes`` and the ``subjectToken`` expression stay as written.

README steps checked:

* "export KC_AGENT_SECRET=agent-secret KC_RESOURCE_SECRET=resource-secret" then run: without
  them the config does not load, with them it does;
* 5a "Get alice's Keycloak ID token" (password grant, ``scope=openid``);
* 5b "the echo backend reports it received ``GET /todos`` with an ``Authorization: Bearer <a
  DIFFERENT token>``" and "backend received a Bearer token for alice | azp: resource-client
  | scope: todos.read profile email";
* "What just happened": leg 1 is an RFC 8693 exchange as ``agent-client`` (Basic) of the ID
  token for an ID-JAG bound to ``https://resource.idjag.demo`` with ``scope todos.read`` and
  no ``resource``; leg 2 the jwt-bearer grant as ``resource-client`` presenting that ID-JAG;
  the inbound ID token is stripped; "The result is cached until near expiry";
* 5d "no token -> 400, bad token -> 401: the gateway rejects before any exchange happens".
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import yaml

from tests.identity.support import echo_headers
from tests.support.harness import dump_yaml, free_port, run_cli
from tests.support.keycloak import ID_JAG, ID_TOKEN, JB, TE, Keycloak, Realm, payload

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-cross-app-access" / "keycloak"
TOKEN_PATH = "/realms/idjag-demo/protocol/openid-connect/token"
SECRETS = {"KC_AGENT_SECRET": "agent-secret", "KC_RESOURCE_SECRET": "resource-secret"}


def _config(kc: Keycloak, echo: str, port: int) -> dict:
    cfg = yaml.safe_load((EXAMPLE / "gateway.yaml").read_text())
    bind = cfg["binds"][0]
    assert bind["port"] == 3030
    bind["port"] = port
    (route,) = bind["listeners"][0]["routes"]
    assert route["backends"] == [{"host": "localhost:9000"}]
    route["backends"][0]["host"] = echo
    jwt = route["policies"]["jwtAuth"]
    assert jwt == {
        "issuer": "http://localhost:8480/realms/idjag-demo",
        "audiences": ["agent-client"],
        "jwks": {"url": "http://localhost:8480/realms/idjag-demo/protocol/openid-connect/certs"},
    }
    jwt["issuer"] = f"{kc.base}/realms/idjag-demo"
    jwt["jwks"]["url"] = f"{kc.base}/realms/idjag-demo/protocol/openid-connect/certs"
    xaa = route["policies"]["backendAuth"]["crossAppAccess"]
    assert xaa["subjectToken"] == {"source": {"expression": "jwt.rawToken.unredacted()"}}
    for leg, client, secret in (
        ("identityProvider", "agent-client", "$KC_AGENT_SECRET"),
        ("resourceAuthorizationServer", "resource-client", "$KC_RESOURCE_SECRET"),
    ):
        assert xaa[leg] == {
            "host": "localhost:8480",
            "path": TOKEN_PATH,
            "clientAuth": {"clientId": client, "method": "clientSecretBasic", "clientSecret": secret},
        }
        xaa[leg]["host"] = kc.host
    assert xaa["audience"] == "https://resource.idjag.demo" and xaa["scopes"] == ["todos.read"]
    assert "resources" not in xaa  # "intentionally unset"
    cfg["config"] = {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    return cfg


@pytest.fixture(scope="module")
def demo(module_harness):
    realm = Realm(
        "idjag-demo",
        {"agent-client": "agent-secret", "resource-client": "resource-secret"},
        {"alice": "alice"},
        resource_servers={"https://resource.idjag.demo": "resource-client"},
    )
    kc = Keycloak(realm)
    echo = module_harness.upstream("echo")
    port = free_port()
    module_harness.gateway(_config(kc, echo.host, port), env=SECRETS)
    yield kc, echo, f"http://localhost:{port}"
    kc.close()


def _token_calls(kc: Keycloak, since: int) -> list[dict]:
    """The token requests (not the gateway's JWKS reads) since ``since``."""
    return [r for r in kc.requests[since:] if r["method"] == "POST"]


def _id_token(kc: Keycloak) -> str:
    """5a: alice's ID token by the direct-access-grant shortcut."""
    r = httpx.post(
        f"{kc.base}{TOKEN_PATH}",
        data={
            "grant_type": "password",
            "client_id": "agent-client",
            "client_secret": "agent-secret",
            "username": "alice",
            "password": "alice",
            "scope": "openid",
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["id_token"]


def test_the_secrets_come_from_the_environment(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text((EXAMPLE / "gateway.yaml").read_text())
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "KC_AGENT_SECRET" in r.stdout + r.stderr, r.stdout + r.stderr
    path.write_text(dump_yaml(yaml.safe_load(path.read_text())).replace("$KC_AGENT_SECRET", "agent-secret"))
    r = run_cli("validate", "-f", str(path))
    assert r.returncode != 0 and "KC_RESOURCE_SECRET" in r.stdout + r.stderr, r.stdout + r.stderr
    path.write_text(path.read_text().replace("$KC_RESOURCE_SECRET", "resource-secret"))
    assert run_cli("validate", "-f", str(path)).returncode == 0


def test_the_id_token_becomes_a_resource_access_token_for_alice(demo):
    kc, _echo, base = demo
    id_token = _id_token(kc)
    claims = payload(id_token)
    assert (claims["aud"], claims["preferred_username"]) == ("agent-client", "alice")
    before = len(kc.requests)
    r = httpx.get(f"{base}/todos", headers={"authorization": f"Bearer {id_token}"}, timeout=10)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["method"] == "GET" and seen["path"] == "/todos"
    (auth,) = echo_headers(r)["authorization"]  # the ID token is stripped, one token attached
    token = auth.split()[1]
    assert token != id_token
    p = payload(token)
    # "backend received a Bearer token for alice | azp: resource-client | scope: todos.read profile email"
    assert (p["typ"], p["preferred_username"], p["azp"]) == ("Bearer", "alice", "resource-client")
    assert p["scope"] == "todos.read profile email"

    # leg 1 and leg 2, as "What just happened" tells them
    leg1, leg2 = _token_calls(kc, before)
    f1, f2 = (dict(parse_qs(c["body"].decode())) for c in (leg1, leg2))
    assert leg1["path"] == leg2["path"] == TOKEN_PATH
    assert leg1["headers"]["authorization"] == "Basic " + base64.b64encode(b"agent-client:agent-secret").decode()
    assert f1 == {
        "grant_type": [TE],
        "subject_token": [id_token],
        "subject_token_type": [ID_TOKEN],
        "requested_token_type": [ID_JAG],
        "audience": ["https://resource.idjag.demo"],
        "scope": ["todos.read"],
    }, f1
    assert leg2["headers"]["authorization"] == "Basic " + base64.b64encode(b"resource-client:resource-secret").decode()
    assert set(f2) == {"grant_type", "assertion", "scope"} and f2["grant_type"] == [JB], f2
    assert f2["scope"] == ["todos.read"]
    jag_header = base64.urlsafe_b64decode(f2["assertion"][0].split(".")[0] + "==")
    assert b'"oauth-id-jag+jwt"' in jag_header
    jag = payload(f2["assertion"][0])
    assert (jag["aud"], jag["client_id"], jag["sub"]) == ("https://resource.idjag.demo", "resource-client", p["sub"])

    # cached until near expiry: the next call costs no exchange
    r = httpx.get(f"{base}/todos", headers={"authorization": f"Bearer {id_token}"}, timeout=10)
    assert echo_headers(r)["authorization"] == [auth] and len(_token_calls(kc, before)) == 2


def test_negative_paths_are_rejected_before_any_exchange(demo):
    kc, echo, base = demo
    before, served = len(kc.requests), echo.count("/todos")
    r = httpx.get(f"{base}/todos", timeout=10)
    assert r.status_code == 400, (r.status_code, r.text)  # "no token -> 400"
    r = httpx.get(f"{base}/todos", headers={"authorization": "Bearer not.a.jwt"}, timeout=10)
    assert r.status_code == 401, (r.status_code, r.text)  # "bad token -> 401"
    # an access token (not alice's ID token) of the realm: jwtAuth's audience is agent-client
    at = httpx.post(
        f"{kc.base}{TOKEN_PATH}",
        data={"grant_type": "client_credentials"},
        auth=("resource-client", "resource-secret"),
        timeout=10,
    ).json()["access_token"]
    r = httpx.get(f"{base}/todos", headers={"authorization": f"Bearer {at}"}, timeout=10)
    assert r.status_code == 401, (r.status_code, r.text)
    assert len(_token_calls(kc, before)) == 1 and echo.count("/todos") == served  # the client_credentials above
