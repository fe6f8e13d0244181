"""agentgateway's mcp-authentication example, run as its README runs it.

Stand-ins for what ``make run-validation-deps`` and the config reach:

* the mock authorization server of ``auth_server.py`` on ``http://localhost:9000`` (dynamic
  registration, authorization code with PKCE, JWT access tokens whose ``aud`` is the
  requested ``resource``) -> a real OAuth server (``oidc-provider`` from npm, see
  ``tests/support/oidc.py``) with registration and RFC 8707 resource indicators; its login
  signs the user in without a page, as the mock "redirects back to the MCP client
  automatically";
* the Keycloak-compatible endpoints on ``:7080`` (realm ``mcp``, audience ``mcp_proxy``, no
  RFC 8707, OpenID discovery, registration at ``clients-registrations/openid-connect``) ->
  a second ``oidc-provider`` with Keycloak's registration path and the fixed audience
  ``mcp_proxy`` in its access tokens;
* Scenario B's remote ``https://mcpbin.is.solo.io/remote/mcp`` -> the project-local
  ``@modelcontextprotocol/server-everything`` over streamable HTTP (no internet);
* ``npx @modelcontextprotocol/server-everything`` (Scenarios A and C) -> the project-local
  copy of that package on stdio;
* the MCP Inspector -> the official MCP SDK client and its OAuth client.

The vendored ``examples/mcp-authentication/config.yaml`` is loaded unchanged except:

* ``port`` 3000 -> a free port, and with it the ``http://localhost:3000`` of every
  ``audiences`` / ``resourceMetadata`` URL (the host and paths stay as written);
* ``issuer`` / ``jwks.url`` -> the stand-in's issuer and its ``jwks_uri``
  (``http://localhost:9000`` and ``.../.well-known/jwks.json``; for C
  ``http://localhost:7080/realms/mcp`` and ``.../protocol/openid-connect/certs``);
* the targets as above; ``config.adminAddr/statsAddr/readinessAddr`` added on free ports.

Modes, the CORS policies, ``scopesSupported``, ``bearerMethodsSupported``, the Keycloak
``provider`` and the ``mcp_proxy`` audience stay as written.

README steps checked:

* Quick test "``curl -i http://localhost:3000/stdio/mcp``: Expect ``401 Unauthorized`` and
  a ``WWW-Authenticate`` header referencing the well-known resource metadata";
* "Resource metadata: ``GET .../.well-known/oauth-protected-resource/stdio/mcp``": the
  configured resource, scopes, bearer methods, documentation and policy URIs and the
  issuer as authorization server (Scenarios A and B);
* "With MCP Inspector ... The MCP Authorization flow starts after the initial unauthorized
  request": for each of ``/stdio/mcp``, ``/remote/mcp`` and ``/keycloak/mcp`` the SDK
  client goes 401 -> metadata -> registration -> authorization code with PKCE -> token ->
  ``tools/list`` and ``echo``;
* Scenario C: "``authorization_servers`` ... is set to the gateway's own URL", "The AS
  metadata is fetched from your configured ``issuer`` and minimally rewritten", "Client
  registration is proxied by the gateway at ``.../client-registration``", "No RFC 8707
  support; use a fixed audience in config" (the token's ``aud`` is ``mcp_proxy``);
* Troubleshooting "Ensure ``audience`` equals the resource URL": a token for one route's
  resource is refused by the other.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
import yaml
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from tests.mcp.conftest import EVERYTHING, LOOPBACK, Server, need_npm, node_env, run
from tests.mcp.test_authentication import REDIRECT, Browser, Storage
from tests.support.harness import free_port
from tests.support.oidc import OidcProvider

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "mcp-authentication" / "config.yaml"
PRM = "/.well-known/oauth-protected-resource"


def _config(port: int, mock: OidcProvider, keycloak: OidcProvider, remote: str) -> dict:
    text = EXAMPLE.read_text()
    cfg = yaml.safe_load(text)
    (bind,) = cfg["binds"]
    assert bind["port"] == 3000
    bind["port"] = port
    stdio, remote_route, kc = bind["listeners"][0]["routes"]
    everything = {
        "cmd": str(EVERYTHING),
        "args": ["stdio"],
        "env": {"NODE_OPTIONS": f"--require {LOOPBACK} --no-warnings"},
    }
    for route in (stdio, kc):
        (target,) = route["backends"][0]["mcp"]["targets"]
        assert target == {
            "name": "everything",
            "stdio": {"cmd": "npx", "args": ["@modelcontextprotocol/server-everything"]},
        }
        target["stdio"] = everything
    (target,) = remote_route["backends"][0]["mcp"]["targets"]
    assert target == {"name": "mcpbin", "mcp": {"host": "https://mcpbin.is.solo.io/remote/mcp"}}
    target["mcp"]["host"] = remote
    for route, name in ((stdio, "stdio"), (remote_route, "remote")):
        auth = route["policies"]["mcpAuthentication"]
        assert auth["issuer"] == "http://localhost:9000"
        assert auth["jwks"] == {"url": "http://localhost:9000/.well-known/jwks.json"}
        auth["issuer"], auth["jwks"]["url"] = mock.issuer, f"{mock.issuer}/jwks"
        assert auth["audiences"] == [f"http://localhost:3000/{name}/mcp"]
        assert "provider" not in auth
    auth = kc["policies"]["mcpAuthentication"]
    assert auth["issuer"] == "http://localhost:7080/realms/mcp" and auth["provider"] == {"keycloak": {}}
    assert auth["jwks"] == {"url": "http://localhost:7080/realms/mcp/protocol/openid-connect/certs"}
    assert auth["audiences"] == ["mcp_proxy"]
    auth["issuer"], auth["jwks"]["url"] = keycloak.issuer, f"{keycloak.issuer}/jwks"
    assert stdio["policies"]["mcpAuthentication"]["mode"] == "strict"
    assert "mode" not in remote_route["policies"]["mcpAuthentication"]
    # the gateway's own URLs: only the port changes
    return yaml.safe_load(yaml.safe_dump(cfg).replace("http://localhost:3000/", f"http://localhost:{port}/")) | {
        "config": {f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")}
    }


@pytest.fixture(scope="module")
def example(module_harness, tmp_path_factory):
    need_npm(EVERYTHING)
    work = tmp_path_factory.mktemp("authn")
    scopes = ["openid", "offline_access", "read:all", "profile"]
    mock = OidcProvider(work, scopes=scopes, registration=True, resourceIndicators=True)
    keycloak = OidcProvider(
        work,
        scopes=scopes,
        registration=True,
        resourceIndicators=True,
        audience="mcp_proxy",
        routes={"registration": "/clients-registrations/openid-connect"},
    )
    rport = free_port()
    remote = Server([str(EVERYTHING), "streamableHttp"], rport, work / "remote.log", node_env({"PORT": str(rport)}))
    try:
        port = free_port()
        module_harness.gateway(_config(port, mock, keycloak, remote.url))
        yield f"http://localhost:{port}", mock, keycloak
    finally:
        remote.stop()
        mock.close()
        keycloak.close()


async def _inspector(url: str, browser: Browser, storage: Storage, scope: str | None):
    oauth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP Inspector",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope=scope,
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    http = httpx2.AsyncClient(auth=oauth, timeout=20)
    async with http, Client(streamable_http_client(url, http_client=http)) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        assert {"echo", "get-sum"} <= tools, tools
        r = await c.call_tool("echo", {"message": "authenticated"})
        assert r.content[0].text == "Echo: authenticated"


def _claims(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def test_without_a_token_401_points_at_the_resource_metadata(example):
    base, mock, _ = example
    r = httpx.get(f"{base}/stdio/mcp", timeout=10)  # curl -i http://localhost:3000/stdio/mcp
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{base}{PRM}/stdio/mcp"'
    for name, scopes in (("stdio", ["read:all"]), ("remote", ["offline_access"])):
        meta = httpx.get(f"{base}{PRM}/{name}/mcp", timeout=10)
        assert meta.status_code == 200 and meta.headers["access-control-allow-origin"] == "*"
        assert meta.json() == {
            "resource": f"{base}/{name}/mcp",
            "authorization_servers": [mock.issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header", "body", "query"],
            "resource_documentation": f"{base}/{name}/docs",
            "resource_policy_uri": f"{base}/{name}/policies",
            # added by agentgateway (and agentgw) to every resource metadata document
            "mcp_protocol_version": "2025-06-18",
            "resource_type": "mcp-server",
        }, meta.json()
    # the browser-based Inspector: CORS on the MCP endpoint
    pre = httpx.options(
        f"{base}/stdio/mcp",
        headers={
            "origin": "http://localhost:6274",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,mcp-protocol-version",
        },
        timeout=10,
    )
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("name,scope", [("stdio", "read:all"), ("remote", None)])
def test_the_inspector_signs_in_at_the_authorization_server(example, name, scope):
    base, mock, _ = example
    url = f"{base}/{name}/mcp"
    browser, storage = Browser(), Storage()
    run(_inspector(url, browser, storage, scope))
    assert storage.client is not None and storage.client.client_id  # registered at the issuer
    auth = urlsplit(browser.authorize_urls[0])
    assert f"{auth.scheme}://{auth.netloc}" == mock.issuer
    q = parse_qs(auth.query)
    assert q["resource"] == [url] and q["code_challenge_method"] == ["S256"]
    token = storage.tokens.access_token
    assert _claims(token)["aud"] == url and _claims(token)["iss"] == mock.issuer
    # "Ensure audience equals the resource URL": the other route refuses it
    other = "remote" if name == "stdio" else "stdio"
    r = httpx.post(f"{base}/{other}/mcp", json={}, headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_keycloak_adaptation(example):
    base, _mock, keycloak = example
    url = f"{base}/keycloak/mcp"
    r = httpx.post(url, json={}, timeout=10)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{base}{PRM}/keycloak/mcp"'
    doc = httpx.get(f"{base}{PRM}/keycloak/mcp", timeout=10).json()
    assert doc["authorization_servers"] == [url]  # the gateway's own URL
    assert doc["scopes_supported"] == ["profile", "offline_access", "openid"]
    as_meta = httpx.get(f"{base}/.well-known/oauth-authorization-server/keycloak/mcp", timeout=10).json()
    discovered = httpx.get(f"{keycloak.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert as_meta["issuer"] == url
    assert (
        as_meta["registration_endpoint"]
        == f"{base}/.well-known/oauth-authorization-server/keycloak/mcp/client-registration"
    )
    for k in ("authorization_endpoint", "token_endpoint", "jwks_uri", "code_challenge_methods_supported"):
        assert as_meta[k] == discovered[k], k
    assert discovered["registration_endpoint"] == f"{keycloak.issuer}/clients-registrations/openid-connect"

    browser, storage = Browser(keep_iss=False), Storage()
    run(_inspector(url, browser, storage, "openid profile"))
    # the client registered at the endpoint the gateway advertised (its proxy): Keycloak
    # knows the client id it got, since it let that client sign in
    assert storage.client is not None and storage.client.client_id
    auth = urlsplit(browser.authorize_urls[0])
    assert auth.netloc == urlsplit(keycloak.issuer).netloc
    assert parse_qs(auth.query)["client_id"] == [storage.client.client_id]
    assert _claims(storage.tokens.access_token)["aud"] == "mcp_proxy"  # the fixed audience
