"""Accepted means enforced: every config field the schema accepts changes the compiled
runtime, or is refused when the config is loaded, with an error naming its path.

The walk starts at the root model (``LocalConfig``) and visits every field of every
model it reaches, in context: a route's policies are walked once under a route to an
HTTP host, once under a route to an MCP backend, once under an ``ai`` backend, and so
on (see ``SITES``). For each field it sets a valid, non-default value (``VALUES`` or a
generic value for the field's type) in a config that compiles, compiles both, and
requires that

* the structural fingerprint of the compiled ``Runtime`` changed (``fingerprint``:
  objects, slots, containers, bound methods, compiled regexes and CEL sources, TLS
  contexts -- never the config models themselves), or
* compiling refused the config with an error on that field's path (or below it) whose
  message says it is refused (``REFUSAL``), not that the value was bad.

Then it descends into the model the field holds. A field added to the schema is walked
like every other; when the walk cannot produce a valid value for it the test fails and
says what to add to ``VALUES`` / ``MINIMAL``. ``NO_OP`` lists, with reasons, the few
fields that by design do not change the runtime; ``READ_BY_PROCESS`` the process
settings the gateway process applies itself (checked by ``test_process_settings_are_read``).
"""

from __future__ import annotations

import copy
import json
import re
import ssl
import threading
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from agentgw.compile import compile_config
from agentgw.config import ConfigError, LocalConfig, load_config_text
from agentgw.config.durations import Duration

# --------------------------------------------------------------------------------------
# Fingerprint of a compiled runtime
# --------------------------------------------------------------------------------------

#: Attributes whose values differ between two compiles of the same config (caches,
#: clocks, locks) -- state, not configuration.
VOLATILE_ATTRS = frozenset({"memo", "_memo", "last", "_last", "_lock", "lock", "loop", "_loop", "_sweeper"})


class FakeServices:
    """What ``compile_config`` is given in place of the process-wide services."""

    loop = None
    metrics = None
    on_upstream_error = None

    def __init__(self):
        self.pool = FakePool()


class FakeExporter:
    """Stands in for the OTLP exporter (a background client): what it is built with."""

    tracer = None

    def __init__(self, args, kw):
        self.args, self.kw = args, kw


class FakePool:
    idle_timeout = 90.0
    max_idle = 0


@pytest.fixture(autouse=True)
def _oidc_cookie_key(monkeypatch):
    monkeypatch.setenv("OIDC_COOKIE_SECRET", "11" * 32)  # the oidc policy's session cookie key


def fingerprint(obj: Any) -> Any:
    """A comparable structure describing everything reachable from ``obj``."""
    done: dict[int, Any] = {}
    active: set[int] = set()

    def fp(o: Any) -> Any:
        if o is None or isinstance(o, (bool, int, float, str, bytes)):
            return (type(o).__name__, o)
        if isinstance(o, BaseModel):
            return "<config model>"  # holding the config is not compiling it
        if isinstance(o, (FakeServices, FakePool)):
            return "<services>"
        if isinstance(o, re.Pattern):
            return ("re", o.pattern, o.flags)
        if isinstance(o, type):
            return ("type", o.__module__, o.__qualname__)
        k = id(o)
        if k in done:
            return done[k]
        if k in active:
            return ("<cycle>", type(o).__qualname__)
        active.add(k)
        try:
            r = _fp(o, fp)
        finally:
            active.discard(k)
        done[k] = r
        return r

    return fp(obj)


def _fp(o: Any, fp: Callable) -> Any:
    if isinstance(o, (list, tuple)):
        return (type(o).__name__, tuple(fp(x) for x in o))
    if isinstance(o, (set, frozenset)):
        return (type(o).__name__, tuple(sorted(repr(fp(x)) for x in o)))
    if isinstance(o, dict):
        return ("dict", tuple((repr(fp(a)), fp(b)) for a, b in o.items()))
    if isinstance(o, types.MethodType):
        return ("method", o.__func__.__qualname__, fp(o.__self__))
    if isinstance(o, types.FunctionType):
        cells = []
        for c in o.__closure__ or ():
            try:
                cells.append(fp(c.cell_contents))
            except ValueError:  # empty cell
                cells.append("<empty>")
        return ("function", o.__module__, o.__qualname__, tuple(cells), fp(o.__defaults__), fp(o.__kwdefaults__))
    if isinstance(o, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return (
            "builtin",
            getattr(o, "__qualname__", repr(o)),
            fp(getattr(o, "__self__", None))
            if not isinstance(getattr(o, "__self__", None), types.ModuleType)
            else None,
        )
    if isinstance(o, ssl.SSLContext):
        return (
            "ssl",
            o.minimum_version,
            o.maximum_version,
            o.verify_mode,
            o.check_hostname,
            int(o.options),
            tuple(c["name"] for c in o.get_ciphers()),
            repr(o.get_ca_certs()),
            fp(o.sni_callback),
            fp(vars(o)),  # what it loaded: see `record_ssl`
        )
    if isinstance(o, (threading.Thread, type(threading.Lock()))):
        return "<volatile>"
    if isinstance(o, types.ModuleType):
        return ("module", o.__name__)
    attrs = []
    seen: set[str] = set()
    for cls in type(o).__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s in seen or s in VOLATILE_ATTRS or s in ("__dict__", "__weakref__"):
                continue
            seen.add(s)
            if hasattr(o, s):
                attrs.append((s, fp(getattr(o, s))))
    d = getattr(o, "__dict__", None)
    if isinstance(d, dict):
        for a, v in d.items():
            if a not in VOLATILE_ATTRS:
                attrs.append((a, fp(v)))
    return (type(o).__module__, type(o).__qualname__, tuple(attrs))


@pytest.fixture(scope="module")
def record_ssl():
    """TLS contexts do not expose their certificate chain, ALPN list or curves: record
    the calls that set them on the context, where `fingerprint` sees them."""
    mp = pytest.MonkeyPatch()

    def recorder(name):
        orig = getattr(ssl.SSLContext, name)

        def call(self, *args, **kw):
            self.__dict__.setdefault("_loaded", []).append((name, args, tuple(sorted(kw.items()))))
            return orig(self, *args, **kw)

        return call

    for name in ("load_cert_chain", "set_alpn_protocols", "set_ecdh_curve", "set_ciphers", "load_verify_locations"):
        mp.setattr(ssl.SSLContext, name, recorder(name))
    from agentgw.telemetry import tracing

    # an OTLP exporter is a background client: record what it would be built with
    mp.setattr(tracing._Exporter, "get", staticmethod(lambda *a, **kw: FakeExporter(a, kw)))
    yield
    mp.undo()


# --------------------------------------------------------------------------------------
# Loading and compiling
# --------------------------------------------------------------------------------------

#: A compile error that refuses a field (as opposed to rejecting a bad value for it).
REFUSAL = re.compile(
    r"not supported|only supported|(is|are) (only|not) used|has no effect|needs an? |must be the only|not both|cannot be combined"
)


@dataclass
class Outcome:
    kind: str  # "ok", "load-error", "compile-error"
    fp: Any = None
    errors: tuple[str, ...] = ()


class Compiled:
    def __init__(self, files: Path):
        self.files = files
        self.cache: dict[str, Outcome] = {}

    def __call__(self, doc: dict) -> Outcome:
        text = json.dumps(doc, sort_keys=True)
        hit = self.cache.get(text)
        if hit is not None:
            return hit
        try:
            cfg = load_config_text(text, fmt="json", env={})
        except ConfigError as exc:
            out = Outcome("load-error", errors=tuple(exc.errors))
        else:
            try:
                rt = compile_config(cfg, FakeServices(), str(self.files))
            except ConfigError as exc:
                out = Outcome("compile-error", errors=tuple(exc.errors))
            else:
                out = Outcome("ok", fp=fingerprint(_runtime_view(rt)))
        self.cache[text] = out
        return out


def _runtime_view(rt) -> dict:
    # ``cfg`` is the validated model the runtime was compiled from; everything else is
    # what the servers run on.
    return {k: v for k, v in vars(rt).items() if k != "cfg"}


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


class Req:
    """A required field: ``first`` in a minimal object, ``second`` as the mutation."""

    def __init__(self, first, second):
        self.first, self.second = first, second


class Alts:
    """Several mutations of one field (one per form of a union, or per meaning)."""

    def __init__(self, *values):
        self.values = values


class With:
    """Set the field to ``value`` and some of its siblings too (``None`` removes one)."""

    def __init__(self, value, **siblings):
        self.value, self.siblings = value, siblings


class In:
    """Mutate the field in a context: ``siblings`` are set in the base and the mutation
    alike (``None`` removes one), and ``doc(config)`` edits both, so the comparison
    isolates the field itself."""

    def __init__(self, value, doc: Callable[[dict], None] | None = None, **siblings):
        self.value, self.doc, self.siblings = value, doc, siblings


class Dyn:
    """A mutation computed from the current value and where it is: ``fn(current, loc)``."""

    def __init__(self, fn: Callable[[Any, list], Any]):
        self.fn = fn


class Patch:
    """Edit the whole document: ``fn(doc, parent, loc)`` sets the field (in ``parent``, the
    object at ``loc``) and whatever else it needs."""

    def __init__(self, fn: Callable[[dict, dict, list], None]):
        self.fn = fn


def _jwks(kid: str) -> str:
    from joserfc.jwk import ECKey, KeySet

    return json.dumps(KeySet([ECKey.generate_key("P-256", parameters={"kid": kid})]).as_dict(private=False))


JWKS_A, JWKS_B = _jwks("a"), _jwks("b")


def _pems() -> tuple[str, str, str, str]:
    """Two RSA private keys, a P-256 private key (PEM) and a certificate for the first."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    def pem(k) -> str:
        enc = serialization.NoEncryption()
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc).decode()

    r1, r2 = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(r1.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(r1, hashes.SHA256())
    )
    return pem(r1), pem(r2), pem(ec.generate_private_key(ec.SECP256R1())), cert.public_bytes(
        serialization.Encoding.PEM
    ).decode()


RSA_PEM, RSA_PEM2, EC_PEM, CERT_PEM = _pems()
_PKJ = {"method": "privateKeyJwt", "signingKey": RSA_PEM, "assertionAudience": "https://as.example", "clientSecret": None}
HTPASSWD = "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="  # password
CEL_A, CEL_B = 'request.path.startsWith("/a")', 'request.path.startsWith("/b")'
STR_CEL_A, STR_CEL_B = "request.path", "request.method"

#: Mutations for fields whose generic value would not be valid. Keyed ``Class.field``
#: (Python names). Paths of files are relative to the files the test writes.
VALUES: dict[str, Any] = {
    # -- root, process settings
    "GatewayConfig.admin_addr": "127.0.0.1:16000",
    "AdminApi.token": "an-admin-api-token-for-the-walk",  # (at least 16 characters)
    "AdminApi.basic_auth": {"username": "ops", "password": "a-password-for-the-walk"},
    "AdminBasicAuth.password": "another-password-for-the-walk",  # (at least 12 characters)
    "FrontendHTTP.headers_with_underscores": "reject",  # "drop" is the default
    "GatewayConfig.stats_addr": "127.0.0.1:16020",
    "GatewayConfig.readiness_addr": "127.0.0.1:16021",
    "GatewayConfig.worker_threads": "4",
    "GatewayConfig.local_xds_path": "xds.yaml",
    "GatewayConfig.ca_address": "https://ca.example:15012",
    "GatewayConfig.xds_address": "https://xds.example:15010",
    "GatewayConfig.additional_trust_domains": "other.local",
    "Session.key": "ab" * 32,
    "Tracing.otlp_endpoint": Req("http://127.0.0.1:4317", "http://127.0.0.1:4318"),
    "Tracing.random_sampling": "0.5",
    "Tracing.client_sampling": "0.5",
    "Tracing.path": "/v2/traces",
    "Fields.add": {"f": STR_CEL_A},
    "Fields.remove": ["method"],
    "Logging.level": "debug",
    "Logging.filter": CEL_A,
    "MetricsFields.add": {"f": STR_CEL_A},
    "Metrics.remove": ["requests"],
    "Keepalives.enabled": False,  # on unless false (agentgateway's default)
    "Limits.max_header_bytes": 4096,
    "GatewayConfig.trusted_proxies": ["10.0.0.0/8"],
    # -- binds, listeners, routes
    "Bind.port": Req(18002, 18003),
    "Bind.tunnel_protocol": Alts("connect", "hboneGateway"),
    "Bind.mode": "internal",
    "TcpRouteBackend.host": "127.0.0.1:9012",
    "TcpRouteBackend.service": With({"name": {"namespace": "ns", "hostname": "svc.example"}, "port": 80}, host=None),
    "TcpRouteBackend.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None)),
    "TcpRouteBackend.dynamic": With({}, host=None),
    "TcpRouteBackend.weight": 3,
    "TcpDynamic.target": "destination.hostname + ':443'",
    "Listener.protocol": Alts(
        With("HTTPS", tls={"cert": "server.pem", "key": "server.key"}),
        With("TCP", routes=None, tcpRoutes=[]),
        With("TLS", routes=None, tcpRoutes=[]),
        With("HBONE"),
    ),
    "Listener.hostname": "api.example.com",
    "ListenerTLS.cert": Req("server.pem", With("other.pem", key="other.key")),
    "ListenerTLS.key": Req("server.key", With("other.key", cert="other.pem")),
    "ListenerTLS.root": "ca.pem",
    "ListenerTLS.mode": In(With("dynamicCa", cert="ca.pem", key="ca.key"), doc=lambda d: _https(d)),
    "ListenerTLS.cipher_suites": ["ECDHE-RSA-AES128-GCM-SHA256"],
    "ListenerTLS.key_exchange_groups": ["X25519"],
    "Route.hostnames": ["api.example.com"],
    "RouteMatch.method": "POST",
    "PathMatch.exact": "/exact",
    "PathMatch.path_prefix": "/prefix",
    "PathMatch.regex": "^/re.*",
    "HeaderMatch.name": Req("x-a", "x-b"),
    "QueryMatch.name": Req("qa", "qb"),
    "StringMatch.exact": Req("v", "v2"),
    "StringMatch.regex": "^v.*",
    # -- route policies
    "BackendPolicies.ai": {
        "promptGuard": {"request": [{"regex": {"action": "reject", "rules": [{"pattern": "secret"}]}}]}
    },
    "RoutePolicies.ai": {
        "promptGuard": {"request": [{"regex": {"action": "reject", "rules": [{"pattern": "secret"}]}}]}
    },
    "HeaderModifier.add": {"x-add": "1"},
    "HeaderModifier.set": {"x-set": "1"},
    "HeaderModifier.remove": ["x-remove"],
    "RequestRedirect.scheme": "https",
    # ``none`` keeps the host, as when unset: not a change to look for
    "RequestRedirect.authority": Alts("auto", {"full": "other.example:8443"}),
    "RequestRedirect.status": 301,
    "UrlRewrite.authority": Alts("auto", {"full": "other.example:8443"}),
    "HostRewrite.full": "full.example",
    "HostRewrite.host": "host.example",
    "HostRewrite.port": 8443,
    "PathRewrite.full": Req("/full", "/full2"),
    "PathRewrite.prefix": Req("/prefix", "/prefix2"),
    "RequestMirror.percentage": Req(0.5, 0.25),
    "DirectResponse.status": Req(200, 418),
    "DirectResponse.body_expression": STR_CEL_A,
    "ConditionalDirectResponse.condition": CEL_A,
    "ConditionalDirectResponse.body_expression": STR_CEL_A,
    "ConditionalDirectResponse.status": Req(200, 418),
    "ConditionalDirectResponses.conditional": Req(
        [{"condition": CEL_B, "status": 200}], [{"condition": CEL_B, "status": 503}, {"status": 418}]
    ),
    "Delay.duration": Req("1s", 'request.headers["x-chaos"] == "1" ? 500 : 0'),
    "Cors.allow_headers": ["x-h"],
    "Cors.allow_methods": ["PUT"],
    "Cors.allow_origins": ["https://app.example"],
    "Cors.expose_headers": ["x-e"],
    "Csrf.additional_origins": ["https://app.example"],
    "Retry.codes": [503],
    "RateLimit.max_tokens": 10,
    "RateLimit.tokens_per_fill": With(2, maxTokens=10),
    "RateLimit.fill_interval": Req("1s", "2s"),
    "ConditionalRateLimit.condition": CEL_A,
    "ConditionalRateLimit.max_tokens": 10,
    "ConditionalRateLimit.tokens_per_fill": With(2, maxTokens=10),
    "ConditionalRateLimit.fill_interval": Req("1s", "2s"),
    "RemoteRateLimit.host": Req("127.0.0.1:8081", "127.0.0.1:8082"),
    "RateLimitEntry.key": Req("k", "k2"),
    "RateLimitEntry.value": Req(STR_CEL_A, STR_CEL_B),
    "RedisSettings.url": Req("redis://127.0.0.1:6379", "redis://127.0.0.1:6380"),
    "DescriptorLimit.requests_per_unit": Req(5, 6),
    "DescriptorLimit.unit": Req("minute", "hour"),
    "GlobalRateLimitDescriptor.when": CEL_A,
    "Transform.add": {"x-add": STR_CEL_A},
    "Transform.set": {"x-set": STR_CEL_A},
    "Transform.body": STR_CEL_A,
    "Transform.metadata": {"m": STR_CEL_A},
    "ConditionalTransformation.condition": CEL_A,
    "Authorization.rules": [CEL_A],
    "Authorization.allow": [CEL_A],
    "Authorization.deny": [CEL_A],
    "Authorization.require": [CEL_A],
    # -- authentication
    "JwtAuth.issuer": "https://issuer2.example",
    "JwtAuth.audiences": ["aud"],
    "JwtAuth.jwks": Alts(JWKS_B, {"file": "jwks.json"}),
    "JwtAuth.providers": With(
        [{"issuer": "https://p.example", "jwks": JWKS_A}], issuer=None, jwks=None, audiences=None
    ),
    "JwtProvider.issuer": Req("https://p.example", "https://p2.example"),
    "JwtProvider.jwks": Req(JWKS_A, Alts(JWKS_B, {"file": "jwks.json"})),
    "JwtProvider.audiences": ["aud"],
    "JwtValidationOptions.required_claims": ["exp"],
    "McpAuthentication.issuer": Req("https://issuer.example", "https://issuer2.example"),
    "McpAuthentication.audiences": Req(["https://gw.example/mcp"], ["https://gw.example/other"]),
    "McpAuthentication.resource_metadata": Req({"resource": "https://gw.example/mcp"}, {"scopesSupported": ["a"]}),
    "McpAuthentication.jwks": Alts(JWKS_B, {"file": "jwks.json"}),
    "McpAuthentication.client_id": "pre-registered",
    "McpAuthentication.provider": {"keycloak": {}},
    "McpIdp.auth0": With({}, keycloak=None),
    "McpIdp.okta": With({}, keycloak=None),
    "McpIdp.descope": With({}, keycloak=None),
    "McpIdp.authentik": With({}, keycloak=None),
    "McpIdp.entra": With({}, keycloak=None),
    "FileRef.file": Dyn(lambda cur, loc: FILE_ALT.get(cur) or _file_for(loc)),
    "FileOnlyRef.file": Dyn(lambda cur, loc: FILE_ALT.get(cur) or _file_for(loc)),
    "FileRef.url": "https://idp.example/jwks.json",
    "ClaimToHeader.claim": Req("sub", "email"),
    "ClaimToHeader.header": Req("x-sub", "x-email"),
    "HeaderLocation.name": Req("x-token", "x-token2"),
    "HeaderLocation.prefix": "Token ",
    "NameOnly.name": Req("token", "token2"),
    "AuthorizationLocation.expression": STR_CEL_A,
    "SimpleBackendRef.host": "127.0.0.1:9100",
    "ExtProc.host": "127.0.0.1:9101",
    "ExtProc.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, service=None)),
    "ExtProc.metadata_context": {"tenant.ns": {"tenant": 'request.headers["x-tenant"]'}},
    "ExtProc.request_attributes": {"path": "request.path"},
    "ExtProc.response_attributes": {"code": "response.code"},
    "LocalConfig.services": In(
        [{"name": "svc", "namespace": "ns", "hostname": "svc.example", "vips": ["10.0.0.7"], "ports": {80: 8080}}],
        doc=lambda d: _service_route(d),
    ),
    "StaticService.vips": ["10.0.0.8"],
    "StaticService.ports": {80: 8081},
    "SimpleBackendRef.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, service=None)),
    "OtlpLogging.host": "127.0.0.1:4318",
    "OtlpLogging.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, service=None)),
    "OtlpLogging.filter": CEL_A,
    "Oidc.issuer": Req("http://127.0.0.1:7080/realms/a", "http://127.0.0.1:7080/realms/b"),
    "Oidc.client_id": Req("client-a", "client-b"),
    "Oidc.client_secret": Req("secret-a", "secret-b"),
    "Oidc.redirect_uri": Req("http://127.0.0.1:3000/oauth/callback", "http://127.0.0.1:3000/cb"),
    "Oidc.scopes": ["email"],
    "NamespacedHostname.namespace": Req("ns", "ns2"),
    "NamespacedHostname.hostname": Req("svc.example", "svc2.example"),
    "ServiceRef.port": Req(80, 81),
    "ApiKeyAuth.keys": [{"key": "k-1"}, {"key": "k-2"}],
    "ApiKeyAuth.keys_file": "keys.yaml",
    "ApiKeyAuth.keys_dir": "keysdir",
    "ApiKeyEntry.key": Req("k-1", "k-2"),
    "ApiKeyEntry.key_hash": "sha256:" + "0" * 64,
    "ApiKeyEntry.metadata": {"team": "a"},
    "BasicAuth.htpasswd": Req(HTPASSWD, Alts("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", {"file": "htpasswd"})),
    "ServiceAccountAuth.issuer": "https://issuer2.example",
    "ServiceAccountAuth.jwks": Alts(JWKS_B, {"file": "jwks.json"}),
    "ServiceAccountAuth.token_review": "https://127.0.0.1:6443",
    "ServiceAccountAuth.ca_file": "ca.pem",
    "ServiceAccountAuth.token_file": "token",
    "ServiceAccountAuth.principal_header": "x-principal",
    "ServiceAccountAuth.audiences": ["aud"],
    "ExtAuthz.host": "127.0.0.1:9201",
    "ExtAuthz.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, service=None)),
    "ExtAuthz.failure_mode": Alts("allow", {"denyWithStatus": 401}),
    "ExtAuthz.include_request_headers": ["x-h"],
    "ExtAuthz.protocol": {"http": {}},  # {grpc: {}} is the default
    "ExtAuthzProtocol.grpc": Req({}, {"context": {"k": "v"}}),
    "ExtAuthzProtocol.http": {"path": "/check"},
    "ConditionalExtAuthz.condition": CEL_A,
    "ExtAuthzCache.key": Req([STR_CEL_A], [STR_CEL_B]),
    "ExtAuthzCache.ttl": Req('duration("60s")', 'duration("30s")'),
    "ExtAuthzCache.max_entries": 5,
    "ConditionalExtAuthz.host": "127.0.0.1:9200",
    # -- backends
    "RouteBackend.host": "127.0.0.1:9011",
    "RouteBackend.backend": Dyn(lambda cur, loc: "b-host" if cur is None else Patch(_other_named_backend)),
    "RouteBackend.route_group": "group",
    "RouteBackend.weight": 3,
    "NamedBackend.host": "127.0.0.1:9013",
    "BackendTLS.cert": With("client.pem", key="client.key"),
    "BackendTLS.key": With("client.key", cert="client.pem"),
    "BackendTLS.root": "ca.pem",
    "BackendTLS.hostname": "sni.example",
    "BackendTLS.alpn": Alts(["http/1.1"], ["h2"]),
    "BackendTLS.subject_alt_names": ["san.example"],
    "BackendTLS.key_exchange_groups": ["X25519"],
    "BackendHTTP.version": "HTTP/2",
    "KeyAuth.value": Req("sekrit", Alts("sekrit2", {"file": "apikey.txt"})),
    "BackendAuth.key": Alts("sekrit", {"file": "apikey.txt"}, {"value": "sekrit"}),
    "GcpAuth.credential": Alts("{}", {"file": "apikey.txt"}),
    "GcpAuth.audience": "https://aud.example",
    "AwsAuth.access_key_id": With("AKIDEXAMPLE", secretAccessKey="secret"),
    "AwsAuth.secret_access_key": With("secret", accessKeyId="AKIDEXAMPLE"),
    "AwsAuth.region": "eu-west-1",
    "AwsAuth.session_token": In("token", accessKeyId="AKIDEXAMPLE", secretAccessKey="secret"),
    "AwsAuth.service_name": "execute-api",
    "AssumeRole.role_arn": Req("arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:role/b"),
    # -- request log database
    "Database.url": Req("requests.db", Alts("postgresql://u:p@127.0.0.1:5432/db", "sqlite://other.db")),
    "Database.max_connections": In(7, url="postgresql://u:p@127.0.0.1:5432/db"),
    "StandardAttributes.user": "jwt.email",
    "StandardAttributes.group": '"team-" + jwt.sub',
    "GatewayConfig.standard_attributes": In(
        {"user": "jwt.sub", "group": "jwt.team"}, doc=lambda d: d.setdefault("config", {}).update(database={"url": "r.db"})
    ),
    # -- MCP
    "McpBackend.passthrough_headers": ["x-tenant"],
    "McpBackend.targets": Dyn(lambda cur, loc: [*cur, {"name": "t-extra", "stdio": {"cmd": "true"}}]),
    "McpBackend.failure_mode": "failOpen",  # failClosed is the default
    "McpTarget.name": Req("t9", "t8"),
    "McpHostSpec.host": "http://127.0.0.1:9310/mcp",
    "McpHostSpec.port": With(9301, host="127.0.0.1", path="/mcp"),
    "McpHostSpec.path": With("/other", host="127.0.0.1", port=9300),
    "McpHostSpec.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, port=None, path=None)),
    "OpenApiSpec.host": "http://127.0.0.1:9410",
    "OpenApiSpec.port": With(9401, host="127.0.0.1", path="/api"),
    "OpenApiSpec.path": With("/api2", host="127.0.0.1", port=9400),
    "OpenApiSpec.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, port=None, path=None)),
    "OpenApiSpec.schema_": Req(None, Alts({"file": "openapi.json"}, {"url": "https://api.example/openapi.json"})),
    "StdioSpec.cmd": Req("true", "false"),
    "StdioSpec.args": ["-x"],
    "StdioSpec.env": {"K": "V"},
    "DnsRebindingProtection.allowed_hosts": ["gw.example"],
    "DnsRebindingProtection.allowed_origins": ["https://app.example"],
    "McpToolRateLimit.tools": ["echo"],
    "McpToolRateLimit.max_tokens": Req(5, 6),
    "McpToolRateLimit.tokens_per_fill": Req(1, 2),
    "McpToolRateLimit.fill_interval": Req("1s", "2s"),
    # -- AI, LLM, AWS, A2A
    "AiBackend.name": "p1",
    "AiBackend.provider": {"anthropic": {}},
    "AiBackend.host_override": "127.0.0.1:9502",
    "AiBackend.path_override": "/v1/other",
    "AiBackend.path_prefix": "/prefix",
    "AiBackend.groups": With(
        [{"providers": [{"name": "g0", "provider": {"openAI": {}}, "hostOverride": "127.0.0.1:9501"}]}],
        name=None,
        provider=None,
        hostOverride=None,
        pathOverride=None,
        pathPrefix=None,
        tokenize=None,
        policies=None,
    ),
    "AiProvider.name": Req("g0", "g1"),
    "AiProvider.provider": Req({"openAI": {}}, {"anthropic": {}}),
    "AiProvider.host_override": "127.0.0.1:9503",
    "AiProvider.path_override": "/v1/other",
    "AiProvider.path_prefix": "/prefix",
    "AgentCore.agent_runtime_arn": Req(
        "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a",
        "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/b",
    ),
    "AgentCore.qualifier": "prod",
    "AgentCore.endpoint": "http://127.0.0.1:9600",
    "A2aStaticTarget.host": Req("127.0.0.1", "127.0.0.2"),
    "A2aStaticTarget.port": Req(9700, 9701),
    "A2aTarget.name": "agent-a",
    "A2aPolicy.agent": "agent-x",
    "A2aPolicy.card_paths": ["/card.json"],
    "A2aCardSigning.alg": With("ES256", signingKey=EC_PEM),
    "A2aCardSigning.signing_key": Alts(RSA_PEM2, {"file": "signing.pem"}),
    "A2aCardSigning.agent_keys": Alts(JWKS_B, {"file": "jwks.json"}),
    "A2aCardSigning.kid": "k2",
    "A2aCardSigning.jku": "https://keys.example/jwks.json",
    "LlmConfig.port": 4001,
    "LlmModel.name": Req("gpt-4o", "gpt-4o-mini"),
    "LlmModel.provider": Req(
        "openAI", Alts("anthropic", With({"custom": {}}, params={"baseUrl": "http://127.0.0.1:9800/v1"}))
    ),
    "LlmModel.defaults": {"temperature": 0.5},
    "LlmModel.visibility": "internal",
    "LlmModel.health": {"unhealthyExpression": "response.code == 429", "eviction": {"duration": "5s"}},
    "LlmProviderDefaults.health": {"eviction": {"duration": "5s"}},
    "LlmConfig.virtual_models": [{"name": "virt", "routing": {"weighted": {"targets": [{"model": "gpt-4o"}]}}}],
    "LlmProviderDef.provider": Req("openAI", Alts("anthropic", "groq")),
    "LlmProviderDefaults.defaults": {"temperature": 0.5},
    "LlmProviderDefaults.overrides": {"temperature": 0.5},
    "LlmProviderDefaults.transformation": {"max_tokens": "1000"},
    "LlmProviderDefaults.auth": {"key": "sk-provider"},
    "LlmProviderDefaults.prompt_caching": {"cacheSystem": True},
    "VirtualRouting.failover": With({"targets": [{"model": "gpt-4o", "priority": 0}]}, weighted=None),
    "VirtualRouting.conditional": With({"targets": [{"when": CEL_A, "model": "gpt-4o"}]}, weighted=None),
    "VirtualWeighted.targets": Req([{"model": "gpt-4o"}], [{"model": "gpt-4o", "weight": 2}, {"model": "gpt-4o"}]),
    "VirtualFailover.targets": Req(
        [{"model": "gpt-4o", "priority": 0}], [{"model": "gpt-4o", "priority": 0}, {"model": "gpt-4o", "priority": 1}]
    ),
    "VirtualConditional.targets": Req([{"model": "gpt-4o"}], [{"when": CEL_B, "model": "gpt-4o"}, {"model": "gpt-4o"}]),
    "VirtualWeightedTarget.model": In("gpt-4o-mini", doc=lambda d: _llm_model(d, "gpt-4o-mini")),
    "VirtualWeightedTarget.weight": In(3, doc=lambda d: _second_target(d, "weighted", {"weight": 1})),
    "VirtualFailoverTarget.model": In("gpt-4o-mini", doc=lambda d: _llm_model(d, "gpt-4o-mini")),
    "VirtualFailoverTarget.priority": In(2, doc=lambda d: _second_target(d, "failover", {"priority": 1})),
    "VirtualConditionalTarget.model": In("gpt-4o-mini", doc=lambda d: _llm_model(d, "gpt-4o-mini")),
    "VirtualConditionalTarget.when": CEL_B,
    "LlmModel.overrides": {"temperature": 0.5},
    "LlmModel.transformation": {"max_tokens": "1000"},
    "LlmModel.guardrails": {"request": [{"regex": {"action": "reject", "rules": [{"pattern": "secret"}]}}]},
    "LlmPolicies.guardrails": {"request": [{"regex": {"action": "reject", "rules": [{"pattern": "secret"}]}}]},
    "LlmParams.model": "gpt-4.1",
    "LlmParams.api_key": Alts("sk-test", {"file": "apikey.txt"}),
    "LlmParams.base_url": "http://127.0.0.1:9801/v1",
    "LlmParams.host_override": "127.0.0.1:9801",
    "LlmParams.path_override": "/v1/x",
    "LlmParams.path_prefix": "/prefix",
    "LlmParams.aws_region": "us-east-1",
    "LlmParams.vertex_region": "us-central1",
    "LlmParams.vertex_project": "proj",
    "LlmParams.azure_resource_name": "res",
    "LlmParams.azure_resource_type": "openai",
    "LlmParams.azure_api_version": "2024-10-21",
    "LlmParams.azure_project_name": "proj",
    "CustomProvider.custom": Req({}, {"formats": [{"type": "messages"}]}),
    "McpShorthand.port": 3001,
    "McpShorthand.targets": Dyn(lambda cur, loc: [*cur, {"name": "t-extra", "stdio": {"cmd": "true"}}]),
    "McpShorthand.failure_mode": "failOpen",
    # -- frontend
    "FrontendHTTP.max_buffer_size": 1024,
    "FrontendTLS.alpn": In(["h2"], doc=lambda d: _https(d)),  # what HTTPS listeners offer (h2 and/or http/1.1)
    # route delegation: a group the route names, and a group a route delegates to
    "RouteBackend.route_group": In("group", doc=lambda d: _route_group(d)),
    "LocalConfig.route_groups": Patch(lambda d, p, l: _delegate_first_route(d, p)),
    "RouteGroup.name": Patch(lambda d, p, l: _rename_group(d, p)),
    # the UI on a traffic listener: a gateway to attach to, and an admin credential (so
    # the attachment is guarded whatever ui.policies says)
    "UiShorthand.gateways": In(["ui-gw"], doc=lambda d: _ui_gateway(d)),
    "UiShorthand.policies": In({"apiKey": {"keys": [{"key": "walk-key-1"}]}}, doc=lambda d: _ui_gateway(d), gateways=["ui-gw"]),
    # defaults for HTTPS listeners: compared with one
    "FrontendTLS.cipher_suites": In(["ECDHE-RSA-AES128-GCM-SHA256"], doc=lambda d: _https(d)),
    "FrontendTLS.min_version": In("TLS_V1_3", doc=lambda d: _https(d)),
    "FrontendTLS.max_version": In("TLS_V1_2", doc=lambda d: _https(d)),
    "AccessLog.filter": CEL_A,
    "AccessLog.add": {"f": STR_CEL_A},
    "AccessLog.remove": ["method"],
    "FrontendTracing.host": Req("127.0.0.1:4317", "127.0.0.1:4318"),
    "FrontendTracing.path": "/v2/traces",
    "FrontendTracing.random_sampling": "0.5",
    "FrontendTracing.client_sampling": "0.5",
    "FrontendTracing.attributes": {"add": [{"name": "a", "expression": STR_CEL_A}]},
    "TargetedPolicy.target": Req(
        {"route": {"name": "http", "namespace": "default"}}, {"route": {"name": "named", "namespace": "default"}}
    ),
    "PolicyTarget.gateway": {"gatewayName": "default", "gatewayNamespace": "default"},
    "PolicyTarget.backend": {"backend": {"name": "b-host", "namespace": ""}},
    "RouteTarget.name": Req("http", "named"),
    "ListenerTarget.listener_name": "l0",
    "ListenerTarget.port": 18001,
    # -- backendAuth: credentials, jwtSign, oauthTokenExchange, crossAppAccess
    "BackendAuth.credentials": [{"location": {"header": {"name": "x-k"}}, "key": "v"}],
    "BackendAuthCredential.key": Req("v", Alts("v2", {"file": "apikey.txt"})),
    "BackendAuthCredential.location": Req({"header": {"name": "x-k"}}, {"queryParameter": {"name": "k"}}),
    "JwtSignAuth.signing_key": Req(RSA_PEM, RSA_PEM2),
    "JwtSignAuth.alg": Alts("RS384", With("ES256", signingKey=EC_PEM)),
    "JwtSignAuth.kid": "k1",
    "JwtSignAuth.claims": {"iss": "me"},
    "JwtSignAuth.ttl": "60s",
    "JwtSignAuth.location": {"header": {"name": "x-jwt"}},
    "TokenCacheConfig.max_entries": Alts(5, 0),
    "TokenCacheConfig.default_ttl": "60s",
    "OAuthTokenExchangeAuth.host": Req("127.0.0.1:9700", "127.0.0.1:9701"),
    "OAuthTokenExchangeAuth.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, service=None)),
    "OAuthTokenExchangeAuth.path": "/token",
    "OAuthTokenExchangeAuth.grant_type": "jwtBearer",
    "OAuthTokenExchangeAuth.audiences": ["a"],
    "OAuthTokenExchangeAuth.scopes": ["s"],
    "OAuthTokenExchangeAuth.resources": ["https://r.example"],
    "OAuthTokenExchangeAuth.requested_token_type": "urn:ietf:params:oauth:token-type:jwt",
    "OAuthTokenExchangeAuth.additional_params": {"p": '"v"'},
    "OAuthTokenExchangeAuth.authorization_location": {"header": {"name": "x-t"}},
    "OAuthTokenSpec.source": {"header": {"name": "x-sub"}},
    "OAuthTokenSpec.token_type": "urn:ietf:params:oauth:token-type:jwt",
    "OAuthActorTokenSpec.source": Req({"header": {"name": "x-actor"}}, {"cookie": {"name": "actor"}}),
    "OAuthActorTokenSpec.token_type": "urn:ietf:params:oauth:token-type:jwt",
    "OAuthClientAuth.client_id": Req("c", "c2"),
    "OAuthClientAuth.client_secret": Req("s", "s2"),
    "OAuthClientAuth.method": "clientSecretPost",
    "OAuthClientAuth.signing_key": With(RSA_PEM, **_PKJ),
    "OAuthClientAuth.assertion_audience": With(
        "https://as2.example", method="privateKeyJwt", signingKey=RSA_PEM, clientSecret=None
    ),
    "OAuthClientAuth.alg": With("ES256", **{**_PKJ, "signingKey": EC_PEM}),
    "OAuthClientAuth.kid": With("k1", **_PKJ),
    "OAuthClientAuth.certificate": With(CERT_PEM, certificateHeader="x5c", **_PKJ),
    "OAuthClientAuth.certificate_header": Alts(
        With("x5c", certificate=CERT_PEM, **_PKJ), With("x5t#S256", certificate=CERT_PEM, **_PKJ)
    ),
    "CrossAppAccessEndpoint.host": Req("127.0.0.1:9710", "127.0.0.1:9711"),
    "CrossAppAccessEndpoint.backend": Patch(lambda d, p, l: _new_host_backend(d, p, host=None, service=None)),
    "CrossAppAccessEndpoint.path": "/token",
    "CrossAppAccessAuth.audience": Req("https://as.example", "https://as2.example"),
    "CrossAppAccessAuth.resources": ["https://r.example"],
    "CrossAppAccessAuth.scopes": ["s"],
    "CrossAppAccessAuth.access_token_scopes": Alts(["x"], In([], scopes=["s"])),
}

#: Another file of the same kind, to change a ``{file: ...}``.
FILE_ALT = {
    "htpasswd": "htpasswd2",
    "apikey.txt": "apikey2.txt",
    "jwks.json": "jwks2.json",
    "openapi.json": "openapi2.json",
    "signing.pem": "signing2.pem",
}

#: ``{file: ...}`` under these fields names this file.
FILE_AT = {
    "BasicAuth.htpasswd": "htpasswd",
    "KeyAuth.value": "apikey.txt",
    "BackendAuth.key": "apikey.txt",
    "GcpAuth.credential": "apikey.txt",
    "LlmParams.api_key": "apikey.txt",
    "JwtAuth.jwks": "jwks.json",
    "JwtProvider.jwks": "jwks.json",
    "McpAuthentication.jwks": "jwks.json",
    "ServiceAccountAuth.jwks": "jwks.json",
    "OpenApiSpec.schema_": "openapi.json",
    "A2aCardSigning.agent_keys": "jwks.json",
    "A2aCardSigning.signing_key": "signing.pem",
}

#: Minimal objects where the required fields alone are not a valid object.
MINIMAL: dict[str, dict] = {
    "Listener": {"routes": []},
    "ListenerTLS": {"cert": "server.pem", "key": "server.key"},
    "Route": {"backends": [{"host": "127.0.0.1:9009"}]},
    "McpTarget": {"name": "t9", "mcp": {"host": "http://127.0.0.1:9300/mcp"}},
    "McpHostSpec": {"host": "http://127.0.0.1:9300/mcp"},
    "OpenApiSpec": {
        "schema": json.dumps({"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {}}),
        "host": "http://127.0.0.1:9400",
    },
    "JwtAuth": {"issuer": "https://issuer.example", "jwks": JWKS_A},
    "ServiceAccountAuth": {"issuer": "https://kubernetes.default.svc", "jwks": JWKS_A},
    "ApiKeyAuth": {"keys": [{"key": "k-1"}]},
    "ExtAuthz": {"host": "127.0.0.1:9200"},
    "ConditionalExtAuthz": {"host": "127.0.0.1:9200"},
    "AiBackend": {"name": "p0", "provider": {"openAI": {}}, "hostOverride": "127.0.0.1:9501"},
    "AgentCore": {"agentRuntimeArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a"},
    "A2aBackend": {"targets": [{"static": {"host": "127.0.0.1", "port": 9700}}]},
    "LlmModel": {"name": "gpt-4o", "provider": "openAI"},
    "LlmConfig": {"models": [{"name": "gpt-4o", "provider": "openAI"}]},
    "McpShorthand": {"targets": [{"name": "s0", "stdio": {"cmd": "true"}}]},
    # (passthrough is the LLM default when no key is at hand: a key changes every backend kind)
    "BackendAuth": {"key": "walk-key"},
    "BackendAuthCredential": {"location": {"header": {"name": "x-k"}}, "key": "v"},
    "JwtSignAuth": {"signingKey": RSA_PEM},
    "A2aCardSigning": {"signingKey": RSA_PEM, "alg": "RS256", "kid": "k"},
    "OAuthTokenExchangeAuth": {"host": "127.0.0.1:9700"},
    "OAuthClientAuth": {"clientId": "c", "clientSecret": "s"},
    "OAuthActorTokenSpec": {"source": {"header": {"name": "x-actor"}}},
    "CrossAppAccessEndpoint": {"host": "127.0.0.1:9710", "clientAuth": {"clientId": "c", "clientSecret": "s"}},
    "CrossAppAccessAuth": {
        "identityProvider": {"host": "127.0.0.1:9710", "clientAuth": {"clientId": "c", "clientSecret": "s"}},
        "resourceAuthorizationServer": {"host": "127.0.0.1:9712", "clientAuth": {"clientId": "r", "clientSecret": "s"}},
        "audience": "https://as.example",
    },
    "RemoteRateLimit": {
        "domain": "d",
        "host": "127.0.0.1:8081",
        "descriptors": [{"entries": [{"key": "k", "value": STR_CEL_A}]}],
    },
    "GlobalRateLimit": {
        "redis": {"url": "redis://127.0.0.1:6379"},
        "descriptors": [
            {"entries": [{"key": "k", "value": STR_CEL_A}], "rateLimit": {"requestsPerUnit": 5, "unit": "minute"}}
        ],
    },
    "Tracing": {"otlpEndpoint": "http://127.0.0.1:4317"},
    "FrontendTracing": {"host": "127.0.0.1:4317"},
    "OtlpLogging": {"host": "127.0.0.1:4317"},
    "Oidc": {
        "issuer": "http://127.0.0.1:7080/realms/a",
        "clientId": "client-a",
        "clientSecret": "secret-a",
        "redirectURI": "http://127.0.0.1:3000/oauth/callback",
    },
    "FrontendTCP": {"keepalives": {"enabled": True}},
    "RequestMirror": {"backend": {"host": "127.0.0.1:9101"}, "percentage": 0.5},
    "DirectResponse": {"status": 200},
    "TargetedPolicy": {
        "name": {"name": "p", "namespace": "default"},
        "target": {"route": {"name": "http", "namespace": "default"}},
        "policy": {"backendAuth": {"key": "targeted-key"}},
    },
}


# --------------------------------------------------------------------------------------
# Fields that by design do not change the runtime (keep this short; say why)
# --------------------------------------------------------------------------------------

#: ``Class.field`` (everywhere) or a path pattern (``*`` for any part) -> why setting it
#: leaves the compiled runtime as it was.
NO_OP: dict[str, str] = {
    # Provenance written by the Kubernetes translator (which Gateway, listener, HTTPRoute
    # and rule an entry came from). agentgw has no control plane to report to; routes
    # and listeners are known by their `name`.
    "GatewayConfig.namespace": "the Gateway's namespace, for a control plane; informational",
    # A name models reference (`provider: {reference: ...}`): renamed with its references,
    # the models compile the same.
    "LlmProviderDef.name": "the key llm.models entries reference a provider by; nothing else",
    "GatewayConfig.gateway": "the Gateway's name, for a control plane; informational",
    "Listener.namespace": "the listener's Gateway namespace; informational (listeners are known by name)",
    "Listener.gateway_name": "the listener's Gateway name; informational (listeners are known by name)",
    "Route.namespace": "the HTTPRoute's namespace; informational (routes are known by name)",
    "Route.rule_name": "the HTTPRoute rule's name; informational (routes are known by name)",
    "AttachedRoute.namespace": "the route's namespace; informational (routes are known by name)",
    "AttachedRoute.rule_name": "the route rule's name; informational (routes are known by name)",
    "TcpRoute.namespace": "the route's namespace; informational (routes are known by name)",
    "TcpRoute.rule_name": "the route rule's name; informational (routes are known by name)",
    "AttachedTcpRoute.namespace": "the route's namespace; informational (routes are known by name)",
    "AttachedTcpRoute.rule_name": "the route rule's name; informational (routes are known by name)",
    # A service is dialled by its hostname (the cluster DNS name); the namespace only
    # names it, and an ext_authz server has no name in the runtime to put it in.
    "*.extAuthz.service.name.namespace": "an authorizer is dialled by hostname; the namespace only names it",
    "*.extProc.service.name.namespace": "a processor is dialled by hostname; the namespace only names it",
    "*.endpointPicker.service.name.namespace": "a picker is dialled by hostname; the namespace only names it",
    "StaticService.name": "the Service's own name; backends name a service by namespace/hostname, as in agentgateway",
    # agentgw forwards no HTTP trailers (neither way), so there are none to send or skip
    "ProcessingOptions.request_trailer_mode": "agentgw passes no trailers: there are none to send",
    "ProcessingOptions.response_trailer_mode": "agentgw passes no trailers: there are none to send",
    # A named a2a backend is known by the backend's name (metrics, logs, the default
    # agent name); its targets' names label inline a2a backends only.
    "backends.*.a2a.targets.*.name": "a named a2a backend is known by its own name",
    # The walk's base provider: each other McpIdp entry replaces it and must change the
    # runtime; keycloak's own adaptation is checked in tests/mcp/test_authentication.py.
    "McpIdp.keycloak": "the base every other provider mutation replaces; tested by behaviour",
    # A targeted policy's own name identifies it (as a Kubernetes object name would);
    # what it does is its target and policy.
    "TargetedPolicy.name": "the policy's identity; informational",
    "policies.*.name.name": "the policy's identity; informational",
    "policies.*.name.namespace": "the policy's identity; informational",
    # What a target names: a value that names nothing is refused at load
    # (tests/config/test_targeted_policies.py); the walk's document has one gateway
    # (default/default), one listener and routes in one namespace, so no other value here
    # could name something else.
    "ListenerTarget.gateway_name": "the one standalone gateway is default/default; any other is refused",
    "ListenerTarget.gateway_namespace": "the one standalone gateway is default/default; any other is refused",
    "ListenerTarget.listener_name": "with one listener, naming it selects what the gateway does (tested by behaviour)",
    "ListenerTarget.port": "with one listener, its port selects what the gateway does (tested by behaviour)",
    "RouteTarget.namespace": "standalone routes share one namespace; another names nothing and is refused",
    "BackendName.namespace": "top-level backends have the empty namespace; another names nothing and is refused",
}

#: Fields holding a model whose every field is walked at another path (the walk checks
#: the field itself there, but does not descend into it a second time).
WALKED_ELSEWHERE: dict[str, str] = {
    "TargetedPolicy.policy": "route policies, walked at binds[].listeners[].routes[].policies (one per entry here)",
    "RouteGroup.routes": "the Route model, walked at binds[].listeners[].routes[] (a group's routes compile the same way)",
}

#: Process settings the gateway process applies itself (runner.py, ports.py) from the
#: validated config -- at start, on reload, at shutdown -- rather than through the
#: compiled runtime. ``test_process_settings_are_read`` checks that each is read there.
READ_BY_PROCESS: dict[str, str] = {  # Class.field -> how the process source reads it
    "GatewayConfig.admin_addr": r"\badmin_addr\b",
    "GatewayConfig.stats_addr": r"\bstats_addr\b",
    "GatewayConfig.readiness_addr": r"\breadiness_addr\b",
    "GatewayConfig.enable_ipv6": r"\.enable_ipv6\b",
    "GatewayConfig.connection_termination_deadline": r"\.connection_termination_deadline\b",
    "GatewayConfig.connection_min_termination_deadline": r"\.connection_min_termination_deadline\b",
    "Logging.level": r"\blg\.level\b",
    "Logging.format": r"\blg\.format\b",
    "BackendDefaults.pool_idle_timeout": r"\.pool_idle_timeout\b",
    "BackendDefaults.pool_max_size": r"\.pool_max_size\b",
}


def _no_op(k: str, loc: list) -> bool:
    if k in NO_OP or k in READ_BY_PROCESS:
        return True
    parts = [str(p) for p in loc]
    for pattern in NO_OP:
        if "." in pattern and not pattern[0].isupper():
            pat = pattern.split(".")
            if pat[0] == "*":
                if len(parts) >= len(pat) - 1 and all(a == "*" or a == b for a, b in zip(pat[1:][::-1], parts[::-1])):
                    return True
            elif len(pat) == len(parts) and all(a == "*" or a == b for a, b in zip(pat, parts)):
                return True
    return False


# --------------------------------------------------------------------------------------
# Schema introspection
# --------------------------------------------------------------------------------------


def _strip(tp):
    """Drop ``Annotated`` wrappers that only carry metadata (secrets, tags)."""
    while get_origin(tp) is typing.Annotated:
        args = get_args(tp)
        if args[0] is Duration:
            return Duration
        tp = args[0]
    return tp


def branches(tp) -> list:
    """The forms a value of type ``tp`` can take (``None`` left out)."""
    tp = _strip(tp)
    if get_origin(tp) is Union or isinstance(tp, types.UnionType):
        out = []
        for a in get_args(tp):
            if a is not type(None):
                out.extend(branches(a))
        return out
    return [tp]


def is_model(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def alias(cls, name) -> str:
    f = cls.model_fields[name]
    return f.alias or name


def key(cls, name) -> str:
    return f"{cls.__name__}.{name}"


def _field_default(f):
    if f.default_factory is not None:
        return f.default_factory()
    return f.default


# --------------------------------------------------------------------------------------
# Generating values
# --------------------------------------------------------------------------------------


class NoValue(Exception):
    pass


_counter = [0]


def generic(tp, field, current, owner: str) -> Any:
    """A valid-looking value of type ``tp`` different from ``current``."""
    tp = _strip(tp)
    origin = get_origin(tp)
    if is_model(tp):
        return minimal(tp, owner)
    if tp is bool:
        return not bool(current)
    if tp is Duration:
        return "9s" if current == 7 else "7s"
    if tp is int:
        lo = hi = None
        for m in getattr(field, "metadata", ()):
            lo = getattr(m, "ge", lo)
            hi = getattr(m, "le", hi)
        v = (current + 1) if isinstance(current, int) else max(lo or 0, 7)
        if hi is not None and v > hi:
            v = (current - 1) if isinstance(current, int) else hi
        return v
    if tp is float:
        return 0.25 if current != 0.25 else 0.5
    if tp is str:
        _counter[0] += 1
        return f"enforced{_counter[0]}"
    if origin is Literal:
        for v in get_args(tp):
            if v != current:
                return v
    if origin is list:
        (item,) = get_args(tp)
        return list(current or []) + [generic(item, None, None, owner)]
    if origin is dict:
        k, v = get_args(tp)
        if _strip(v) is str:
            return {"x-enforced": "1"}
        return {"enforced": 1}
    raise NoValue(f"no generic value for type {tp!r}")


def minimal(cls: type[BaseModel], owner: str = "") -> dict:
    """The smallest valid object of ``cls`` (required fields only)."""
    if cls.__name__ in MINIMAL:
        return copy.deepcopy(MINIMAL[cls.__name__])
    out: dict = {}
    for name, f in cls.model_fields.items():
        if not f.is_required():
            continue
        out[alias(cls, name)] = first_value(cls, name, f)
    group = getattr(cls, "_exactly_one_of", ())
    if isinstance(group, tuple) and group and not any(alias(cls, n) in out for n in group):
        n = group[0]
        out[alias(cls, n)] = first_value(cls, n, cls.model_fields[n])
    return out


def first_value(cls, name, f) -> Any:
    k = key(cls, name)
    v = VALUES.get(k)
    if isinstance(v, Req):
        v = v.first
    if k in FILE_AT and v is None:
        return {"file": FILE_AT[k]}
    if isinstance(v, Alts):
        v = v.values[0]
    if isinstance(v, (With, In)):
        v = v.value
    if isinstance(v, (Dyn, Patch)):
        v = None
    if v is not None:
        return copy.deepcopy(v)
    b = branches(f.annotation)
    return generic(b[0], f, None, k)


def _file_for(loc) -> str:
    """The file a ``{file: ...}`` at ``loc`` should name."""
    where = " ".join(str(p) for p in loc)
    for part, name in (("schema", "openapi.json"), ("jwks", "jwks.json"), ("htpasswd", "htpasswd")):
        if part in where:
            return name
    return "apikey.txt"


def mutations(cls, name, f, current, loc=()) -> list:
    """The values to try for field ``name`` of ``cls`` whose value is ``current``."""
    k = key(cls, name)
    if k in VALUES and VALUES[k] is not None:
        v = VALUES[k]
        if isinstance(v, Req):
            v = v.second
        if isinstance(v, Dyn):
            v = v.fn(current, list(loc))
        vals = list(v.values) if isinstance(v, Alts) else [v]
        if len(vals) == 1 and isinstance(vals[0], Alts):
            vals = list(vals[0].values)
        return [x if isinstance(x, Patch) else copy.deepcopy(x) for x in vals]
    if k in PATCHES:
        return [PATCHES[k]]
    out = []
    for b in branches(f.annotation):
        if is_model(b) and b.__name__ in ("FileOnlyRef", "FileRef") and k in FILE_AT:
            v = {"file": FILE_AT[k]}
        elif is_model(_strip(b)) and isinstance(current, dict):
            continue  # an object already there: walked in place
        else:
            v = generic(b, f, current, k)
        if v != current:
            out.append(v)
    if not out and not _model_value_type(f):
        raise NoValue(f"no value for {k}")
    return out


def _model_value_type(f) -> bool:
    for b in branches(f.annotation):
        tp = _strip(b)
        if is_model(tp):
            return True
        if get_origin(tp) is list and any(is_model(_strip(x)) for x in branches(get_args(tp)[0])):
            return True
    return False


PATCHES: dict[str, Patch] = {}


# --------------------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------------------


def get_at(doc, loc):
    for part in loc:
        doc = doc[part]
    return doc


def fmt_path(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class Walk:
    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        self.problems: list[str] = []
        self.checked: dict[str, str] = {}  # path -> outcome, for the report
        self.fields: set[str] = set()  # Class.field walked at least once
        self.accepted: set[tuple[str, str]] = set()  # (Class.field, model) set without being refused
        self.outcomes: dict[str, set[str]] = {}  # Class.field -> "enforced" / "refused: <why>"

    def problem(self, msg: str) -> None:
        self.problems.append(msg)

    def model(self, doc: dict, loc: list, cls: type[BaseModel]) -> None:
        """Walk every field of the ``cls`` object at ``loc`` in ``doc`` (which compiles)."""
        base = self.compiled(doc)
        assert base.kind == "ok", (fmt_path(loc), base.errors)
        obj = get_at(doc, loc)
        for name, f in cls.model_fields.items():
            k = key(cls, name)
            self.fields.add(k)
            ak = alias(cls, name)
            floc = loc + [ak]
            fpath = fmt_path(floc)
            if _no_op(k, floc):
                continue
            current = obj.get(ak, _field_default(f)) if isinstance(obj, dict) else None
            try:
                muts = mutations(cls, name, f, current, loc)
            except NoValue as exc:
                self.problem(f"{fpath} ({k}): {exc}; add a value to VALUES (or MINIMAL) in {__file__}")
                continue
            descended = False
            for mval in muts:
                base_doc, base_fp = doc, base.fp
                if isinstance(mval, In):
                    base_doc = copy.deepcopy(doc)
                    if mval.doc is not None:
                        mval.doc(base_doc)
                    bparent = get_at(base_doc, loc)
                    for sk, sv in mval.siblings.items():
                        if sv is None:
                            bparent.pop(sk, None)
                        else:
                            bparent[sk] = sv
                    b2 = self.compiled(base_doc)
                    if b2.kind != "ok":
                        self.problem(
                            f"{fpath} ({k}): the context {mval.siblings} does not compile: {'; '.join(b2.errors)[:400]}"
                        )
                        continue
                    base_fp = b2.fp
                    mval = mval.value
                new = copy.deepcopy(base_doc)
                parent = get_at(new, loc)
                if not isinstance(mval, Patch) and (mval.value if isinstance(mval, With) else mval) == parent.get(
                    ak, current
                ):
                    self.problem(
                        f"{fpath} ({k}): the test's value {json.dumps(parent.get(ak))[:120]} is the current one; "
                        f"give VALUES a different one"
                    )
                    continue
                if isinstance(mval, Patch):
                    mval.fn(new, parent, loc)
                    value = parent.get(ak)
                else:
                    value = mval.value if isinstance(mval, With) else mval
                    parent[ak] = value
                    if isinstance(mval, With):
                        for sk, sv in mval.siblings.items():
                            if sv is None:
                                parent.pop(sk, None)
                            else:
                                parent[sk] = sv
                    for g in (getattr(cls, "_exactly_one_of", ()), getattr(cls, "_at_most_one_of", ())):
                        if isinstance(g, tuple) and name in g:
                            for other in g:
                                if other != name:
                                    parent.pop(alias(cls, other), None)
                out = self.compiled(new)
                if out.kind == "load-error":
                    self.problem(
                        f"{fpath} ({k}): the test's value {json.dumps(value)[:120]} is not valid config: "
                        f"{'; '.join(out.errors)[:400]} -- fix VALUES/MINIMAL in {Path(__file__).name}"
                    )
                    continue
                if out.kind == "compile-error":
                    mine = [e for e in out.errors if _under(e, fpath)]
                    refused = [e for e in mine if REFUSAL.search(e.split(": ", 1)[1])]
                    if refused:
                        self.checked[fpath] = "refused: " + refused[0]
                        self.outcomes.setdefault(k, set()).add("refused: " + refused[0].split(": ", 1)[1])
                        continue
                    self.problem(
                        f"{fpath} ({k}): the test's value {json.dumps(value)[:120]} does not compile: "
                        f"{'; '.join(out.errors)[:400]} -- fix VALUES/MINIMAL, or if the field is refused "
                        f"say so in an error on its path that REFUSAL recognises"
                    )
                    continue
                container = _model_value(cls, name, value)
                empty = container and value in ({}, [{}])
                if out.fp == base_fp and not empty:
                    self.problem(
                        f"{fpath} ({k}): accepted but ignored (setting it to {json.dumps(value)[:120]} "
                        f"does not change the compiled runtime)"
                    )
                    continue
                self.checked[fpath] = "enforced"
                self.outcomes.setdefault(k, set()).add("enforced")
                self._accept(k, f, value)
                # descend into a model value the mutation created, unless the base has one
                if container and (current in (None, [], {}) or not _same_form(current, value)):
                    self.descend(new, floc, cls, name, value)
                    descended = True
            if not descended and current not in (None, [], {}) and _model_value(cls, name, current):
                self._accept(k, f, current)
                self.descend(doc, floc, cls, name, current)

    def _accept(self, k: str, f, value) -> None:
        """Note which model(s) the accepted value of field ``k`` holds."""
        for el in value if isinstance(value, list) else [value]:
            models = []
            for b in branches(f.annotation):
                tp = _strip(b)
                if get_origin(tp) is list:
                    models += [_strip(x) for x in branches(get_args(tp)[0]) if is_model(_strip(x))]
                elif is_model(tp):
                    models.append(tp)
            sub = _pick_model(models, el)
            if sub is not None:
                self.accepted.add((k, sub.__name__))

    def descend(self, doc, floc, cls, name, value) -> None:
        if key(cls, name) in WALKED_ELSEWHERE:
            return
        f = cls.model_fields[name]
        for b in branches(f.annotation):
            tp = _strip(b)
            if get_origin(tp) is list and isinstance(value, list):
                (item,) = get_args(tp)
                item_models = [x for x in branches(item) if is_model(x)]
                for i, el in enumerate(value):
                    sub = _pick_model(item_models, el)
                    if sub is not None:
                        self.model(doc, floc + [i], sub)
                return
        models = [_strip(b) for b in branches(f.annotation) if is_model(_strip(b))]
        sub = _pick_model(models, value)
        if sub is not None:
            self.model(doc, floc, sub)


def _under(err: str, fpath: str) -> bool:
    p = err.split(": ", 1)[0]
    return p == fpath or p.startswith(fpath + ".") or p.startswith(fpath + "[")


def _model_value(cls, name, value) -> bool:
    f = cls.model_fields[name]
    for b in branches(f.annotation):
        tp = _strip(b)
        if is_model(tp) and isinstance(value, dict):
            return True
        if get_origin(tp) is list and isinstance(value, list) and any(is_model(x) for x in branches(get_args(tp)[0])):
            return True
    return False


def _pick_model(models, value):
    if not isinstance(value, dict):
        return None
    if len(models) == 1:
        return models[0]
    for mcls in models:
        try:
            mcls.model_validate(value)
            return mcls
        except Exception:  # noqa: BLE001 - try the next form
            continue
    return None


def _same_form(a, b) -> bool:
    return type(a) is type(b) and (not isinstance(a, dict) or set(a) == set(b))


# --------------------------------------------------------------------------------------
# Sites: base configs that put each part of the schema in a context where it acts
# --------------------------------------------------------------------------------------

STDIO = {"cmd": "true"}


def _routes(*routes) -> dict:
    return {"binds": [{"port": 18001, "listeners": [{"name": "l0", "routes": list(routes)}]}]}


def _route(name, backend, prefix) -> dict:
    return {"name": name, "matches": [{"path": {"pathPrefix": prefix}}], "backends": [backend]}


HOST_ROUTE = _route("http", {"host": "127.0.0.1:9001"}, "/h")
MCP_ROUTE = _route("mcp", {"mcp": {"targets": [{"name": "t0", "stdio": STDIO}]}}, "/m")
AI_ROUTE = _route("ai", {"ai": {"name": "p0", "provider": {"openAI": {}}, "hostOverride": "127.0.0.1:9501"}}, "/ai")
A2A_ROUTE = _route("a2a", {"a2a": {"targets": [{"static": {"host": "127.0.0.1", "port": 9700}}]}}, "/a2a")
AWS_ROUTE = _route(
    "aws",
    {"aws": {"agentCore": {"agentRuntimeArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a"}}},
    "/aws",
)
NAMED = {"backends": [{"name": "b-host", "host": "127.0.0.1:9003"}]}


def _named_backend_patch(doc, parent, loc):
    """``backends: [...]`` with a route that uses it (an unused backend compiles to nothing)."""
    parent["backends"] = [*parent.get("backends", []), {"name": "b-new", "host": "127.0.0.1:9004"}]
    doc["binds"][0]["listeners"][0]["routes"].append(_route("named-new", {"backend": "b-new"}, "/named-new"))


def _rename_backend(doc, parent, loc):
    """A named backend's ``name``, and every reference to it."""
    old = parent["name"]

    def fix(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "backend" and v == old:
                    node[k] = "b-renamed"
                else:
                    fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)

    fix(doc)
    parent["name"] = "b-renamed"


def _https(doc):
    """The first listener as an HTTPS listener."""
    lst = doc["binds"][0]["listeners"][0]
    lst["protocol"] = "HTTPS"
    lst["tls"] = {"cert": "server.pem", "key": "server.key"}


def _service_route(doc) -> None:
    """The first HTTP route sends to service ns/svc.example:80 (for ``services``)."""
    for b in doc.get("binds", []):
        for lst in b.get("listeners", []):
            for r in lst.get("routes") or []:
                r["backends"] = [{"service": {"name": "ns/svc.example", "port": 80}}]
                return


def _route_group(doc) -> None:
    """``routeGroups``: a group named ``group`` (for a ``routeGroup`` backend to name)."""
    doc["routeGroups"] = [{"name": "group", "routes": [{"backends": [{"host": "127.0.0.1:9009"}]}]}]


def _delegate_first_route(doc, parent) -> None:
    """``routeGroups`` with a group the first HTTP route delegates to."""
    parent["routeGroups"] = [{"name": "walk-group", "routes": [{"backends": [{"host": "127.0.0.1:9009"}]}]}]
    for b in doc.get("binds", []):
        for lst in b.get("listeners", []):
            for r in lst.get("routes") or []:
                r["backends"] = [{"routeGroup": "walk-group"}]
                return


def _rename_group(doc, parent) -> None:
    """A group's ``name``, and the routes that delegate to it, renamed."""
    old, parent["name"] = parent["name"], parent["name"] + "-renamed"
    for b in doc.get("binds", []):
        for lst in b.get("listeners", []):
            for r in lst.get("routes") or []:
                for be in r.get("backends") or []:
                    if be.get("routeGroup") == old:
                        be["routeGroup"] = parent["name"]


def _ui_gateway(doc) -> None:
    """A named gateway for ``ui.gateways``, and an admin token guarding the UI there."""
    doc.setdefault("gateways", {})["ui-gw"] = {"port": 16095}
    doc.setdefault("config", {})["admin"] = {"token": "an-admin-api-token-for-the-walk"}


def _new_host_backend(doc, parent, **clear):
    """``backend:`` naming a top-level host backend added for it."""
    doc.setdefault("backends", []).append({"name": "b-ref", "host": "127.0.0.1:9006"})
    for k in clear:
        parent.pop(k, None)
    parent["backend"] = "b-ref"


def _other_named_backend(doc, parent, loc):
    """``backend:`` naming another top-level backend."""
    doc.setdefault("backends", []).append({"name": "b-other", "host": "127.0.0.1:9005"})
    parent["backend"] = "b-other"


def _tool_target(doc, parent, loc):
    """``toolRateLimits[].target``: the name of one of the backend's targets."""
    backend = get_at(doc, loc[:-2])
    parent["target"] = backend["targets"][0]["name"]


PATCHES["LocalConfig.backends"] = Patch(_named_backend_patch)
PATCHES["NamedBackend.name"] = Patch(_rename_backend)
PATCHES["McpToolRateLimit.target"] = Patch(_tool_target)


def _other_backend_target(doc, parent, loc):
    """A backend target naming another top-level backend."""
    doc.setdefault("backends", []).append({"name": "b-other", "host": "127.0.0.1:9005"})
    parent["name"] = "b-other"


PATCHES["BackendName.name"] = Patch(_other_backend_target)


def _llm_model(doc, name):
    """Another ``llm.models`` entry (for a virtual model's target)."""
    doc["llm"]["models"].append({"name": name, "provider": "openAI"})


def _second_target(doc, kind, extra):
    """A second target of the first virtual model (so a weight or priority orders something)."""
    _llm_model(doc, "gpt-4o-mini")
    doc["llm"]["virtualModels"][0]["routing"][kind]["targets"].append({"model": "gpt-4o-mini", **extra})


def _llm_provider_patch(doc, parent, loc):
    """``llm.providers``: a provider the first model references."""
    parent["providers"] = [{"name": "shared", "provider": "openAI", "params": {"baseUrl": "http://127.0.0.1:9802/v1"}}]
    parent["models"][0]["provider"] = {"reference": "shared"}
    parent["models"][0]["params"] = {k: v for k, v in parent["models"][0].get("params", {}).items() if k == "model"}


def _rename_llm_provider(doc, parent, loc):
    """A provider's ``name``, and the references to it."""
    old = parent["name"]
    for mdl in doc["llm"]["models"]:
        if mdl.get("provider") == {"reference": old}:
            mdl["provider"] = {"reference": "renamed"}
    parent["name"] = "renamed"


def _other_llm_provider(doc, parent, loc):
    """``provider.reference`` naming another provider."""
    doc["llm"]["providers"].append({"name": "other", "provider": "anthropic"})
    parent["reference"] = "other"


PATCHES["LlmConfig.providers"] = Patch(_llm_provider_patch)
PATCHES["LlmProviderDef.name"] = Patch(_rename_llm_provider)
PATCHES["ProviderReference.reference"] = Patch(_other_llm_provider)


def _gateway(doc, name, **extra) -> str:
    """A named gateway of its own (on a port of its own) for a section to attach to."""
    gws = doc.setdefault("gateways", {})
    gws[name] = {"port": 18100 + len(gws), **extra}
    return name


def _gateways_patch(doc, parent, loc):
    _gateway(parent, "g-new")


def _routes_patch(doc, parent, loc):
    """``routes``: a route attached to a gateway of its own."""
    parent["routes"] = [
        {
            "gateways": _gateway(parent, "g-routes"),
            "matches": [{"path": {"pathPrefix": "/g"}}],
            "backends": [{"host": "127.0.0.1:9010"}],
        }
    ]


def _tcp_routes_patch(doc, parent, loc):
    """``tcpRoutes``: a TCP route attached to a TLS gateway of its own."""
    gw = _gateway(parent, "g-tcp", protocol="TLS")
    parent["tcpRoutes"] = [{"gateways": gw, "backends": [{"host": "127.0.0.1:9011"}]}]


def _attach_patch(doc, parent, loc):
    """``gateways`` of a route or of the llm / mcp sections: another gateway (routes of
    a TCP route kind get a TCP one)."""
    tcp = "tcpRoutes" in loc
    gw = _gateway(doc, "g-attach", **({"protocol": "TLS"} if tcp else {}))
    cur = parent.get("gateways") or []
    parent["gateways"] = ([cur] if isinstance(cur, str) else cur) + [gw]
    parent.pop("port", None)


PATCHES["LocalConfig.gateways"] = Patch(_gateways_patch)
PATCHES["LocalConfig.routes"] = Patch(_routes_patch)
PATCHES["LocalConfig.tcp_routes"] = Patch(_tcp_routes_patch)
PATCHES["AttachedRoute.gateways"] = Patch(_attach_patch)
PATCHES["AttachedTcpRoute.gateways"] = Patch(_attach_patch)
PATCHES["LlmConfig.gateways"] = Patch(_attach_patch)
PATCHES["McpShorthand.gateways"] = Patch(_attach_patch)


def _named(kind_value) -> dict:
    return {
        **_routes(_route("named", {"backend": "b-x"}, "/n")),
        "backends": [{"name": "b-x", **kind_value}, {"name": "b-host", "host": "127.0.0.1:9003"}],
    }


#: (name, base config, where to start, model there). The root site walks everything;
#: the others walk one route (or named backend) again in another context.
SITES = [
    (
        "root",
        {**_routes(HOST_ROUTE, MCP_ROUTE, _route("named", {"backend": "b-host"}, "/n")), **NAMED},
        [],
        LocalConfig,
    ),
    ("ai route", {**_routes(AI_ROUTE), **NAMED}, ["binds", 0, "listeners", 0, "routes", 0], None),
    ("a2a route", {**_routes(A2A_ROUTE), **NAMED}, ["binds", 0, "listeners", 0, "routes", 0], None),
    ("aws route", {**_routes(AWS_ROUTE), **NAMED}, ["binds", 0, "listeners", 0, "routes", 0], None),
    (
        "named mcp backend",
        _named({"mcp": {"targets": [{"name": "t0", "mcp": {"host": "http://127.0.0.1:9300/mcp"}}]}}),
        ["backends", 0],
        None,
    ),
    (
        "named ai backend",
        _named({"ai": {"name": "p0", "provider": {"openAI": {}}, "hostOverride": "127.0.0.1:9501"}}),
        ["backends", 0],
        None,
    ),
    (
        "named a2a backend",
        _named({"a2a": {"targets": [{"static": {"host": "127.0.0.1", "port": 9700}}]}}),
        ["backends", 0],
        None,
    ),
    (
        "named aws backend",
        _named(
            {"aws": {"agentCore": {"agentRuntimeArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a"}}}
        ),
        ["backends", 0],
        None,
    ),
]


def _site_model(loc):
    from agentgw.config import models as m

    if loc and loc[0] == "backends":
        return m.NamedBackend
    return m.Route


# --------------------------------------------------------------------------------------
# Files the configs refer to
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    from tests.support.harness import make_tls_files

    d = tmp_path_factory.mktemp("enforced")
    main = make_tls_files(d)  # ca.pem, server.pem, server.key
    main.ca.private_key_pem.write_to_path(str(d / "ca.key"))  # (tls.mode: dynamicCa)
    other = make_tls_files(d / "other")
    (d / "other.pem").write_bytes(other.cert.read_bytes())
    (d / "other.key").write_bytes(other.key.read_bytes())
    (d / "client.pem").write_bytes(other.cert.read_bytes())
    (d / "client.key").write_bytes(other.key.read_bytes())
    (d / "jwks.json").write_text(JWKS_B)
    (d / "htpasswd").write_text("carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    (d / "keys.yaml").write_text("- key: k-file\n")
    (d / "keysdir").mkdir()
    (d / "token").write_text("token\n")
    (d / "apikey.txt").write_text("file-key\n")
    (d / "signing.pem").write_text(RSA_PEM2)
    (d / "signing2.pem").write_text(RSA_PEM)
    (d / "apikey2.txt").write_text("file-key-2\n")
    (d / "htpasswd2").write_text("dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    (d / "jwks2.json").write_text(JWKS_A)
    (d / "xds.yaml").write_text("{}\n")
    for name, op in (("openapi.json", "getX"), ("openapi2.json", "getY")):
        (d / name).write_text(
            json.dumps(
                {
                    "openapi": "3.0.0",
                    "info": {"title": "t", "version": "1"},
                    "paths": {"/x": {"get": {"operationId": op}}},
                }
            )
        )
    return d


@pytest.fixture(scope="module")
def compiled(files, record_ssl) -> Compiled:
    return Compiled(files)


class Walks:
    """Each site's walk, run once per test module."""

    def __init__(self, compiled: Compiled):
        self.compiled = compiled
        self.done: dict[str, Walk] = {}

    def __call__(self, site: str) -> Walk:
        w = self.done.get(site)
        if w is None:
            _, doc, loc, cls = next(s for s in SITES if s[0] == site)
            w = self.done[site] = Walk(self.compiled)
            w.model(copy.deepcopy(doc), list(loc), cls or _site_model(loc))
        return w


@pytest.fixture(scope="module")
def walks(compiled) -> Walks:
    return Walks(compiled)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def test_fingerprint_is_deterministic(compiled):
    """Two compiles of one config fingerprint the same (nothing volatile is compared),
    and the fingerprint sees a change deep in the runtime."""
    for _, doc, _, _ in SITES:
        text = json.dumps(doc)
        a, b = (
            fingerprint(
                _runtime_view(
                    compile_config(load_config_text(text, fmt="json", env={}), FakeServices(), str(compiled.files))
                )
            )
            for _ in range(2)
        )
        assert a == b
    doc = copy.deepcopy(SITES[0][1])
    base = compiled(doc)
    doc["binds"][0]["listeners"][0]["routes"][0]["matches"][0]["path"]["pathPrefix"] = "/other"
    assert compiled(doc).fp != base.fp


# a site's walk compiles a config per field value: thousands of compiles, minutes on a
# busy machine
@pytest.mark.timeout(900)
@pytest.mark.parametrize("site", [s[0] for s in SITES])
def test_every_field_is_enforced_or_refused(walks, site):
    w = walks(site)
    assert not w.problems, f"{len(w.problems)} problem(s):\n" + "\n".join(w.problems)


@pytest.mark.timeout(1800)  # every site's walk, when no other test ran them first
def test_compatibility_table_is_current(walks):
    """docs/compatibility.md (every agentgateway key and what agentgw does with it) is
    what the schema and this walk say today; AGENTGW_WRITE_COMPAT=1 rewrites it."""
    import os

    from tests.compat.table import PAGE, build

    if not PAGE.exists() and not os.environ.get("AGENTGW_WRITE_COMPAT"):
        pytest.skip("docs/compatibility.md is not generated in this tree")
    outcomes: dict[str, set[str]] = {}
    for site, *_ in SITES:
        for k, v in walks(site).outcomes.items():
            outcomes.setdefault(k, set()).update(v)
    page = build(outcomes)
    if os.environ.get("AGENTGW_WRITE_COMPAT"):
        PAGE.write_text(page)
    assert PAGE.exists() and PAGE.read_text() == page, (
        "docs/compatibility.md is out of date: run AGENTGW_WRITE_COMPAT=1 pytest "
        "tests/config/test_enforced.py -k compatibility"
    )


def _edges(cls) -> list[tuple[str, type]]:
    """(``Class.field``, model) for each model a field of ``cls`` can hold."""
    out = []
    for n, f in cls.model_fields.items():
        todo = list(branches(f.annotation))
        while todo:
            t = _strip(todo.pop())
            if is_model(t):
                out.append((key(cls, n), t))
            else:
                for a in get_args(t):
                    todo.extend(branches(a))
    return out


@pytest.mark.timeout(1800)  # every site's walk, when no other test ran them first
def test_every_model_field_was_walked(walks):
    """Every field of every model that can be reached from LocalConfig through accepted
    fields was walked in some site. (A model reachable only under a refused field, such
    as the targeted ``policies[]`` or ``tcpRoutes``, is refused with it.)"""
    walked: set[str] = set()
    accepted: set[tuple[str, str]] = set()
    for site, *_ in SITES:
        w = walks(site)
        walked |= w.fields
        accepted |= w.accepted
    seen: set[type] = set()
    todo = [LocalConfig]
    missing = []
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for n in cls.model_fields:
            if key(cls, n) not in walked and key(cls, n) not in NO_OP and key(cls, n) not in READ_BY_PROCESS:
                missing.append(key(cls, n))
        for k, sub in _edges(cls):
            if (k, sub.__name__) in accepted:
                todo.append(sub)
    assert not missing, (
        "fields never walked -- give their model a base config (SITES) or a minimal object (MINIMAL): "
        + ", ".join(sorted(missing))
    )


def test_allow_lists_name_real_fields():
    """NO_OP and READ_BY_PROCESS only name fields that exist (a stale entry would hide
    nothing, but would read as a promise)."""
    from agentgw.config import models as m

    for k in [*NO_OP, *READ_BY_PROCESS]:
        if k[0].isupper():
            cls, name = k.split(".")
            assert name in getattr(m, cls).model_fields, k


def test_process_settings_are_read():
    """The process settings of READ_BY_PROCESS are read where the process applies them."""
    src = Path(__file__).resolve().parents[2] / "src" / "agentgw"
    text = "".join((src / f).read_text() for f in ("runner.py", "ports.py", "supervisor.py") if (src / f).exists())
    for k, pattern in READ_BY_PROCESS.items():
        assert re.search(pattern, text), f"{k} is not read by the gateway process"


def test_refusals_are_documented():
    """docs/config-reference.md lists every field refused as not supported yet."""
    from agentgw.unsupported import UNSUPPORTED

    doc = (Path(__file__).resolve().parents[2] / "docs" / "config-reference.md").read_text()
    section = doc.split("### Refused as not supported yet", 1)[1].split("\n## ", 1)[0]
    for cls, name in UNSUPPORTED:
        alias = cls.model_fields[name].alias or name
        assert f"`{alias}`" in section or f".{alias}`" in section, f"{cls.__name__}.{name} ({alias}) is not listed"


def test_refused_by_validate_run_and_reload(harness, tmp_path):
    """A refused field stops `agentgw validate` and `agentgw run` (with and without
    --workers) with its path, and a reload that adds it keeps the running config."""
    import copy as _copy

    import httpx

    from tests.support.harness import dump_yaml, gateway_config, route, run_cli

    up = harness.upstream("refusal")
    good = gateway_config([route("r", [up.host])])
    bad = _copy.deepcopy(good)
    bad["binds"][0]["tunnelProtocol"] = "hboneWaypoint"
    line = "binds[0].tunnelProtocol: hboneWaypoint tunnelling is not supported yet"
    path = tmp_path / "bad.yaml"
    path.write_text(dump_yaml(bad))

    r = run_cli("validate", "-f", str(path))
    # placed in the file: <file>:<line>:<column>: <path>: <message>
    placed = re.fullmatch(rf"{re.escape(str(path))}:\d+:\d+: {re.escape(line)}\n", r.stderr)
    assert r.returncode == 1 and placed, (r.stdout, r.stderr)
    for extra in ((), ("--workers", "2")):
        r = run_cli("run", "-f", str(path), *extra, timeout=30)
        assert r.returncode == 1 and line in r.stderr, (extra, r.stdout, r.stderr)

    gw = harness.gateway(good)
    assert httpx.get(gw.url + "/x").status_code == 200
    assert gw.reload(bad, expect="failed") == "failed"
    assert line in gw.stdout_text() + gw.stderr_text()
    assert httpx.get(gw.url + "/x").status_code == 200


def test_backend_request_timeout_bounds_requests_to_that_backend(harness):
    """A backend's ``http.requestTimeout`` (inline and on a named backend) ends a request
    the backend has not answered in time with 504; other routes are not bounded by it."""
    import httpx

    from tests.support.harness import gateway_config, route

    up = harness.upstream("slow")
    cfg = gateway_config(
        [
            route("inline", [{"host": up.host, "policies": {"http": {"requestTimeout": "300ms"}}}], prefix="/inline"),
            route("named", [{"backend": "slow"}], prefix="/named"),
            route("free", [up.host], prefix="/free"),
        ],
        backends=[
            {"name": "slow", "host": up.host, "policies": {"http": {"requestTimeout": "300ms", "version": "HTTP/1.1"}}}
        ],
    )
    gw = harness.gateway(cfg)
    for prefix in ("/inline", "/named"):
        assert httpx.get(f"{gw.url}{prefix}/slow?delay=0.05", timeout=10).status_code == 200
        assert httpx.get(f"{gw.url}{prefix}/slow?delay=2", timeout=10).status_code == 504, prefix
    assert httpx.get(f"{gw.url}/free/slow?delay=1", timeout=10).status_code == 200
