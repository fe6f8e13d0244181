"""``serviceAccountAuth`` (agentgw extension): Kubernetes service-account tokens.

Two ways to validate, exactly one per policy:

* ``jwks``: verify the token as a JWT against the cluster's signing keys (the API
  server's ``/openid/v1/jwks``, or the same document in a file), with ``issuer`` and
  ``audiences`` -- the same verifier and by-bytes cache as ``jwtAuth``;
* ``tokenReview``: ask the API server (``POST /apis/authentication.k8s.io/v1/tokenreviews``
  with ``spec.audiences``), authenticating with the gateway's own token (``tokenFile``,
  re-read on every review since projected tokens rotate). An authenticated answer is
  cached by the token's bytes until the token's ``exp`` (at most ``REVIEW_CACHE_MAX``).

Only usernames of the form ``system:serviceaccount:<namespace>:<name>`` are accepted; the
username becomes ``ctx.attrs["principal"]``, ``ctx.attrs["serviceAccount"]`` holds
``username``, ``namespace``, ``name``, ``uid`` and ``groups``, and ``principalHeader``
(if set) carries it upstream (a client-sent header of that name is always removed).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import orjson

from ..proxy.policy import Policy
from .auth_common import CredentialLocation, HttpSideClient, SideCallError, unauthorized
from .jwt_auth import CACHE_MAX, InvalidToken, TokenVerifier

log = logging.getLogger("agentgw.auth")

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
REVIEW_CACHE_MAX = 600.0
SA_PREFIX = "system:serviceaccount:"


def _unverified_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except Exception:
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def service_account(username: str, uid: str = "", groups=()) -> dict | None:
    if not username.startswith(SA_PREFIX):
        return None
    ns, sep, name = username[len(SA_PREFIX) :].partition(":")
    if not sep or not ns or not name or ":" in name:
        return None
    return {"username": username, "namespace": ns, "name": name, "uid": uid, "groups": list(groups)}


class TokenReviewer:
    def __init__(self, client: HttpSideClient, audiences, token_file: str | None):
        self.client = client
        self.audiences = list(audiences or [])
        self.token_file = token_file
        self.cache: dict[str, tuple[dict, float]] = {}

    def cached(self, token: str) -> dict | None:
        hit = self.cache.get(token)
        if hit is None:
            return None
        sa, until = hit
        if time.time() >= until:
            self.cache.pop(token, None)
            return None
        return sa

    async def review(self, pool, token: str) -> dict:
        exp = _unverified_exp(token)
        now = time.time()
        if exp is not None and exp <= now:
            raise InvalidToken("expired")
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        if self.audiences:
            body["spec"]["audiences"] = self.audiences
        headers = [("content-type", "application/json"), ("accept", "application/json")]
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as f:
                    headers.append(("authorization", "Bearer " + f.read().strip()))
            except OSError as exc:
                raise SideCallError(f"cannot read tokenFile: {exc.strerror}") from None
        status, _, data = await self.client.request(
            pool, "POST", self.client.base_path + REVIEW_PATH, headers, orjson.dumps(body)
        )
        if status not in (200, 201):
            raise SideCallError(f"TokenReview answered {status}")
        try:
            st = orjson.loads(data).get("status") or {}
        except (orjson.JSONDecodeError, AttributeError):
            raise SideCallError("TokenReview answer is not JSON") from None
        if st.get("authenticated") is not True:
            raise InvalidToken("not authenticated")
        if self.audiences:
            got = st.get("audiences")
            if isinstance(got, list) and not set(got) & set(self.audiences):
                raise InvalidToken("audience mismatch")
        user = st.get("user") or {}
        sa = service_account(str(user.get("username", "")), str(user.get("uid", "")), user.get("groups") or ())
        if sa is None:
            raise InvalidToken("not a service account")
        until = now + REVIEW_CACHE_MAX
        if exp is not None:
            until = min(until, exp)
        if len(self.cache) >= CACHE_MAX:
            self.cache.clear()
        self.cache[token] = (sa, until)
        return sa


class ServiceAccountAuth(Policy):
    order = 23
    NAME = "serviceAccountAuth"

    def __init__(
        self,
        *,
        verifier: TokenVerifier | None = None,
        reviewer: TokenReviewer | None = None,
        mode: str = "strict",
        location: CredentialLocation | None = None,
        principal_header: str | None = None,
        preserve_token: bool = False,
    ):
        self.verifier = verifier
        self.reviewer = reviewer
        self.mode = mode
        self.location = location or CredentialLocation("header", "authorization", "Bearer ")
        self.header = principal_header.lower() if principal_header else None
        self.preserve = preserve_token
        self.challenge = 'Bearer realm="agentgw"'
        self.bad_challenge = 'Bearer realm="agentgw", error="invalid_token"'

    def on_request(self, ctx):
        if self.header:
            ctx.req.headers.remove(self.header)
        token = self.location.read(ctx)
        if token is None:
            if self.mode == "strict":
                return unauthorized(self.NAME, "missing credential", self.challenge)
            return None
        if not token:
            return None if self.mode == "permissive" else unauthorized(self.NAME, "invalid token", self.bad_challenge)
        if self.verifier is not None:
            claims = self.verifier.cached(token)
            if claims is not None:
                sa = self._from_claims(claims)
                if sa is not None:
                    self._accept(ctx, sa, claims)
                    return None
        elif self.reviewer is not None:
            sa = self.reviewer.cached(token)
            if sa is not None:
                self._accept(ctx, sa, None)
                return None
        return self._slow(ctx, token)

    @staticmethod
    def _from_claims(claims: dict) -> dict | None:
        sub = claims.get("sub")
        if not isinstance(sub, str):
            return None
        k8s = claims.get("kubernetes.io")
        if not isinstance(k8s, dict):
            k8s = {}
        sa_claim = k8s.get("serviceaccount")
        if not isinstance(sa_claim, dict):
            sa_claim = {}
        return service_account(sub, str(sa_claim.get("uid", "")))

    async def _slow(self, ctx, token: str):
        pool = ctx.bind.services.pool
        claims = None
        try:
            if self.verifier is not None:
                claims = await self.verifier.verify(pool, token)
                sa = self._from_claims(claims)
                if sa is None:
                    raise InvalidToken("not a service account")
            elif self.reviewer is not None:
                sa = await self.reviewer.review(pool, token)
            else:  # (compiled with one or the other)
                raise InvalidToken("no token verifier")
        except InvalidToken as exc:
            log.debug("serviceAccountAuth: token refused: %s", exc)
            if self.mode == "permissive":
                return None
            return unauthorized(self.NAME, "invalid token", self.bad_challenge)
        except SideCallError as exc:
            log.warning("serviceAccountAuth: TokenReview failed: %s", exc)
            if self.mode == "permissive":
                return None
            return unauthorized(self.NAME, "token could not be verified", self.bad_challenge)
        self._accept(ctx, sa, claims)
        return None

    def _accept(self, ctx, sa: dict, claims: dict | None) -> None:
        attrs = ctx.attrs
        attrs["serviceAccount"] = sa
        attrs["principal"] = sa["username"]
        if claims is not None:
            attrs["jwt"] = claims
        if self.header:
            ctx.req.headers.append((self.header, sa["username"]))
        if not self.preserve:
            self.location.strip(ctx)
