"""What a route's backend is to the pipeline.

A backend serves a request whose policies have run. ``serve`` is the whole of it, in a
task. A backend that can often answer without waiting (a pooled upstream connection is
idle, the credentials are at hand) also offers ``try_fast``: called in the parser
callback, it either takes the request, sending it and finishing from I/O callbacks
through the :class:`~agentgw.proxy.context.Ctx` operations (``respond``, ``fail``,
``spawn``, ``finish``), or declines having done nothing, and the pipeline runs ``serve``
in a task. Backends subclass :class:`Backend` to inherit the declining ``try_fast``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .context import Ctx


class Backend(Protocol):
    __slots__ = ()

    #: the backend's kind for logs and the admin API ("http", "mcp", "ai", "agentcore")
    kind: str

    async def serve(self, ctx: Ctx) -> None:
        """Serve the request to the end: answer it (``ctx.respond``, a relayed upstream
        response) or raise ``GatewayError``, which the pipeline answers."""
        ...

    def try_fast(self, ctx: Ctx) -> bool:
        """Take the request without a task, or return False having done nothing. A
        request taken is the backend's to end: ``ctx.respond`` / ``ctx.fail`` /
        ``ctx.spawn``, then ``ctx.finish()`` once the response is out."""
        return False
