"""The gateway's address as the client reached it: what the gateway writes into documents
that point back at itself (A2A cards, OAuth metadata, challenges)."""

from __future__ import annotations


def client_origin(req, trusted: bool = False) -> str:
    """``scheme://authority`` as the client reached the gateway. ``X-Forwarded-Proto``
    and ``X-Forwarded-Host`` count only when ``trusted`` (the peer is a configured
    trusted proxy): from anyone else they would let a client choose the URLs the
    gateway writes into a card, which a shared cache could then serve to others."""
    h = req.headers
    proto = h.get("x-forwarded-proto") if trusted else None
    scheme = proto.split(",")[0].strip().lower() if proto else req.scheme
    if scheme not in ("http", "https"):
        scheme = req.scheme
    fh = h.get("x-forwarded-host") if trusted else None
    host = fh.split(",")[0].strip() if fh else req.host
    if not host or any(c in host for c in "/ @\\?#"):
        host = req.host or "localhost"
    # drop the default port for the scheme, as clients would write it
    if scheme == "http" and host.endswith(":80"):
        host = host[:-3]
    elif scheme == "https" and host.endswith(":443"):
        host = host[:-4]
    return f"{scheme}://{host}"


def cross_site(headers, own, allowed=frozenset()) -> str | None:
    """Why a browser sent this request on behalf of another site, or None when it did not
    (the CSRF check, as agentgateway makes it). ``Sec-Fetch-Site`` decides when present
    (``same-origin`` and ``none`` pass); else an ``Origin`` (not ``null``) must be one of
    ``own`` (the gateway's origins as the client reached it). An ``Origin`` in ``allowed``
    always passes; a request without ``Origin`` is not a cross-site browser request."""
    origin = headers.get("origin")
    if origin == "null":
        origin = None
    if origin is not None and origin in allowed:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        return None if site in ("same-origin", "none") else f"Sec-Fetch-Site is {site!r}"
    if origin is None or origin.lower() in own:
        return None
    return f"Origin {origin!r} is not this gateway's"
