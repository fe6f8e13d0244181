"""mcpAuthentication: the gateway as an MCP route's OAuth resource server, against a real
authorization server (oidc-provider) and the official MCP SDK's OAuth client doing the whole
flow: 401 → protected-resource metadata → authorization-server metadata → client
registration → authorization code with PKCE and an RFC 8707 resource → token → the call."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.support.harness import closed_port, free_port
from tests.support.oidc import OidcProvider

from .conftest import demo_stdio, mcp_config, run

REDIRECT = f"http://127.0.0.1:{closed_port()}/callback"


def AuthServer(workdir: Path, client_id: str | None = None) -> OidcProvider:
    """An authorization server as MCP clients expect one: dynamic registration, PKCE,
    RFC 8707 resources with JWT access tokens; with ``client_id``, that public client
    pre-registered for ``REDIRECT``."""
    clients = []
    if client_id:
        clients.append(
            {
                "client_id": client_id,
                "token_endpoint_auth_method": "none",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }
        )
    return OidcProvider(
        workdir,
        clients=clients,
        scopes=["openid", "offline_access", "read:all", "profile"],
        registration=True,
        resourceIndicators=True,
    )


@pytest.fixture
def auth_server(tmp_path):
    servers: list[OidcProvider] = []

    def start(client_id: str | None = None) -> OidcProvider:
        s = AuthServer(tmp_path, client_id)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


class Storage:
    def __init__(self):
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


class Browser:
    """Follows the authorization redirects as a user agent would, up to the client's
    redirect URI, and hands the code to the SDK."""

    def __init__(self, keep_iss: bool = True):
        # RFC 9207: the authorization response's iss, which the SDK checks against the
        # metadata's issuer (see the provider-adapter test for when a client drops it)
        self.keep_iss = keep_iss
        self.result: AuthorizationCodeResult | None = None
        self.authorize_urls: list[str] = []

    async def redirect(self, url: str) -> None:
        self.authorize_urls.append(url)
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(10):
                r = await http.get(url, follow_redirects=False)
                assert r.status_code in (302, 303), (r.status_code, r.text[:500])
                loc = r.headers["location"]
                url = loc if "://" in loc else str(r.url.join(loc))
                if url.startswith(REDIRECT):
                    q = parse_qs(urlsplit(url).query)
                    assert "code" in q, url
                    iss = q.get("iss", [None])[0] if self.keep_iss else None
                    self.result = AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0], iss=iss)
                    return
        raise AssertionError("the authorization never redirected back")

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


def _route(issuer: str, port: int, mode: str = "strict", provider: dict | None = None, **auth) -> dict:
    cfg = mcp_config(
        {"targets": [{"name": "math", "stdio": demo_stdio("math")}]},
        policies={
            "mcpAuthentication": {
                "mode": mode,
                "issuer": issuer,
                "audiences": [f"http://127.0.0.1:{port}/mcp"],
                **({"provider": provider} if provider else {}),
                "resourceMetadata": {
                    "resource": f"http://127.0.0.1:{port}/mcp",
                    "scopesSupported": ["read:all"],
                    "bearerMethodsSupported": ["header"],
                    "resourceDocumentation": f"http://127.0.0.1:{port}/docs",
                },
                **auth,
            }
        },
        port=port,
    )
    cfg["binds"][0]["listeners"][0]["routes"][0]["matches"] = [
        {"path": {"exact": "/mcp"}},
        {"path": {"exact": "/.well-known/oauth-protected-resource/mcp"}},
        {"path": {"pathPrefix": "/.well-known/oauth-authorization-server/mcp"}},
    ]
    return cfg


async def _sdk_session(url: str, browser: Browser, storage: Storage):
    oauth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="test client",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope="read:all",
        ),
        storage=storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )
    http = httpx2.AsyncClient(auth=oauth, timeout=20)
    return http, Client(streamable_http_client(url, http_client=http))


def test_the_sdk_client_signs_in_through_the_authorization_server_and_calls_a_tool(harness, auth_server):
    idp = auth_server()
    port = free_port()
    cfg = _route(idp.issuer, port)
    cfg["binds"][0]["listeners"][0]["routes"][0]["policies"]["mcpAuthorization"] = {
        "rules": ['jwt.sub == "alice" && mcp.tool.name == "add"']
    }
    gw = harness.gateway(cfg)
    url = f"{gw.url}/mcp"

    # no token: a challenge naming the metadata, which names the authorization server
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert r.status_code == 401
    meta_url = f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{meta_url}"'
    meta = httpx.get(meta_url, timeout=10)
    assert meta.status_code == 200 and meta.headers["access-control-allow-origin"] == "*"
    doc = meta.json()
    assert doc["resource"] == url and doc["authorization_servers"] == [idp.issuer]
    assert doc["scopes_supported"] == ["read:all"] and doc["bearer_methods_supported"] == ["header"]
    assert doc["resource_documentation"] == f"http://127.0.0.1:{port}/docs"

    browser, storage = Browser(), Storage()

    async def go():
        http, client = await _sdk_session(url, browser, storage)
        async with http, client as c:
            tools = [t.name for t in (await c.list_tools()).tools]
            assert tools == ["add"]  # mcpAuthorization on the token's subject
            out = await c.call_tool("add", {"a": 2, "b": 3})
            assert out.content[0].text == "5"

    run(go())
    # the SDK registered itself at the issuer and asked for a token for this resource
    assert storage.client is not None and storage.client.client_id
    q = parse_qs(urlsplit(browser.authorize_urls[0]).query)
    assert q["resource"] == [url] and q["code_challenge_method"] == ["S256"]
    token = storage.tokens.access_token

    # the same token works for a plain client; tampered or for another resource, it does not
    ok = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"},
        timeout=10,
    )
    assert ok.status_code != 401
    bad = httpx.post(url, json={}, headers={"authorization": f"Bearer {token[:-4]}AAAA"}, timeout=10)
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == f'Bearer resource_metadata="{meta_url}", error="invalid_token"'


def test_token_for_another_resource_is_refused(harness, auth_server):
    idp = auth_server()
    port, other = free_port(), free_port()
    gw_other = harness.gateway(_route(idp.issuer, other))
    gw = harness.gateway(_route(idp.issuer, port))
    browser, storage = Browser(), Storage()

    async def go():
        http, client = await _sdk_session(f"{gw_other.url}/mcp", browser, storage)
        async with http, client as c:
            await c.list_tools()

    run(go())
    # a token minted for the other gateway's resource (its audience) is not accepted here
    r = httpx.post(
        f"{gw.url}/mcp", json={}, headers={"authorization": f"Bearer {storage.tokens.access_token}"}, timeout=10
    )
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.parametrize("mode", ["optional", "permissive"])
def test_modes_that_let_requests_without_a_token_through(harness, auth_server, mode):
    idp = auth_server()
    port = free_port()
    gw = harness.gateway(_route(idp.issuer, port, mode=mode))
    hdr = {"accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    assert httpx.post(f"{gw.url}/mcp", json=init, headers=hdr, timeout=10).status_code == 200
    bad = httpx.post(f"{gw.url}/mcp", json=init, headers={**hdr, "authorization": "Bearer not.a.token"}, timeout=10)
    assert bad.status_code == (401 if mode == "optional" else 200)


def test_provider_adapter_serves_metadata_and_answers_registration_with_the_client_id(harness, auth_server):
    idp = auth_server(client_id="pre-registered")
    port = free_port()
    gw = harness.gateway(_route(idp.issuer, port, provider={"keycloak": {}}, clientId="pre-registered"))
    url = f"{gw.url}/mcp"
    doc = httpx.get(f"{gw.url}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    assert doc["authorization_servers"] == [url]  # the gateway adapts the provider's metadata
    as_meta = httpx.get(f"{gw.url}/.well-known/oauth-authorization-server/mcp", timeout=10).json()
    assert as_meta["issuer"] == url
    assert as_meta["registration_endpoint"] == f"{gw.url}/.well-known/oauth-authorization-server/mcp/client-registration"
    assert as_meta["token_endpoint"] == f"{idp.issuer}/token"  # the rest is the provider's
    # the provider's own iss on its authorization responses would not match the gateway's
    # issuer: the adapted metadata does not advertise it, and the client does not check it
    assert "authorization_response_iss_parameter_supported" not in as_meta

    browser, storage = Browser(keep_iss=False), Storage()

    async def go():
        http, client = await _sdk_session(url, browser, storage)
        async with http, client as c:
            assert "add" in [t.name for t in (await c.list_tools()).tools]

    run(go())
    assert storage.client.client_id == "pre-registered"
    assert parse_qs(urlsplit(browser.authorize_urls[0]).query)["client_id"] == ["pre-registered"]


def test_refusals_at_load(harness):
    import json

    from agentgw.compile import compile_config
    from agentgw.config import ConfigError, load_config_text
    from tests.config.test_enforced import FakeServices

    for extra, where in (
        ({"provider": {"entra": {}}}, "mcpAuthentication.provider.entra"),
        ({"provider": {"authentik": {}}}, "mcpAuthentication.provider.authentik: provider authentik needs a clientId"),
        ({"provider": {"okta": {"x": 1}}}, "mcpAuthentication.provider.okta"),
    ):
        cfg = _route("http://127.0.0.1:1", 1, **extra)
        with pytest.raises(ConfigError) as e:
            compile_config(load_config_text(json.dumps(cfg)), FakeServices())
        assert where in str(e.value), str(e.value)
