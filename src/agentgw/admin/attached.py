"""The web UI on a traffic listener (the config's ``ui:`` attached to gateways).

The route ``ui`` gets (``/ui``, with ``ui.policies``) is served by this backend: the
page's assets, and under ``/ui/api/v1/`` the admin API, answered by the process's own
admin handler once the route's policies (OIDC, authorization...) have let the request
through. The admin API's own rules still hold there: its credential for writes (and,
when one is configured, for reads), its cross-site checks; ``allowUnauthenticatedLoopbackWrites``
never applies to a request that came through a traffic listener.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.http import GatewayError

if TYPE_CHECKING:
    from ..proxy.context import Ctx

__all__ = ["UiBackend"]


class UiBackend:
    __slots__ = ("services",)

    kind = "ui"

    def __init__(self, services):
        self.services = services  # the process's; its admin_handler is set once it serves

    def try_fast(self, ctx: Ctx) -> bool:
        return False

    async def serve(self, ctx: Ctx) -> None:
        handler = getattr(self.services, "admin_handler", None)
        api = getattr(handler, "api", None)
        if handler is None or api is None or handler.ui is None:
            raise GatewayError(
                503, "ui_unavailable", "the UI is served by a single gateway process (not with --workers)"
            )
        path = ctx.req.path
        if path.startswith("/ui/api/v1/"):
            await api(ctx.req, ctx.ex, attached=True)
        elif path == "/ui" or path.startswith("/ui/"):
            if ctx.req.method not in ("GET", "HEAD"):
                raise GatewayError(405, "method_not_allowed", "the UI's pages are read-only")
            handler.ui.serve(ctx.req, ctx.ex)
        else:
            raise GatewayError(404, "route_not_found", "no route matches this request")
