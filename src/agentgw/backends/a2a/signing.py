"""Signed agent cards (A2A 1.0): what the gateway does with a card's ``signatures``.

An agent card may carry JWS signatures (``{protected, signature}``, detached payload)
over its canonical form: the card without ``signatures``, empty strings, lists and
objects removed (as the official SDKs do), serialized by RFC 8785 (JCS). The gateway
rewrites the card's URLs, and a signature over the agent's URLs does not hold for the
gateway's. So, per route (``policies.a2a.cardSigning``):

* unset: a card the rewrite changed loses its signatures (a signature that no longer
  verifies is worse than none: a verifying client would reject the card either way,
  and a careless one would trust a claim nobody made); a card the rewrite left as it
  was keeps them;
* ``signingKey`` (+ ``kid``, ``alg``, ``jku``): the rewritten card is signed by the
  gateway, which vouches for the addresses it serves; the agent's own signatures are
  dropped when the rewrite changed the card;
* ``agentKeys`` (a JWKS: inline, ``{file}`` or ``{url}``): the agent's card must carry
  a signature by one of these keys before anything else happens, else the card request
  fails (502): the gateway does not re-sign what it could not verify.
"""

from __future__ import annotations

import base64
import logging

import jcs

from ...engine.http import GatewayError

log = logging.getLogger("agentgw.a2a")

#: what a signature may use (asymmetric only: a shared secret would let clients forge)
ALGORITHMS = ("ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA")


def _clean(v):
    """Empty strings, lists and objects removed, recursively (the SDKs' default-value rule)."""
    if isinstance(v, dict):
        out = {k: c for k, x in v.items() if (c := _clean(x)) is not None}
        return out or None
    if isinstance(v, list):
        out_l = [c for x in v if (c := _clean(x)) is not None]
        return out_l or None
    if isinstance(v, str) and not v:
        return None
    return v


def canonical(card: dict) -> bytes:
    """The bytes a card signature covers."""
    body = {k: v for k, v in card.items() if k != "signatures"}
    return jcs.canonicalize(_clean(body) or {})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class CardSigner:
    """Signs cards with a ``Signer`` (policies/backend_auth.py: the key, checked at load)."""

    def __init__(self, signer, kid: str, jku: str | None = None):
        self.signer = signer
        self.header: dict = {"alg": signer.alg, "kid": kid, "typ": "JOSE"}
        if jku:
            self.header["jku"] = jku

    def signature(self, card: dict) -> dict:
        """An ``AgentCardSignature`` over ``card``."""
        from joserfc import jws

        s = self.signer
        compact = jws.serialize_compact(self.header, canonical(card), s.key, algorithms=[s.alg])
        protected, _, rest = compact.partition(".")
        return {"protected": protected, "signature": rest.rpartition(".")[2]}


class CardVerifier:
    """The agent's keys (a JWKS source as jwtAuth uses: static, or fetched and refreshed)."""

    def __init__(self, jwks):
        self.jwks = jwks

    async def verify(self, card: dict, pool) -> None:
        """Pass if one of the card's signatures verifies; raise a 502 otherwise."""
        from joserfc import jws
        from joserfc.errors import JoseError

        sigs = card.get("signatures")
        if not isinstance(sigs, list) or not sigs:
            raise GatewayError(
                502, "a2a_card_unsigned", "the agent's card carries no signature (cardSigning.agentKeys)"
            )
        payload = _b64(canonical(card))
        for s in sigs:
            if not isinstance(s, dict) or not isinstance(s.get("protected"), str):
                continue
            try:
                header = jws.extract_compact(f"{s['protected']}.{payload}.{s.get('signature', '')}".encode()).headers()
            except (JoseError, ValueError):
                continue
            if header.get("alg") not in ALGORITHMS:
                continue
            kid = header.get("kid")
            keys = await self.jwks.get(pool, kid if isinstance(kid, str) else None)
            if keys is None:
                continue
            # the key the header names; else any configured key (a PEM key has no kid)
            candidates = [k for k in keys.keys if kid is not None and k.kid == kid] or list(keys.keys)
            for key in candidates[:8]:
                try:
                    jws.deserialize_compact(
                        f"{s['protected']}.{payload}.{s.get('signature', '')}", key, algorithms=[header["alg"]]
                    )
                    return
                except (JoseError, ValueError, TypeError):
                    continue
        raise GatewayError(
            502, "a2a_card_signature", "no signature on the agent's card verifies (cardSigning.agentKeys)"
        )


class CardSigning:
    """What one route does with card signatures (see the module docstring)."""

    __slots__ = ("signer", "verifier")

    def __init__(self, signer: CardSigner | None = None, verifier: CardVerifier | None = None):
        self.signer = signer
        self.verifier = verifier

    @staticmethod
    def snapshot(card: dict) -> bytes | None:
        """A signed card's canonical bytes, to tell after the rewrite whether it changed."""
        return canonical(card) if card.get("signatures") else None

    def after(self, card: dict, signed_as: bytes | None) -> None:
        changed = signed_as is not None and canonical(card) != signed_as
        if changed:
            log.debug("agent card %r rewritten: its signatures no longer hold and are removed", card.get("name"))
            card.pop("signatures", None)
        if self.signer is not None:
            kept = card.get("signatures")
            card["signatures"] = [*(kept if isinstance(kept, list) else ()), self.signer.signature(card)]


#: the default: signatures kept only where the rewrite changed nothing
UNSIGNED = CardSigning()
