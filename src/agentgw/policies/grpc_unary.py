"""Awaiting a unary gRPC call from the event loop.

grpcio's sync stub runs the call on its own threads and reports through a future; this
bridges that future to asyncio (no thread per call, no grpc.aio event loop of its own)
and cancels the RPC when the awaiting request goes away.
"""

from __future__ import annotations

import asyncio


async def call_unary(method, request, timeout: float | None, wrap_error=None):
    """Await ``method.future(request)``; exceptions pass through ``wrap_error`` if given."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    gfut = method.future(request, timeout=timeout)

    def settle(res, exc) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(wrap_error(exc) if wrap_error is not None else exc)
        else:
            fut.set_result(res)

    def done(g) -> None:
        try:
            res = g.result()
        except Exception as exc:
            loop.call_soon_threadsafe(settle, None, exc)
            return
        loop.call_soon_threadsafe(settle, res, None)

    gfut.add_done_callback(done)
    try:
        return await fut
    except asyncio.CancelledError:
        gfut.cancel()
        raise
