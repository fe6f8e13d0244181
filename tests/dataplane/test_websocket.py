"""WebSocket upgrade passes through the gateway (101, then frames both ways)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.harness import RawHTTP, gateway_config, route


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("ws")
    gw = module_harness.gateway(gateway_config([route("all", [up.host])]))
    yield gw, up


def test_websocket_echo_through_gateway(env):
    gw, up = env
    before = up.count("/ws")  # (the upstream is shared by this module's tests)

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{gw.url}/ws", timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
                for i in range(20):
                    await ws.send_str(f"msg-{i}")
                    msg = await ws.receive(timeout=5)
                    assert msg.type == aiohttp.WSMsgType.TEXT and msg.data == f"msg-{i}"
                big = bytes(range(256)) * 1024
                await ws.send_bytes(big)
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == big
                await ws.send_str("close")
                msg = await ws.receive(timeout=5)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)

    asyncio.run(go())
    assert up.count("/ws") == before + 1


def test_websocket_handshake_is_101_with_upgrade_headers(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request(
            "GET",
            "/ws",
            [
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        )
    assert r.status == 101
    assert (r.header("upgrade") or "").lower() == "websocket"
    assert "upgrade" in (r.header("connection") or "").lower()
    assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_concurrent_websockets(env):
    gw, _ = env

    async def one(i: int):
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"{gw.url}/ws") as ws:
                for j in range(5):
                    await ws.send_str(f"{i}-{j}")
                    assert (await ws.receive(timeout=5)).data == f"{i}-{j}"
        return i

    async def main():
        return await asyncio.gather(*(one(i) for i in range(10)))

    assert sorted(asyncio.run(main())) == list(range(10))
