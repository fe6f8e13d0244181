"""``oidc``: browser login with an OpenID provider, kept in a session cookie.

A request without a valid session is sent (302) to the provider's authorization
endpoint: authorization code flow with PKCE (S256), a ``state`` and a ``nonce``, all kept
in a short-lived transaction cookie of its own. The provider sends the browser back to
``redirectURI``; the gateway answers that callback itself: it exchanges the code at the
token endpoint (client secret, ``client_secret_basic`` or ``client_secret_post`` as the
provider's metadata allows), verifies the ID token (signature against the provider's
JWKS, issuer, audience, expiry, nonce), sets the session cookie and sends the browser
back to the page it first asked for. Requests with the session go on with the ID token's
claims as CEL ``jwt`` (``jwt.sub``, ``jwt.email``) and ``sub`` as the principal.

Both cookies are AES-256-GCM sealed with the key in ``OIDC_COOKIE_SECRET`` (64 hex
characters), so the gateway can trust what it reads back without asking the provider
again; the session lasts an hour or until the ID token expires, whichever is first.
Cookies are ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and ``Secure`` when the redirect
URI is https. The provider's metadata (``{issuer}/.well-known/openid-configuration``) and
keys are fetched on the first login and kept.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import orjson

from ..engine.http import Headers, Reply
from ..proxy.policy import Policy
from .auth_common import HttpSideClient, SideCallError
from .jwt_auth import RemoteJwks, parse_unverified, verify_signature

if TYPE_CHECKING:
    from ..config import models as m
    from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.oidc")

SESSION_TTL = 3600.0
TRANSACTION_TTL = 300.0
COOKIE_PREFIX = "agw_oidc_"
_ORIGINAL_LIMIT = 2048


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _cookies(req) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in req.headers:
        if k == "cookie":
            for part in v.split(";"):
                name, sep, value = part.strip().partition("=")
                if sep and name not in out:
                    out[name] = value
    return out


def _local_target(target: str) -> str:
    """The page to return to after login: only a local path (never another site)."""
    if len(target) > _ORIGINAL_LIMIT or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class OidcError(Exception):
    pass


class Oidc(Policy):
    order = 15  # after CORS preflights, before the other authentication policies

    def __init__(
        self,
        policy_id: str,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: list[str],
        key: bytes,
    ):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.policy_id = policy_id
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        ru = urlsplit(redirect_uri)
        self.callback_path = ru.path or "/"
        self.secure = ru.scheme == "https"
        self.scope = " ".join(dict.fromkeys(["openid", *scopes]))
        self.aead = AESGCM(key)
        tag = hashlib.sha256(policy_id.encode()).hexdigest()[:16]
        self.session_cookie = f"{COOKIE_PREFIX}s_{tag}"
        self.txn_cookie = f"{COOKIE_PREFIX}t_{tag}_"
        self.discovery = HttpSideClient(issuer.rstrip("/") + "/.well-known/openid-configuration")
        self.meta: dict | None = None
        self.jwks: RemoteJwks | None = None
        self.token_client: HttpSideClient | None = None

    # -- sealed cookies -----------------------------------------------------------------------
    def _seal(self, doc: dict) -> str:
        nonce = os.urandom(12)
        return _b64(nonce + self.aead.encrypt(nonce, orjson.dumps(doc), self.policy_id.encode()))

    def _open(self, value: str) -> dict | None:
        try:
            raw = _unb64(value)
            doc = orjson.loads(self.aead.decrypt(raw[:12], raw[12:], self.policy_id.encode()))
        except Exception:
            return None
        if not isinstance(doc, dict) or not doc.get("exp", 0) > time.time():
            return None
        return doc

    def _cookie(self, name: str, value: str, max_age: int) -> tuple[str, str]:
        attrs = f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
        return ("set-cookie", attrs + ("; Secure" if self.secure else ""))

    # -- the request --------------------------------------------------------------------------
    def on_request(self, ctx):
        req = ctx.req
        if req.method == "GET" and ctx.path == self.callback_path and "state=" in (ctx.query or ""):
            return self._callback(ctx)
        if req.method == "OPTIONS" and req.headers.get("origin") and req.headers.get("access-control-request-method"):
            return None  # a CORS preflight carries no cookies
        value = _cookies(req).get(self.session_cookie)
        if value is not None:
            doc = self._open(value)
            if doc is not None and doc.get("pid") == self.policy_id:
                claims = doc.get("claims") or {}
                ctx.attrs["jwt"] = claims
                sub = claims.get("sub")
                if isinstance(sub, str):
                    ctx.attrs["principal"] = sub
                return None
        if self.meta is not None:
            return self._login(ctx)
        return self._login_after_discovery(ctx)

    async def _login_after_discovery(self, ctx):
        try:
            await self._discover(ctx)
        except (OidcError, SideCallError) as exc:
            log.warning("oidc: provider metadata from %s unavailable: %s", self.issuer, exc)
            return Reply.error(503, "oidc_provider_unavailable", f"oidc: the identity provider is unavailable: {exc}")
        return self._login(ctx)

    async def _discover(self, ctx) -> None:
        if self.meta is not None:
            return
        pool = ctx.bind.services.pool
        status, _, body = await self.discovery.request(pool, "GET", headers=[("accept", "application/json")])
        if status != 200:
            raise OidcError(f"discovery answered {status}")
        try:
            meta = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise OidcError("discovery document is not JSON") from None
        for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(k), str):
                raise OidcError(f"discovery document has no {k}")
        if meta["issuer"].rstrip("/") != self.issuer.rstrip("/"):
            raise OidcError(f"discovery names issuer {meta['issuer']!r}, not {self.issuer!r}")
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        meta["_auth"] = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        self.token_client = HttpSideClient(meta["token_endpoint"])
        self.jwks = RemoteJwks(HttpSideClient(meta["jwks_uri"]))
        self.meta = meta

    def _login(self, ctx) -> Reply:
        meta = self.meta
        assert meta is not None
        txn = _b64(os.urandom(12))
        verifier = _b64(os.urandom(32))
        nonce = _b64(os.urandom(16))
        state = f"{txn}.{_b64(os.urandom(16))}"
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        endpoint = meta["authorization_endpoint"]
        location = endpoint + ("&" if "?" in endpoint else "?") + urlencode(params, quote_via=quote)
        sealed = self._seal(
            {
                "pid": self.policy_id,
                "state": state,
                "nonce": nonce,
                "verifier": verifier,
                "return": _local_target(ctx.target),
                "exp": time.time() + TRANSACTION_TTL,
            }
        )
        headers = Headers(
            [("location", location), ("cache-control", "no-store"), self._cookie(self.txn_cookie + txn, sealed, 300)]
        )
        return Reply(302, headers, b"")

    async def _callback(self, ctx):
        q = dict(parse_qsl(ctx.query or "", keep_blank_values=True))
        state = q.get("state", "")
        txn = state.partition(".")[0]
        name = self.txn_cookie + txn
        doc = self._open(_cookies(ctx.req).get(name, "")) if txn else None
        if doc is None or doc.get("pid") != self.policy_id or not secrets.compare_digest(doc.get("state", ""), state):
            return Reply.error(400, "oidc_callback_invalid", "oidc: no login in progress for this callback (state)")
        if "error" in q:
            return Reply.error(401, "unauthenticated", f"oidc: the identity provider refused the login: {q['error']}")
        code = q.get("code")
        if not code:
            return Reply.error(400, "oidc_callback_invalid", "oidc: the callback has no code")
        try:
            await self._discover(ctx)
            claims = await self._exchange(ctx, code, doc)
        except (OidcError, SideCallError) as exc:
            log.warning("oidc: login failed: %s", exc)
            return Reply.error(401, "unauthenticated", f"oidc: login failed: {exc}")
        exp = min(time.time() + SESSION_TTL, float(claims.get("exp", 0)) or time.time() + SESSION_TTL)
        session = self._seal({"pid": self.policy_id, "claims": claims, "exp": exp})
        if len(session) > 3800:
            return Reply.error(502, "oidc_session_too_large", "oidc: the ID token's claims do not fit in a cookie")
        headers = Headers(
            [
                ("location", doc.get("return") or "/"),
                ("cache-control", "no-store"),
                self._cookie(self.session_cookie, session, max(1, int(exp - time.time()))),
                self._cookie(name, "", 0),
            ]
        )
        return Reply(302, headers, b"")

    async def _exchange(self, ctx, code: str, doc: dict) -> dict:
        meta = self.meta
        assert meta is not None and self.token_client is not None and self.jwks is not None
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": doc["verifier"],
        }
        headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")]
        if meta["_auth"] == "client_secret_basic":
            cred = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers.append(("authorization", "Basic " + base64.b64encode(cred.encode()).decode()))
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        pool = ctx.bind.services.pool
        status, _, body = await self.token_client.request(pool, "POST", headers=headers, body=urlencode(form).encode())
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = {}
        if status != 200:
            raise OidcError(f"the token endpoint answered {status} {answer.get('error', '')}".strip())
        token = answer.get("id_token")
        if not isinstance(token, str):
            raise OidcError("the token endpoint answered no id_token")
        try:
            header, _ = parse_unverified(token)
        except Exception:
            raise OidcError("the ID token is malformed") from None
        key = await self.jwks.get(pool, header.get("kid"))
        if key is None:
            raise OidcError("the ID token's key is not in the provider's JWKS")
        try:
            claims = verify_signature(token, key, header.get("alg", ""))
        except Exception as exc:
            raise OidcError(f"the ID token's signature does not verify: {exc}") from None
        now = time.time()
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if str(claims.get("iss", "")).rstrip("/") != self.issuer.rstrip("/"):
            raise OidcError("the ID token's issuer is not the configured issuer")
        if self.client_id not in auds:
            raise OidcError("the ID token is not for this client (aud)")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - 30:
            raise OidcError("the ID token has expired")
        if not secrets.compare_digest(str(claims.get("nonce", "")), doc.get("nonce", "")):
            raise OidcError("the ID token's nonce does not match the login")
        return claims


def compile_oidc(scope: CompileScope, o: m.Oidc, path: str, policy_id: str) -> Oidc | None:
    errors = scope.errors
    for attr, field in (
        ("discovery", "discovery"),
        ("authorization_endpoint", "authorizationEndpoint"),
        ("token_endpoint", "tokenEndpoint"),
        ("token_endpoint_auth", "tokenEndpointAuth"),
        ("jwks", "jwks"),
    ):
        if getattr(o, attr) is not None:
            errors.add(f"{path}.{field}", "not supported yet: the provider is found by discovery from issuer")
    ru = urlsplit(o.redirect_uri)
    if ru.scheme not in ("http", "https") or not ru.netloc:
        errors.add(f"{path}.redirectURI", f"must be an absolute http(s) URL, got {o.redirect_uri!r}")
        return None
    iu = urlsplit(o.issuer)
    if iu.scheme not in ("http", "https") or not iu.netloc:
        errors.add(f"{path}.issuer", f"must be an http(s) URL, got {o.issuer!r}")
        return None
    hex_key = os.environ.get("OIDC_COOKIE_SECRET", "").strip()
    try:
        key = bytes.fromhex(hex_key)
    except ValueError:
        key = b""
    if len(key) != 32:
        errors.add(
            path,
            "needs the OIDC_COOKIE_SECRET environment variable: the session cookie key, 32 bytes as 64 hex "
            "characters (openssl rand -hex 32)",
        )
        return None
    return Oidc(policy_id, o.issuer, o.client_id, o.client_secret, o.redirect_uri, o.scopes, key)
