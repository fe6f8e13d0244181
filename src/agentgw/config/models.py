"""Pydantic models for the standalone config file.

The file format is agentgateway's standalone ("local") config schema, so a
YAML file written for agentgateway loads here unchanged.  Every model mirrors
one YAML object: field names are snake_case in Python and exactly the
agentgateway camelCase key in YAML (``backend_tls`` <-> ``backendTLS``).
Unknown keys are errors everywhere (``extra="forbid"``), because a silently
ignored typo in a security policy is worse than a refused start-up.

These models only describe and validate *shape*.  They run once when the file
is loaded; the proxy then compiles them into its own runtime structures.  A
policy that is well-formed here but not implemented by agentgw is rejected by
that compile step, not by this module.

Deliberately permissive (``dict[str, Any]``, shape not checked here) because
their full agentgateway model is large and deep; the compile step owns them:

* route/backend ``ai`` policy (prompt guards, defaults/overrides, model aliases,
  prompt caching, ``routes``) and the ``provider`` object of ``ai`` backends
* ``oidc``, ``extProc``, ``extMcp``,
  ``health``, ``inferenceRouting``
* backend ``tcp``, ``backendTunnel``, ``backendAuth.azure``
* ``frontendPolicies.networkAuthorization``/``proxyProtocol``/``connect``
  and ``accessLog.otlp``
* top-level ``policies[].target``, ``workloads``, ``services``
* ``config.dns``, ``config.hbone``, ``config.http2``
* LLM model ``guardrails`` and ``health``

Secrets are marked with ``Annotated[..., SECRET]`` on the field; see
`agentgw.config.redact`.

agentgw extensions (not in agentgateway): ``config.limits`` -- frontend limits
agentgateway has no equivalent key for (see `effective_limits`); the route/LLM policy
``globalRateLimit`` -- a Redis-backed global limiter that needs no rate-limit service.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .durations import DurationField

__all__ = [
    "SECRET",
    "EffectiveLimits",
    "LocalConfig",
    "SecretMarker",
    "effective_limits",
]


# --------------------------------------------------------------------------
# Secret marker
# --------------------------------------------------------------------------


class SecretMarker:
    """Annotation marker: the field holds a credential and must never be dumped.

    For a ``dict[str, str]`` field the keys are kept and every value is
    redacted; for anything else the whole value is replaced.
    """

    _instance: SecretMarker | None = None

    def __new__(cls) -> SecretMarker:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SECRET"


SECRET = SecretMarker()


# --------------------------------------------------------------------------
# Base model and helpers
# --------------------------------------------------------------------------


class _Model(BaseModel):
    """Base for every config object: camelCase keys, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )

    #: Names (Python attribute names) of which exactly one must be set.
    _exactly_one_of: ClassVar[tuple[str, ...]] = ()
    #: Names of which at most one may be set.
    _at_most_one_of: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _check_one_of(self):
        for names, exact in ((self._exactly_one_of, True), (self._at_most_one_of, False)):
            if not names:
                continue
            set_names = [n for n in names if getattr(self, n) is not None]
            if len(set_names) == 1 or (not exact and not set_names):
                continue
            keys = [_alias(type(self), n) for n in names]
            got = ", ".join(_alias(type(self), n) for n in set_names) or "none"
            what = "exactly one" if exact else "at most one"
            raise ValueError(f"{what} of {', '.join(keys)} must be set (got: {got})")
        return self


def _alias(cls: type[BaseModel], name: str) -> str:
    field = cls.model_fields[name]
    return field.alias or name


# Tags starting with "~" are stripped from error paths by the loader, so a
# discriminated union never shows up as an extra path segment.
def _by_type(value: Any) -> str:
    if isinstance(value, str):
        return "~str"
    if isinstance(value, list):
        return "~list"
    if isinstance(value, dict) and "conditional" in value:
        return "~conditional"
    return "~obj"


_S = TypeVar("_S")
_O = TypeVar("_O")
_C = TypeVar("_C")

#: ``_StrOr[S, O]``: a field that is either a plain string (``S``) or an object (``O``).
_StrOr = Annotated[Annotated[_S, Tag("~str")] | Annotated[_O, Tag("~obj")], Discriminator(_by_type)]
#: ``_ExplicitOrConditional[T, C]``: agentgateway's ``LocalExplicitOrConditional<T>``,
#: ``T`` or ``{conditional: [...]}`` (``C``).
_ExplicitOrConditional = Annotated[
    Annotated[_O, Tag("~obj")] | Annotated[_C, Tag("~conditional")], Discriminator(_by_type)
]


def _compile_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regex {pattern!r}: {e}") from None
    return pattern


StrMap = dict[str, str]
SecretStrMap = Annotated[dict[str, str] | None, SECRET]
Opaque = dict[str, Any]


# --------------------------------------------------------------------------
# Shared small objects
# --------------------------------------------------------------------------


class FileRef(_Model):
    """``{file: path}`` or ``{url: ...}`` -- the non-inline forms of a loaded value."""

    file: str | None = None
    url: str | None = None
    tunnel: Opaque | None = None

    _exactly_one_of = ("file", "url")


class FileOnlyRef(_Model):
    """``{file: path}`` -- a value read from disk."""

    file: str


#: agentgateway ``FileInlineOrRemote``: an inline string, ``{file}`` or ``{url}``.
FileInlineOrRemote = _StrOr[str, FileRef]
#: agentgateway ``FileOrInline``: an inline string or ``{file}``.
FileOrInline = _StrOr[str, FileOnlyRef]


class NamespacedHostname(_Model):
    """A service's name: agentgateway writes it ``namespace/hostname``; the object form
    is also read."""

    namespace: str
    hostname: str

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        if isinstance(v, str):
            namespace, sep, hostname = v.partition("/")
            if not sep or not namespace or not hostname or "/" in hostname:
                raise ValueError(f"expected namespace/hostname, got {v!r}")
            return {"namespace": namespace, "hostname": hostname}
        return v


class ServiceRef(_Model):
    name: NamespacedHostname
    port: int = Field(ge=1, le=65535)


class SimpleBackendRef(_Model):
    """Reference to a side-channel backend: exactly one of service, host, backend."""

    service: ServiceRef | None = None
    host: str | None = None
    backend: str | None = None

    _exactly_one_of = ("service", "host", "backend")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return _validate_target(v) if v is not None else v


class HeaderLocation(_Model):
    name: str
    prefix: str | None = None


class NameOnly(_Model):
    name: str


class AuthorizationLocation(_Model):
    """Where a credential is read from: exactly one of header, queryParameter, cookie, expression."""

    header: HeaderLocation | None = None
    query_parameter: NameOnly | None = None
    cookie: NameOnly | None = None
    #: a CEL expression giving the credential (read only: it cannot be written to)
    expression: str | None = None

    _exactly_one_of = ("header", "query_parameter", "cookie", "expression")


def _validate_target(v: str) -> str:
    """A backend address: ``host:port`` or an http(s) URL."""
    if not isinstance(v, str) or not v:
        raise ValueError("must be a non-empty 'host:port' or http(s) URL")
    if v.startswith("unix:"):
        # agentgateway's unix-socket address (a local daemon such as tailscaled)
        raise ValueError(f"{v!r}: unix-socket addresses are not supported yet; use 'host:port' or an http(s) URL")
    if "://" in v:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid host {v!r}: URL must be http:// or https:// with a host")
        try:
            _ = parts.port  # (urlsplit checks the port when it is read)
        except ValueError:
            raise ValueError(f"invalid host {v!r}: bad port") from None
        return v
    host, sep, port = v.rpartition(":")
    if not sep or not host:
        raise ValueError(f"invalid host {v!r}: expected 'host:port' or an http(s) URL")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"invalid host {v!r}: unterminated IPv6 literal")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"invalid host {v!r}: bad IPv6 address") from None
    elif ":" in host or any(c.isspace() or c in "/?#@" for c in host):
        raise ValueError(f"invalid host {v!r}: expected 'host:port' or an http(s) URL")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid host {v!r}: port must be 1-65535")
    return v


# --------------------------------------------------------------------------
# Route matches
# --------------------------------------------------------------------------


class PathMatch(_Model):
    """Exactly one of exact, pathPrefix, regex."""

    exact: str | None = None
    path_prefix: str | None = None
    regex: str | None = None

    _exactly_one_of = ("exact", "path_prefix", "regex")

    @field_validator("regex", mode="before")
    @classmethod
    def _regex(cls, v: Any) -> Any:
        # Older agentgateway schemas wrote regex as [pattern, length].
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
            v = v[0]
        if isinstance(v, str):
            _compile_regex(v)
        return v


class StringMatch(_Model):
    """Exactly one of exact, regex."""

    exact: str | None = None
    regex: str | None = None

    _exactly_one_of = ("exact", "regex")

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return _compile_regex(v) if v is not None else v


class HeaderMatch(_Model):
    name: str
    value: StringMatch


class QueryMatch(_Model):
    name: str
    value: StringMatch


class RouteMatch(_Model):
    """All set conditions must hold.  No ``path`` means any path (``pathPrefix: /``)."""

    path: PathMatch | None = None
    method: str | None = None
    headers: list[HeaderMatch] = Field(default_factory=list)
    query: list[QueryMatch] = Field(default_factory=list)


# --------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------


class HeaderModifier(_Model):
    add: StrMap = Field(default_factory=dict)
    set: StrMap = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class HostRewrite(_Model):
    """Exactly one of full, host, port."""

    full: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)

    _exactly_one_of = ("full", "host", "port")


class PathRewrite(_Model):
    """Exactly one of full, prefix."""

    full: str | None = None
    prefix: str | None = None

    _exactly_one_of = ("full", "prefix")


#: ``authority`` may also be the strings ``auto`` or ``none``.
HostRewriteField = _StrOr[Literal["auto", "none"], HostRewrite]


class RequestRedirect(_Model):
    scheme: str | None = None
    authority: HostRewriteField | None = None
    path: PathRewrite | None = None
    status: int | None = Field(default=None, ge=300, le=399)


class UrlRewrite(_Model):
    authority: HostRewriteField | None = None
    path: PathRewrite | None = None


class RequestMirror(_Model):
    backend: SimpleBackendRef
    percentage: float = Field(ge=0.0, le=1.0)


class Delay(_Model):
    """``delay``: latency injected before the backend; a duration string or a CEL
    expression giving a duration or a number of milliseconds."""

    duration: str

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return _cel_to_str(v)


def _body_to_str(v: Any) -> Any:
    # agentgateway's schema describes the body as bytes; YAML users write a string.
    if isinstance(v, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in v):
        return bytes(v).decode("utf-8", errors="replace")
    return v


class DirectResponse(_Model):
    body: str | None = None
    body_expression: str | None = None
    headers: StrMap = Field(default_factory=dict)
    status: int = Field(ge=100, le=599)

    _at_most_one_of = ("body", "body_expression")

    @field_validator("body", mode="before")
    @classmethod
    def _body(cls, v: Any) -> Any:
        return _body_to_str(v)


class ConditionalDirectResponse(DirectResponse):
    condition: str | None = None


class Cors(_Model):
    allow_credentials: bool = False
    allow_headers: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=list)
    allow_origins: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: DurationField | None = None


class Csrf(_Model):
    additional_origins: list[str] = Field(default_factory=list)


class Timeout(_Model):
    request_timeout: DurationField | None = None
    backend_request_timeout: DurationField | None = None


class Retry(_Model):
    attempts: int = Field(default=1, ge=0)
    backoff: DurationField | None = None
    codes: list[int] = Field(default_factory=list)

    @field_validator("codes")
    @classmethod
    def _codes(cls, v: list[int]) -> list[int]:
        for c in v:
            if not 100 <= c <= 599:
                raise ValueError(f"invalid HTTP status code {c}")
        return v


class RateLimit(_Model):
    """One token bucket.  ``type: requests`` counts requests, ``tokens`` counts LLM tokens."""

    max_tokens: int = Field(default=0, ge=0)
    tokens_per_fill: int = Field(default=0, ge=0)
    fill_interval: DurationField
    type: Literal["requests", "tokens"] = "requests"

    @model_validator(mode="after")
    def _bucket(self):
        if self.max_tokens < self.tokens_per_fill:
            raise ValueError("maxTokens cannot be less than tokensPerFill")
        if self.fill_interval <= 0:
            raise ValueError("fillInterval must be greater than zero")
        return self


class ConditionalRateLimit(RateLimit):
    condition: str | None = None


class Conditional(_Model):
    """Base for ``{conditional: [...]}`` policy forms."""

    @field_validator("conditional", check_fields=False)
    @classmethod
    def _entries(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("conditional policies must have at least one entry")
        if len(v) > 64:
            raise ValueError("conditional policies may have at most 64 entries")
        for i, entry in enumerate(v):
            if entry.condition is None and i != len(v) - 1:
                raise ValueError("conditional policy entries without condition must be last")
        return v


class ConditionalRateLimits(Conditional):
    conditional: list[ConditionalRateLimit]


class ConditionalDirectResponses(Conditional):
    conditional: list[ConditionalDirectResponse]


#: localRateLimit is a LIST of buckets, or ``{conditional: [...]}``.
LocalRateLimitField = Annotated[
    Annotated[list[RateLimit], Tag("~list")] | Annotated[ConditionalRateLimits, Tag("~conditional")],
    Discriminator(_by_type),
]
DirectResponseField = _ExplicitOrConditional[DirectResponse, ConditionalDirectResponses]


class Transform(_Model):
    add: StrMap = Field(default_factory=dict)
    set: StrMap = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)
    body: str | None = None
    metadata: StrMap = Field(default_factory=dict)


class Transformations(_Model):
    request: Transform | None = None
    response: Transform | None = None


class ConditionalTransformation(Transformations):
    condition: str | None = None


class ConditionalTransformations(Conditional):
    conditional: list[ConditionalTransformation]


TransformationsField = _ExplicitOrConditional[Transformations, ConditionalTransformations]


# --------------------------------------------------------------------------
# Authentication / authorization
# --------------------------------------------------------------------------

AuthMode = Literal["strict", "optional", "permissive"]


class JwtValidationOptions(_Model):
    required_claims: list[str] | None = None


class JwtProvider(_Model):
    issuer: str
    audiences: list[str] | None = None
    jwks: FileInlineOrRemote
    jwt_validation_options: JwtValidationOptions | None = None


class ClaimToHeader(_Model):
    """agentgw extension: copy a verified claim into a request header."""

    claim: str
    header: str

    @field_validator("header")
    @classmethod
    def _header(cls, v: str) -> str:
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", v):
            raise ValueError(f"invalid header name {v!r}")
        return v


class JwtAuth(_Model):
    """JWT validation.

    Either a single issuer (``issuer``/``audiences``/``jwks``) or several
    (``providers: [...]``).  ``issuer`` without ``jwks`` uses OIDC discovery.
    ``claimToHeaders`` is an agentgw extension.
    """

    mode: AuthMode = "optional"
    location: AuthorizationLocation | None = None
    preserve_token: bool = False
    forward: bool = False
    providers: list[JwtProvider] | None = None
    issuer: str | None = None
    audiences: list[str] | None = None
    jwks: FileInlineOrRemote | None = None
    jwt_validation_options: JwtValidationOptions | None = None
    provider_backend: SimpleBackendRef | None = None
    claim_to_headers: list[ClaimToHeader] | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.providers is not None:
            extra = [
                k
                for k in ("issuer", "audiences", "jwks", "jwt_validation_options", "provider_backend")
                if getattr(self, k) is not None
            ]
            if extra:
                keys = ", ".join(_alias(type(self), k) for k in extra)
                raise ValueError(f"providers cannot be combined with {keys}")
            if not self.providers:
                raise ValueError("providers must not be empty")
        elif self.issuer is None:
            raise ValueError("either issuer or providers must be set")
        return self


class McpIdp(_Model):
    """``mcpAuthentication.provider``: the identity provider whose gaps the gateway fills."""

    auth0: dict[str, Any] | None = None
    keycloak: dict[str, Any] | None = None
    okta: dict[str, Any] | None = None
    descope: dict[str, Any] | None = None
    authentik: dict[str, Any] | None = None
    entra: dict[str, Any] | None = None

    _exactly_one_of = ("auth0", "keycloak", "okta", "descope", "authentik", "entra")

    @field_validator("auth0", "keycloak", "okta", "descope", "authentik", "entra")
    @classmethod
    def _empty(cls, v):
        if v:
            raise ValueError("takes no settings: write {}")
        return v

    @property
    def name(self) -> str:
        return next(n for n in self._exactly_one_of if getattr(self, n) is not None)


class McpAuthentication(_Model):
    """The gateway as the OAuth resource server of an MCP route (MCP authorization)."""

    issuer: str
    audiences: list[str]
    provider: McpIdp | None = None
    #: RFC 9728 protected-resource metadata; camelCase keys become snake_case
    resource_metadata: dict[str, Any]
    jwks: FileInlineOrRemote | None = None
    mode: AuthMode = "strict"
    authorization_location: AuthorizationLocation | None = None
    jwt_validation_options: JwtValidationOptions | None = None
    client_id: str | None = None
    client_secret: Annotated[str | None, SECRET] = None

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, v: str) -> str:
        # the gateway reads the issuer's metadata (keys, endpoints) at this URL
        if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", v):
            raise ValueError(f"expected the issuer's http(s) URL, got {v!r}")
        return v


class ApiKeyEntry(_Model):
    """One accepted key: exactly one of key (plaintext) or keyHash (sha256:<hex> or bcrypt)."""

    key: Annotated[str | None, SECRET] = None
    key_hash: Annotated[str | None, SECRET] = None
    metadata: dict[str, Any] | None = None

    _exactly_one_of = ("key", "key_hash")

    @field_validator("key_hash")
    @classmethod
    def _hash(cls, v: str | None) -> str | None:
        if v is None or v.startswith(("$2a$", "$2b$", "$2y$")):
            return v
        if not v.startswith("sha256:"):
            raise ValueError("keyHash must use the sha256:<hex> format or be a bcrypt hash")
        digest = v[len("sha256:") :]
        if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise ValueError("sha256 keyHash must be 64 hex characters")
        return v


class ApiKeyAuth(_Model):
    """``keysFile`` / ``keysDir`` are agentgw extensions (a key list file, a mounted Secret)."""

    keys: list[ApiKeyEntry] = Field(default_factory=list)
    keys_file: str | None = None
    keys_dir: str | None = None
    mode: AuthMode = "optional"
    location: AuthorizationLocation | None = None

    @model_validator(mode="after")
    def _some_keys(self):
        if not self.keys and self.keys_file is None and self.keys_dir is None:
            raise ValueError("one of keys, keysFile, keysDir must be set")
        return self


class ServiceAccountAuth(_Model):
    """agentgw extension: Kubernetes service-account tokens, by JWKS or TokenReview."""

    mode: AuthMode = "strict"
    location: AuthorizationLocation | None = None
    audiences: list[str] | None = None
    issuer: str | None = None
    jwks: FileInlineOrRemote | None = None
    token_review: str | None = None
    ca_file: str | None = None
    token_file: str | None = None
    principal_header: str | None = None
    preserve_token: bool = False
    timeout: DurationField | None = None

    _exactly_one_of = ("jwks", "token_review")

    @model_validator(mode="after")
    def _issuer(self):
        if self.jwks is not None and self.issuer is None:
            raise ValueError("jwks needs issuer")
        if self.token_review is not None:
            _validate_target(self.token_review)
        return self


class BasicAuth(_Model):
    htpasswd: Annotated[FileOrInline, SECRET]
    realm: str | None = None
    mode: Literal["strict", "optional"] = "optional"
    authorization_location: AuthorizationLocation | None = None


class AuthorizationRule(_Model):
    """One of agentgateway's rule objects: ``{allow: <CEL>}``, ``{deny: <CEL>}`` (any
    match refuses) or ``{require: <CEL>}`` (must hold)."""

    allow: str | None = None
    deny: str | None = None
    require: str | None = None

    _exactly_one_of = ("allow", "deny", "require")


class Authorization(_Model):
    """CEL rules; a request is allowed if any allow rule matches, no deny rule matches
    and every require rule holds. ``rules`` items are CEL strings (allow rules) or
    agentgateway's ``{allow|deny|require: <CEL>}`` objects.

    agentgw extension: the lists ``allow`` (same as string ``rules``), ``deny`` and
    ``require``.
    """

    rules: list[str | AuthorizationRule] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    require: list[str] = Field(default_factory=list)

    def rule_lists(self) -> tuple[list[str], list[str], list[str]]:
        """(allow, deny, require): ``rules`` sorted into the three kinds, then the lists."""
        allow, deny, require = [], [], []
        for r in self.rules:
            if isinstance(r, str):
                allow.append(r)
            elif r.allow is not None:
                allow.append(r.allow)
            elif r.deny is not None:
                deny.append(r.deny)
            elif r.require is not None:
                require.append(r.require)
        return allow + list(self.allow), deny + list(self.deny), require + list(self.require)


# --------------------------------------------------------------------------
# Backend-side policies
# --------------------------------------------------------------------------


class BackendTLS(_Model):
    cert: str | None = None
    key: Annotated[str | None, SECRET] = None
    root: str | None = None
    hostname: str | None = None
    insecure: bool = False
    insecure_host: bool = False
    alpn: list[str] | None = None
    subject_alt_names: list[str] | None = None
    key_exchange_groups: list[str] | None = None
    spiffe: Opaque | None = None

    @model_validator(mode="after")
    def _pair(self):
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key must be set together")
        return self


class PassthroughAuth(_Model):
    location: AuthorizationLocation | None = None


class KeyAuth(_Model):
    value: FileOrInline
    location: AuthorizationLocation | None = None


class AssumeRole(_Model):
    role_arn: str


class AwsAuth(_Model):
    """Explicit credentials, or ``{}`` for the ambient AWS credential chain."""

    access_key_id: Annotated[str | None, SECRET] = None
    secret_access_key: Annotated[str | None, SECRET] = None
    region: str | None = None
    session_token: Annotated[str | None, SECRET] = None
    service_name: str | None = None
    assume_role: AssumeRole | None = None


class GcpAuth(_Model):
    type: Literal["idToken", "accessToken"] | None = None
    audience: str | None = None
    credential: Annotated[FileOrInline | None, SECRET] = None


#: ``backendAuth.key`` is a plain key string, ``{file}`` or ``{value, location}``.
def _key_kind(value: Any) -> str:
    if isinstance(value, str):
        return "~str"
    if isinstance(value, dict) and "file" in value and "value" not in value:
        return "~file"
    return "~obj"


BackendAuthKey = Annotated[
    Annotated[str, Tag("~str")] | Annotated[FileOnlyRef, Tag("~file")] | Annotated[KeyAuth, Tag("~obj")],
    Discriminator(_key_kind),
]


JwtSigningAlg = Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


class BackendAuthCredential(_Model):
    """``backendAuth.credentials[]``: one more credential written into the backend request."""

    location: AuthorizationLocation
    key: Annotated[FileOrInline, SECRET]


class JwtSignAuth(_Model):
    """``backendAuth.jwtSign``: a short-lived JWT signed per request with ``signingKey``."""

    signing_key: Annotated[FileOrInline, SECRET]
    alg: JwtSigningAlg = "RS256"
    kid: str | None = None
    claims: dict[str, Any] = Field(default_factory=dict)
    ttl: DurationField | None = None
    location: AuthorizationLocation | None = None


class TokenCacheConfig(_Model):
    max_entries: int | None = Field(default=None, ge=0)
    default_ttl: DurationField | None = None


class OAuthClientAuth(_Model):
    """How the gateway authenticates to a token endpoint (``method`` defaults to
    ``clientSecretBasic``)."""

    client_id: str
    client_secret: Annotated[FileOrInline | None, SECRET] = None
    method: Literal["clientSecretBasic", "clientSecretPost", "privateKeyJwt"] | None = None
    signing_key: Annotated[FileOrInline | None, SECRET] = None
    certificate: FileOrInline | None = None
    certificate_header: Literal["x5c", "x5t#S256"] | None = None
    alg: JwtSigningAlg | None = None
    kid: str | None = None
    assertion_audience: str | None = None

    @model_validator(mode="after")
    def _by_method(self):
        method = self.method or "clientSecretBasic"
        jwt_only = ("signing_key", "certificate", "certificate_header", "alg", "kid", "assertion_audience")
        if method == "privateKeyJwt":
            if self.signing_key is None or self.assertion_audience is None:
                raise ValueError("privateKeyJwt needs signingKey and assertionAudience")
            if self.client_secret is not None:
                raise ValueError("clientSecret is not used with privateKeyJwt")
            if (self.certificate is None) != (self.certificate_header is None):
                raise ValueError("certificate and certificateHeader are set together")
            return self
        if method == "clientSecretBasic" and self.client_secret is None:
            raise ValueError("clientSecretBasic needs clientSecret")
        for n in jwt_only:
            if getattr(self, n) is not None:
                raise ValueError(f"{_alias(type(self), n)} is only used with method privateKeyJwt")
        return self


class OAuthTokenSpec(_Model):
    source: AuthorizationLocation | None = None
    token_type: str | None = None


class OAuthActorTokenSpec(_Model):
    source: AuthorizationLocation
    token_type: str | None = None
    enforce_may_act: bool = False


class _TokenEndpoint(_Model):
    """A token endpoint: exactly one of service, host, backend; ``path`` on it."""

    service: ServiceRef | None = None
    host: str | None = None
    backend: str | None = None
    policies: SimpleBackendPolicies | None = None
    path: str | None = None

    _exactly_one_of = ("service", "host", "backend")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return _validate_target(v) if v is not None else v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and v and not v.startswith("/"):
            raise ValueError("must start with /")
        return v


class OAuthTokenExchangeAuth(_TokenEndpoint):
    """``backendAuth.oauthTokenExchange``: RFC 8693 token exchange (or the RFC 7523
    ``jwtBearer`` grant) of the client's token for one the backend accepts."""

    grant_type: Literal["tokenExchange", "jwtBearer"] = "tokenExchange"
    subject_token: OAuthTokenSpec | None = None
    actor_token: OAuthActorTokenSpec | None = None
    audiences: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    requested_token_type: str | None = None
    client_auth: OAuthClientAuth | None = None
    additional_params: dict[str, str] = Field(default_factory=dict)
    authorization_location: AuthorizationLocation | None = None
    cache: TokenCacheConfig | None = None


class CrossAppAccessEndpoint(_TokenEndpoint):
    client_auth: OAuthClientAuth


class CrossAppAccessAuth(_Model):
    """``backendAuth.crossAppAccess``: the Identity Assertion Authorization Grant (ID-JAG):
    the user's token exchanged at the IdP for an ID-JAG, then the ID-JAG at the resource
    authorization server (RFC 7523) for the backend's access token."""

    identity_provider: CrossAppAccessEndpoint
    resource_authorization_server: CrossAppAccessEndpoint
    audience: str = Field(min_length=1)
    resources: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    access_token_scopes: list[str] | None = None
    subject_token: OAuthTokenSpec | None = None
    cache: TokenCacheConfig | None = None


class BackendAuth(_Model):
    """At most one of passthrough, key, gcp, aws, azure, jwtSign, oauthTokenExchange,
    crossAppAccess; plus any ``credentials`` (at least one of all these)."""

    passthrough: PassthroughAuth | None = None
    key: Annotated[BackendAuthKey | None, SECRET] = None
    gcp: GcpAuth | None = None
    aws: AwsAuth | None = None
    azure: Annotated[Opaque | None, SECRET] = None
    jwt_sign: JwtSignAuth | None = None
    oauth_token_exchange: OAuthTokenExchangeAuth | None = None
    cross_app_access: CrossAppAccessAuth | None = None
    credentials: list[BackendAuthCredential] | None = None

    _at_most_one_of = (
        "passthrough",
        "key",
        "gcp",
        "aws",
        "azure",
        "jwt_sign",
        "oauth_token_exchange",
        "cross_app_access",
    )

    @model_validator(mode="after")
    def _something(self):
        if not self.credentials and all(getattr(self, n) is None for n in self._at_most_one_of):
            keys = ", ".join(_alias(type(self), n) for n in (*self._at_most_one_of, "credentials"))
            raise ValueError(f"one of {keys} must be set")
        return self

    def kind(self) -> str | None:
        """The Python name of the one auth kind set, if any."""
        return next((n for n in self._at_most_one_of if getattr(self, n) is not None), None)


class BackendHTTP(_Model):
    version: str | None = None
    request_timeout: DurationField | None = None


class SimpleBackendPolicies(_Model):
    """Policies for connecting to a backend (agentgateway ``SimpleLocalBackendPolicies``)."""

    request_header_modifier: HeaderModifier | None = None
    transformations: Transformations | None = None
    backend_tls: BackendTLS | None = Field(default=None, alias="backendTLS")
    backend_auth: BackendAuth | None = None
    http: BackendHTTP | None = None
    tcp: Opaque | None = None
    backend_tunnel: Opaque | None = None


# the token endpoints' ``policies`` name SimpleBackendPolicies, declared after them
_TokenEndpoint.model_rebuild()
OAuthTokenExchangeAuth.model_rebuild()
CrossAppAccessEndpoint.model_rebuild()


class ExtAuthzBody(_Model):
    max_request_bytes: int | None = Field(default=None, ge=0)
    allow_partial_message: bool = False
    pack_as_bytes: bool = False


class ExtAuthzProtocol(_Model):
    """Exactly one of grpc, http (their contents are passed through to the compiler)."""

    grpc: Opaque | None = None
    http: Opaque | None = None

    _exactly_one_of = ("grpc", "http")


class ExtAuthzCache(_Model):
    """``extAuthz.cache``: authorization results kept by the values of ``key`` (CEL) for
    the time ``ttl`` (CEL, evaluated after the answer is applied) gives."""

    key: list[str]
    ttl: str
    max_entries: int = Field(default=10000, ge=0)


class ExtAuthz(_Model):
    # target: exactly one of service, host, backend
    service: ServiceRef | None = None
    host: str | None = None
    backend: str | None = None
    policies: SimpleBackendPolicies | None = None
    protocol: ExtAuthzProtocol | None = None
    failure_mode: Any | None = None
    include_request_headers: list[str] | None = None
    include_request_body: ExtAuthzBody | None = None
    timeout: DurationField | None = None
    cache: ExtAuthzCache | None = None

    _exactly_one_of = ("service", "host", "backend")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        # agentgateway's ``unix:/path``: an authorizer on a local socket (tailscaled's)
        if isinstance(v, str) and v.startswith("unix:"):
            if not v[5:].startswith("/") or "\x00" in v:
                raise ValueError(f"{v!r}: a unix socket is 'unix:/absolute/path'")
            return v
        return _validate_target(v) if v is not None else v


class ConditionalExtAuthz(ExtAuthz):
    condition: str | None = None


class ConditionalExtAuthzs(Conditional):
    conditional: list[ConditionalExtAuthz]


ExtAuthzField = _ExplicitOrConditional[ExtAuthz, ConditionalExtAuthzs]


_BodySendMode = Literal["none", "buffered", "bufferedPartial", "fullDuplexStreamed"]


class ProcessingOptions(_Model):
    """Which parts of a request and its response ``extProc`` sends to the processor."""

    request_body_mode: _BodySendMode = "fullDuplexStreamed"
    response_body_mode: _BodySendMode = "fullDuplexStreamed"
    request_header_mode: Literal["send", "skip"] = "send"
    response_header_mode: Literal["send", "skip"] = "send"
    request_trailer_mode: Literal["send", "skip"] = "send"
    response_trailer_mode: Literal["send", "skip"] = "send"
    allow_mode_override: bool = False


class ExtProc(_Model):
    """``extProc``: an Envoy external processor (policies/ext_proc.py)."""

    # target: exactly one of service, host, backend
    service: ServiceRef | None = None
    host: str | None = None
    backend: str | None = None
    policies: SimpleBackendPolicies | None = None
    failure_mode: Literal["failClosed", "failOpen"] = "failClosed"
    metadata_context: dict[str, dict[str, str]] | None = None
    request_attributes: dict[str, str] | None = None
    response_attributes: dict[str, str] | None = None
    processing_options: ProcessingOptions | None = None

    _exactly_one_of = ("service", "host", "backend")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return _validate_target(v) if v is not None else v


class ConditionalExtProc(ExtProc):
    condition: str | None = None


class ConditionalExtProcs(Conditional):
    conditional: list[ConditionalExtProc]


ExtProcField = _ExplicitOrConditional[ExtProc, ConditionalExtProcs]


class InferenceRouting(_Model):
    """``inferenceRouting``: an endpoint picker (the Gateway API inference extension's
    EPP, over ext_proc) chooses the destination of each request to a service backend."""

    endpoint_picker: SimpleBackendRef
    destination_mode: Literal["validated", "passthrough"] = "validated"


class StaticService(_Model):
    """``services[]``: a service by name, with its addresses, for ``service`` backends
    (agentgateway's static discovery data). ``vips`` are IP addresses (optionally
    ``network/ip``); ``ports`` maps a service port to the port its addresses listen on."""

    name: str
    namespace: str
    hostname: str
    vips: list[str] = Field(default_factory=list)
    ports: dict[int, int] = Field(default_factory=dict)

    @field_validator("vips")
    @classmethod
    def _vips(cls, v: list[str]) -> list[str]:
        for i, vip in enumerate(v):
            try:
                ipaddress.ip_address(vip.rsplit("/", 1)[-1])
            except ValueError:
                raise ValueError(f"[{i}]: {vip!r} is not an IP address (or network/IP)") from None
        return v


class A2aCardSigning(_Model):
    """agentgw extension: what happens to agent-card signatures (A2A 1.0) once the
    gateway has rewritten the card. ``signingKey`` (PEM; ``alg`` and ``kid``, optional
    ``jku``): the gateway signs the card it serves. ``agentKeys`` (a JWKS, inline,
    ``{file}`` or ``{url}``): the agent's card must be signed by one of these keys."""

    signing_key: Annotated[FileOrInline | None, SECRET] = None
    alg: Literal["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"] = "ES256"
    kid: str | None = None
    jku: str | None = None
    agent_keys: FileInlineOrRemote | None = None

    @model_validator(mode="after")
    def _some(self):
        if self.signing_key is None and self.agent_keys is None:
            raise ValueError("set signingKey (sign the served card) and/or agentKeys (verify the agent's)")
        if self.signing_key is not None and not self.kid:
            raise ValueError("kid is required with signingKey (clients pick the key by it)")
        if self.signing_key is None and (self.kid or self.jku):
            raise ValueError("kid and jku describe signingKey: set it too")
        return self


class A2aPolicy(_Model):
    """``a2a: {}``: mark a route's traffic as A2A (card rewriting, JSON-RPC parsing,
    metrics). agentgw extensions: ``agent`` names the agent for metrics, logs and CEL's
    ``a2a.agent`` (by default the route's name, else the backend's); ``cardPaths`` are
    more paths (exact) that serve the agent card, rewritten like the well-known one;
    ``cardSigning`` handles signed cards (see A2aCardSigning)."""

    agent: str | None = None
    card_paths: list[Annotated[str, Field(pattern=r"^/")]] | None = None
    card_signing: A2aCardSigning | None = None


class McpTargetPolicies(SimpleBackendPolicies):
    mcp_authorization: Authorization | None = None
    ext_mcp: Opaque | None = None


class BackendPolicies(McpTargetPolicies):
    """Per-backend policies (agentgateway ``LocalBackendPolicies``)."""

    response_header_modifier: HeaderModifier | None = None
    request_redirect: RequestRedirect | None = None
    health: Opaque | None = None
    ext_authz: ExtAuthz | None = None
    a2a: A2aPolicy | None = Field(default=None, alias="a2a")
    inference_routing: InferenceRouting | None = None
    ai: Opaque | None = None


class TcpBackendPolicies(_Model):
    backend_tls: BackendTLS | None = Field(default=None, alias="backendTLS")
    backend_tunnel: Opaque | None = None


# --------------------------------------------------------------------------
# Global rate limits: ``remoteRateLimit`` (Envoy RLS, agentgateway's shape) and
# ``globalRateLimit`` (agentgw extension: counters in Redis, no extra service)
# --------------------------------------------------------------------------


class RateLimitEntry(_Model):
    """One descriptor entry: a key and a CEL expression for its value."""

    key: str
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _cel(cls, v: Any) -> Any:
        return _cel_to_str(v)


class RemoteRateLimitDescriptor(_Model):
    entries: list[RateLimitEntry] = Field(min_length=1)
    type: Literal["requests", "tokens"] = "requests"


class RemoteRateLimit(_Model):
    """``remoteRateLimit``: ask an Envoy rate-limit service (``envoy.service.ratelimit.v3``)."""

    domain: str
    host: str
    descriptors: list[RemoteRateLimitDescriptor] = Field(min_length=1)
    failure_mode: Literal["failOpen", "failClosed"] = "failOpen"
    timeout: DurationField | None = None


_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class DescriptorLimit(_Model):
    """``{requestsPerUnit: 5, unit: MINUTE}`` (the ``RateLimitConfig`` shape)."""

    requests_per_unit: int = Field(ge=0)
    unit: str

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: str) -> str:
        if v.lower() not in _RATE_UNITS:
            raise ValueError(f"unit must be one of SECOND, MINUTE, HOUR, DAY (got {v!r})")
        return v

    @property
    def seconds(self) -> int:
        return _RATE_UNITS[self.unit.lower()]


class GlobalRateLimitDescriptor(_Model):
    entries: list[RateLimitEntry] = Field(min_length=1)
    rate_limit: DescriptorLimit
    type: Literal["requests", "tokens"] = "requests"
    #: CEL condition: the descriptor applies only when it is true.
    when: str | None = None


class RedisSettings(_Model):
    url: Annotated[str, SECRET]
    #: Budget for one check (connect included); over it, ``failureMode`` applies.
    timeout: DurationField | None = None
    key_prefix: str = "agw"


class GlobalRateLimit(_Model):
    """agentgw extension: a Redis-backed limit shared by every process and replica."""

    redis: RedisSettings
    descriptors: list[GlobalRateLimitDescriptor] = Field(min_length=1)
    failure_mode: Literal["failOpen", "failClosed"] = "failOpen"
    window: Literal["fixed", "sliding"] = "fixed"


class FrontendTracing(_Model):
    """``frontendPolicies.tracing``: export spans to an OTLP collector."""

    host: str
    protocol: Literal["grpc", "http"] = "grpc"
    path: str | None = None
    headers: SecretStrMap = None
    random_sampling: str | None = None
    client_sampling: str | None = None
    attributes: Opaque | None = None
    resources: Opaque | None = None

    @field_validator("random_sampling", "client_sampling", mode="before")
    @classmethod
    def _sampling(cls, v: Any) -> Any:
        return _cel_to_str(v)


# --------------------------------------------------------------------------
# Route / listener policies
# --------------------------------------------------------------------------


class Oidc(_Model):
    """``oidc``: browser login with an OpenID provider (authorization code flow)."""

    issuer: str
    discovery: Opaque | str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    token_endpoint_auth: str | None = None
    jwks: Opaque | str | None = None
    client_id: str
    client_secret: Annotated[str, SECRET]
    redirect_uri: str = Field(alias="redirectURI")
    scopes: list[str] = Field(default_factory=list)


class GatewayPolicies(_Model):
    """Policies allowed at listener level (run before routing)."""

    oidc: Oidc | None = None
    jwt_auth: JwtAuth | None = None
    ext_authz: ExtAuthzField | None = None
    ext_proc: ExtProcField | None = None
    transformations: TransformationsField | None = None
    basic_auth: BasicAuth | None = None
    api_key: ApiKeyAuth | None = None
    service_account_auth: ServiceAccountAuth | None = None
    authorization: Authorization | None = None


class RoutePolicies(GatewayPolicies):
    """Route policies (agentgateway ``FilterOrPolicy``)."""

    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_redirect: RequestRedirect | None = None
    url_rewrite: UrlRewrite | None = None
    request_mirror: RequestMirror | None = None
    delay: Delay | None = None
    direct_response: DirectResponseField | None = None
    cors: Cors | None = None
    mcp_authorization: Authorization | None = None
    ext_mcp: Opaque | None = None
    authorization: Authorization | None = None
    mcp_authentication: McpAuthentication | None = None
    a2a: A2aPolicy | None = Field(default=None, alias="a2a")
    ai: Opaque | None = None
    backend_tls: BackendTLS | None = Field(default=None, alias="backendTLS")
    backend_tunnel: Opaque | None = None
    backend_auth: BackendAuth | None = None
    local_rate_limit: LocalRateLimitField | None = None
    remote_rate_limit: RemoteRateLimit | None = None
    global_rate_limit: GlobalRateLimit | None = None
    csrf: Csrf | None = None
    timeout: Timeout | None = None
    retry: Retry | None = None


class LlmPolicies(GatewayPolicies):
    """``llm.policies``: listener policies plus authorization and rate limits."""

    authorization: Authorization | None = None
    cors: Cors | None = None
    guardrails: Opaque | None = None  # prompt guards for every model, before each model's own
    local_rate_limit: list[RateLimit] = Field(default_factory=list)
    remote_rate_limit: RemoteRateLimit | None = None
    global_rate_limit: GlobalRateLimit | None = None


class TcpRoutePolicies(_Model):
    backend_tls: BackendTLS | None = Field(default=None, alias="backendTLS")


# --------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------


class McpHostSpec(_Model):
    """Where an MCP target lives: a URL in ``host``, ``host``+``port``+``path``, or a named ``backend``."""

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = None
    backend: str | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.backend is not None:
            if self.host is not None or self.port is not None:
                raise ValueError("cannot mix host/port with backend")
            return self
        if self.host is None:
            if self.port is not None:
                raise ValueError("host is required when port is set")
            raise ValueError("host or backend is required")
        if (self.port is None) != (self.path is None):
            raise ValueError("if port or path is set, both must be set; otherwise, use only host")
        if self.port is None:
            parts = urlsplit(self.host if "://" in self.host else "http://" + self.host)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"invalid host {self.host!r}: expected an http(s) URL")
        return self


class StdioSpec(_Model):
    cmd: str
    args: list[str] = Field(default_factory=list)
    env: SecretStrMap = None
    clear_env: bool = False
    #: agentgw extensions: this target's caps on live processes (override the backend's
    #: ``stdioLimits``; see docs/mcp.md)
    max_processes: int | None = Field(default=None, ge=1)
    max_processes_per_client: int | None = Field(default=None, ge=1)


class OpenApiSpec(McpHostSpec):
    schema_: FileInlineOrRemote = Field(alias="schema")


_MCP_TARGET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class McpTarget(_Model):
    """One upstream MCP server: exactly one of sse, mcp, stdio, openapi."""

    name: str
    sse: McpHostSpec | None = None
    mcp: McpHostSpec | None = None
    stdio: StdioSpec | None = None
    openapi: OpenApiSpec | None = None
    policies: McpTargetPolicies | None = None

    _exactly_one_of = ("sse", "mcp", "stdio", "openapi")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _MCP_TARGET_NAME.match(v):
            raise ValueError(f"invalid MCP target name {v!r}: use letters, digits, '_', '-' and '.' only")
        return v


class DnsRebindingProtection(_Model):
    """agentgw extension: Host/Origin checks against DNS rebinding (MCP spec, transports)."""

    #: Host header names (port ignored) accepted; default: localhost, 127.0.0.1, [::1].
    allowed_hosts: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"])
    #: Extra Origin values accepted besides those whose host is in ``allowedHosts``.
    allowed_origins: list[str] = Field(default_factory=list)


class McpToolRateLimit(_Model):
    """agentgw extension: a token bucket for calls of some tools (``tools`` unset: all)."""

    tools: list[str] | None = None
    target: str | None = None
    max_tokens: int = Field(ge=1)
    tokens_per_fill: int = Field(ge=1)
    fill_interval: DurationField


#: Defaults of ``stdioLimits`` (see docs/mcp.md, "Process caps").
STDIO_MAX_PROCESSES = 64
STDIO_MAX_PROCESSES_PER_CLIENT = 8


class StdioLimits(_Model):
    """agentgw extension: caps on the live processes of each stdio target of a backend
    (one process per client session), so that clients cannot exhaust the host."""

    #: processes of one target, all clients together
    max_processes: int = Field(default=STDIO_MAX_PROCESSES, ge=1)
    #: processes of one target held by one client (principal, else IP address)
    max_processes_per_client: int = Field(default=STDIO_MAX_PROCESSES_PER_CLIENT, ge=1)


class McpBackend(_Model):
    targets: list[McpTarget]
    stateful_mode: Literal["stateless", "stateful"] = "stateful"
    prefix_mode: Literal["always", "conditional", "never"] | None = None
    failure_mode: Literal["failClosed", "failOpen"] | None = None
    #: agentgw extensions (see docs/mcp.md)
    dns_rebinding_protection: bool | DnsRebindingProtection | None = None
    passthrough_headers: list[str] = Field(default_factory=list)
    tool_rate_limits: list[McpToolRateLimit] = Field(default_factory=list)
    stdio_limits: StdioLimits | None = None

    @field_validator("targets")
    @classmethod
    def _unique(cls, v: list[McpTarget]) -> list[McpTarget]:
        seen: set[str] = set()
        for t in v:
            if t.name in seen:
                raise ValueError(f"duplicate MCP target name {t.name!r}")
            seen.add(t.name)
        return v


class AiProvider(_Model):
    name: str
    provider: Opaque
    host_override: str | None = None
    path_override: str | None = None
    path_prefix: str | None = None
    tokenize: bool = False
    policies: BackendPolicies | None = None

    @field_validator("provider")
    @classmethod
    def _one_provider(cls, v: Opaque) -> Opaque:
        if len(v) != 1:
            raise ValueError(
                "provider must have exactly one key (openAI, anthropic, gemini, vertex, bedrock, azureOpenAI, ...)"
            )
        return v

    @field_validator("host_override")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return _validate_target(v) if v is not None else v


class AiProviderGroup(_Model):
    providers: list[AiProvider]


class AiBackend(_Model):
    """A single provider (``name``/``provider``/...) or ``groups: [{providers: [...]}]``."""

    name: str | None = None
    provider: Opaque | None = None
    host_override: str | None = None
    path_override: str | None = None
    path_prefix: str | None = None
    tokenize: bool = False
    policies: BackendPolicies | None = None
    groups: list[AiProviderGroup] | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.groups is not None:
            others = [k for k in type(self).model_fields if k != "groups" and k in self.model_fields_set]
            if others:
                raise ValueError("groups cannot be combined with other fields")
            return self
        if self.name is None or self.provider is None:
            raise ValueError("either name and provider, or groups, must be set")
        AiProvider._one_provider(self.provider)
        if self.host_override is not None:
            _validate_target(self.host_override)
        return self


# as agentgateway reads it: the service and a region (it names the host) are checked;
# the account and the resource are taken as written (AWS itself answers a wrong one)
_AGENTCORE_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:[a-z0-9-]+:[^:/\s]+:[^\s]+$")


class AgentCore(_Model):
    agent_runtime_arn: str
    qualifier: str | None = None
    # agentgw extension: send to this base URL (a local stand-in, a VPC endpoint)
    # instead of https://bedrock-agentcore.<region>.amazonaws.com; still SigV4-signed
    # for bedrock-agentcore in the ARN's region.
    endpoint: str | None = None
    # agentgw extension: how an A2A call is answered: ``a2a`` (an A2A task or task
    # events, the default) or ``runtime`` (the runtime's own answer as it sent it, the
    # shape clients of the enterprise gateway's AgentCore workshop read)
    answer: Literal["a2a", "runtime"] = "a2a"

    @field_validator("agent_runtime_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not _AGENTCORE_ARN.match(v):
            raise ValueError(f"expected arn:<partition>:bedrock-agentcore:<region>:<account>:<resource>, got {v!r}")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/?#\s]+/?$", v):
            raise ValueError(f"endpoint must be http(s)://host[:port], got {v!r}")
        return v


class AwsBackend(_Model):
    agent_core: AgentCore


class A2aStaticTarget(_Model):
    host: str
    port: int = Field(ge=1, le=65535)


class A2aTarget(_Model):
    name: str | None = None
    static: A2aStaticTarget
    weight: int = Field(default=1, ge=0)


class A2aBackend(_Model):
    """A backend of A2A agents at static addresses (the ``Backend`` ``type: A2A`` shape)."""

    targets: list[A2aTarget] = Field(min_length=1)


class _BackendKinds(_Model):
    host: str | None = None
    mcp: McpBackend | None = None
    ai: AiBackend | None = None
    aws: AwsBackend | None = None
    a2a: A2aBackend | None = Field(default=None, alias="a2a")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return _validate_target(v) if v is not None else v


class RouteBackend(_BackendKinds):
    """A route backend: exactly one of host, service, backend, mcp, ai, aws, dynamic, routeGroup."""

    weight: int = Field(default=1, ge=0)
    service: ServiceRef | None = None
    backend: str | None = None
    dynamic: Opaque | None = None
    route_group: str | None = None
    policies: BackendPolicies | None = None

    _exactly_one_of = ("host", "service", "backend", "mcp", "ai", "aws", "a2a", "dynamic", "route_group")


class NamedBackend(_BackendKinds):
    """Top-level ``backends[]``: a name plus exactly one of host, mcp, ai, aws."""

    name: str
    policies: BackendPolicies | None = None

    _exactly_one_of = ("host", "mcp", "ai", "aws", "a2a")


class TcpDynamic(_Model):
    """``dynamic: {}``: dial the destination the connection names (its TLS SNI on the
    destination port), or what ``target`` (a CEL expression giving ``host:port``) says."""

    target: str | None = None

    @field_validator("target", mode="before")
    @classmethod
    def _cel(cls, v: Any) -> Any:
        return _cel_to_str(v)


class TcpRouteBackend(_Model):
    """A TCP route backend: exactly one of service, host, backend, dynamic."""

    service: ServiceRef | None = None
    host: str | None = None
    backend: str | None = None
    dynamic: TcpDynamic | None = None
    weight: int = Field(default=1, ge=0)
    policies: TcpBackendPolicies | None = None

    _exactly_one_of = ("service", "host", "backend", "dynamic")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return _validate_target(v) if v is not None else v


# --------------------------------------------------------------------------
# Routes, listeners, binds
# --------------------------------------------------------------------------


class Route(_Model):
    name: str | None = None
    namespace: str | None = None
    rule_name: str | None = None
    hostnames: list[str] = Field(default_factory=list)
    #: ``None`` means agentgateway's default: a single ``pathPrefix: /`` match.
    matches: list[RouteMatch] | None = None
    policies: RoutePolicies | None = None
    backends: list[RouteBackend] = Field(default_factory=list)

    def effective_matches(self) -> list[RouteMatch]:
        if self.matches is None:
            return [RouteMatch(path=PathMatch(pathPrefix="/"))]
        return self.matches


class TcpRoute(_Model):
    name: str | None = None
    namespace: str | None = None
    rule_name: str | None = None
    hostnames: list[str] = Field(default_factory=list)
    policies: TcpRoutePolicies | None = None
    backends: list[TcpRouteBackend] = Field(default_factory=list)


TlsVersion = Literal["TLS_V1_0", "TLS_V1_1", "TLS_V1_2", "TLS_V1_3"]


class ListenerTLS(_Model):
    #: ``static`` (the default: cert/key serve every handshake) or ``dynamicCa`` (cert/key
    #: are a CA minting a certificate per SNI name)
    mode: Literal["static", "dynamicCa"] | None = None
    #: a listener with ``spiffe`` gets its certificate from the Workload API instead
    cert: str | None = None
    key: Annotated[str | None, SECRET] = None
    spiffe: Opaque | None = None
    root: str | None = None
    cipher_suites: list[str] | None = None
    min_tls_version: TlsVersion | None = Field(default=None, alias="minTLSVersion")
    max_tls_version: TlsVersion | None = Field(default=None, alias="maxTLSVersion")
    key_exchange_groups: list[str] | None = None

    @model_validator(mode="after")
    def _cert_and_key(self):
        if self.spiffe is None:
            missing = [k for k in ("cert", "key") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required (or spiffe)")
        return self


class PathNormalization(_Model):
    """agentgw extension: how a listener reads paths that common servers read differently
    (see docs/security.md). The defaults are the safe choice for any upstream."""

    #: ``%2F``, ``%5C`` and a raw ``\``: refused (400), decoded into ``/`` (matched and
    #: forwarded decoded), or kept as data (only for upstreams that never decode them).
    encoded_slashes: Literal["reject", "decode", "keep"] = "reject"
    #: ``;`` path parameters (``/admin;x=1``): stripped from every segment (matched and
    #: forwarded without them), refused (400), or kept as ordinary characters (only for
    #: upstreams that read ``;`` as data).
    path_parameters: Literal["strip", "reject", "keep"] = "strip"


class Listener(_Model):
    name: str | None = None
    namespace: str | None = None
    gateway_name: str | None = None
    hostname: str | None = None
    protocol: Literal["HTTP", "HTTPS", "TLS", "TCP", "HBONE"] = "HTTP"
    tls: ListenerTLS | None = None
    routes: list[Route] | None = None
    tcp_routes: list[TcpRoute] | None = None
    policies: GatewayPolicies | None = None
    path_normalization: PathNormalization | None = None

    @model_validator(mode="after")
    def _protocol(self):
        p = self.protocol
        if p in ("HTTP", "HTTPS") and self.routes is None:
            raise ValueError(f"protocol {p} requires 'routes'")
        if p in ("TLS", "TCP") and self.tcp_routes is None:
            raise ValueError(f"protocol {p} requires 'tcpRoutes'")
        if p == "HTTPS" and self.tls is None:
            raise ValueError("HTTPS listener requires 'tls'")
        return self


class Bind(_Model):
    port: int = Field(ge=0, le=65535)
    listeners: list[Listener]
    tunnel_protocol: str | None = None
    #: ``standard`` opens the port; ``internal`` opens nothing: the bind is reached by
    #: CONNECT tunnels to its port (``tunnelProtocol: connect`` on another bind)
    mode: Literal["standard", "internal"] = "standard"


def _gateway_refs(v: Any) -> Any:
    """agentgateway's ``LocalGatewayRefs``: one reference or a list of them."""
    return [v] if isinstance(v, str) else v


GatewayRefs = Annotated[list[str], BeforeValidator(_gateway_refs)]
GatewayProtocol = Literal["HTTP", "HTTPS", "TCP", "TLS"]


class GatewayListenerPolicies(GatewayPolicies):
    """The policies a named gateway or one of its listeners carries (run before routing)."""

    cors: Cors | None = None


class GatewayListener(GatewayListenerPolicies):
    """``gateways.<name>.listeners[]``: one listener of a named gateway."""

    name: str | None = None
    hostname: str | None = None
    #: HTTP or HTTPS (``tls`` set) by default
    protocol: GatewayProtocol | None = None
    tls: ListenerTLS | None = None


class NamedGateway(GatewayListenerPolicies):
    """``gateways.<name>``: a port, and either one listener (``protocol``, ``tls`` and
    policies here) or several named ``listeners``."""

    port: int = Field(ge=1, le=65535)
    protocol: GatewayProtocol | None = None
    tls: ListenerTLS | None = None
    listeners: list[GatewayListener] = Field(default_factory=list)


class AttachedRoute(Route):
    """``routes[]``: an HTTP route attached to named gateways (``gateway`` or
    ``gateway/listener``); none: the gateway named ``default``."""

    gateways: GatewayRefs = Field(default_factory=list)


class AttachedTcpRoute(TcpRoute):
    """``tcpRoutes[]``: a TCP route attached to named TCP or TLS gateways."""

    gateways: GatewayRefs = Field(default_factory=list)


class RouteGroup(_Model):
    name: str
    routes: list[Route]


class ResourceName(_Model):
    name: str
    namespace: str | None = None


class ListenerTarget(_Model):
    """``target.gateway``: the standalone gateway (``default/default``), one listener of
    it (``listenerName``) or the listeners on one port (``port``)."""

    gateway_name: str
    gateway_namespace: str
    listener_name: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)

    _at_most_one_of = ("listener_name", "port")


class RouteTarget(_Model):
    """``target.route``: a route by ``name`` and ``namespace`` (``default`` unless the
    route sets one)."""

    name: str
    namespace: str
    rule_name: str | None = None
    kind: str | None = None


class BackendName(_Model):
    name: str
    namespace: str
    section: str | None = None


class BackendTarget(_Model):
    """``target.backend``: a top-level ``backends[]`` entry (``backend``) or a service."""

    backend: BackendName | None = None
    service: Opaque | None = None

    _exactly_one_of = ("backend", "service")


class PolicyTarget(_Model):
    """What a top-level policy attaches to: exactly one of gateway, route, backend, listenerSet."""

    gateway: ListenerTarget | None = None
    route: RouteTarget | None = None
    backend: BackendTarget | None = None
    listener_set: Opaque | None = None

    _exactly_one_of = ("gateway", "route", "backend", "listener_set")


class TargetedPolicy(_Model):
    """Top-level ``policies[]``: one policy attached to a gateway, listener, route or backend
    (applied by ``config.targeted``)."""

    name: _StrOr[str, ResourceName]
    target: PolicyTarget
    phase: Literal["gateway", "route"] = "route"
    policy: RoutePolicies

    @field_validator("policy")
    @classmethod
    def _single(cls, v: RoutePolicies) -> RoutePolicies:
        if len([k for k in v.model_fields_set if getattr(v, k) is not None]) != 1:
            raise ValueError("'policy' must contain exactly 1 policy")
        return v


# --------------------------------------------------------------------------
# Frontend policies
# --------------------------------------------------------------------------


class FrontendHTTP(_Model):
    """``frontendPolicies.http``.  Unset means the agentgw default (see `effective_limits`)."""

    #: Largest request/response body agentgw will buffer in memory (bytes).
    max_buffer_size: int | None = Field(default=None, ge=1)
    http1_max_headers: int | None = Field(default=None, ge=1)
    http1_idle_timeout: DurationField | None = None
    http2_window_size: int | None = Field(default=None, ge=0)
    http2_connection_window_size: int | None = Field(default=None, ge=0)
    http2_frame_size: int | None = Field(default=None, ge=0)
    http2_keepalive_interval: DurationField | None = None
    http2_keepalive_timeout: DurationField | None = None
    #: agentgw extension: request header names containing ``_`` are dropped (the
    #: default, as nginx does), refused with a 400 (``reject``) or passed on (``allow``).
    #: CGI-style upstreams read ``x_user`` as ``x-user``, past policies that strip or set
    #: the dashed name.
    headers_with_underscores: Literal["drop", "reject", "allow"] | None = None


class FrontendTLS(_Model):
    handshake_timeout: DurationField | None = None
    alpn: list[Any] | None = None
    min_version: TlsVersion | None = None
    max_version: TlsVersion | None = None
    cipher_suites: list[str] | None = None


class Keepalives(_Model):
    enabled: bool | None = None
    time: DurationField | None = None
    interval: DurationField | None = None
    retries: int | None = Field(default=None, ge=0)


class FrontendTCP(_Model):
    keepalives: Keepalives


class AccessLogFields(_Model):
    add: StrMap = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class OtlpLogging(SimpleBackendRef):
    """``accessLog.otlp``: export each access-log record as an OTLP log record, to
    exactly one of ``service``, ``host``, ``backend``."""

    protocol: Literal["grpc", "http"] = "grpc"
    path: str | None = None
    filter: str | None = None
    fields: AccessLogFields | None = None
    policies: Opaque | None = None


class AccessLog(_Model):
    filter: str | None = None
    add: StrMap = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)
    otlp: OtlpLogging | None = None
    access_log_policy: Opaque | None = None


class FrontendPolicies(_Model):
    http: FrontendHTTP | None = None
    tls: FrontendTLS | None = None
    tcp: FrontendTCP | None = None
    network_authorization: Opaque | None = None
    proxy_protocol: Opaque | None = None
    connect: Opaque | None = None
    access_log: AccessLog | None = None
    tracing: FrontendTracing | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        # agentgateway accepts `proxy` for `proxyProtocol` and `logging` for `accessLog`.
        if isinstance(data, dict):
            for old, new in (("proxy", "proxyProtocol"), ("logging", "accessLog")):
                if old in data:
                    if new in data:
                        raise ValueError(f"cannot set both {old} and {new}")
                    data = {**data}
                    data[new] = data.pop(old)
        return data


# --------------------------------------------------------------------------
# Process-level `config:` section
# --------------------------------------------------------------------------

_ADDR_HELP = "expected 'ip:port', 'localhost:port', ':port', 'unix:/path' or 'off'"


def _validate_addr(v: Any) -> str:
    if v is False:  # YAML 1.1 reads a bare `off` as false
        return "off"
    if not isinstance(v, str):
        raise ValueError(f"invalid address {v!r}: {_ADDR_HELP}")
    if v == "off" or (v.startswith("unix:") and len(v) > 5):
        return v
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid address {v!r}: {_ADDR_HELP}")
    if host in ("", "localhost"):
        return v
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid address {v!r}: {_ADDR_HELP}") from None
    return v


class Fields(_Model):
    add: StrMap = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


def _cel_to_str(v: Any) -> Any:
    # Sampling expressions are CEL; YAML users write `true` or `0.1` unquoted.
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return v


class Tracing(_Model):
    otlp_endpoint: str
    headers: SecretStrMap = None
    otlp_protocol: Literal["grpc", "http"] = "grpc"
    fields: Fields | None = None
    random_sampling: str | None = None
    client_sampling: str | None = None
    path: str | None = None

    @field_validator("random_sampling", "client_sampling", mode="before")
    @classmethod
    def _sampling(cls, v: Any) -> Any:
        return _cel_to_str(v)


class Database(_Model):
    """A request log database: ``postgres://``/``postgresql://`` URLs are PostgreSQL,
    anything else a SQLite file (telemetry/request_store.py)."""

    url: Annotated[str, SECRET]
    max_connections: int | None = Field(default=None, ge=1)


class StandardAttributes(_Model):
    """CEL expressions for the request log database's user and group columns."""

    user: str | None = None
    group: str | None = None


class Logging(_Model):
    level: str | None = None
    format: Literal["text", "json"] | None = None
    filter: str | None = None
    fields: Fields | None = None
    database: Database | None = None


class MetricsFields(_Model):
    add: StrMap = Field(default_factory=dict)


class Metrics(_Model):
    remove: list[str] = Field(default_factory=list)
    fields: MetricsFields | None = None


class BackendDefaults(_Model):
    keepalives: Keepalives | None = None
    connect_timeout: DurationField | None = None
    pool_idle_timeout: DurationField | None = None
    pool_max_size: int | None = Field(default=None, ge=0)


class Session(_Model):
    #: AES-256-GCM key, 64 hex characters (``openssl rand -hex 32``).
    key: Annotated[str | None, SECRET] = None

    @field_validator("key")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            raw = bytes.fromhex(v)
        except ValueError:
            raise ValueError("session key must be hex-encoded (e.g. `openssl rand -hex 32`)") from None
        if len(raw) != 32:
            raise ValueError(f"session key must be 32 bytes (64 hex characters), got {len(raw)} bytes")
        return v


class McpSettings(_Model):
    session_ttl: DurationField | None = None


class Limits(_Model):
    """agentgw extension: frontend limits with no agentgateway equivalent.

    Body-buffer size and idle timeout live where agentgateway has them
    (``frontendPolicies.http.maxBufferSize`` / ``http1IdleTimeout``).
    """

    #: Total size of a request's start line plus headers.
    max_header_bytes: int | None = Field(default=None, ge=1024)
    #: Time allowed for a client to send the complete request head.
    header_read_timeout: DurationField | None = None
    #: Longest pause allowed between two reads of a request body (nginx's
    #: ``client_body_timeout``); past it the request is answered 408 and closed.
    request_body_timeout: DurationField | None = None
    #: Concurrent downstream connections across all binds.
    max_connections: int | None = Field(default=None, ge=1)


def _worker_threads(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class AdminBasicAuth(_Model):
    """A user name and password the admin API (and the web UI) accepts as HTTP Basic
    credentials, beside or instead of ``token``."""

    username: str = Field(min_length=1, pattern=r"^[^:\s]+$")
    #: at least 12 characters; usually ``$AGENTGW_ADMIN_PASSWORD``
    password: Annotated[str, SECRET] = Field(min_length=12)


class AdminApi(_Model):
    """agentgw extension: who may use the admin API's writes (``/api/v1/``, see
    ``docs/admin.md``). Without a ``token`` or ``basicAuth`` every write (any method but
    GET / HEAD) is refused, unless ``allowUnauthenticatedLoopbackWrites`` is true and
    ``config.adminAddr`` is a loopback address or a unix socket."""

    #: the bearer token write requests must carry (``Authorization: Bearer <token>``);
    #: at least 16 characters, e.g. ``$AGENTGW_ADMIN_TOKEN``
    token: Annotated[str | None, SECRET] = Field(default=None, min_length=16)
    #: or HTTP Basic credentials (``Authorization: Basic ...``)
    basic_auth: AdminBasicAuth | None = None
    #: let anyone who can reach a loopback admin address write without a token
    allow_unauthenticated_loopback_writes: bool = False


class GatewayConfig(_Model):
    """The ``config:`` section: process-level settings."""

    # -- accepted, not acted on by agentgw (mesh / control-plane plumbing) --
    enable_ipv6: bool | None = None
    dns: Opaque | None = None
    local_xds_path: str | None = None
    ca_address: str | None = None
    #: the SPIFFE Workload API agent (``{endpoint}``) workload certificates come from
    spiffe: Opaque | None = None
    ca_auth_token: Annotated[str | None, SECRET] = None
    xds_address: str | None = None
    xds_auth_token: Annotated[str | None, SECRET] = None
    auth_token: Annotated[str | None, SECRET] = None
    namespace: str | None = None
    gateway: str | None = None
    trust_domain: str | None = None
    additional_trust_domains: str | None = None
    skip_validate_trust_domain: bool | None = None
    service_account: str | None = None
    cluster_id: str | None = None
    network: str | None = None
    hbone: Opaque | None = None
    http2: Opaque | None = None

    # -- acted on --
    database: Database | None = None
    standard_attributes: StandardAttributes | None = None
    admin_addr: str = "127.0.0.1:15000"
    #: agentgw extension: authentication of the admin API's writes
    admin: AdminApi | None = None
    stats_addr: str = "0.0.0.0:15020"
    readiness_addr: str = "0.0.0.0:15021"
    session: Session | None = None
    mcp: McpSettings | None = None
    connection_termination_deadline: DurationField | None = None
    connection_min_termination_deadline: DurationField | None = None
    worker_threads: str | None = None
    tracing: Tracing | None = None
    logging: Logging | None = None
    metrics: Metrics | None = None
    backend: BackendDefaults | None = None
    limits: Limits | None = None
    #: agentgw extension: peers (IP networks) whose ``X-Forwarded-Proto`` and
    #: ``X-Forwarded-Host`` are believed, e.g. a load balancer in front. From any other
    #: peer these headers steer nothing (they are still forwarded, with the peer appended
    #: to ``X-Forwarded-For``).
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for i, net in enumerate(v):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"[{i}]: {net!r} is not an IP address or network (CIDR)") from None
        return v

    @field_validator("admin_addr", "stats_addr", "readiness_addr", mode="before")
    @classmethod
    def _addr(cls, v: Any) -> str:
        return _validate_addr(v)

    @field_validator("worker_threads", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> Any:
        return _worker_threads(v)


# --------------------------------------------------------------------------
# `llm:` and `mcp:` shorthands
# --------------------------------------------------------------------------

_LLM_PROVIDERS = ("openAI", "anthropic", "gemini", "vertex", "bedrock", "azure", "copilot")
#: agentgateway's provider presets: OpenAI-compatible services with a known endpoint
LLM_PRESETS = (
    "cohere",
    "ollama",
    "baseten",
    "cerebras",
    "deepinfra",
    "deepseek",
    "groq",
    "huggingface",
    "mistral",
    "openrouter",
    "togetherai",
    "xai",
    "fireworks",
)


class LlmParams(_Model):
    model: str | None = None
    api_key: Annotated[FileOrInline | None, SECRET] = None
    aws_region: str | None = None
    vertex_region: str | None = None
    vertex_project: str | None = None
    azure_resource_name: str | None = None
    azure_resource_type: str | None = None
    azure_api_version: str | None = None
    azure_project_name: str | None = None
    base_url: str | None = None
    host_override: str | None = None
    path_override: str | None = None
    path_prefix: str | None = None
    tokenize: bool = False

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if not parts.hostname:
            raise ValueError(f"invalid baseUrl {v!r}: must include a host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid baseUrl {v!r}: bad port") from None
        if parts.scheme not in ("http", "https") and port is None:
            raise ValueError(f"invalid baseUrl {v!r}: must use http or https, or include an explicit port")
        return v


class LlmRouteMatch(_Model):
    headers: list[HeaderMatch] = Field(default_factory=list)


def _provider_kind(value: Any) -> str:
    if isinstance(value, str):
        return "~str"
    if isinstance(value, dict) and "reference" in value:
        return "~ref"
    return "~obj"


class CustomProvider(_Model):
    custom: Opaque


class ProviderReference(_Model):
    """``provider: {reference: <name>}``: the provider of ``llm.providers`` with that name."""

    reference: str


LlmProvider = Annotated[
    Annotated[str, Tag("~str")] | Annotated[CustomProvider, Tag("~obj")] | Annotated[ProviderReference, Tag("~ref")],
    Discriminator(_provider_kind),
]


def _provider_name(v: Any) -> Any:
    if isinstance(v, str):
        for p in (*_LLM_PROVIDERS, *LLM_PRESETS):
            if v.lower() == p.lower():
                return p
        raise ValueError(
            f"unknown provider {v!r}; expected one of {', '.join(_LLM_PROVIDERS + LLM_PRESETS)}, "
            "{custom: ...} or {reference: <llm.providers name>}"
        )
    return v


def _provider_requirements(p: Any, params: LlmParams) -> None:
    if p == "vertex" and not params.vertex_project:
        raise ValueError("vertex requires params.vertexProject")
    if p == "bedrock" and not params.aws_region:
        raise ValueError("bedrock requires params.awsRegion")
    if p == "azure" and not (params.azure_resource_name and params.azure_resource_type):
        raise ValueError("azure requires params.azureResourceName and params.azureResourceType")
    if isinstance(p, CustomProvider) and not (params.base_url or params.host_override):
        raise ValueError("custom provider requires params.baseUrl")


class PromptCachingConfig(_Model):
    """``promptCaching``: where cache points go in the provider request."""

    cache_system: bool = True
    cache_messages: bool = True
    cache_tools: bool = False
    min_tokens: int | None = Field(default=1024, ge=0)
    cache_message_offset: int = Field(default=0, ge=0)


class LlmModel(_Model):
    name: str
    #: ``internal``: only reachable as a target of ``llm.virtualModels`` (not listed, not
    #: callable by name)
    visibility: Literal["public", "internal"] = "public"
    provider: LlmProvider
    params: LlmParams = Field(default_factory=LlmParams)
    defaults: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None
    transformation: StrMap | None = None
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    tls: BackendTLS | None = None
    auth: BackendAuth | None = None
    health: Opaque | None = None
    backend_tunnel: Opaque | None = None
    guardrails: Opaque | None = None
    prompt_caching: PromptCachingConfig | None = None
    matches: list[LlmRouteMatch] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _tls_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backendTLS" in data:
            if "tls" in data:
                raise ValueError("cannot set both tls and backendTLS")
            data = {**data}
            data["tls"] = data.pop("backendTLS")
        return data

    @field_validator("name")
    @classmethod
    def _wildcard(cls, v: str) -> str:
        n = v.count("*")
        if n > 1:
            raise ValueError(f"model name {v!r} may only include a single '*' wildcard")
        if n == 1 and v != "*" and not (v.startswith("*") or v.endswith("*")):
            raise ValueError(f"model name wildcard must be either at the beginning or the end: {v!r}")
        return v

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: Any) -> Any:
        return _provider_name(v)

    @model_validator(mode="after")
    def _requirements(self):
        p = self.provider
        if isinstance(p, ProviderReference):
            extra = sorted(self.params.model_fields_set - {"model"})
            if extra:
                raise ValueError(
                    f"a model that references provider {p.reference!r} may only set params.model "
                    f"(not {', '.join(extra)}): the rest comes from llm.providers"
                )
            return self
        _provider_requirements(p, self.params)
        return self


class LlmProviderDefaults(_Model):
    """``llm.providers[].defaults``: settings a model referencing the provider gets when
    it does not set them itself."""

    defaults: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None
    transformation: StrMap | None = None
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    tls: BackendTLS | None = None
    auth: BackendAuth | None = None
    health: Opaque | None = None
    backend_tunnel: Opaque | None = None
    prompt_caching: Opaque | None = None

    @model_validator(mode="before")
    @classmethod
    def _tls_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backendTLS" in data:
            if "tls" in data:
                raise ValueError("cannot set both tls and backendTLS")
            data = {**data}
            data["tls"] = data.pop("backendTLS")
        return data


class LlmProviderDef(_Model):
    """``llm.providers[]``: a named provider that ``llm.models`` entries reference."""

    name: str
    provider: LlmProvider
    params: LlmParams = Field(default_factory=LlmParams)
    defaults: LlmProviderDefaults | None = None

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: Any) -> Any:
        if isinstance(v, ProviderReference):
            raise ValueError("a provider in llm.providers cannot reference another provider")
        return _provider_name(v)

    @model_validator(mode="after")
    def _requirements(self):
        _provider_requirements(self.provider, self.params)
        return self


class VirtualWeightedTarget(_Model):
    model: str
    weight: int = Field(default=1, ge=0)


class VirtualFailoverTarget(_Model):
    model: str
    priority: int = Field(ge=0)


class VirtualConditionalTarget(_Model):
    #: CEL; omitted only on the last target (the fallback)
    when: str | None = None
    model: str


class VirtualWeighted(_Model):
    targets: list[VirtualWeightedTarget] = Field(min_length=1)

    @model_validator(mode="after")
    def _some_weight(self):
        if not any(t.weight > 0 for t in self.targets):
            raise ValueError("at least one target needs a weight above 0")
        return self


class VirtualFailover(_Model):
    targets: list[VirtualFailoverTarget] = Field(min_length=1)


class VirtualConditional(_Model):
    targets: list[VirtualConditionalTarget] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _fallback_last(self):
        for i, t in enumerate(self.targets[:-1]):
            if t.when is None:
                raise ValueError(f"targets[{i}]: a target without `when` (the fallback) must be the last one")
        return self


class VirtualRouting(_Model):
    weighted: VirtualWeighted | None = None
    failover: VirtualFailover | None = None
    conditional: VirtualConditional | None = None

    _exactly_one_of = ("weighted", "failover", "conditional")


class VirtualModel(_Model):
    """``llm.virtualModels[]``: a public model name routed to ``llm.models`` entries."""

    name: str
    routing: VirtualRouting


class LlmConfig(_Model):
    #: named gateways (or ``gateway/listener``) the LLM routes attach to, instead of ``port``
    gateways: GatewayRefs = Field(default_factory=list)
    port: int = Field(default=4000, ge=0, le=65535)
    providers: list[LlmProviderDef] = Field(default_factory=list)
    models: list[LlmModel]
    virtual_models: list[VirtualModel] = Field(default_factory=list)
    policies: LlmPolicies | None = None

    @model_validator(mode="after")
    def _unique_names(self):
        for what, items in (("providers", self.providers), ("virtualModels", self.virtual_models)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"llm.{what}: duplicate name {item.name!r}")
                seen.add(item.name)
        return self


class McpShorthand(McpBackend):
    #: named gateways (or ``gateway/listener``) the MCP routes attach to, instead of ``port``
    gateways: GatewayRefs = Field(default_factory=list)
    port: int = Field(default=3000, ge=0, le=65535)
    policies: RoutePolicies | None = None


class UiShorthand(_Model):
    """``ui:`` (agentgateway's LocalUIConfig): the web UI and its admin API, always on
    ``config.adminAddr``, also served on traffic listeners -- the named ``gateways``, else
    a gateway named ``default`` -- at ``/ui/``, behind the route ``policies`` (OIDC,
    authorization...)."""

    gateways: GatewayRefs = Field(default_factory=list)
    policies: RoutePolicies | None = None


# --------------------------------------------------------------------------
# Root
# --------------------------------------------------------------------------


class LocalConfig(_Model):
    """The whole config file."""

    config: GatewayConfig = Field(default_factory=GatewayConfig)
    binds: list[Bind] = Field(default_factory=list)
    frontend_policies: FrontendPolicies = Field(default_factory=FrontendPolicies)
    policies: list[TargetedPolicy] = Field(default_factory=list)
    workloads: list[Opaque] = Field(default_factory=list)
    services: list[StaticService] = Field(default_factory=list)
    backends: list[NamedBackend] = Field(default_factory=list)
    route_groups: list[RouteGroup] = Field(default_factory=list)
    #: named gateways: a port and its listeners, which ``routes``, ``tcpRoutes``,
    #: ``llm`` and ``mcp`` attach to
    gateways: dict[str, NamedGateway] = Field(default_factory=dict)
    routes: list[AttachedRoute] = Field(default_factory=list)
    tcp_routes: list[AttachedTcpRoute] = Field(default_factory=list)
    llm: LlmConfig | None = None
    mcp: McpShorthand | None = None
    ui: UiShorthand | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        # `config:` with nothing under it is common in hand-written files.
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not (v is None and k in ("config", "frontendPolicies"))}
        return data

    @model_validator(mode="after")
    def _cross_refs(self):
        names = [b.name for b in self.backends]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate backend name(s): {', '.join(sorted(dup))}")
        ports: dict[int, str] = {}
        for i, b in enumerate(self.binds):
            if b.port in ports:
                raise ValueError(f"binds[{i}]: port {b.port} already used by {ports[b.port]}")
            ports[b.port] = f"binds[{i}]"
        for name, g in self.gateways.items():
            if g.port in ports:
                raise ValueError(f"gateways.{name}: port {g.port} already used by {ports[g.port]}")
            ports[g.port] = f"gateways.{name}"
        for key, sect in (("llm", self.llm), ("mcp", self.mcp)):
            if sect is not None and not sect.gateways and not self._attaches_to_default(sect):
                if sect.port in ports:
                    raise ValueError(f"{key}.port {sect.port} already used by {ports[sect.port]}")
                ports[sect.port] = key
        return self

    def _attaches_to_default(self, sect: LlmConfig | McpShorthand) -> bool:
        """``llm`` / ``mcp`` without ``gateways`` nor ``port`` attach to the gateway
        named ``default`` when there is one."""
        return "default" in self.gateways and "port" not in sect.model_fields_set


# --------------------------------------------------------------------------
# Effective frontend limits
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """Resolved frontend limits, in bytes / seconds / counts."""

    max_header_bytes: int
    max_body_bytes: int
    header_read_timeout: float
    idle_timeout: float
    max_connections: int
    max_header_count: int
    underscore_headers: str
    request_body_timeout: float


DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_HEADER_READ_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_MAX_HEADER_COUNT = 100  # Envoy's default too
DEFAULT_REQUEST_BODY_TIMEOUT = 60.0  # nginx's client_body_timeout default


def effective_limits(cfg: LocalConfig) -> EffectiveLimits:
    """Resolve frontend limits from their config locations plus agentgw defaults.

    ``maxBodyBytes`` <- ``frontendPolicies.http.maxBufferSize``;
    ``idleTimeout`` <- ``frontendPolicies.http.http1IdleTimeout``;
    ``maxHeaderCount`` <- ``frontendPolicies.http.http1MaxHeaders``;
    the rest <- ``config.limits`` (agentgw extension).
    """
    http = cfg.frontend_policies.http or FrontendHTTP()
    lim = cfg.config.limits or Limits()
    return EffectiveLimits(
        max_header_bytes=lim.max_header_bytes or DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes=http.max_buffer_size or DEFAULT_MAX_BODY_BYTES,
        header_read_timeout=(
            float(lim.header_read_timeout) if lim.header_read_timeout is not None else DEFAULT_HEADER_READ_TIMEOUT
        ),
        idle_timeout=(float(http.http1_idle_timeout) if http.http1_idle_timeout is not None else DEFAULT_IDLE_TIMEOUT),
        max_connections=lim.max_connections or DEFAULT_MAX_CONNECTIONS,
        max_header_count=http.http1_max_headers or DEFAULT_MAX_HEADER_COUNT,
        underscore_headers=http.headers_with_underscores or "drop",
        request_body_timeout=(
            float(lim.request_body_timeout) if lim.request_body_timeout is not None else DEFAULT_REQUEST_BODY_TIMEOUT
        ),
    )
