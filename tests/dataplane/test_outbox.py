"""Write coalescing (engine/outbox.py): held writes keep their order, go out at the end of
the loop turn or before a close, and vanish with a lost connection.

These drive the real server protocol on a real uvloop socket pair, so what is checked is
the bytes the peer actually receives and when."""

from __future__ import annotations

import asyncio
import socket

import uvloop

from agentgw.engine.outbox import outbox_for
from agentgw.engine.server import HttpServerProtocol, ServerSettings


async def _handler(request, ex):  # never reached: these tests write by hand
    raise AssertionError("no request expected")


async def _pair():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    settings = ServerSettings(handler=_handler)
    transport, proto = await loop.connect_accepted_socket(lambda: HttpServerProtocol(settings, loop), a)
    return loop, proto, b


async def _read_available(loop, sock, want: int, timeout: float = 2.0) -> bytes:
    got = b""
    end = loop.time() + timeout
    while len(got) < want and loop.time() < end:
        try:
            got += sock.recv(65536)
        except BlockingIOError:
            await asyncio.sleep(0.005)
    return got


def test_first_write_is_held_until_the_turn_ends():
    async def main():
        loop, proto, peer = await _pair()
        proto.send_bytes(b"one")
        # Nothing has reached the socket yet: the write waits for the end of this turn.
        try:
            early = peer.recv(100)
        except BlockingIOError:
            early = b""
        assert early == b""
        assert proto in outbox_for(loop).pending
        await asyncio.sleep(0)  # the outbox flush runs before the next poll
        assert await _read_available(loop, peer, 3) == b"one"
        assert outbox_for(loop).pending == []
        proto.close()
        peer.close()

    uvloop.run(main())


def test_second_write_in_a_turn_sends_both_in_order_at_once():
    async def main():
        loop, proto, peer = await _pair()
        proto.send_bytes(b"head;")
        proto.send_bytes(b"body;")
        # Written synchronously by the second call, in order, without a loop turn.
        assert peer.recv(100) == b"head;body;"
        proto.send_bytes(b"tail")
        await asyncio.sleep(0)
        assert await _read_available(loop, peer, 4) == b"tail"
        proto.close()
        peer.close()

    uvloop.run(main())


def test_close_flushes_a_held_write_first():
    async def main():
        loop, proto, peer = await _pair()
        proto.send_bytes(b"last words")
        proto.close()
        data = await _read_available(loop, peer, 10)
        assert data == b"last words"
        await asyncio.sleep(0.05)
        assert peer.recv(100) == b""  # then EOF: the close came after the bytes
        peer.close()

    uvloop.run(main())


def test_lost_connection_drops_held_bytes_without_error():
    async def main():
        loop, proto, peer = await _pair()
        proto.send_bytes(b"held when the peer goes away")
        peer.close()
        for _ in range(100):  # the loss is noticed on the next read/write
            if proto._dead:
                break
            await asyncio.sleep(0.01)
        assert proto._dead
        assert proto._out is None  # dropped with the connection
        proto.send_bytes(b"after the loss")  # held, then skipped by the flush: no error
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert outbox_for(loop).pending == []

    uvloop.run(main())


def test_outbox_is_per_loop():
    async def box():
        return outbox_for(asyncio.get_running_loop())

    first = uvloop.run(box())
    second = uvloop.run(box())
    assert first is not second
