"""A tiny A2A agent shipped for the examples and the benchmark.

``python -m agentgw_demo.a2a_agent --port 9999 --name weather-agent`` serves:

* its agent card at ``/.well-known/agent-card.json`` and ``/.well-known/agent.json``,
  with both the v0.3 fields (``url``, ``preferredTransport``, ``additionalInterfaces``)
  and the v1.0 ``supportedInterfaces``, all naming its own address (a gateway in front
  must rewrite them);
* JSON-RPC at ``/`` in both protocol generations: ``message/send`` / ``SendMessage``
  (and the legacy ``tasks/send``), ``message/stream`` / ``SendStreamingMessage`` (server
  -sent events, a few status updates then the answer), ``tasks/get`` / ``GetTask``,
  ``tasks/cancel`` / ``CancelTask``.

It answers ``Hello World`` to ``hello`` and echoes anything else, names itself in the
answer, and reports the caller identity headers it was given (``x-agent-identity``).
It runs on agentgw's own HTTP engine: it needs nothing beyond the package, so the
examples work right after ``pip install -e .``. It is a demo, not an agent framework:
for real agents use an A2A SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import orjson
import uvloop

from agentgw.engine.http import Headers
from agentgw.engine.server import HttpServerProtocol, ServerSettings

_V1 = {"SendMessage", "SendStreamingMessage", "GetTask", "CancelTask"}
_JSON = Headers([("content-type", "application/json")])


class Agent:
    def __init__(self, name: str, public_url: str, stream_delay: float = 0.1):
        self.name = name
        self.url = public_url.rstrip("/") + "/"
        self.delay = stream_delay
        self.tasks: dict[str, dict] = {}

    # -- card ---------------------------------------------------------------------------
    def card(self) -> dict:
        return {
            "name": self.name,
            "description": f"agentgw demo agent {self.name}: says Hello World, echoes the rest",
            "version": "1.0.0",
            "protocolVersion": "0.3.0",
            "url": self.url,
            "preferredTransport": "JSONRPC",
            "additionalInterfaces": [{"url": self.url, "transport": "JSONRPC"}],
            "supportedInterfaces": [{"url": self.url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
            "capabilities": {"streaming": True},
            "defaultInputModes": ["text"],
            "defaultOutputModes": ["text"],
            "skills": [
                {
                    "id": "hello_world",
                    "name": "Hello World",
                    "description": "answers hello with Hello World",
                    "tags": ["hello world"],
                    "examples": ["hello"],
                }
            ],
        }

    # -- helpers ------------------------------------------------------------------------
    def answer(self, req, params: dict) -> str:
        msg = params.get("message") or {}
        text = " ".join(p.get("text", "") for p in msg.get("parts", []) if isinstance(p, dict)).strip()
        who = req.headers.get("x-agent-identity")
        reply = "Hello World" if text.lower() in ("hello", "hi", "") else f"{self.name} heard: {text}"
        return f"{reply} (caller: {who})" if who else reply

    def task(self, params: dict, v1: bool, state: str, text: str | None = None) -> dict:
        msg = params.get("message") or {}
        tid = msg.get("taskId") or uuid.uuid4().hex
        cid = msg.get("contextId") or uuid.uuid4().hex
        t = {"id": tid, "contextId": cid, "status": self.status(state, v1)}
        if text is not None:
            t["artifacts"] = [{"artifactId": uuid.uuid4().hex, "parts": [self.part(text, v1)]}]
        if not v1:
            t["kind"] = "task"
        return t

    @staticmethod
    def status(state: str, v1: bool) -> dict:
        s = "TASK_STATE_" + state.upper().replace("-", "_") if v1 else state
        return {"state": s, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    @staticmethod
    def part(text: str, v1: bool) -> dict:
        return {"text": text} if v1 else {"kind": "text", "text": text}

    # -- dispatch -----------------------------------------------------------------------
    async def handle(self, req, ex) -> None:
        path = req.path
        if req.method == "GET" and path in ("/.well-known/agent-card.json", "/.well-known/agent.json"):
            ex.send(200, _JSON.copy(), orjson.dumps(self.card()))
            return
        if req.method != "POST":
            ex.send(404, _JSON.copy(), b'{"error":"not found"}')
            return
        body = await req.body.read_all()
        try:
            doc = orjson.loads(body)
            method, rid, params = doc["method"], doc.get("id"), doc.get("params") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ex.send(
                200,
                _JSON.copy(),
                orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}),
            )
            return
        v1 = method in _V1

        def result(r) -> None:
            ex.send(200, _JSON.copy(), orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": r}))

        def error(code: int, message: str) -> None:
            ex.send(
                200,
                _JSON.copy(),
                orjson.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}),
            )

        if method in ("message/send", "tasks/send", "SendMessage"):
            t = self.task(params, v1, "completed", self.answer(req, params))
            self.remember(t)
            result({"task": t} if v1 else t)
        elif method in ("message/stream", "tasks/sendSubscribe", "SendStreamingMessage"):
            await self.stream(req, ex, rid, params, v1)
        elif method in ("tasks/get", "GetTask", "tasks/cancel", "CancelTask"):
            tid = params.get("id") or (params.get("name") or "").rpartition("/")[2]
            known = self.tasks.get(tid)
            if known is None:
                error(-32001, "Task not found")
            elif "cancel" in method.lower():
                if known["status"]["state"] in ("completed", "TASK_STATE_COMPLETED"):
                    error(-32002, "Task cannot be canceled")
                else:
                    known["status"] = self.status("canceled", v1)
                    result(known)
            else:
                result(known)
        else:
            error(-32601, "Method not found")

    MAX_TASKS = 10_000

    def remember(self, t: dict) -> None:
        """Keep the most recent tasks for tasks/get and cancel; a demo must not grow forever."""
        tasks = self.tasks
        tasks[t["id"]] = t
        if len(tasks) > self.MAX_TASKS:
            del tasks[next(iter(tasks))]

    async def stream(self, req, ex, rid, params, v1: bool) -> None:
        ex.start(200, Headers([("content-type", "text/event-stream"), ("cache-control", "no-cache")]))
        t = self.task(params, v1, "submitted")
        self.remember(t)
        tid, cid = t["id"], t["contextId"]

        def send(r: dict) -> None:
            ex.write(b"data: " + orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": r}) + b"\n\n")

        send({"task": t} if v1 else t)
        for state in ("working", "working", "completed"):
            await asyncio.sleep(self.delay)
            if state == "completed":
                art = {"artifactId": uuid.uuid4().hex, "parts": [self.part(self.answer(req, params), v1)]}
                ev = {"taskId": tid, "contextId": cid, "artifact": art}
                send({"artifactUpdate": ev} if v1 else {**ev, "kind": "artifact-update"})
            t["status"] = self.status(state, v1)
            ev = {"taskId": tid, "contextId": cid, "status": t["status"]}
            send({"statusUpdate": ev} if v1 else {**ev, "kind": "status-update", "final": state == "completed"})
        ex.end()


async def serve(host: str, port: int, name: str, public_url: str | None, delay: float) -> None:
    loop = asyncio.get_running_loop()
    agent = Agent(name, public_url or f"http://{host}:{port}/", delay)
    settings = ServerSettings(agent.handle)
    server = await loop.create_server(lambda: HttpServerProtocol(settings, loop), host, port, reuse_address=True)
    actual = server.sockets[0].getsockname()[1]
    if public_url is None and port == 0:
        agent.url = f"http://{host}:{actual}/"
    print(f"demo A2A agent {name} on http://{host}:{actual}/", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser(description="agentgw demo A2A agent")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9999)
    p.add_argument("--name", default="Hello World Agent")
    p.add_argument("--public-url", default=None, help="the URL the card advertises (default: its own address)")
    p.add_argument("--stream-delay", type=float, default=0.1, help="seconds between streamed events")
    a = p.parse_args()
    try:
        uvloop.run(serve(a.host, a.port, a.name, a.public_url, a.stream_delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
