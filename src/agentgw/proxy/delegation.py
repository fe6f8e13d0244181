"""Route delegation: a route whose backend is a ``routeGroup`` hands the request to the
group's best-matching route, chosen at request time from the group's own table.

The delegating route runs no policy of its own: the compiler gave each of the group's
routes the delegating route's policies, its own replacing those of the same kind (as
agentgateway merges a route chain's policies, the more specific route winning). Once
chosen, the group's route *is* the request's route: its name is the one logs and
metrics carry, its match is the one ``urlRewrite`` reads, its response policies run.
A request no route of the group matches is answered 404, before any policy, as one no
route of the listener matches. Groups nest; the compiler refuses cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.http import GatewayError
from .pipeline import run_chain

if TYPE_CHECKING:
    from ..routing.table import RouteTable
    from .context import Ctx

__all__ = ["RouteGroupBackend"]


class RouteGroupBackend:
    """The backend of a delegating route: the group's routes, as a table."""

    __slots__ = ("label", "name", "table")

    kind = "routeGroup"

    def __init__(self, name: str, table: RouteTable):
        self.name = name
        self.label = f"routegroup/{name}"
        self.table = table

    def try_fast(self, ctx: Ctx) -> bool:
        return False  # the group's route's policies may wait: in the task

    async def serve(self, ctx: Ctx) -> None:
        req = ctx.req
        match = self.table.match(req.method, req.host, ctx.path, req.headers, req.query)
        if match is None:
            raise GatewayError(404, "route_not_found", f"no route of route group {self.name!r} matches this request")
        route = match.route
        ctx.route = route
        ctx.match = match
        if await run_chain(ctx, route.request_chain):
            return
        await ctx.backend().serve(ctx)
