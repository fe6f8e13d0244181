"""``csrf``: refuse state-changing requests a browser sends on behalf of another site.

agentgateway's policy, with the same checks in the same order. Safe methods (GET, HEAD,
OPTIONS) always pass. Otherwise ``Sec-Fetch-Site`` decides when the browser sent it:
``same-origin`` and ``none`` (typed by the user) pass; anything else passes only from an
``additionalOrigins`` entry. Without it, the ``Origin`` header is compared with the
gateway's own origin as the client reached it (scheme and authority, ``X-Forwarded-*``
only from trusted proxies); a request with no ``Origin`` (or ``null``) is not a
cross-site browser request and passes. A refusal is 403 ``csrf_failed``.
"""

from __future__ import annotations

import logging

from ..engine.http import Reply
from ..proxy.origin import client_origin, cross_site
from ..proxy.policy import Policy

log = logging.getLogger("agentgw.csrf")

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class Csrf(Policy):
    # after cors (10), before authentication (20): a forged request is refused whoever sent it
    order = 12

    __slots__ = ("origins",)

    def __init__(self, additional_origins) -> None:
        self.origins = frozenset(additional_origins)

    def on_request(self, ctx):
        req = ctx.req
        if req.method in SAFE:
            return None
        own = (client_origin(req, ctx.bind.trusts(req.client_addr)),)
        why = cross_site(req.headers, own, self.origins)
        return None if why is None else self._refuse(why)

    @staticmethod
    def _refuse(why: str) -> Reply:
        log.info("CSRF validation failed: %s", why)
        return Reply.error(403, "csrf_failed", "cross-site request refused (CSRF validation failed)")
