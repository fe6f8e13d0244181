"""A small MCP server in the test process that records what it receives and fails on
purpose, for tests that need to count what reached a target, see its raw headers, or
make it fail in ways a real server does not on demand.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from tests.support.harness import free_port


class FlakyTarget:
    """An MCP server (streamable HTTP at ``/mcp``, HTTP+SSE at ``/sse``) on 127.0.0.1.

    ``plan``: what the next ``tools/call`` requests get, one entry each -- ``"close"``
    (the request is read, the connection closed without a byte of answer), ``"503"``,
    ``"partial"`` (a 200 SSE answer carrying one progress notification, then the
    connection closes without the result); once it is empty, calls are answered.
    ``requests``: (monotonic time, JSON-RPC method, raw header list) of every POST.
    Every answer closes its connection (``connection: close``), so the gateway never
    reuses one and each send is one fresh connection: counts are exact.

    ``get_stream_delay`` (None: ``GET /mcp`` is 405): serve the GET stream, its answer
    head after that many seconds, and with every answered ``tools/call`` send a
    ``notifications/message`` that belongs to no request -- on the GET stream if one is
    open, else it is lost and counted in ``dropped`` (what the TypeScript SDK's server
    does with ``server.request()``/``notification()`` when no GET stream is open)."""

    def __init__(self, name: str = "flaky", listen: bool = True):
        self.name = name
        self.port = free_port()
        self.plan: list[str] = []
        self.requests: list[tuple[float, str, list[tuple[str, str]]]] = []
        self.calls = 0
        self.get_stream_delay: float | None = None
        self.dropped = 0
        self._get_stream: asyncio.Queue | None = None
        self._sse: dict[str, asyncio.Queue] = {}
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        if listen:
            self.listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def sse_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sse"

    def listen(self, delay: float = 0.0) -> None:
        """Start accepting connections (after ``delay`` seconds; until then, refused)."""

        async def start():
            await asyncio.sleep(delay)
            self._server = await asyncio.start_server(self._conn, "127.0.0.1", self.port)

        fut = asyncio.run_coroutine_threadsafe(start(), self._loop)
        if not delay:
            fut.result(5)

    def stop(self) -> None:
        async def stop():
            if self._server is not None:
                self._server.close()
            tasks = [x for x in asyncio.all_tasks() if x is not asyncio.current_task()]
            for x in tasks:
                x.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def times(self, method: str = "tools/call") -> list[float]:
        return [t for t, m, _ in self.requests if m == method]

    # -- HTTP -----------------------------------------------------------------------------
    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers = []
            while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                k, v = h.decode("latin-1").split(":", 1)
                headers.append((k.strip().lower(), v.strip()))
            n = int(dict(headers).get("content-length", "0"))
            body = await reader.readexactly(n) if n else b""
            await self._handle(method, target, headers, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _send(writer, status: int, body: bytes = b"", ctype: str = "application/json", extra: str = "") -> None:
        reason = {200: "OK", 202: "Accepted", 405: "Method Not Allowed", 503: "Service Unavailable"}.get(status, "X")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n{extra}\r\n".encode("latin-1")
            + body
        )

    async def _handle(self, method: str, target: str, headers, body: bytes, writer) -> None:
        if method == "GET" and target.startswith("/sse"):
            await self._sse_stream(writer)
            return
        if method == "GET" and self.get_stream_delay is not None:
            await asyncio.sleep(self.get_stream_delay)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            await writer.drain()
            q = self._get_stream = asyncio.Queue()
            while True:
                m = await q.get()
                writer.write(b"event: message\r\ndata: " + json.dumps(m).encode() + b"\r\n\r\n")
                await writer.drain()
        if method != "POST":
            self._send(writer, 405 if method == "GET" else 200)
            return
        msg = json.loads(body)
        self.requests.append((time.monotonic(), msg.get("method", ""), headers))
        legacy = target.startswith("/message")
        if msg.get("method") == "tools/call":
            self.calls += 1
            mode = self.plan.pop(0) if self.plan else None
            if mode == "close":
                return
            if mode == "503":
                self._send(writer, 503, b"busy", "text/plain")
                return
            if mode == "partial":
                token = ((msg.get("params") or {}).get("_meta") or {}).get("progressToken")
                note = {
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": 1, "total": 2},
                }
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
                writer.write(b"event: message\r\ndata: " + json.dumps(note).encode() + b"\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.2)
                return  # closed without the answer
        answer = self._answer(msg)
        if msg.get("method") == "tools/call" and self.get_stream_delay is not None:
            note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "aside"}}
            if self._get_stream is not None:
                self._get_stream.put_nowait(note)
            else:
                self.dropped += 1
        if legacy:
            self._send(writer, 202)
            if answer is not None:
                q = self._sse.get(target.split("sid=", 1)[-1])
                if q is not None:
                    q.put_nowait(answer)
            return
        if answer is None:
            self._send(writer, 202)
            return
        extra = "mcp-session-id: s-1\r\n" if msg.get("method") == "initialize" else ""
        self._send(writer, 200, json.dumps(answer).encode(), extra=extra)

    def _answer(self, msg: dict) -> dict | None:
        if "id" not in msg:
            return None
        m, params = msg.get("method"), msg.get("params") or {}
        if m == "initialize":
            res = {
                "protocolVersion": params.get("protocolVersion"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": self.name, "version": "1"},
            }
        elif m == "tools/list":
            res = {"tools": [{"name": "flaky", "description": "fails on purpose", "inputSchema": {"type": "object"}}]}
        elif m == "tools/call":
            res = {"content": [{"type": "text", "text": f"{self.name}: answered call {self.calls}"}]}
        else:
            res = {}
        return {"jsonrpc": "2.0", "id": msg["id"], "result": res}

    async def _sse_stream(self, writer) -> None:
        sid = str(len(self._sse) + 1)
        q = self._sse[sid] = asyncio.Queue()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        writer.write(f"event: endpoint\r\ndata: /message?sid={sid}\r\n\r\n".encode())
        await writer.drain()
        while True:
            m = await q.get()
            writer.write(b"event: message\r\ndata: " + json.dumps(m).encode() + b"\r\n\r\n")
            await writer.drain()


@pytest.fixture
def flaky():
    made: list[FlakyTarget] = []

    def make(name: str = "flaky", listen: bool = True) -> FlakyTarget:
        t = FlakyTarget(name, listen)
        made.append(t)
        return t

    yield make
    for t in made:
        t.stop()
