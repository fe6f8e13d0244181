"""Agent-card rewriting: point every address a card advertises at the gateway.

A card fetched through agentgw must only name addresses the client can reach through
agentgw. The client's view of the gateway (scheme and authority) comes from
``X-Forwarded-Proto`` / ``X-Forwarded-Host`` when a proxy in front of agentgw set them,
else from the listener (TLS or not) and the ``Host`` header. Paths are mapped back
through any path rewrite: the part of the client's path that the rewrite replaced is
put back in front of each advertised path.

Rewritten fields:

* v0.3: top-level ``url`` and ``additionalInterfaces[].url`` (and ``preferredTransport``
  when it named gRPC and gRPC is not routed: see below);
* v1.0: ``supportedInterfaces[].url``;
* ``iconUrl``, ``documentationUrl`` and ``provider.url`` when they point at the same
  host as an agent interface (the backend itself).

gRPC interfaces (v1.0 ``protocolBinding``, v0.3 ``transport`` / ``preferredTransport``
``GRPC``): a gRPC interface's URL is a gRPC *target*, usually ``host:port`` without a
scheme, and a gRPC call cannot carry a path prefix (its ``:path`` is
``/<package>.A2AService/<Method>``). So a kept gRPC interface is rewritten to the
gateway's authority alone (``host:port`` as the client reached the gateway, the port
always written; a scheme only if the agent wrote one, see :meth:`CardRewriter.grpc_url`).
It is kept only when the gateway routes the call to the same agent: the client-facing
listener has a route, on the host the card was asked for, that a gRPC call of that
interface's protocol version (``POST /lf.a2a.v1.A2AService/SendMessage`` for 1.0,
``/a2a.v1.A2AService/…`` for 0.3, ``content-type: application/grpc``) matches, that is
an A2A route of the card's agent (same agent name), and that is not the route a plain
``POST /`` matches too (a catch-all route is the JSON-RPC one, whose backend is the
agent's HTTP port: see :func:`grpc_route_probe`). Otherwise the interface is dropped, as
handing the client the backend's gRPC address would bypass the gateway (and the
gateway's address would reach another agent, or none); clients fall back to the HTTP
bindings, through the gateway.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from ...engine.http import GatewayError
from .grpc import SERVICE_V03, SERVICE_V1
from .signing import UNSIGNED, CardSigning

WELL_KNOWN = ("/.well-known/agent-card.json", "/.well-known/agent.json")
_GRPC = ("GRPC", "grpc")
# a gRPC call as a client sends it, and a plain JSON-RPC post: what a route must tell apart
_GRPC_CALL = (("content-type", "application/grpc"), ("te", "trailers"))
_PLAIN_POST = (("content-type", "application/json"),)


def grpc_route_probe(routes, host: str, serves: Callable[[Any], bool]) -> Callable[[str], bool]:
    """``routable(service)``: whether ``routes`` (a listener's route table) send a gRPC
    call to ``service`` on ``host`` to a gRPC route of the same agent.

    The route a ``POST /<service>/SendMessage`` with gRPC's content type takes must be
    one that ``serves`` (the policy's check: an A2A route of the card's agent), and must
    not be the route (the same match entry) that a plain JSON ``POST /`` takes: a
    catch-all route (``pathPrefix: /``) matches any path, gRPC's too, but it is there for
    the HTTP bindings and its backend is the agent's HTTP port. A route for the service
    path (``pathPrefix: /lf.a2a.v1.A2AService/``), or one that matches gRPC's content
    type, is a gRPC route."""
    seen: dict[str, bool] = {}

    def routable(service: str) -> bool:
        ok = seen.get(service)
        if ok is None:
            try:
                m = routes.match("POST", host, f"/{service}/SendMessage", _GRPC_CALL, "")
                ok = m is not None and serves(m.route) and routes.match("POST", host, "/", _PLAIN_POST, "") is not m
            except GatewayError:  # (a route matching on a repeated field: not these)
                ok = False
            seen[service] = ok
        return ok

    return routable


def _never(service: str) -> bool:
    return False


def grpc_authority(origin: str) -> str:
    """``host:port`` of a ``scheme://host[:port]`` origin, the port always written (a gRPC
    target without one means 443, whatever the scheme)."""
    scheme, _, host = origin.partition("://")
    has_port = "]:" in host if host.startswith("[") else ":" in host
    if not has_port:
        host += ":443" if scheme == "https" else ":80"
    return host


def _grpc_service(protocol_version) -> str:
    """The gRPC service an interface of this A2A protocol version is called on."""
    if isinstance(protocol_version, str) and protocol_version.strip().startswith("0."):
        return SERVICE_V03
    return SERVICE_V1


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
    """Rewrites one card for one request.

    ``grpc_routable(service)`` says whether the gateway routes gRPC calls to that service
    (see :func:`grpc_route_probe`); by default it does not, and gRPC interfaces are
    dropped."""

    __slots__ = ("origin", "client_prefix", "upstream_prefix", "backend_hosts", "grpc_routable")

    def __init__(
        self,
        origin: str,
        client_prefix: str,
        upstream_prefix: str,
        grpc_routable: Callable[[str], bool] = _never,
    ):
        self.origin = origin
        self.client_prefix = client_prefix
        self.upstream_prefix = upstream_prefix
        self.backend_hosts: set[str] = set()
        self.grpc_routable = grpc_routable

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

    def grpc_url(self, u):
        """A gRPC interface's URL, pointed at the gateway: its authority, with the port.

        Scheme-less (``host:port``, what a2a-sdk's gRPC transport and most cards use) stays
        scheme-less; ``dns:`` targets stay ``dns:///``; ``grpc://``/``grpcs://`` and
        ``http://``/``https://`` follow the client's view of the gateway (TLS or not).
        Any other form (``unix:``, ``ipv4:``) becomes plain ``host:port``."""
        if not isinstance(u, str) or not u:
            return u
        self._note(u)
        auth = grpc_authority(self.origin)
        scheme, sep, _ = u.partition("://")
        scheme = scheme.lower()
        secure = self.origin.startswith("https:")
        if sep and scheme in ("grpc", "grpcs"):
            return f"{'grpcs' if secure else 'grpc'}://{auth}"
        if sep and scheme in ("http", "https"):
            return f"{'https' if secure else 'http'}://{auth}"
        if u[:4].lower() == "dns:":
            return f"dns:///{auth}"
        return auth

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
                    if self.grpc_routable(_grpc_service(it.get("protocolVersion"))):
                        it["url"] = self.grpc_url(it.get("url"))
                        kept.append(it)
                    else:
                        self._note(it.get("url"))
                    continue
                it["url"] = self.url(it.get("url"))
                kept.append(it)
            card["supportedInterfaces"] = kept
        # v0.3 (whose gRPC service is a2a.v1's)
        grpc03 = self.grpc_routable(SERVICE_V03) if _has_v03_grpc(card) else False
        ai = card.get("additionalInterfaces")
        if isinstance(ai, list):
            kept = []
            for it in ai:
                if not isinstance(it, dict):
                    continue
                if it.get("transport") in _GRPC:
                    if grpc03:
                        it["url"] = self.grpc_url(it.get("url"))
                        kept.append(it)
                    else:
                        self._note(it.get("url"))
                    continue
                it["url"] = self.url(it.get("url"))
                kept.append(it)
            card["additionalInterfaces"] = ai = kept
        if "url" in card:
            if card.get("preferredTransport") in _GRPC and grpc03:
                card["url"] = self.grpc_url(card["url"])
            elif card.get("preferredTransport") in _GRPC:
                self._note(card.get("url"))
                # another interface, already rewritten (the gRPC ones are gone)
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
        """Remember the host of an agent address that is not rewritten with :meth:`url`."""
        if isinstance(u, str) and u:
            try:
                self.backend_hosts.add(urlsplit(u if "://" in u else "http://" + u).netloc.lower())
            except ValueError:
                pass


def _has_v03_grpc(card: dict) -> bool:
    if card.get("preferredTransport") in _GRPC:
        return True
    ai = card.get("additionalInterfaces")
    return isinstance(ai, list) and any(isinstance(it, dict) and it.get("transport") in _GRPC for it in ai)


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
