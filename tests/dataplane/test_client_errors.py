"""The upstream client in process: after a failed exchange, errors are raised again on
every later read, and the frames they pass through do not keep the connection; after a
good one, the connection goes back to the pool able to read its next response.

A failed exchange's error is kept on its connection (``conn.error``) and its traceback
keeps the frames it was raised through; a frame of the client that still held the
connection would make every failed exchange a reference cycle, left to the cyclic
collector (docs/dataplane.md).
"""

from __future__ import annotations

import asyncio
import contextlib

from agentgw.engine.client import ConnectionPool, UpstreamTarget
from agentgw.engine.http import GatewayError

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
CHUNK = b"6\r\ndata: \r\n"
WHOLE = HEAD + CHUNK + b"0\r\n\r\n"
CUT = HEAD + CHUNK  # then the connection closes mid-body


@contextlib.asynccontextmanager
async def _upstream(answer: bytes, keep_open: bool = True):
    """An upstream answering each request with ``answer`` (closing after it unless
    ``keep_open``); yields a pool, the target and a request head for it."""

    async def serve(reader, writer):
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(answer)
            await writer.drain()
            if not keep_open:
                writer.close()
                return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    head = f"GET / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()
    try:
        yield ConnectionPool(asyncio.get_running_loop()), UpstreamTarget("127.0.0.1", port), head
    finally:
        server.close()
        await server.wait_closed()


def _frames(exc: BaseException):
    tb = exc.__traceback__
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_a_body_cut_short_raises_on_every_read_without_holding_the_connection():
    async def scenario() -> tuple[bytes, list[str]]:
        async with _upstream(CUT, keep_open=False) as (pool, target, head):
            conn = await pool.exchange(target, head, None, 5.0)
            got, seen = [], []
            try:
                assert conn.status == 200
                for _ in range(3):  # the first failure, then the stored error, twice
                    try:
                        while (chunks := await conn.read_chunks(asyncio.get_running_loop().time() + 5)) is not None:
                            got.extend(chunks)
                        seen.append("end")
                    except GatewayError as exc:
                        seen.append(exc.kind)
                        holders = [
                            f for f in _frames(exc) if f.f_code.co_name == "read_chunks" and "self" in f.f_locals
                        ]
                        assert not holders, "a read_chunks frame in the traceback still holds the connection"
                        assert conn.error is exc
            finally:
                conn.close()
            return b"".join(got), seen

    body, seen = _run(scenario())
    assert body == b"data: "
    assert len(seen) == 3 and "end" not in seen, seen
    assert len(set(seen)) == 1, seen  # the same error each time


def test_a_read_after_the_body_ended_returns_none():
    async def scenario():
        async with _upstream(WHOLE) as (pool, target, head):
            conn = await pool.exchange(target, head, None, 5.0)
            try:
                body = []
                while (chunks := await conn.read_chunks()) is not None:
                    body.extend(chunks)
                return b"".join(body), await conn.read_chunks()
            finally:
                conn.close()

    body, again = _run(scenario())
    assert body == b"data: "
    assert again is None


def test_a_connection_paused_when_its_response_ended_reads_again_once_pooled():
    """A relay pauses reading from the upstream while the client can't keep up. When the
    read that paused it also ended the response (a chunked body whose last chunks came in
    the same packet), the connection went back to the pool still paused, and the next
    exchange on it never saw its response: a hang, until the client gave up."""

    async def scenario():
        async with _upstream(WHOLE) as (pool, target, head):
            conn = await pool.exchange(target, head, None, 5.0)
            while not conn.done:
                await conn.read_chunks()
            conn.pause_reading()  # as the relay's pause hook does, here once the response is in
            conn.release()
            again = await pool.exchange(target, head, None, 2.0)  # 504 after 2 s when still paused
            assert again is conn
            body = []
            while (chunks := await again.read_chunks(asyncio.get_running_loop().time() + 2)) is not None:
                body.extend(chunks)
            again.release()
            return b"".join(body)

    assert _run(scenario()) == b"data: "
