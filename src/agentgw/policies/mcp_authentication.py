"""``mcpAuthentication``: the gateway as the OAuth 2.1 resource server of an MCP route,
as the MCP authorization specification asks of MCP servers.

* **Protected resource metadata** (RFC 9728) at ``/.well-known/oauth-protected-resource``
  + the resource's path: ``resource``, ``authorization_servers`` and the configured
  ``resourceMetadata`` (keys in camelCase become the RFC's snake_case names).
* **Bearer tokens** (RFC 6750) verified as ``jwtAuth`` verifies them (issuer, audiences,
  keys from ``jwks`` or discovered from the issuer's metadata), with ``mode``
  ``strict`` (a valid token is required; the default), ``optional`` (a token, when sent,
  must be valid) or ``permissive`` (never refused; claims only from a valid token). A
  refusal is a 401 whose ``WWW-Authenticate: Bearer resource_metadata="..."`` sends an
  MCP client to the metadata, and from there to the authorization server. Claims go to
  ``jwt`` in CEL (``mcpAuthorization``, ``authorization``, logs) and ``sub`` becomes the
  principal.
* **Authorization-server metadata** for providers that do not serve what MCP clients
  expect (``provider:``): the gateway serves the issuer's metadata at
  ``/.well-known/oauth-authorization-server`` + the resource's path, adapted: the issuer is
  the gateway's URL, Auth0 and Okta get the audience on their authorize URL (they do not
  read RFC 8707's ``resource``), and client registration goes through the gateway
  (``.../client-registration``): answered with the configured ``clientId`` where the
  provider has no dynamic registration, else relayed to the provider's endpoint. Without
  a provider the metadata names the issuer itself as the authorization server and MCP
  clients talk to it directly.

The well-known paths are answered only when the route matches them (list them in the
route's ``matches``), never sent to the MCP server, and need no token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import orjson

from ..engine.http import Headers, Reply
from ..proxy.origin import client_origin
from ..proxy.policy import Policy
from .auth_common import CredentialLocation, HttpSideClient, SideCallError
from .jwt_auth import JwtAuth, Provider, RemoteJwks, build_jwks

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.auth")

PRM_PREFIX = "/.well-known/oauth-protected-resource"
AS_PREFIX = "/.well-known/oauth-authorization-server"
MCP_PROTOCOL_VERSION = "2025-06-18"
METADATA_TTL = 300.0
_CORS = (
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, POST, OPTIONS"),
    ("access-control-allow-headers", "content-type, authorization"),
)
# providers whose metadata is OpenID discovery at {issuer}/.well-known/openid-configuration
_OIDC_DISCOVERY = frozenset({"keycloak", "okta", "descope", "authentik"})
# providers that take the audience as an authorize-URL parameter instead of RFC 8707's resource
_AUDIENCE_PARAM = frozenset({"auth0", "okta"})
# providers whose client registration the gateway proxies (their endpoint lacks CORS) or,
# for authentik, serves itself (it has none)
_REGISTRATION_VIA_GATEWAY = frozenset({"keycloak", "okta", "descope", "authentik"})


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def metadata_url(issuer: str, provider: str | None) -> str:
    """Where the issuer's authorization-server metadata is: RFC 8414's well-known path
    inserted before the issuer's path, or OpenID discovery for providers that only
    serve that."""
    issuer = issuer.rstrip("/")
    if provider in _OIDC_DISCOVERY:
        return f"{issuer}/.well-known/openid-configuration"
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}{AS_PREFIX}{parts.path}"


def registration_url(issuer: str, provider: str | None) -> str | None:
    """The provider's dynamic client registration endpoint (RFC 7591), when it has one."""
    issuer = issuer.rstrip("/")
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    if provider == "okta":
        return f"{origin}/oauth2/v1/clients"
    if provider == "descope":
        seg = parts.path.strip("/").split("/")
        if len(seg) >= 5 and seg[:3] == ["v1", "apps", "agentic"]:
            return f"{origin}/v1/mgmt/mcp/client/{seg[3]}/{seg[4]}/register"
        return None
    if provider == "authentik":
        return None
    return f"{issuer}/clients-registrations/openid-connect"  # keycloak


class DiscoveredJwks:
    """The issuer's keys, at the ``jwks_uri`` its metadata names (read on first use)."""

    def __init__(self, discovery: HttpSideClient):
        self.discovery = discovery
        self.remote: RemoteJwks | None = None
        self._lock: asyncio.Lock | None = None
        self._last_failure = -1e9

    @property
    def generation(self) -> int:
        return self.remote.generation if self.remote is not None else 0

    def peek(self, kid):
        return self.remote.peek(kid) if self.remote is not None else None

    async def get(self, pool, kid):
        if self.remote is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self.remote is None and time.monotonic() - self._last_failure >= 1.0:
                    await self._discover(pool)
            if self.remote is None:
                return None
        return await self.remote.get(pool, kid)

    async def _discover(self, pool) -> None:
        try:
            status, _, body = await self.discovery.request(pool, "GET", headers=[("accept", "application/json")])
            if status != 200:
                raise SideCallError(f"metadata endpoint answered {status}")
            uri = orjson.loads(body).get("jwks_uri")
            if not isinstance(uri, str):
                raise SideCallError("the issuer's metadata names no jwks_uri")
            self.remote = RemoteJwks(HttpSideClient(uri, timeout=self.discovery.timeout))
        except (SideCallError, ValueError, AttributeError) as exc:
            self._last_failure = time.monotonic()
            log.warning("mcpAuthentication: key discovery at %s failed: %s", self.discovery.target.authority, exc)


class McpAuthentication(Policy):
    order = 20
    NAME = "mcpAuthentication"

    def __init__(
        self,
        jwt: JwtAuth,
        issuer: str,
        audiences: list[str],
        resource_metadata: dict[str, Any],
        provider: str | None = None,
        client_id: str | None = None,
        metadata_client: HttpSideClient | None = None,
        registration_client: HttpSideClient | None = None,
    ):
        self.jwt = jwt
        self.issuer = issuer
        self.audiences = list(audiences)
        self.provider = provider
        self.client_id = client_id
        self.metadata = {_snake(k): v for k, v in resource_metadata.items()}
        resource = resource_metadata.get("resource")
        # a configured resource fixes the origin of the metadata URL in challenges
        self.resource_origin = None
        if isinstance(resource, str) and "://" in resource:
            p = urlsplit(resource)
            self.resource_origin = f"{p.scheme}://{p.netloc}"
        self.metadata_client = metadata_client
        self.registration_client = registration_client
        self._as_cache: tuple[float, dict] | None = None

    # -- the request ------------------------------------------------------------------------
    def on_request(self, ctx):
        path = ctx.path
        if path.startswith("/.well-known/oauth-"):
            if path == PRM_PREFIX or path.startswith(PRM_PREFIX + "/"):
                return self._protected_resource(ctx, path[len(PRM_PREFIX) :])
            if path == AS_PREFIX or path.startswith(AS_PREFIX + "/"):
                if path.endswith("/client-registration"):
                    return self._register(ctx)
                return self._authorization_server(ctx, path)
        r = self.jwt.on_request(ctx)
        if r is None:
            return None
        if r.__class__ is Reply:
            return self._challenge(ctx, r)
        return self._await_check(ctx, r)

    async def _await_check(self, ctx, pending):
        r = await pending
        return None if r is None else self._challenge(ctx, r)

    def _challenge(self, ctx, refusal: Reply) -> Reply:
        """The 401 of the token check, its challenge pointing at the resource metadata."""
        origin = self.resource_origin or self._origin(ctx)
        value = f'Bearer resource_metadata="{origin}{PRM_PREFIX}{ctx.path}"'
        old = refusal.headers.get("www-authenticate") or ""
        if 'error="invalid_token"' in old:
            value += ', error="invalid_token"'
        refusal.headers.set("www-authenticate", value)
        return refusal

    def _origin(self, ctx) -> str:
        req = ctx.req
        return client_origin(req, ctx.bind.trusts(req.client_addr))

    # -- RFC 9728 metadata ------------------------------------------------------------------
    def _protected_resource(self, ctx, resource_path: str) -> Reply:
        origin = self._origin(ctx)
        doc: dict[str, Any] = {
            "resource": f"{origin}{resource_path}",
            # with a provider adapter the gateway serves the authorization-server metadata
            # at the resource's URL; without, the issuer is the authorization server
            "authorization_servers": [f"{origin}{resource_path}" if self.provider else self.issuer],
            "mcp_protocol_version": MCP_PROTOCOL_VERSION,
            "resource_type": "mcp-server",
        }
        doc.update(self.metadata)
        return _json(200, doc)

    # -- RFC 8414 metadata, adapted ---------------------------------------------------------
    async def _authorization_server(self, ctx, path: str) -> Reply:
        if self.provider is None or self.metadata_client is None:
            return Reply.error(404, "not_found", "the authorization server is the issuer: read its own metadata")
        try:
            doc = await self._issuer_metadata(ctx)
        except SideCallError as exc:
            return Reply.error(502, "upstream_error", f"{self.NAME}: issuer metadata: {exc}")
        doc = dict(doc)
        here = self._origin(ctx) + path
        if self.provider in _AUDIENCE_PARAM and self.audiences:
            ae = doc.get("authorization_endpoint")
            if not isinstance(ae, str):
                return Reply.error(
                    502, "upstream_error", f"{self.NAME}: the issuer's metadata has no authorization_endpoint"
                )
            sep = "&" if "?" in ae else "?"
            doc["authorization_endpoint"] = f"{ae}{sep}audience={quote(self.audiences[0], safe='')}"
        if self.provider in _REGISTRATION_VIA_GATEWAY:
            doc["registration_endpoint"] = f"{here}/client-registration"
        # the gateway presents itself as the issuer of the metadata it serves (clients
        # check that the metadata's issuer is the URL they discovered); the provider's
        # authorization responses still carry its own RFC 9207 iss, which cannot match
        # that, so the adapted metadata does not advertise it
        resource_path = path[len(AS_PREFIX) :]
        doc["issuer"] = self._origin(ctx) + resource_path
        doc.pop("authorization_response_iss_parameter_supported", None)
        return _json(200, doc)

    async def _issuer_metadata(self, ctx) -> dict:
        cached = self._as_cache
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        client = self.metadata_client
        assert client is not None
        status, _, body = await client.request(ctx.bind.services.pool, "GET", headers=[("accept", "application/json")])
        if status != 200:
            raise SideCallError(f"answered {status}")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SideCallError("not JSON") from None
        if not isinstance(doc, dict):
            raise SideCallError("not a JSON object")
        self._as_cache = (now + METADATA_TTL, doc)
        return doc

    # -- RFC 7591 registration ------------------------------------------------------------
    async def _register(self, ctx):
        req = ctx.req
        if req.method == "OPTIONS":
            return Reply(204, Headers(list(_CORS)), b"")
        if req.method != "POST":
            return Reply.error(405, "method_not_allowed", "client registration takes a POST")
        body = await req.body.read_all(1 << 16)
        if self.client_id is not None:
            return _json(201, _registered(body, self.client_id))
        client = self.registration_client
        if client is None:
            return Reply.error(
                501,
                "registration_unsupported",
                f"{self.NAME}: this provider has no dynamic client registration: set clientId",
            )
        try:
            status, headers, answer = await client.request(
                ctx.bind.services.pool,
                "POST",
                headers=[("content-type", req.headers.get("content-type") or "application/json")],
                body=body,
            )
        except SideCallError as exc:
            return Reply.error(502, "upstream_error", f"{self.NAME}: client registration: {exc}")
        h = Headers([("content-type", headers.get("content-type") or "application/json"), *_CORS])
        return Reply(status, h, answer)


def _registered(body: bytes, client_id: str) -> dict:
    """A registration answered with the pre-registered client: the client's own metadata
    (its redirect URIs, which strict clients check) under the configured ``client_id``."""
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    doc.pop("client_secret", None)
    doc["client_id"] = client_id
    doc["client_id_issued_at"] = int(time.time())
    doc.setdefault("token_endpoint_auth_method", "none")
    return doc


def _json(status: int, doc: dict) -> Reply:
    h = Headers([("content-type", "application/json"), ("cache-control", "no-store"), *_CORS])
    return Reply(status, h, orjson.dumps(doc))


def compile_mcp_authentication(scope: CompileScope, m, path: str) -> McpAuthentication | None:
    """The policy for an ``mcpAuthentication`` block at ``path``."""
    err = scope.errors.add
    provider = m.provider.name if m.provider is not None else None
    if provider == "entra":
        err(
            f"{path}.provider.entra",
            "not supported by this agentgw build yet (Entra needs its authorize and token endpoints proxied)",
        )
        return None
    if m.client_secret is not None:
        err(
            f"{path}.clientSecret",
            "is only used by the entra provider, which is not supported by this agentgw build yet",
        )
    try:
        if m.jwks is not None:
            keys: Any = build_jwks(m.jwks, scope.path)
        else:
            keys = DiscoveredJwks(HttpSideClient(metadata_url(m.issuer, provider)))
    except (OSError, ValueError) as exc:
        err(f"{path}.jwks", f"cannot load JWKS: {exc}")
        return None
    try:
        location = CredentialLocation.from_model(m.authorization_location)
    except ValueError as exc:
        err(f"{path}.authorizationLocation.expression", str(exc))
        return None
    opts = m.jwt_validation_options
    jwt = JwtAuth(
        [Provider(m.issuer, m.audiences, keys, opts.required_claims if opts else ())],
        mode=m.mode,
        location=location,
    )
    metadata_client = registration_client = None
    if provider is not None:
        try:
            metadata_client = HttpSideClient(metadata_url(m.issuer, provider))
            reg = registration_url(m.issuer, provider)
            registration_client = HttpSideClient(reg) if reg is not None else None
        except ValueError as exc:
            err(f"{path}.issuer", str(exc))
            return None
        if provider in ("authentik",) and m.client_id is None:
            err(
                f"{path}.provider.{provider}",
                f"provider {provider} needs a clientId: it has no dynamic client registration",
            )
    return McpAuthentication(
        jwt,
        m.issuer,
        m.audiences,
        m.resource_metadata,
        provider=provider,
        client_id=m.client_id,
        metadata_client=metadata_client,
        registration_client=registration_client,
    )
