"""Agent-card rewriting: point every address a card advertises at the gateway.

A card fetched through agentgw must only name addresses the client can reach through
agentgw. The client's view of the gateway (scheme and authority) comes from
``X-Forwarded-Proto`` / ``X-Forwarded-Host`` when a proxy in front of agentgw set them,
else from the listener (TLS or not) and the ``Host`` header. Paths are mapped back
through any path rewrite: the part of the client's path that the rewrite replaced is
put back in front of each advertised path.

Rewritten fields:

* v0.3: top-level ``url`` and ``additionalInterfaces[].url`` (and ``preferredTransport``
  when it named gRPC, which does not cross this gateway);
* v1.0: ``supportedInterfaces[].url``;
* ``iconUrl``, ``documentationUrl`` and ``provider.url`` when they point at the same
  host as an agent interface (the backend itself).

Interfaces whose binding is gRPC are dropped: agentgw relays HTTP/1.1 only, and handing
the client the backend's gRPC address would bypass the gateway.
"""

from __future__ import annotations

import hashlib
import zlib
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import orjson

from ...engine.http import GatewayError
from .signing import UNSIGNED, CardSigning

WELL_KNOWN = ("/.well-known/agent-card.json", "/.well-known/agent.json")
_GRPC = ("GRPC", "grpc")


def is_card_path(path: str) -> bool:
    return path.endswith(WELL_KNOWN[0]) or path.endswith(WELL_KNOWN[1])


def path_prefixes(client_path: str, upstream_path: str) -> tuple[str, str]:
    """Split off the longest common (segment-aligned) suffix of the two paths.

    What remains is what a path rewrite replaced: ``("/agents/w", "")`` for a client
    path ``/agents/w/.well-known/agent-card.json`` forwarded as
    ``/.well-known/agent-card.json``.
    """
    c = [s for s in client_path.split("/") if s]
    u = [s for s in upstream_path.split("/") if s]
    n = 0
    while n < len(c) and n < len(u) and c[-1 - n] == u[-1 - n]:
        n += 1
    cp = c[: len(c) - n]
    up = u[: len(u) - n]
    return ("/" + "/".join(cp)) if cp else "", ("/" + "/".join(up)) if up else ""


class CardRewriter:
    """Rewrites one card for one request."""

    __slots__ = ("origin", "client_prefix", "upstream_prefix", "backend_hosts")

    def __init__(self, origin: str, client_prefix: str, upstream_prefix: str):
        self.origin = origin
        self.client_prefix = client_prefix
        self.upstream_prefix = upstream_prefix
        self.backend_hosts: set[str] = set()

    def url(self, u):
        if not isinstance(u, str) or not u:
            return u
        try:
            parts = urlsplit(u if "://" in u else "http://" + u)
        except ValueError:
            return self.origin + (self.client_prefix or "/")
        if parts.netloc:
            self.backend_hosts.add(parts.netloc.lower())
        p = parts.path
        up = self.upstream_prefix
        if up and (p == up or p.startswith(up + "/")):
            p = p[len(up) :]
        p = self.client_prefix + p
        if not p:
            p = "/"
        out = self.origin + p
        if parts.query:
            out += "?" + parts.query
        return out

    def aux_url(self, u):
        """Rewrite a non-interface URL only if it points at the backend itself."""
        if not isinstance(u, str) or "://" not in u:
            return u
        try:
            host = urlsplit(u).netloc.lower()
        except ValueError:
            return u
        return self.url(u) if host in self.backend_hosts else u

    def card(self, card: dict) -> dict:
        # v1.0
        si = card.get("supportedInterfaces")
        if isinstance(si, list):
            kept = []
            for it in si:
                if not isinstance(it, dict):
                    continue
                if it.get("protocolBinding") in _GRPC:
                    self._note(it.get("url"))
                    continue
                it["url"] = self.url(it.get("url"))
                kept.append(it)
            card["supportedInterfaces"] = kept
        # v0.3
        ai = card.get("additionalInterfaces")
        if isinstance(ai, list):
            kept = []
            for it in ai:
                if not isinstance(it, dict):
                    continue
                if it.get("transport") in _GRPC:
                    self._note(it.get("url"))
                    continue
                it["url"] = self.url(it.get("url"))
                kept.append(it)
            card["additionalInterfaces"] = kept
        if "url" in card:
            if card.get("preferredTransport") in _GRPC:
                self._note(card.get("url"))
                alt = next((it for it in (ai or []) if isinstance(it, dict) and it.get("url")), None)
                if alt is not None:
                    card["url"] = alt["url"]
                    card["preferredTransport"] = alt.get("transport", "JSONRPC")
                else:
                    card["url"] = self.url(card["url"])
                    card["preferredTransport"] = "JSONRPC"
            else:
                card["url"] = self.url(card["url"])
        for k in ("iconUrl", "documentationUrl"):
            if k in card:
                card[k] = self.aux_url(card[k])
        prov = card.get("provider")
        if isinstance(prov, dict) and "url" in prov:
            prov["url"] = self.aux_url(prov["url"])
        return card

    def _note(self, u) -> None:
        if isinstance(u, str) and u:
            try:
                self.backend_hosts.add(urlsplit(u if "://" in u else "http://" + u).netloc.lower())
            except ValueError:
                pass


def _decode(headers, body: bytes) -> bytes:
    enc = (headers.get("content-encoding") or "").strip().lower()
    if not enc or enc == "identity":
        return body
    if enc in ("gzip", "x-gzip", "deflate"):
        try:
            return zlib.decompress(body, 47 if enc != "deflate" else zlib.MAX_WBITS)
        except zlib.error:
            try:
                return zlib.decompress(body, -zlib.MAX_WBITS)
            except zlib.error:
                pass
    raise GatewayError(502, "a2a_card_invalid", f"agent card with unsupported content-encoding {enc!r}")


def card_validators(
    headers, body: bytes, conditions: tuple[str | None, str | None], trusted: bool
) -> tuple[int, bytes]:
    """Cache validators for a rewritten card, and the answer to the client's condition.

    The ``ETag`` names the rewritten bytes (a hash of them: the same card seen through the
    same gateway address keeps it); ``Last-Modified`` and ``Cache-Control`` are the
    agent's, since the card changes when the agent's does. When the request's
    ``If-None-Match`` names that ETag (or, without it, ``If-Modified-Since`` is not
    older than ``Last-Modified``) the answer is ``304`` without a body. The card's URLs
    follow ``X-Forwarded-Host``/``-Proto`` from a trusted proxy, so shared caches are
    told to key on them."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers.set("etag", etag)
    if trusted:
        headers.append(("vary", "X-Forwarded-Host, X-Forwarded-Proto"))
    inm, ims = conditions
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        if "*" in tags or etag in tags:
            headers.remove("content-type")
            return 304, b""
        return 200, body
    lm = headers.get("last-modified")
    if ims is not None and lm is not None:
        try:
            if parsedate_to_datetime(lm) <= parsedate_to_datetime(ims):
                headers.remove("content-type")
                return 304, b""
        except (TypeError, ValueError):
            pass
    return 200, body


def _load(headers, body: bytes, jsonrpc: bool) -> tuple[object, dict | None]:
    """The response document and the card in it (``None``: a JSON-RPC error, no card)."""
    try:
        doc = orjson.loads(_decode(headers, body))
    except orjson.JSONDecodeError:
        raise GatewayError(502, "a2a_card_invalid", "the agent returned an agent card that is not JSON") from None
    if jsonrpc:
        res = doc.get("result") if isinstance(doc, dict) else None
        return doc, res if isinstance(res, dict) else None
    if not isinstance(doc, dict):
        raise GatewayError(502, "a2a_card_invalid", "the agent returned an agent card that is not a JSON object")
    return doc, doc


def card_in(status: int, headers, body: bytes, *, jsonrpc: bool = False) -> dict | None:
    """The agent's card in a response, as the agent sent it (for signature checks)."""
    if status != 200 or not body:
        return None
    return _load(headers, body, jsonrpc)[1]


def rewrite_card_body(
    rw: CardRewriter, status: int, headers, body: bytes, *, jsonrpc: bool = False, signing: CardSigning = UNSIGNED
) -> bytes:
    """Rewrite a card response body (a bare card, or a JSON-RPC result holding one), and
    its signatures as ``signing`` says (see signing.py)."""
    if status != 200 or not body:
        return body
    body = _decode(headers, body)
    headers.remove("content-encoding")
    headers.remove("etag")  # the backend's validator does not describe the rewritten card
    doc, card = _load(headers, body, jsonrpc)
    if card is None:
        return body  # a JSON-RPC error: no card in it
    signed_as = signing.snapshot(card)
    rw.card(card)
    signing.after(card, signed_as)
    return orjson.dumps(doc)
