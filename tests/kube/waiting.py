"""Waiting in the controller tests: for the controller to act on the stand-in API server."""

from __future__ import annotations

import asyncio


async def eventually(pred, timeout: float = 10.0, what: str = "condition"):
    """Poll ``pred`` until it returns a true value (returned); a lookup error while the
    object is still being written counts as not yet."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        try:
            v = pred()
            if v:
                return v
        except (KeyError, TypeError, IndexError, StopIteration, AttributeError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
