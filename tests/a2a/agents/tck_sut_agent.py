"""The A2A TCK's Python SUT agent, ported to the a2a-sdk release this project tests with.

The TCK (tests/vendor/a2a-tck, branch 1.0-dev) ships ``sut/a2a-python/sut_agent.py``,
generated from its Gherkin scenarios against a pre-release a2a-python checkout
(``a2a.server.apps.A2AStarletteApplication`` / ``A2ARESTFastAPIApplication``, which no
a2a-sdk release on PyPI after 1.0.0a0 has). ``TckAgentExecutor`` below is that file's
executor, copied (only reformatted): the behaviour the TCK's tests rely on, routing by
messageId prefix. The server set-up is rewritten for a2a-sdk 1.3's route factories and
serves the same paths as the original: the card at ``/.well-known/agent-card.json``,
JSON-RPC at ``/``, HTTP+JSON under ``/a2a/rest`` and gRPC on a second port. Two
differences, both a2a-sdk 1.3's:

* the request handler is ``LegacyRequestHandler``, the pre-1.0 one the executor was
  written for: the default one rejects a status update before the executor enqueued a
  Task ("Agent should enqueue Task before TaskStatusUpdateEvent"), which this executor,
  like the original SDK's, never does;
* the card is served with ``Cache-Control`` (see ``CARD_CACHE_CONTROL``).

``python -m tests.a2a.agents.tck_sut_agent [--port N] [--grpc-port M]`` prints
``READY <port> GRPC <port>``; the card names ``127.0.0.1:<port>`` (what a gateway
rewrites).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket

import a2a.types.a2a_pb2_grpc as a2a_grpc
import grpc.aio
import uvicorn
from a2a.server.agent_execution.agent_executor import AgentExecutor
from a2a.server.agent_execution.context import RequestContext
from a2a.server.events.event_queue import EventQueue
from a2a.server.request_handlers import LegacyRequestHandler
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks.inmemory_task_store import InMemoryTaskStore
from a2a.server.tasks.task_updater import TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill, Part
from a2a.utils.errors import A2AError
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Value
from starlette.applications import Starlette

REST_URL = "/a2a/rest"
# The generated SUT sends no Cache-Control on its card (the pre-release SDK had no option for
# it); a2a-sdk 1.3 has one, and with it the TCK's CARD-CACHE-001 checks run, through a
# gateway too.
CARD_CACHE_CONTROL = "public, max-age=300"

logging.basicConfig(level=logging.WARNING)
logger = logging.getLogger("TckSutAgent")


# -- copied from tests/vendor/a2a-tck/sut/a2a-python/sut_agent.py -------------------------
class TckAgentExecutor(AgentExecutor):
    """TCK agent executor with messageId-prefix routing."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Execute the agent's logic based on the messageId prefix."""
        task_id = context.task_id
        context_id = context.context_id
        if task_id is None or context_id is None:
            return

        updater = TaskUpdater(event_queue, task_id, context_id)
        message = context.message
        if message is None:
            await updater.complete(updater.new_agent_message([Part(text="No message provided")]))
            return

        message_id = message.message_id

        if message_id.startswith("tck-stream-artifact-chunked"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(text="chunk-1 ")], append=True)
            await updater.add_artifact(parts=[Part(text="chunk-2")], append=True, last_chunk=True)
            await updater.complete()
            return

        if message_id.startswith("test-resubscribe-message-id"):
            await updater.start_work()
            await asyncio.sleep(4)
            await updater.complete()
            return

        if message_id.startswith("tck-stream-artifact-text"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(text="Streamed text content")])
            await updater.complete()
            return

        if message_id.startswith("tck-stream-artifact-file"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(raw=b"tck", media_type="text/plain", filename="output.txt")])
            await updater.complete()
            return

        if message_id.startswith("tck-stream-ordering-001"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(text="Ordered output")])
            await updater.complete()
            return

        if message_id.startswith("tck-artifact-file-url"):
            await updater.add_artifact(
                parts=[Part(url="https://example.com/output.txt", media_type="text/plain", filename="output.txt")]
            )
            await updater.complete()
            return

        if message_id.startswith("tck-message-response"):
            await event_queue.enqueue_event(updater.new_agent_message([Part(text="Direct message response")]))
            return

        if message_id.startswith("tck-input-required"):
            await updater.requires_input()
            return

        if message_id.startswith("tck-complete-task"):
            await updater.complete(updater.new_agent_message([Part(text="Hello from TCK")]))
            return

        if message_id.startswith("tck-artifact-text"):
            await updater.add_artifact(parts=[Part(text="Generated text content")])
            await updater.complete()
            return

        if message_id.startswith("tck-artifact-file"):
            await updater.add_artifact(parts=[Part(raw=b"tck", media_type="text/plain", filename="output.txt")])
            await updater.complete()
            return

        if message_id.startswith("tck-artifact-data"):
            await updater.add_artifact(parts=[Part(data=json_format.Parse('{"key": "value", "count": 42}', Value()))])
            await updater.complete()
            return

        if message_id.startswith("tck-reject-task"):
            raise A2AError("rejected")

        if message_id.startswith("tck-stream-001"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(text="Stream hello from TCK")])
            await updater.complete()
            return

        if message_id.startswith("tck-stream-002"):
            await updater.complete()
            return

        if message_id.startswith("tck-stream-003"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(text="Stream task lifecycle")])
            await updater.complete()
            return

        # Default: complete the task with an echo response
        await updater.complete(updater.new_agent_message([Part(text="Unhandled messageId prefix: " + message_id)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Cancel a task."""
        task_id = context.task_id
        context_id = context.context_id
        if task_id is None or context_id is None:
            return
        updater = TaskUpdater(event_queue, task_id, context_id)
        await updater.cancel()


# -- server set-up (a2a-sdk 1.3 route factories instead of the pre-release apps) ----------
def agent_card(host: str, grpc_port: int) -> AgentCard:
    return AgentCard(
        name="A2A Python SDK System Under Test (SUT)",
        description="Auto-generated System Under Test for A2A TCK conformance",
        version="1.0.0",
        provider=AgentProvider(organization="A2A Project", url="https://github.com/a2aproject"),
        supported_interfaces=[
            AgentInterface(url=f"http://{host}", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=f"http://{host}{REST_URL}", protocol_binding="HTTP+JSON", protocol_version="1.0"),
            AgentInterface(
                url=f"{host.rsplit(':', 1)[0]}:{grpc_port}", protocol_binding="GRPC", protocol_version="1.0"
            ),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text"],
        default_output_modes=["text"],
        skills=[
            AgentSkill(
                id="tck", name="TCK Conformance", description="Handles TCK conformance test messages", tags=["tck"]
            )
        ],
    )


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


async def serve(port: int, grpc_port: int) -> None:
    sock = _listen(port)
    port = sock.getsockname()[1]
    grpc_server = grpc.aio.server()
    grpc_port = grpc_server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    card = agent_card(f"127.0.0.1:{port}", grpc_port)
    handler = LegacyRequestHandler(agent_executor=TckAgentExecutor(), task_store=InMemoryTaskStore(), agent_card=card)
    routes = []
    routes += create_agent_card_routes(card, cache_control=CARD_CACHE_CONTROL)
    routes += create_jsonrpc_routes(handler, "/")
    routes += create_rest_routes(handler, path_prefix=REST_URL)
    app = Starlette(routes=routes)
    a2a_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), grpc_server)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    await grpc_server.start()
    print(f"READY {port} GRPC {grpc_port}", flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        await grpc_server.stop(0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--grpc-port", type=int, default=0)
    a = p.parse_args()
    asyncio.run(serve(a.port, a.grpc_port))


if __name__ == "__main__":
    main()
