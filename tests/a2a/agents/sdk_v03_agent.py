"""A test A2A agent built on a2a-sdk 0.3.x (the older card and method names).

Runs under the interpreter of ``.venvs/a2a03`` (created by scripts/install-test-deps.sh):
``.venvs/a2a03/bin/python tests/a2a/agents/sdk_v03_agent.py --port N``; prints
``READY <port>``. It serves the v0.3 card (top-level ``url``, ``preferredTransport``,
``additionalInterfaces``, including a gRPC address it does not serve) at both
``/.well-known/agent-card.json`` and ``/.well-known/agent.json``, and JSON-RPC at ``/``
(``message/send``, ``message/stream``, ``tasks/get``, ``tasks/cancel``,
``tasks/resubscribe``). Behaviour by message text as in ``sdk_v1_agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import uvicorn
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part, TextPart
from a2a.utils import new_task


class Executor(AgentExecutor):
    def __init__(self, name: str):
        self.name = name

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input().strip()
        task = context.current_task
        if task is None:
            task = new_task(context.message)
            await event_queue.enqueue_event(task)
        up = TaskUpdater(event_queue, task.id, task.context_id)
        if text.startswith("steps"):
            n = int(text.split()[1]) if len(text.split()) > 1 else 3
            for _ in range(n):
                await up.start_work()
                await asyncio.sleep(0.25)
        elif text == "wait":
            await up.start_work()
            await asyncio.sleep(30)
            return
        await up.add_artifact([Part(root=TextPart(text=f"{self.name}: {text}"))])
        await up.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        up = TaskUpdater(event_queue, context.task_id, context.context_id)
        await up.cancel()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--name", default="sdk-v03-agent")
    a = p.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", a.port))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    card = AgentCard(
        name=a.name,
        description=f"test agent {a.name} (a2a-sdk 0.3)",
        url=f"{base}/",
        version="0.3.0",
        preferred_transport="JSONRPC",
        additional_interfaces=[
            AgentInterface(url=f"{base}/", transport="JSONRPC"),
            AgentInterface(url="127.0.0.1:1", transport="GRPC"),
        ],
        default_input_modes=["text"],
        default_output_modes=["text"],
        capabilities=AgentCapabilities(streaming=True),
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
    )
    handler = DefaultRequestHandler(agent_executor=Executor(a.name), task_store=InMemoryTaskStore())
    app = A2AStarletteApplication(agent_card=card, http_handler=handler).build()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    print(f"READY {port}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
