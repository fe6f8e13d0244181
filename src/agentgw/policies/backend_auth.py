"""``backendAuth``: the credential the gateway presents to the backend.

One policy, compiled once per config load, run last in the request chain (after every
request edit), so what it writes is what the backend receives:

* ``key`` -- a static secret, by default ``Authorization: Bearer <key>``;
* ``passthrough`` -- the client's token that ``jwtAuth`` validated (``jwtAuth`` removes
  it from the request; this puts it back, at ``location``); nothing when no token was
  validated;
* ``credentials`` -- further static credentials, each at its own location, written
  after the kind above;
* ``jwtSign`` -- a JWT signed with ``signingKey`` for each request: the configured
  ``claims`` plus ``iat`` (ten seconds back, for clock skew) and ``exp`` (``ttl``,
  default 300s). Tokens are identical within one second, so one is signed per second;
* ``oauthTokenExchange`` -- the client's token (``subjectToken``) exchanged at a token
  endpoint (RFC 8693, or the RFC 7523 ``jwtBearer`` grant) for one the backend accepts;
* ``crossAppAccess`` -- the Identity Assertion Authorization Grant: the user's token
  exchanged at the identity provider for an ID-JAG (RFC 8693, ``requested_token_type``
  ``...:id-jag``), the ID-JAG exchanged at the resource authorization server for an
  access token (RFC 7523).

Exchanged tokens are cached by everything that went into the request (subject and
actor tokens, evaluated parameters) until ``expires_in`` (``cache.defaultTtl``, 300s,
when the endpoint gives none) or the subject token's own ``exp``, whichever is first,
less a 15s margin; concurrent requests with the same inputs share one call. A request
without the subject token is refused (400, as agentgateway does); a token endpoint that rejects the exchange
(4xx other than 401/403) gives 400; an endpoint that cannot be reached, answers 5xx,
refuses the gateway's own client credentials (401/403) or answers something unusable
gives 502. A reply never carries a token.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

import orjson

from ..engine.http import Headers, Reply
from ..proxy.policy import Policy
from .auth_common import HttpSideClient, SideCallError

if TYPE_CHECKING:
    from ..config import models as m
    from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.auth")

TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPE_ID = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

DEFAULT_CACHE_ENTRIES = 8192
DEFAULT_CACHE_TTL = 300.0
CACHE_MARGIN = 15.0
TOKEN_ENDPOINT_TIMEOUT = 10.0
JWT_SIGN_TTL = 300.0
ISSUED_AT_BACKDATE = 10
_RESERVED_PARAMS = frozenset(
    {
        "grant_type",
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "assertion",
        "audience",
        "resource",
        "scope",
        "requested_token_type",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    }
)
_KNOWN_TOKEN_TYPES = frozenset({TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT, TOKEN_TYPE_ID, TOKEN_TYPE_ID_JAG})


class AuthFailure(Exception):
    """Obtaining the backend credential failed; ``reply`` says how the client is answered."""

    def __init__(self, reply: Reply, why: str):
        super().__init__(why)
        self.reply = reply


def _bad_gateway(why: str) -> AuthFailure:
    return AuthFailure(Reply.error(502, "backend_auth_failed", f"backendAuth: {why}"), why)


# -- where a credential is read from / written to -------------------------------------------
class Slot:
    """A credential location: ``header`` (name, prefix), ``query`` or ``cookie``."""

    __slots__ = ("kind", "name", "prefix")

    def __init__(self, kind: str, name: str, prefix: str | None = None):
        self.kind = kind
        self.name = name.lower() if kind == "header" else name
        self.prefix = prefix or ""

    def put(self, ctx, value: str) -> None:
        if self.kind == "header":
            ctx.req.headers.set(self.name, self.prefix + value)
        elif self.kind == "query":
            kept = [p for p in (ctx.query or "").split("&") if p and unquote(p.partition("=")[0]) != self.name]
            kept.append(f"{quote(self.name, safe='')}={quote(value, safe='')}")
            ctx.query = "&".join(kept)
        else:
            _set_cookie(ctx.req.headers, self.name, value)

    def take(self, ctx) -> str | None:
        """The credential at this location (prefix stripped), None if absent or empty."""
        if self.kind == "header":
            v = ctx.req.headers.get(self.name)
            if v is None:
                return None
            if self.prefix:
                if v[: len(self.prefix)].lower() != self.prefix.lower():
                    return None
                v = v[len(self.prefix) :]
            return v.strip() or None
        if self.kind == "query":
            for part in (ctx.query or "").split("&"):
                k, _, v = part.partition("=")
                if unquote(k) == self.name:
                    return unquote(v.replace("+", " ")) or None
            return None
        for k, v in ctx.req.headers:
            if k == "cookie":
                for part in v.split(";"):
                    ck, _, cv = part.strip().partition("=")
                    if ck == self.name:
                        return cv.strip().strip('"') or None
        return None

    def remove(self, ctx) -> None:
        if self.kind == "header":
            ctx.req.headers.remove(self.name)
        elif self.kind == "query":
            parts = [p for p in (ctx.query or "").split("&") if p and unquote(p.partition("=")[0]) != self.name]
            ctx.query = "&".join(parts)
        else:
            _set_cookie(ctx.req.headers, self.name, None)


def _set_cookie(headers: Headers, name: str, value: str | None) -> None:
    kept = []
    for k, v in headers:
        if k == "cookie":
            kept += [p.strip() for p in v.split(";") if p.strip() and p.strip().partition("=")[0] != name]
    if value is not None:
        kept.append(f"{name}={value}")
    headers.remove("cookie")
    if kept:
        headers.append(("cookie", "; ".join(kept)))


class _Expr:
    """A CEL ``expression`` location: read only."""

    __slots__ = ("expr", "raw_token")

    def __init__(self, source: str):
        src = source.strip()
        # ``jwt.rawToken`` is the token jwtAuth validated (agentgateway's spelling)
        self.raw_token = src in ("jwt.rawToken.unredacted()", "jwt.rawToken")
        self.expr = None
        if not self.raw_token:
            from ..cel import Expression

            self.expr = Expression(src)

    def take(self, ctx) -> str | None:
        if self.raw_token:
            return ctx.attrs.get("jwt_token")
        from ..cel import VARIABLES, activation

        expr = self.expr
        assert expr is not None
        data = {name: VARIABLES[name](ctx) for name in expr.refs}
        v = expr.evaluate(activation(data))
        return v if isinstance(v, str) and v.strip() else None

    def remove(self, ctx) -> None:
        return None


def slot_from_model(loc: m.AuthorizationLocation | None, default: Slot | None = None):
    if loc is None:
        return default if default is not None else Slot("header", "authorization", "Bearer ")
    if loc.header is not None:
        return Slot("header", loc.header.name, loc.header.prefix)
    if loc.query_parameter is not None:
        return Slot("query", loc.query_parameter.name)
    if loc.cookie is not None:
        return Slot("cookie", loc.cookie.name)
    assert loc.expression is not None
    return _Expr(loc.expression)


# -- signing -----------------------------------------------------------------------------
class Signer:
    """A private key and algorithm (RS*, PS256, ES256/384, EdDSA), checked at load by
    signing once. Also the key of signed A2A agent cards (backends/a2a/signing.py)."""

    def __init__(self, pem: str, alg: str, kid: str | None):
        from joserfc.jwk import ECKey, OKPKey, RSAKey

        pem = pem.strip()
        if alg.startswith(("RS", "PS")):
            self.key: Any = RSAKey.import_key(pem)
        elif alg == "EdDSA":
            self.key = OKPKey.import_key(pem)
        else:
            self.key = ECKey.import_key(pem)
            want = {"ES256": "P-256", "ES384": "P-384"}[alg]
            if self.key.curve_name != want:
                raise ValueError(f"{alg} needs a {want} key, not {self.key.curve_name}")
        if not self.key.is_private:
            raise ValueError("not a private key")
        self.alg = alg
        self.header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if kid:
            self.header["kid"] = kid
        self.sign({"probe": True})

    def sign(self, claims: dict, header: dict | None = None) -> str:
        from joserfc import jwt

        return jwt.encode(header or self.header, claims, self.key, algorithms=[self.alg])


class JwtSign:
    __slots__ = ("signer", "claims", "ttl", "slot", "_second", "_token")

    def __init__(self, signer: Signer, claims: dict, ttl: float, slot: Slot):
        self.signer = signer
        self.claims = dict(claims)
        self.ttl = ttl
        self.slot = slot
        self._second = -1
        self._token = ""

    def token(self) -> str:
        now = int(time.time())
        if now != self._second:  # iat/exp are whole seconds: one signature per second
            claims = dict(self.claims)
            claims["iat"] = now - ISSUED_AT_BACKDATE
            claims["exp"] = now + int(-(-self.ttl // 1))
            self._token = self.signer.sign(claims)
            self._second = now
        return self._token


# -- token endpoints ---------------------------------------------------------------------
class ClientAuth:
    __slots__ = ("client_id", "method", "secret", "signer", "audience", "x5")

    def __init__(self, client_id: str, method: str, secret: str | None, signer: Signer | None, audience: str | None):
        self.client_id = client_id
        self.method = method
        self.secret = secret
        self.signer = signer
        self.audience = audience
        self.x5: dict[str, Any] = {}

    def apply(self, form: list[tuple[str, str]], headers: list[tuple[str, str]]) -> None:
        if self.method == "clientSecretBasic":
            # RFC 6749 2.3.1: each part form-urlencoded before joining
            pair = f"{quote(self.client_id, safe='')}:{quote(self.secret or '', safe='')}".replace("%20", "+")
            headers.append(("authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
        elif self.method == "clientSecretPost":
            form.append(("client_id", self.client_id))
            if self.secret is not None:
                form.append(("client_secret", self.secret))
        else:
            assert self.signer is not None
            now = int(time.time())
            claims = {
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": self.audience,
                "jti": str(uuid.uuid4()),
                "nbf": now - ISSUED_AT_BACKDATE,
                "iat": now - ISSUED_AT_BACKDATE,
                "exp": now + 300,
            }
            header = {**self.signer.header, **self.x5}
            form.append(("client_id", self.client_id))
            form.append(("client_assertion_type", CLIENT_ASSERTION_TYPE))
            form.append(("client_assertion", self.signer.sign(claims, header)))


class TokenEndpoint:
    """One token endpoint and the fixed part of the requests sent to it."""

    __slots__ = (
        "client",
        "path",
        "grant",
        "client_auth",
        "audiences",
        "scopes",
        "resources",
        "requested_type",
    )

    def __init__(
        self,
        client: HttpSideClient,
        path: str,
        grant: str,
        client_auth: ClientAuth | None,
        audiences: list[str],
        scopes: list[str],
        resources: list[str],
        requested_type: str | None,
    ):
        self.client = client
        self.path = path or "/"
        self.grant = grant
        self.client_auth = client_auth
        self.audiences = list(audiences)
        self.scopes = list(scopes)
        self.resources = list(resources)
        self.requested_type = requested_type

    async def request(self, pool, subject: str, subject_type: str, actor, extra: list) -> tuple[str, float | None]:
        form: list[tuple[str, str]] = []
        if self.grant == "tokenExchange":
            form += [("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", subject)]
            form.append(("subject_token_type", subject_type))
            if actor is not None:
                form += [("actor_token", actor[0]), ("actor_token_type", actor[1])]
            if self.requested_type:
                form.append(("requested_token_type", self.requested_type))
        else:
            form += [("grant_type", GRANT_JWT_BEARER), ("assertion", subject)]
        form += [("audience", a) for a in self.audiences]
        if self.scopes:
            form.append(("scope", " ".join(self.scopes)))
        form += [("resource", r) for r in self.resources]
        form += extra
        headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")]
        if self.client_auth is not None:
            self.client_auth.apply(form, headers)
        body = urlencode(form).encode()
        where = self.client.target.authority
        try:
            status, _rh, data = await self.client.request(pool, "POST", self.path, headers, body, limit=256 * 1024)
        except SideCallError as exc:
            raise _bad_gateway(f"token endpoint {where} unavailable: {exc}") from None
        if not 200 <= status < 300:
            code = _oauth_error(data)
            if 400 <= status < 500 and status not in (401, 403):
                msg = f"the token endpoint rejected the exchange ({code or status})"
                raise AuthFailure(Reply.error(400, "token_exchange_rejected", f"backendAuth: {msg}"), msg)
            raise _bad_gateway(f"token endpoint {where} answered {status}{f' ({code})' if code else ''}")
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise _bad_gateway(f"token endpoint {where} answered something that is not a JSON object")
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise _bad_gateway(f"token endpoint {where} answered without an access_token")
        token_type = doc.get("token_type")
        issued = doc.get("issued_token_type")
        if self.requested_type == TOKEN_TYPE_ID_JAG:
            if issued != TOKEN_TYPE_ID_JAG:
                raise _bad_gateway(f"token endpoint {where} issued {issued!r}, not an ID-JAG")
            if token_type is not None and str(token_type).upper() != "N_A":
                raise _bad_gateway(f"token endpoint {where} gave token_type {token_type!r} for an ID-JAG")
        else:
            if not isinstance(token_type, str) or token_type.lower() != "bearer":
                raise _bad_gateway(f"token endpoint {where} gave token_type {token_type!r}, not Bearer")
            if self.requested_type and issued is not None and issued != self.requested_type:
                raise _bad_gateway(f"token endpoint {where} issued {issued!r}, not {self.requested_type}")
        exp = doc.get("expires_in")
        expires_in = float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) and exp >= 0 else None
        return token, expires_in


def _oauth_error(data: bytes) -> str:
    """The OAuth ``error`` code of a token endpoint's error answer, if it has a plain one."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, str) and len(err) <= 64 and err.replace("_", "").isalnum():
        return err
    return ""


def _jwt_exp(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying (only to bound a cache entry)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except Exception:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class TokenCache:
    """Exchanged tokens by their inputs, bounded; one fetch in flight per key."""

    __slots__ = ("max_entries", "default_ttl", "entries", "pending")

    def __init__(self, max_entries: int, default_ttl: float):
        self.max_entries = max_entries
        self.default_ttl = default_ttl
        self.entries: dict[tuple, tuple[str, float]] = {}
        self.pending: dict[tuple, asyncio.Future] = {}

    def get(self, key: tuple) -> str | None:
        hit = self.entries.get(key)
        if hit is None:
            return None
        if hit[1] - time.time() > CACHE_MARGIN:
            return hit[0]
        del self.entries[key]
        return None

    def put(self, key: tuple, token: str, expires_in: float | None, subject: str) -> None:
        now = time.time()
        expires_at = now + (expires_in if expires_in is not None else self.default_ttl)
        sub_exp = _jwt_exp(subject)
        if sub_exp is not None:
            expires_at = min(expires_at, sub_exp)
        if expires_at - now <= CACHE_MARGIN:
            return
        entries = self.entries
        if len(entries) >= self.max_entries:
            for k in [k for k, (_, e) in entries.items() if e - now <= CACHE_MARGIN]:
                del entries[k]
            while len(entries) >= self.max_entries:
                del entries[next(iter(entries))]
        entries[key] = (token, expires_at)


class Exchange:
    """``oauthTokenExchange`` / ``crossAppAccess``: the subject token for the backend's."""

    __slots__ = ("first", "second", "subject", "subject_type", "actor", "params", "second_params", "out", "cache")

    def __init__(
        self,
        first: TokenEndpoint,
        second: TokenEndpoint | None,
        subject,
        subject_type: str,
        actor: tuple[Any, str] | None,
        params: list,
        second_params: list,
        out: Slot,
        cache: TokenCache | None,
    ):
        self.first = first
        self.second = second
        self.subject = subject
        self.subject_type = subject_type
        self.actor = actor
        self.params = params  # [(name, Expression)]
        self.second_params = second_params
        self.out = out
        self.cache = cache

    def inputs(self, ctx) -> tuple:
        subject = self.subject.take(ctx)
        if subject is None:
            # a bad request, as agentgateway answers it (ProxyError::InvalidRequest), not a
            # challenge: the route's jwtAuth, if any, is where a token is asked for
            raise AuthFailure(
                Reply.error(400, "invalid_request", "backendAuth: the request carries no subject token to exchange"),
                "no subject token",
            )
        actor = None
        if self.actor is not None:
            a = self.actor[0].take(ctx)
            if a is None:
                raise AuthFailure(
                    Reply.error(400, "invalid_request", "backendAuth: the request carries no actor token"),
                    "no actor token",
                )
            actor = (a, self.actor[1])
        return subject, actor, _eval_params(ctx, self.params), _eval_params(ctx, self.second_params)

    async def fetch(self, pool, subject: str, actor, extra: list, extra2: list) -> tuple[str, float | None]:
        token, expires_in = await self.first.request(pool, subject, self.subject_type, actor, extra)
        if self.second is None:
            return token, expires_in
        try:
            return await self.second.request(pool, token, "", None, extra2)
        except AuthFailure as exc:
            if exc.reply.status == 400:  # the second leg's rejection is not the client's doing
                raise _bad_gateway(f"the resource authorization server {exc}") from None
            raise


def _eval_params(ctx, params: list) -> list:
    if not params:
        return []
    from ..cel import VARIABLES, activation

    out = []
    for name, expr in params:
        data = {n: VARIABLES[n](ctx) for n in expr.refs}
        v = expr.evaluate(activation(data))
        if not isinstance(v, str):
            raise AuthFailure(
                Reply.error(400, "invalid_request", f"backendAuth: parameter {name} did not evaluate to a string"),
                f"parameter {name}",
            )
        out.append((name, v))
    return out


# -- the policy --------------------------------------------------------------------------
class BackendAuth(Policy):
    order = 90
    NAME = "backendAuth"
    edits_response_headers = False

    def __init__(
        self,
        *,
        static: list[tuple[Slot, str]] | None = None,
        passthrough: Slot | None = None,
        jwt_sign: JwtSign | None = None,
        exchange: Exchange | None = None,
        credentials: list[tuple[Slot, str]] | None = None,
    ):
        self.static = list(static or [])
        self.passthrough = passthrough
        self.jwt_sign = jwt_sign
        self.exchange = exchange
        self.credentials = list(credentials or [])

    def header_names(self) -> set[str]:
        """The request headers this policy may write (what an MCP backend must pass on)."""
        slots = [s for s, _ in self.static + self.credentials]
        slots += [s for s in (self.passthrough, self.jwt_sign.slot if self.jwt_sign else None) if s is not None]
        if self.exchange is not None:
            slots.append(self.exchange.out)
        out = {s.name for s in slots if s.kind == "header"}
        if any(s.kind == "cookie" for s in slots):
            out.add("cookie")
        return out

    def slots(self) -> list[Slot]:
        out = [s for s, _ in self.static + self.credentials]
        out += [s for s in (self.passthrough, self.jwt_sign.slot if self.jwt_sign else None) if s is not None]
        if self.exchange is not None:
            out.append(self.exchange.out)
        return out

    def on_request(self, ctx):
        for slot, value in self.static:
            slot.put(ctx, value)
        if self.passthrough is not None:
            token = ctx.attrs.get("jwt_token")
            if token is not None:
                self.passthrough.put(ctx, token)
        elif self.jwt_sign is not None:
            try:
                token = self.jwt_sign.token()
            except Exception as exc:  # a key that signed at load fails now: say so, no traceback
                log.warning("backendAuth.jwtSign: signing failed: %s", exc)
                return Reply.error(500, "backend_auth_failed", "backendAuth: the request could not be signed")
            self.jwt_sign.slot.put(ctx, token)
        elif self.exchange is not None:
            return self._exchange(ctx, self.exchange)
        self._credentials(ctx)
        return None

    def _credentials(self, ctx) -> None:
        for slot, value in self.credentials:
            slot.put(ctx, value)

    def _exchange(self, ctx, ex: Exchange):
        try:
            subject, actor, extra, extra2 = ex.inputs(ctx)
        except AuthFailure as exc:
            return exc.reply
        key = (subject, actor, tuple(extra), tuple(extra2))
        cache = ex.cache
        if cache is not None:
            token = cache.get(key)
            if token is not None:
                self._attach(ctx, ex, token)
                return None
        return self._fetch(ctx, ex, key, subject, actor, extra, extra2)

    def _attach(self, ctx, ex: Exchange, token: str) -> None:
        ex.subject.remove(ctx)
        if ex.actor is not None:
            ex.actor[0].remove(ctx)
        ex.out.put(ctx, token)
        self._credentials(ctx)

    async def _fetch(self, ctx, ex: Exchange, key: tuple, subject, actor, extra, extra2):
        pool = ctx.bind.services.pool
        cache = ex.cache
        try:
            if cache is None:
                token, _ = await ex.fetch(pool, subject, actor, extra, extra2)
            else:
                fut = cache.pending.get(key)
                if fut is None:
                    fut = asyncio.ensure_future(self._fill(cache, ex, pool, key, subject, actor, extra, extra2))
                    cache.pending[key] = fut
                    pending = cache.pending

                    def done(_f: asyncio.Future, k: tuple = key) -> None:
                        pending.pop(k, None)

                    fut.add_done_callback(done)
                token = await asyncio.shield(fut)
        except AuthFailure as exc:
            log.warning("backendAuth: %s", exc)
            return exc.reply
        except Exception as exc:  # e.g. a client assertion that cannot be signed: no traceback, a 502
            log.warning("backendAuth: token exchange failed: %s", exc or type(exc).__name__)
            return _bad_gateway("the token exchange failed").reply
        self._attach(ctx, ex, token)
        return None

    @staticmethod
    async def _fill(cache: TokenCache, ex: Exchange, pool, key, subject, actor, extra, extra2) -> str:
        token, expires_in = await ex.fetch(pool, subject, actor, extra, extra2)
        cache.put(key, token, expires_in, subject)
        return token


# -- compile -----------------------------------------------------------------------------
def _read(scope: CompileScope, v, path: str) -> str | None:
    """A ``FileOrInline`` value: the string, or the file's contents (trailing newline off)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    try:
        with open(scope.path(v.file), encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        scope.errors.add(f"{path}.file", f"cannot read: {exc.strerror or exc}")
        return None


def _insert_slot(scope: CompileScope, loc, path: str) -> Slot | None:
    if loc is not None and loc.expression is not None:
        scope.errors.add(f"{path}.expression", "is only supported for reading a credential, not for writing one")
        return None
    s = slot_from_model(loc)
    assert isinstance(s, Slot)
    return s


def _read_slot(scope: CompileScope, loc, path: str, default: Slot | None = None):
    try:
        return slot_from_model(loc, default)
    except ValueError as exc:  # CelError
        scope.errors.add(f"{path}.expression", f"invalid CEL expression: {exc}")
        return None


def _client(scope: CompileScope, ep, path: str) -> HttpSideClient | None:
    """An HTTP client for a token endpoint (``host``, ``service`` or a named ``backend``)."""
    if ep.host is not None:
        addr = ep.host
    elif ep.service is not None:
        scope.errors.add(f"{path}.service", "not supported for token endpoints yet; use host or backend")
        return None
    else:
        ref = scope.named.get(ep.backend) if ep.backend is not None else None
        if ref is None or ref[1].host is None:
            scope.errors.add(f"{path}.backend", f"no top-level host backend named {ep.backend!r}")
            return None
        addr = ref[1].host
    bt = None
    if ep.policies is not None:
        for attr, field in type(ep.policies).model_fields.items():
            if attr != "backend_tls" and getattr(ep.policies, attr) is not None:
                scope.errors.add(
                    f"{path}.policies.{field.alias or attr}", "not supported for token endpoints yet (only backendTLS)"
                )
        bt = ep.policies.backend_tls
    if bt is not None:
        for attr, field in type(bt).model_fields.items():
            if attr not in ("root", "insecure") and getattr(bt, attr) not in (None, False, [], {}):
                scope.errors.add(
                    f"{path}.policies.backendTLS.{field.alias or attr}",
                    "not supported for token endpoints yet (only root and insecure)",
                )
    url = addr if "://" in addr else f"http://{addr}"
    if bt is not None and url.startswith("http://"):
        url = "https://" + url[len("http://") :]
    try:
        return HttpSideClient(
            url,
            ca_file=scope.path(bt.root) if bt is not None and bt.root else None,
            timeout=TOKEN_ENDPOINT_TIMEOUT,
            insecure=bool(bt is not None and bt.insecure),
        )
    except (OSError, ValueError) as exc:
        scope.errors.add(path, f"invalid token endpoint address: {exc}")
        return None


def compile_signer(scope: CompileScope, key_v, alg: str, kid: str | None, path: str) -> Signer | None:
    """The signer of a ``signingKey`` (inline PEM or ``{file}``), or None with an error at ``path``."""
    pem = _read(scope, key_v, path)
    if pem is None:
        return None
    try:
        return Signer(pem, alg, kid)
    except Exception as exc:
        msg = str(exc) if isinstance(exc, ValueError) and str(exc) else "not a usable PEM private key"
        scope.errors.add(path, f"cannot use the signing key for {alg}: {msg}")
        return None


def _client_auth(scope: CompileScope, ca: m.OAuthClientAuth | None, path: str) -> ClientAuth | None:
    if ca is None:
        return None
    method = ca.method or "clientSecretBasic"
    if method == "privateKeyJwt":
        signer = compile_signer(scope, ca.signing_key, ca.alg or "RS256", ca.kid, f"{path}.signingKey")
        out = ClientAuth(ca.client_id, method, None, signer, ca.assertion_audience)
        if ca.certificate is not None:
            pem = _read(scope, ca.certificate, f"{path}.certificate")
            if pem is not None:
                try:
                    from cryptography import x509
                    from cryptography.hazmat.primitives import hashes, serialization

                    certs = x509.load_pem_x509_certificates(pem.encode())
                    ders = [c.public_bytes(serialization.Encoding.DER) for c in certs]
                    if ca.certificate_header == "x5c":
                        out.x5 = {"x5c": [base64.b64encode(d).decode() for d in ders]}
                    else:
                        digest = certs[0].fingerprint(hashes.SHA256())
                        out.x5 = {"x5t#S256": base64.urlsafe_b64encode(digest).rstrip(b"=").decode()}
                except ValueError:
                    scope.errors.add(f"{path}.certificate", "not a PEM certificate chain")
        return out if signer is not None else None
    secret = _read(scope, ca.client_secret, f"{path}.clientSecret")
    return ClientAuth(ca.client_id, method, secret, None, None)


def _token_type(scope: CompileScope, v: str | None, default: str, path: str) -> str:
    if v is None:
        return default
    if v not in _KNOWN_TOKEN_TYPES and (":" not in v or "#" in v):
        scope.errors.add(path, "must be a token type URI (urn:ietf:params:oauth:token-type:...)")
    return v


def _cache(c: m.TokenCacheConfig | None) -> TokenCache | None:
    n = DEFAULT_CACHE_ENTRIES if c is None or c.max_entries is None else c.max_entries
    if n == 0:
        return None
    ttl = float(c.default_ttl) if c is not None and c.default_ttl else DEFAULT_CACHE_TTL
    return TokenCache(n, ttl)


def _params(scope: CompileScope, params: dict[str, str], path: str) -> list:
    from ..cel import CelError, Expression

    out = []
    for name, src in params.items():
        if name.lower() in _RESERVED_PARAMS:
            scope.errors.add(f"{path}.{name}", "cannot be set here: it is an OAuth parameter the exchange sets itself")
            continue
        try:
            out.append((name, Expression(src)))
        except CelError as exc:
            scope.errors.add(f"{path}.{name}", f"invalid CEL expression: {exc}")
    return out


def _token_exchange(scope: CompileScope, t: m.OAuthTokenExchangeAuth, path: str) -> Exchange | None:
    err = scope.errors.add
    client = _client(scope, t, path)
    ca = _client_auth(scope, t.client_auth, f"{path}.clientAuth")
    if t.grant_type == "jwtBearer":
        if t.requested_token_type is not None:
            err(f"{path}.requestedTokenType", "is only used with grantType tokenExchange")
        if t.actor_token is not None:
            err(f"{path}.actorToken", "is only used with grantType tokenExchange")
    requested = t.requested_token_type
    if requested is None and t.grant_type != "jwtBearer":
        # RFC 8693 leaves it optional; agentgateway always asks for an access token unless
        # told otherwise (and then expects that type back), and so does this gateway
        requested = TOKEN_TYPE_ACCESS
    if requested is not None and requested not in _KNOWN_TOKEN_TYPES:
        err(f"{path}.requestedTokenType", "must be the access_token, jwt or id_token token type URI")
    if requested == TOKEN_TYPE_ID_JAG:
        err(f"{path}.requestedTokenType", "an ID-JAG is only supported by backendAuth.crossAppAccess")
    st = t.subject_token
    subject = _read_slot(scope, st.source if st else None, f"{path}.subjectToken.source")
    stype = _token_type(scope, st.token_type if st else None, TOKEN_TYPE_ACCESS, f"{path}.subjectToken.tokenType")
    actor = None
    if t.actor_token is not None:
        at = t.actor_token
        if at.enforce_may_act:
            err(f"{path}.actorToken.enforceMayAct", "not supported by this agentgw build yet")
        a_slot = _read_slot(scope, at.source, f"{path}.actorToken.source")
        atype = _token_type(scope, at.token_type, TOKEN_TYPE_ACCESS, f"{path}.actorToken.tokenType")
        actor = (a_slot, atype) if a_slot is not None else None
    out = _insert_slot(scope, t.authorization_location, f"{path}.authorizationLocation")
    params = _params(scope, t.additional_params, f"{path}.additionalParams")
    if client is None or subject is None or out is None or (t.client_auth is not None and ca is None):
        return None
    first = TokenEndpoint(client, t.path or "/", t.grant_type, ca, t.audiences, t.scopes, t.resources, requested)
    return Exchange(first, None, subject, stype, actor, params, [], out, _cache(t.cache))


def _cross_app_access(scope: CompileScope, x: m.CrossAppAccessAuth, path: str) -> Exchange | None:
    idp_path, ras_path = f"{path}.identityProvider", f"{path}.resourceAuthorizationServer"
    idp = _client(scope, x.identity_provider, idp_path)
    ras = _client(scope, x.resource_authorization_server, ras_path)
    idp_auth = _client_auth(scope, x.identity_provider.client_auth, f"{idp_path}.clientAuth")
    ras_auth = _client_auth(scope, x.resource_authorization_server.client_auth, f"{ras_path}.clientAuth")
    st = x.subject_token
    subject = _read_slot(scope, st.source if st else None, f"{path}.subjectToken.source")
    stype = _token_type(scope, st.token_type if st else None, TOKEN_TYPE_ID, f"{path}.subjectToken.tokenType")
    if stype == TOKEN_TYPE_ID_JAG:
        scope.errors.add(f"{path}.subjectToken.tokenType", "an ID-JAG cannot be the subject token")
    if None in (idp, ras, idp_auth, ras_auth, subject):
        return None
    assert idp is not None and ras is not None
    first = TokenEndpoint(
        idp,
        x.identity_provider.path or "/",
        "tokenExchange",
        idp_auth,
        [x.audience],
        x.scopes,
        x.resources,
        TOKEN_TYPE_ID_JAG,
    )
    scopes2 = x.scopes if x.access_token_scopes is None else x.access_token_scopes
    second = TokenEndpoint(
        ras, x.resource_authorization_server.path or "/", "jwtBearer", ras_auth, [], scopes2, [], None
    )
    return Exchange(
        first, second, subject, stype, None, [], [], Slot("header", "authorization", "Bearer "), _cache(x.cache)
    )


def written_locations(ba: m.BackendAuth, path: str) -> list[tuple[str, m.AuthorizationLocation]]:
    """The locations ``ba`` writes a credential to, with their config paths."""
    out: list[tuple[str, m.AuthorizationLocation]] = []
    key = ba.key
    key_loc = getattr(key, "location", None)
    if key_loc is not None:
        out.append((f"{path}.key.location", key_loc))
    if ba.passthrough is not None and ba.passthrough.location is not None:
        out.append((f"{path}.passthrough.location", ba.passthrough.location))
    if ba.jwt_sign is not None and ba.jwt_sign.location is not None:
        out.append((f"{path}.jwtSign.location", ba.jwt_sign.location))
    te = ba.oauth_token_exchange
    if te is not None and te.authorization_location is not None:
        out.append((f"{path}.oauthTokenExchange.authorizationLocation", te.authorization_location))
    for i, c in enumerate(ba.credentials or []):
        out.append((f"{path}.credentials[{i}].location", c.location))
    return out


def compile_backend_auth(
    scope: CompileScope, ba: m.BackendAuth, path: str, *, allowed: Callable[[str], str | None] | None = None
) -> BackendAuth | None:
    """The policy for a ``backendAuth`` block; ``allowed(kind)`` returns why a kind is not
    supported where the block is (None: supported). ``gcp``, ``aws`` and ``azure`` are
    only read by the backends that sign for them, so they are refused here."""
    err = scope.errors.add
    kind = ba.kind()
    if kind in ("gcp", "aws", "azure"):
        err(f"{path}.{kind}", "not supported on this route kind yet (only with ai backends)")
        return None
    if kind is not None and allowed is not None:
        why = allowed(kind)
        if why:
            field = type(ba).model_fields[kind]
            err(f"{path}.{field.alias or kind}", why)
            return None
    ok = True
    kw: dict[str, Any] = {}
    value: str | None
    slot: Slot | None
    if ba.key is not None:
        from ..config import models as mm

        k = ba.key
        if isinstance(k, str):
            value, slot = k, Slot("header", "authorization", "Bearer ")
        elif isinstance(k, mm.FileOnlyRef):
            value, slot = _read(scope, k, f"{path}.key"), Slot("header", "authorization", "Bearer ")
        else:
            value = _read(scope, k.value, f"{path}.key.value")
            slot = _insert_slot(scope, k.location, f"{path}.key.location")
        if value is None or slot is None:
            ok = False
        else:
            kw["static"] = [(slot, value.strip())]
    elif ba.passthrough is not None:
        slot = _insert_slot(scope, ba.passthrough.location, f"{path}.passthrough.location")
        if slot is None:
            ok = False
        kw["passthrough"] = slot
    elif ba.jwt_sign is not None:
        j = ba.jwt_sign
        jp = f"{path}.jwtSign"
        for reserved in ("iat", "exp", "nbf"):
            if reserved in j.claims:
                err(f"{jp}.claims.{reserved}", "is set by the signer and cannot be configured")
                ok = False
        ttl = float(j.ttl) if j.ttl is not None else JWT_SIGN_TTL
        if ttl < 1:
            err(f"{jp}.ttl", "must be at least one second")
            ok = False
        signer = compile_signer(scope, j.signing_key, j.alg, j.kid, f"{jp}.signingKey")
        slot = _insert_slot(scope, j.location, f"{jp}.location")
        if signer is None or slot is None:
            ok = False
        else:
            kw["jwt_sign"] = JwtSign(signer, j.claims, ttl, slot)
    elif ba.oauth_token_exchange is not None:
        ex = _token_exchange(scope, ba.oauth_token_exchange, f"{path}.oauthTokenExchange")
        ok = ex is not None
        kw["exchange"] = ex
    elif ba.cross_app_access is not None:
        ex = _cross_app_access(scope, ba.cross_app_access, f"{path}.crossAppAccess")
        ok = ex is not None
        kw["exchange"] = ex
    creds = []
    for i, c in enumerate(ba.credentials or []):
        cp = f"{path}.credentials[{i}]"
        value = _read(scope, c.key, f"{cp}.key")
        slot = _insert_slot(scope, c.location, f"{cp}.location")
        if value is None or slot is None:
            ok = False
            continue
        creds.append((slot, value.strip()))
    kw["credentials"] = creds
    return BackendAuth(**kw) if ok else None
