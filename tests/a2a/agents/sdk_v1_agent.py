"""A test A2A agent built on a2a-sdk 1.x (JSON-RPC with v0.3 compat, HTTP+JSON, and
optionally gRPC).

``python -m tests.a2a.agents.sdk_v1_agent --port N --name NAME`` prints ``READY <port>``.
Its card names its own address for every interface (JSON-RPC at ``/``, HTTP+JSON at
``/rest``, and a gRPC address it does not serve) so that tests can check a gateway
rewrites or drops all of them. With ``--grpc`` it serves the gRPC binding as well, on a
second port, both A2A 1.0's service (``lf.a2a.v1.A2AService``) and, through the SDK's
compatibility layer, 0.3's (``a2a.v1.A2AService``); its card names that port
(``127.0.0.1:<port>``, a gRPC target: no scheme) in a GRPC interface of each protocol
version, and it prints ``READY <port> GRPC <grpc port>``. The gRPC port serves grpcio's
standard health service too (a gRPC service that is not A2A's).

Behaviour by the text of the message:
* ``steps N``: N ``working`` updates 0.25 s apart, an artifact, then ``completed``;
* ``wait``: ``working``, then waits until the task is canceled;
* anything else: an artifact ``NAME: <text>`` and ``completed`` at once.
The caller's ``x-agent-identity`` and ``a2a-version`` headers are echoed in the artifact.

``--sign-key PEM`` signs the card (ES256, kid ``agent``) with the SDK's own signer;
``--card-path P`` serves the card at ``P`` too.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import a2a.types.a2a_pb2_grpc as a2a_grpc
import grpc.aio
import uvicorn
from a2a.compat.v0_3 import a2a_v0_3_pb2_grpc
from a2a.compat.v0_3.grpc_handler import CompatGrpcHandler
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.grpc_handler import DefaultGrpcServerCallContextBuilder, GrpcHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from grpc_health.v1 import health, health_pb2_grpc
from starlette.applications import Starlette

_HEADERS: dict[str, dict[str, str]] = {}


class HeaderContext(DefaultServerCallContextBuilder):
    def build(self, request):  # keep the identity headers for the executor
        ctx = super().build(request)
        ctx.state["hdrs"] = {k: v for k, v in request.headers.items() if k in ("x-agent-identity", "a2a-version")}
        return ctx


class GrpcHeaderContext(DefaultGrpcServerCallContextBuilder):
    def build(self, context):  # the same identity headers, from the call's metadata
        ctx = super().build(context)
        md = context.invocation_metadata() or ()
        ctx.state["hdrs"] = {
            k: v if isinstance(v, str) else v.decode() for k, v in md if k in ("x-agent-identity", "a2a-version")
        }
        return ctx


class Executor(AgentExecutor):
    def __init__(self, name: str):
        self.name = name

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input().strip()
        up = TaskUpdater(event_queue, context.task_id, context.context_id)
        hdrs = {}
        if context.call_context is not None:
            hdrs = context.call_context.state.get("hdrs", {})
        if context.current_task is None:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
        if text.startswith("steps"):
            n = int(text.split()[1]) if len(text.split()) > 1 else 3
            for _ in range(n):
                await up.start_work()
                await asyncio.sleep(0.25)
        elif text == "wait":
            await up.start_work()
            await asyncio.sleep(30)
            return
        suffix = "".join(f" [{k}={v}]" for k, v in sorted(hdrs.items()))
        await up.add_artifact([new_text_part(f"{self.name}: {text}{suffix}")])
        await up.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        up = TaskUpdater(event_queue, context.task_id, context.context_id)
        await up.cancel()


def build(
    name: str,
    port: int,
    sign_key: str | None = None,
    card_path: str | None = None,
    grpc_server: grpc.aio.Server | None = None,
    grpc_port: int = 1,  # (port 1: an address nothing serves)
) -> Starlette:
    base = f"http://127.0.0.1:{port}"
    grpc_addr = f"127.0.0.1:{grpc_port}"
    card = AgentCard(
        name=name,
        description=f"test agent {name}",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base}/", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=f"{base}/rest", protocol_binding="HTTP+JSON", protocol_version="1.0"),
            AgentInterface(url=grpc_addr, protocol_binding="GRPC", protocol_version="1.0"),
        ]
        + ([AgentInterface(url=grpc_addr, protocol_binding="GRPC", protocol_version="0.3")] if grpc_server else []),
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text"],
        default_output_modes=["text"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
        icon_url=f"{base}/icon.png",
        documentation_url="https://docs.example.org/agent",
    )
    if sign_key:
        from a2a.utils.signing import create_agent_card_signer

        with open(sign_key) as f:
            pem = f.read()
        card = create_agent_card_signer(pem, {"alg": "ES256", "kid": "agent"})(card)  # type: ignore[typeddict-item]
    handler = DefaultRequestHandler(agent_executor=Executor(name), task_store=InMemoryTaskStore(), agent_card=card)
    cb = HeaderContext()
    routes = []
    routes += create_agent_card_routes(card)
    routes += create_agent_card_routes(card, card_url="/.well-known/agent.json")
    if card_path:
        routes += create_agent_card_routes(card, card_url=card_path)
    routes += create_rest_routes(handler, context_builder=cb, path_prefix="/rest")
    routes += create_jsonrpc_routes(handler, "/", context_builder=cb, enable_v0_3_compat=True)
    if grpc_server is not None:
        a2a_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler, GrpcHeaderContext()), grpc_server)
        a2a_v0_3_pb2_grpc.add_A2AServiceServicer_to_server(CompatGrpcHandler(handler, GrpcHeaderContext()), grpc_server)
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), grpc_server)
    return Starlette(routes=routes)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--name", default="sdk-v1-agent")
    p.add_argument("--sign-key")
    p.add_argument("--card-path")
    p.add_argument("--grpc", action="store_true", help="serve the gRPC binding too, on another port")
    a = p.parse_args()
    asyncio.run(serve(a))


async def serve(a) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", a.port))
    port = sock.getsockname()[1]
    if not a.grpc:
        server = uvicorn.Server(
            uvicorn.Config(build(a.name, port, a.sign_key, a.card_path), log_level="warning", lifespan="off")
        )
        print(f"READY {port}", flush=True)
        await server.serve(sockets=[sock])
        return
    grpc_server = grpc.aio.server()
    grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
    app = build(a.name, port, a.sign_key, a.card_path, grpc_server, grpc_port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    await grpc_server.start()
    print(f"READY {port} GRPC {grpc_port}", flush=True)
    try:
        await server.serve(sockets=[sock])
    finally:
        await grpc_server.stop(0)


if __name__ == "__main__":
    main()
