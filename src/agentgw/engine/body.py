"""The request body as a stream with backpressure.

Chunks arrive from the client connection's parser callbacks. The common case is a small
body that is complete before the handler even runs, so ``complete`` and ``buffered()``
give it to the proxy as one piece without any awaiting. Large or slow bodies are
consumed with ``iter()``; when more than ``HIGH_WATER`` bytes wait unread, reading from
the client socket is paused until the consumer catches up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .http import GatewayError

HIGH_WATER = 256 * 1024


class RequestBody:
    __slots__ = (
        "_chunks",
        "_pending",
        "size",
        "complete",
        "error",
        "_waiter",
        "_conn",
        "limit",
        "consumed",
        "discard",
        "_paused",
    )

    def __init__(self, conn, limit: int):
        self._chunks: list[bytes] = []
        self._pending = 0  # bytes buffered and not yet taken
        self.size = 0
        self.complete = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._conn = conn  # the server protocol: pause/resume reading, 100-continue
        self.limit = limit
        self.consumed = False
        self.discard = False
        self._paused = False

    # -- producer side (parser callbacks) -------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.error = GatewayError(413, "payload_too_large", f"request body exceeds {self.limit} bytes")
            self._wake()
            self._conn.body_too_large()
            return
        if self.discard:
            return
        self._chunks.append(chunk)
        self._pending += len(chunk)
        if self._pending > HIGH_WATER and not self._paused:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.complete = True
        if self._paused:
            # the whole body arrived in the read that crossed the high-water mark
            self._paused = False
            self._conn.resume_reading()
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self.complete:
            self.error = exc
            self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    # -- consumer side ---------------------------------------------------------------
    @property
    def replayable(self) -> bool:
        """True when the whole body is in memory and can be sent again (retries)."""
        return self.complete and self.error is None and not self.consumed

    def buffered(self) -> bytes:
        """The whole body, when ``complete``; does not consume it."""
        if len(self._chunks) == 1:
            return self._chunks[0]
        if not self._chunks:
            return b""
        data = b"".join(self._chunks)
        self._chunks = [data]
        return data

    def replace(self, data: bytes) -> None:
        """The whole body is now ``data`` (a policy rewrote it): complete, in memory."""
        self._chunks = [data] if data else []
        self._pending = 0
        self.size = len(data)
        self.complete = True
        self.error = None

    async def _wait(self) -> None:
        self._conn.request_body_wanted()
        if self._paused:
            self._paused = False
            self._conn.resume_reading()
        fut = asyncio.get_running_loop().create_future()
        self._waiter = fut
        await fut

    async def read_all(self, limit: int | None = None) -> bytes:
        """Buffer the whole body (for policies and backends that need all of it)."""
        lim = self.limit if limit is None else limit
        while not self.complete:
            if self.error is not None:
                raise self.error
            if self._pending > lim:
                raise GatewayError(413, "payload_too_large", f"request body exceeds {lim} bytes")
            await self._wait()
        if self.error is not None:
            raise self.error
        if self.size > lim:
            raise GatewayError(413, "payload_too_large", f"request body exceeds {lim} bytes")
        return self.buffered()

    async def iter(self) -> AsyncIterator[bytes]:
        """Yield chunks as they arrive; marks the body consumed (not replayable)."""
        self.consumed = True
        while True:
            if self._chunks:
                chunks, self._chunks = self._chunks, []
                self._pending = 0
                for c in chunks:
                    yield c
                continue
            if self.error is not None:
                raise self.error
            if self.complete:
                return
            await self._wait()

    def drop(self) -> None:
        """The handler is done with the body: discard what is left as it arrives."""
        self.discard = True
        self._chunks = []
        self._pending = 0
        if self._paused:
            self._paused = False
            self._conn.resume_reading()
