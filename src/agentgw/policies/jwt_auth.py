"""``jwtAuth``: verify a JWT against one or more issuers' JWKS.

* Keys come from ``jwks`` as inline JSON (or a PEM public key), ``{file}`` (read at config
  load) or ``{url}`` (fetched through the gateway's connection pool, kept for
  ``JWKS_TTL`` or the response's ``max-age``, re-fetched at once -- at most once per
  ``REFETCH_MIN_INTERVAL`` -- when a token names a ``kid`` it doesn't know). A failed
  fetch keeps the keys already known; with none known, tokens are refused: an outage
  never lets a token in that could not be checked.
* Only asymmetric algorithms are accepted (RS*, PS*, ES*, EdDSA); ``alg: none`` and every
  HMAC algorithm are refused before any key is looked at, and symmetric (``oct``) keys
  are never loaded from a JWKS, so a public key can't be used as an HMAC secret.
* ``exp`` is required; ``exp``/``nbf`` are checked with ``CLOCK_SKEW`` seconds of leeway;
  ``iss`` must equal the provider's ``issuer`` and, when ``audiences`` are set, ``aud``
  must name one of them.
* A verified token is cached by its exact bytes until it expires (or until its issuer's
  key set changes), so the hot path is a dict lookup. For header locations the
  accepted header value itself is remembered with its identity headers, so a repeat
  costs one scan of the request headers and one lookup.
* ``mode``: ``strict`` needs a valid token; ``optional`` (default) lets requests without
  a token through but refuses a bad one; ``permissive`` never refuses (claims are set
  only for a valid token).

On success the claims go to ``ctx.attrs["jwt"]``, the token to ``ctx.attrs["jwt_token"]`` and
``sub`` to ``ctx.attrs["principal"]``;
``claimToHeaders`` copies claims into request headers; the token itself is removed
from the forwarded request unless ``preserveToken: true``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence

import orjson

from ..proxy.policy import Policy
from .auth_common import CredentialLocation, HttpSideClient, SideCallError, unauthorized

log = logging.getLogger("agentgw.auth")

ALLOWED_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)
CLOCK_SKEW = 30.0
JWKS_TTL = 300.0
REFETCH_MIN_INTERVAL = 1.0
CACHE_MAX = 10000
_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})
_KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class InvalidToken(Exception):
    """Why a token was refused (logged at debug level, never sent to the client)."""


def _b64json(seg: str) -> dict:
    pad = "=" * (-len(seg) % 4)
    try:
        v = json.loads(base64.urlsafe_b64decode(seg + pad))
    except Exception:
        raise InvalidToken("malformed token") from None
    if not isinstance(v, dict):
        raise InvalidToken("malformed token")
    return v


def _import_keyset(data):
    """A joserfc KeySet from JWKS JSON (dict/str) or a PEM public key; asymmetric keys only."""
    from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

    if isinstance(data, (bytes, str)):
        text = data.decode() if isinstance(data, bytes) else data
        stripped = text.strip()
        if stripped.startswith("-----BEGIN"):
            for cls in (RSAKey, ECKey, OKPKey):
                try:
                    return KeySet([cls.import_key(stripped)])
                except Exception:
                    continue
            raise ValueError("not a usable PEM public key")
        data = json.loads(stripped)
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS document")
    if not data["keys"]:
        # written as such ({"keys": []}, as agentgateway's own configs do): no token can
        # verify, so every token is refused; unusable keys below are a mistake instead
        return KeySet([])
    keys = [k for k in data["keys"] if isinstance(k, dict) and k.get("kty") in _ASYMMETRIC_KTY]
    if not keys:
        raise ValueError("no RSA, EC or OKP public key in the JWKS")
    keys = [{k2: v for k2, v in k.items() if k2 not in ("d", "p", "q", "dp", "dq", "qi")} for k in keys]
    ks = KeySet.import_key_set({"keys": keys})
    return ks


class StaticJwks:
    generation = 0

    def __init__(self, keyset, kids: frozenset):
        self.keyset = keyset
        self.kids = kids

    async def get(self, pool, kid):
        return self.keyset

    def peek(self, kid):
        return self.keyset


class RemoteJwks:
    """A JWKS URL: fetched on first use, refreshed on expiry and on an unknown ``kid``."""

    def __init__(self, client: HttpSideClient, headers=(), ttl: float = JWKS_TTL):
        self.client = client
        self.headers = list(headers)
        self.ttl = ttl
        self.keyset = None
        self.kids: frozenset = frozenset()
        self.expires = 0.0
        self.last_attempt = -1e9
        self.generation = 0
        self._inflight: asyncio.Future | None = None

    def peek(self, kid):
        if self.keyset is not None and time.monotonic() < self.expires and (kid is None or kid in self.kids):
            return self.keyset
        return None

    async def get(self, pool, kid):
        now = time.monotonic()
        stale = self.keyset is None or now >= self.expires
        unknown = kid is not None and self.keyset is not None and kid not in self.kids
        if (stale or unknown) and now - self.last_attempt >= REFETCH_MIN_INTERVAL:
            await self._refresh(pool)
        elif (stale or unknown) and self._inflight is not None:
            await asyncio.shield(self._inflight)
        return self.keyset

    async def _refresh(self, pool):
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        self.last_attempt = time.monotonic()
        fut = asyncio.get_running_loop().create_future()
        self._inflight = fut
        try:
            extra = [(k, v() if callable(v) else v) for k, v in self.headers]
            status, headers, body = await self.client.request(
                pool, "GET", headers=[("accept", "application/json")] + extra
            )
            if status != 200:
                raise SideCallError(f"JWKS endpoint answered {status}")
            ks = _import_keyset(body.decode("utf-8"))
            kids = frozenset(k.kid for k in ks.keys if k.kid)
            ttl = self.ttl
            cc = headers.get("cache-control") or ""
            for part in cc.split(","):
                k, _, v = part.strip().partition("=")
                if k == "max-age" and v.isdigit():
                    ttl = max(REFETCH_MIN_INTERVAL, min(float(v), 24 * 3600.0))
            if ks.keys:
                if kids != self.kids or self.keyset is None:
                    self.generation += 1
                self.keyset, self.kids = ks, kids
                self.expires = time.monotonic() + ttl
        except (SideCallError, ValueError, UnicodeDecodeError) as exc:
            log.warning(
                "JWKS fetch from %s failed: %s (keeping %d known keys)",
                self.client.target.authority,
                exc,
                len(self.kids),
            )
        except Exception as exc:
            log.warning("JWKS fetch from %s failed: %s", self.client.target.authority, type(exc).__name__)
        finally:
            self._inflight = None
            if not fut.done():
                fut.set_result(None)


class Provider:
    __slots__ = ("issuer", "audiences", "jwks", "required")

    def __init__(self, issuer: str, audiences, jwks, required=()):
        self.issuer = issuer
        self.audiences = frozenset(audiences) if audiences else None
        self.jwks = jwks
        self.required = tuple(required or ())

    def check_claims(self, claims: dict, now: float) -> float:
        """Validate registered claims; returns ``exp``."""
        if claims.get("iss") != self.issuer:
            raise InvalidToken("issuer mismatch")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise InvalidToken("missing exp")
        if now - CLOCK_SKEW >= exp:
            raise InvalidToken("expired")
        nbf = claims.get("nbf")
        if nbf is not None:
            if not isinstance(nbf, (int, float)) or isinstance(nbf, bool):
                raise InvalidToken("bad nbf")
            if now + CLOCK_SKEW < nbf:
                raise InvalidToken("not yet valid")
        if self.audiences is not None:
            aud = claims.get("aud")
            auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not any(isinstance(a, str) and a in self.audiences for a in auds):
                raise InvalidToken("audience mismatch")
        for c in self.required:
            if c not in claims:
                raise InvalidToken("missing required claim")
        return float(exp)


def verify_signature(token: str, key, alg: str) -> dict:
    from joserfc import jwt as _jwt
    from joserfc.errors import JoseError

    try:
        t = _jwt.decode(token, key, algorithms=[alg])
    except JoseError as exc:
        raise InvalidToken(f"signature check failed ({exc.error})") from None
    except (ValueError, TypeError, KeyError):
        raise InvalidToken("signature check failed") from None
    claims = t.claims
    if not isinstance(claims, dict):
        raise InvalidToken("claims are not an object")
    return claims


def parse_unverified(token: str) -> tuple[dict, dict]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise InvalidToken("malformed token")
    header = _b64json(parts[0])
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise InvalidToken("algorithm not allowed")
    if header.get("crit"):
        raise InvalidToken("unsupported critical header")
    payload = _b64json(parts[1])
    return header, payload


class TokenVerifier:
    """Verification and the by-bytes cache shared by ``jwtAuth`` and ``serviceAccountAuth``."""

    def __init__(self, providers: list[Provider]):
        self.providers = providers
        self.by_issuer = {p.issuer: p for p in providers}
        self.cache: dict[str, tuple] = {}

    def cached(self, token: str):
        hit = self.cache.get(token)
        if hit is None:
            return None
        claims, exp, provider, gen = hit
        if time.time() - CLOCK_SKEW >= exp or provider.jwks.generation != gen:
            self.cache.pop(token, None)
            return None
        return claims

    async def verify(self, pool, token: str) -> dict:
        header, payload = parse_unverified(token)
        iss = payload.get("iss")
        provider = self.by_issuer.get(iss) if isinstance(iss, str) else None
        if provider is None:
            raise InvalidToken("unknown issuer")
        # Check what needs no key first: expired tokens never trigger a JWKS fetch.
        provider.check_claims(payload, time.time())
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None
        keyset = await provider.jwks.get(pool, kid)
        if keyset is None or not keyset.keys:
            raise InvalidToken("no keys available for issuer")
        gen = provider.jwks.generation
        alg = header["alg"]
        kty = _KTY_FOR_ALG[alg[:2]]
        candidates = [
            k
            for k in keyset.keys
            if (kid is None or k.kid == kid) and k.key_type == kty and k.get("alg") in (None, alg)
        ]
        if not candidates:
            raise InvalidToken("no matching key")
        claims = None
        for k in candidates[:8]:
            try:
                claims = verify_signature(token, k, alg)
                break
            except InvalidToken:
                continue
        if claims is None:
            raise InvalidToken("signature check failed")
        exp = provider.check_claims(claims, time.time())
        cache = self.cache
        if len(cache) >= CACHE_MAX:
            now = time.time()
            for t in [t for t, v in cache.items() if v[1] <= now]:
                del cache[t]
            if len(cache) >= CACHE_MAX:
                cache.clear()
        cache[token] = (claims, exp, provider, gen)
        return claims


def _claim(claims: dict, name: str):
    if name in claims:
        return claims[name]
    cur = claims
    for part in name.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def claim_header_value(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        s = v
    elif isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, (int, float)):
        s = str(v)
    elif isinstance(v, list) and all(isinstance(x, str) for x in v):
        s = ",".join(v)
    else:
        s = orjson.dumps(v).decode()
    if "\r" in s or "\n" in s or "\x00" in s:
        return None
    return s


class _Accepted:
    """A credential header value accepted before: what a repeat of it needs. Valid while
    the token's own cache entry would be (until expiry, or until its key set changes)."""

    __slots__ = ("deadline", "jwks", "generation", "claims", "principal", "identity", "token")

    def __init__(self, deadline: float, jwks, generation: int, claims: dict, principal, identity: list, token: str):
        self.token = token
        self.deadline = deadline
        self.jwks = jwks
        self.generation = generation
        self.claims = claims
        self.principal = principal
        self.identity = identity  # claimToHeaders pairs


class JwtAuth(Policy):
    order = 20
    NAME = "jwtAuth"

    def __init__(
        self,
        providers: list[Provider],
        mode: str = "optional",
        location: CredentialLocation | None = None,
        preserve_token: bool = False,
        claim_headers: Sequence[tuple[str, str]] = (),
    ):
        self.verifier = TokenVerifier(providers)
        self.mode = mode
        self.location = location or CredentialLocation("header", "authorization", "Bearer ")
        self.preserve = preserve_token
        self.claim_headers = [(c, h.lower()) for c, h in claim_headers]
        self._claim_names = frozenset(h for _, h in self.claim_headers)
        # Header locations only: accepted credentials by the exact header value they
        # arrived in, so a repeat skips the prefix parse, the verifier's lookup and the
        # claim-to-header conversion.
        self._hits: dict[str, _Accepted] = {}
        self._hit_header = self.location.name if self.location.kind == "header" else None
        self.challenge = 'Bearer realm="agentgw"'
        self.bad_challenge = 'Bearer realm="agentgw", error="invalid_token"'

    def on_request(self, ctx):
        name = self._hit_header
        if name is not None:
            h = ctx.req.headers
            found = -1
            spoofed = False
            i = 0
            names = self._claim_names
            for k, _ in h:
                if k == name:
                    if found >= 0:  # several copies: ambiguous, the general path refuses
                        found = -2
                        break
                    found = i
                elif k in names:
                    spoofed = True
                i += 1
            if found >= 0:
                hit = self._hits.get(h[found][1])
                if hit is not None and time.time() < hit.deadline and hit.jwks.generation == hit.generation:
                    attrs = ctx.attrs
                    attrs["jwt"] = hit.claims
                    attrs["jwt_token"] = hit.token
                    if hit.principal is not None:
                        attrs["principal"] = hit.principal
                    if spoofed:
                        drop = names if self.preserve else names | {name}
                        h[:] = [kv for kv in h if kv[0] not in drop]
                    elif not self.preserve:
                        del h[found]
                    if hit.identity:
                        h.extend(hit.identity)
                    return None
        return self._general(ctx)

    def _general(self, ctx):
        if self.claim_headers:  # a client never supplies an identity header itself
            h = ctx.req.headers
            for _, header in self.claim_headers:
                h.remove(header)
        token = self.location.read(ctx)
        if token is None:
            if self.mode == "strict":
                return unauthorized(self.NAME, "missing credential", self.challenge)
            return None
        if token:
            claims = self.verifier.cached(token)
            if claims is not None:
                self._accept(ctx, claims, token)
                return None
        elif self.mode == "permissive":
            return None
        else:
            return unauthorized(self.NAME, "invalid token", self.bad_challenge)
        return self._slow(ctx, token)

    async def _slow(self, ctx, token: str):
        try:
            claims = await self.verifier.verify(ctx.bind.services.pool, token)
        except InvalidToken as exc:
            log.debug("jwtAuth: token refused: %s", exc)
            if self.mode == "permissive":
                return None
            return unauthorized(self.NAME, "invalid token", self.bad_challenge)
        self._accept(ctx, claims, token)
        return None

    def _accept(self, ctx, claims: dict, token: str) -> None:
        h = ctx.req.headers
        raw = h.get(self._hit_header) if self._hit_header is not None else None
        sub = claims.get("sub")
        principal = sub if isinstance(sub, str) else None
        attrs = ctx.attrs
        attrs["jwt"] = claims
        attrs["jwt_token"] = token  # for backendAuth.passthrough (the header itself is removed)
        if principal is not None:
            attrs["principal"] = principal
        identity = []
        for claim, header in self.claim_headers:
            v = claim_header_value(_claim(claims, claim))
            if v is not None:
                identity.append((header, v))
        h.extend(identity)
        if not self.preserve:
            self.location.strip(ctx)
        if raw is not None:
            self._remember(raw, token, claims, principal, identity)

    def _remember(self, raw: str, token: str, claims: dict, principal, identity: list) -> None:
        entry = self.verifier.cache.get(token)
        if entry is None or entry[0] is not claims:
            return
        _, exp, provider, gen = entry
        hits = self._hits
        if len(hits) >= CACHE_MAX:
            hits.clear()
        hits[raw] = _Accepted(exp + CLOCK_SKEW, provider.jwks, gen, claims, principal, identity, token)


def build_jwks(spec, base_path, *, headers=(), ca_file=None, timeout: float = 5.0):
    """A JWKS source from the config value (inline str / FileRef)."""
    if isinstance(spec, str):
        ks = _import_keyset(spec)
        return StaticJwks(ks, frozenset(k.kid for k in ks.keys if k.kid))
    if spec.file is not None:
        with open(base_path(spec.file), encoding="utf-8") as f:
            ks = _import_keyset(f.read())
        return StaticJwks(ks, frozenset(k.kid for k in ks.keys if k.kid))
    return RemoteJwks(HttpSideClient(spec.url, ca_file=ca_file, timeout=timeout), headers=headers)
