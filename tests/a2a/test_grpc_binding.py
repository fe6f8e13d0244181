"""A2A's gRPC binding through a real agentgw process.

An a2a-sdk 1.x agent serves JSON-RPC / HTTP+JSON on one port and gRPC on another (both
A2A 1.0's ``lf.a2a.v1.A2AService`` and 0.3's ``a2a.v1.A2AService``). The gateway has an
``a2a`` route for the HTTP side (behind a path prefix) and routes for the gRPC service
paths whose backend is the agent's gRPC port. The card fetched through the gateway keeps
the gRPC interfaces, rewritten to the gateway's authority; an a2a-sdk client that picks
gRPC from that card dials the gateway (h2c, or TLS with ALPN h2), and gets what it gets
from the agent directly; the ``a2a`` policy logs the method, task and state of each gRPC
call. Without a gRPC route (or with only a catch-all one) the gRPC interfaces are dropped,
as before, and clients fall back to JSON-RPC through the gateway.

The end of the module pins the pieces without processes: the card rewriting rule and the
protobuf facts (backends/a2a/grpc.py) against a2a-sdk's own message classes.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time

import grpc
import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError
from a2a.compat.v0_3 import a2a_v0_3_pb2 as pb03
from a2a.helpers.proto_helpers import new_text_message
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    a2a_pb2,
    a2a_pb2_grpc,
)
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentgw.backends.a2a.card import CardRewriter, grpc_route_probe
from agentgw.backends.a2a.grpc import GrpcResponseObserver, first_message, grpc_method, request_facts, response_facts
from agentgw.routing.table import EXACT, PREFIX, Match, RouteTable
from tests.support.harness import closed_port, free_port, gateway_config, route, wait_for

AGENT = "grpc-agent"
V1 = "/lf.a2a.v1.A2AService/"
V03 = "/a2a.v1.A2AService/"


def grpc_route(name, backend, service=V1, *, hostnames=None, extra=None):
    """A route for an A2A gRPC service path, to the agent's gRPC port, with the ``a2a``
    policy (named as the agent's HTTP route, so that both count as one agent)."""
    pol = {"a2a": {"agent": AGENT}}
    pol.update(extra or {})
    return route(name, [backend], prefix=service, hostnames=hostnames, policies=pol)


def http_route(name, backend, prefix=None, *, hostnames=None, agent=AGENT):
    pol: dict = {"a2a": {"agent": agent}}
    if prefix:
        pol["urlRewrite"] = {"path": {"prefix": "/"}}
    return route(name, [backend], prefix=prefix, hostnames=hostnames, policies=pol)


@pytest.fixture(scope="module")
def env(module_harness, a2a_agents, tls_files):
    agent = a2a_agents("v1", AGENT, grpc=True)
    routes = [
        grpc_route("agent-grpc", agent.grpc_host),
        grpc_route("agent-grpc03", agent.grpc_host, V03),
        http_route("agent", agent.host, "/agents/grpc-agent"),
        # another agent's card on the same host: the gRPC routes are grpc-agent's
        http_route("other", agent.host, "/agents/other", agent="other-agent"),
        # only 1.0's service routed on this host; nothing but a catch-all on the next
        grpc_route("only-v1-grpc", agent.grpc_host, hostnames=["only-v1.test"]),
        http_route("only-v1", agent.host, hostnames=["only-v1.test"]),
        http_route("catch-all", agent.host, hostnames=["catch-all.test"]),
        # a gRPC route by content type (every service, any path) next to a catch-all HTTP one
        route(
            "any-grpc",
            [agent.grpc_host],
            hostnames=["grpc-any.test"],
            headers={"content-type": {"regex": "application/grpc.*"}},
            policies={"a2a": {"agent": AGENT}},
        ),
        http_route("any-http", agent.host, hostnames=["grpc-any.test"]),
        # gateway-made errors on gRPC calls
        grpc_route("down-grpc", f"127.0.0.1:{closed_port()}", hostnames=["down.test"]),
        grpc_route(
            "limited-grpc",
            agent.grpc_host,
            hostnames=["limited.test"],
            extra={"localRateLimit": [{"maxTokens": 1, "tokensPerFill": 1, "fillInterval": "60s"}]},
        ),
        # an authorization rule on the task a call names
        grpc_route(
            "guarded-grpc",
            agent.grpc_host,
            hostnames=["guarded.test"],
            extra={"authorization": {"deny": ["has(a2a.taskId) && a2a.taskId == 'victim'"]}},
        ),
    ]
    tls_listener = {
        "name": "tls",
        "protocol": "HTTPS",
        "tls": {"cert": str(tls_files.cert), "key": str(tls_files.key)},
        "routes": [grpc_route("secure-grpc", agent.grpc_host), http_route("secure", agent.host, "/secure")],
    }
    cfg = gateway_config(
        routes,
        extra_binds=[{"port": free_port(), "listeners": [tls_listener]}],
        extra_config={"trustedProxies": ["127.0.0.0/8"]},  # X-Forwarded-* from the tests count
    )
    return module_harness.gateway(cfg), agent


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def log_entries(gw, **match):
    def find():
        out = [e for e in gw.access_log() if e.get("msg") == "request" and all(e.get(k) == v for k, v in match.items())]
        return out or None

    return wait_for(find, timeout=5, message=f"access log entry {match}")


def get_card(url, headers=None, verify=True) -> dict:
    r = httpx.get(url, headers=headers or {}, timeout=10, verify=verify)
    assert r.status_code == 200, r.text
    return r.json()


def grpc_interfaces(card: dict) -> dict[str, str]:
    """protocol version → URL of the card's GRPC interfaces."""
    return {i["protocolVersion"]: i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC"}


def _msg(text):
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


class Client:
    """An a2a-sdk client made from the card at ``base``, preferring gRPC; ``dialed`` records
    the targets its gRPC channel factory was asked for (the card's gRPC URL)."""

    def __init__(
        self, base, *, bindings=("GRPC",), streaming=False, creds=None, verify=True, card=None, channel_options=()
    ):
        self.base, self.bindings, self.streaming = base, list(bindings), streaming
        self.creds, self.verify, self.card = creds, verify, card
        self.channel_options = list(channel_options)
        self.dialed: list[str] = []

    def _channel(self, url):
        self.dialed.append(url)
        if self.creds is not None:
            return grpc.aio.secure_channel(url, self.creds, options=self.channel_options)
        return grpc.aio.insecure_channel(url, options=self.channel_options)

    async def __aenter__(self):
        self.http = httpx.AsyncClient(timeout=20, verify=self.verify)
        cfg = ClientConfig(
            httpx_client=self.http,
            grpc_channel_factory=self._channel,
            supported_protocol_bindings=self.bindings,
            use_client_preference=True,
            streaming=self.streaming,
        )
        factory = ClientFactory(cfg)
        if self.card is not None:
            self.client = factory.create(self.card)
        else:
            self.client = await factory.create_from_url(self.base)
        return self.client

    async def __aexit__(self, *exc):
        await self.client.close()
        await self.http.aclose()


def _send(base, text, **kw):
    async def go():
        c = Client(base, **kw)
        async with c as client:
            events = [ev async for ev in client.send_message(_msg(text))]
        return events, c.dialed

    return run(go())


# -- discovery --------------------------------------------------------------------------
def test_card_keeps_grpc_interfaces_with_the_gateways_authority(env):
    gw, agent = env
    card = get_card(f"{gw.url}/agents/grpc-agent/.well-known/agent-card.json")
    urls = [(i["protocolBinding"], i["protocolVersion"], i["url"]) for i in card["supportedInterfaces"]]
    assert urls == [
        ("JSONRPC", "1.0", f"{gw.url}/agents/grpc-agent/"),
        ("HTTP+JSON", "1.0", f"{gw.url}/agents/grpc-agent/rest"),
        # a gRPC target: the authority alone (no path prefix can cross), no scheme as the
        # agent wrote none
        ("GRPC", "1.0", f"127.0.0.1:{gw.port}"),
        ("GRPC", "0.3", f"127.0.0.1:{gw.port}"),
    ]
    direct = get_card(f"http://{agent.host}/.well-known/agent-card.json")
    assert grpc_interfaces(direct) == {"1.0": agent.grpc_host, "0.3": agent.grpc_host}


def test_grpc_authority_follows_host_and_forwarded_headers(env):
    gw, _ = env
    path = "/agents/grpc-agent/.well-known/agent-card.json"
    card = get_card(gw.url + path, {"host": f"localhost:{gw.port}"})
    assert grpc_interfaces(card) == {"1.0": f"localhost:{gw.port}", "0.3": f"localhost:{gw.port}"}
    # behind a (trusted) proxy: its authority, with the scheme's default port written out
    # (a gRPC target without a port means 443, whatever the scheme)
    card = get_card(gw.url + path, {"x-forwarded-proto": "https", "x-forwarded-host": "agents.example.com"})
    assert grpc_interfaces(card)["1.0"] == "agents.example.com:443"
    card = get_card(gw.url + path, {"x-forwarded-proto": "http", "x-forwarded-host": "agents.example.com"})
    assert grpc_interfaces(card)["1.0"] == "agents.example.com:80"


def test_grpc_interface_kept_only_for_a_routed_service(env):
    """Each interface is kept only when its own service is routed on that host, to the
    same agent; a catch-all route (the JSON-RPC one, to the agent's HTTP port) does not
    count, nor does another agent's gRPC route."""
    gw, agent = env
    card = get_card(f"{gw.url}/agents/other/.well-known/agent-card.json")
    assert grpc_interfaces(card) == {}
    assert [i["url"] for i in card["supportedInterfaces"]] == [f"{gw.url}/agents/other/", f"{gw.url}/agents/other/rest"]
    card = get_card(f"{gw.url}/.well-known/agent-card.json", {"host": f"only-v1.test:{gw.port}"})
    assert grpc_interfaces(card) == {"1.0": f"only-v1.test:{gw.port}"}
    card = get_card(f"{gw.url}/.well-known/agent-card.json", {"host": f"catch-all.test:{gw.port}"})
    assert grpc_interfaces(card) == {}
    assert [i["protocolBinding"] for i in card["supportedInterfaces"]] == ["JSONRPC", "HTTP+JSON"]
    assert str(agent.grpc_port) not in str(card)


def test_grpc_route_by_content_type_and_other_grpc_services(env):
    """A route that matches gRPC's content type on any path is a gRPC route for both
    services; a gRPC service that is not A2A's (grpcio's health service, a streaming
    Watch too) passes through the ``a2a`` policy untouched: no body read, no method."""
    gw, _ = env
    card = get_card(f"{gw.url}/.well-known/agent-card.json", {"host": f"grpc-any.test:{gw.port}"})
    assert grpc_interfaces(card) == {"1.0": f"grpc-any.test:{gw.port}", "0.3": f"grpc-any.test:{gw.port}"}

    async def go():
        opts = [("grpc.default_authority", f"grpc-any.test:{gw.port}")]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}", options=opts) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            check = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=10)
            first = await watch.read()
            watch.cancel()
            return check.status, first.status

    assert run(go()) == (health_pb2.HealthCheckResponse.SERVING,) * 2
    e = log_entries(gw, route="any-grpc", path="/grpc.health.v1.Health/Check")[-1]
    assert e["status"] == 200 and e["a2a_agent"] == AGENT and "a2a_method" not in e


def test_no_grpc_route_drops_grpc_interfaces_as_before(harness, a2a_agents):
    agent = a2a_agents("v1", AGENT, grpc=True)
    gw = harness.gateway(gateway_config([http_route("agent", agent.host, "/agents/grpc-agent")]))
    card = get_card(f"{gw.url}/agents/grpc-agent/.well-known/agent-card.json")
    assert [i["protocolBinding"] for i in card["supportedInterfaces"]] == ["JSONRPC", "HTTP+JSON"]
    assert str(agent.grpc_port) not in str(card)
    # a client that prefers gRPC falls back to JSON-RPC, through the gateway
    events, dialed = _send(f"{gw.url}/agents/grpc-agent", "fallback", bindings=("GRPC", "JSONRPC"))
    assert dialed == [] and events[-1].task.status.state == a2a_pb2.TASK_STATE_COMPLETED
    log_entries(gw, route="agent", a2a_method="SendMessage", a2a_task_id=events[-1].task.id)


# -- calls --------------------------------------------------------------------------------
def _task_text(task) -> str:
    return task.artifacts[0].parts[0].text


def test_grpc_client_through_the_gateway_gets_what_it_gets_direct(env):
    gw, agent = env
    direct, direct_dialed = _send(f"http://{agent.host}", "hello")
    through, dialed = _send(f"{gw.url}/agents/grpc-agent", "hello")
    assert direct_dialed == [agent.grpc_host] and dialed == [f"127.0.0.1:{gw.port}"]
    a, b = direct[-1].task, through[-1].task
    assert (b.status.state, _task_text(b)) == (a.status.state, _task_text(a))
    assert _task_text(b) == f"{AGENT}: hello [a2a-version=1.0]"  # the call's metadata, relayed
    assert a.id != b.id
    e = log_entries(gw, route="agent-grpc", a2a_task_id=b.id)[-1]
    assert e["path"] == "/lf.a2a.v1.A2AService/SendMessage" and e["status"] == 200
    assert e["a2a_agent"] == AGENT and e["a2a_method"] == "SendMessage"
    assert e["a2a_context_id"] == b.context_id and e["a2a_task_state"] == "completed"
    assert e["a2a_result_kind"] == "task"
    assert gw.metric("agentgw_a2a_requests_total", agent=AGENT, method="SendMessage", status="200") >= 1
    assert gw.metric("agentgw_a2a_task_states_total", agent=AGENT, state="completed") >= 1


def test_grpc_stream_is_relayed_message_by_message(env):
    gw, agent = env

    async def go(base):
        c = Client(base, streaming=True)
        seen = []
        async with c as client:
            async for ev in client.send_message(_msg("steps 3")):
                seen.append((time.monotonic(), ev))
        return seen, c.dialed

    direct, _ = run(go(f"http://{agent.host}"))
    seen, dialed = run(go(f"{gw.url}/agents/grpc-agent"))
    assert dialed == [f"127.0.0.1:{gw.port}"]

    def shape(events):
        return [(ev.WhichOneof("payload"), ev.status_update.status.state) for _, ev in events]

    assert shape(seen) == shape(direct)
    states = [ev.status_update.status.state for _, ev in seen if ev.HasField("status_update")]
    assert states.count(a2a_pb2.TASK_STATE_WORKING) == 3 and states[-1] == a2a_pb2.TASK_STATE_COMPLETED
    # the agent spaces its updates 0.25 s apart: buffered relaying would collapse them
    assert seen[-1][0] - seen[0][0] >= 0.6
    task_id = seen[0][1].task.id
    e = log_entries(gw, a2a_method="SendStreamingMessage", a2a_task_id=task_id)[-1]
    assert e["route"] == "agent-grpc" and e["a2a_task_state"] == "completed"
    assert e["a2a_result_kind"] == "status-update"  # the last message


def test_grpc_get_and_cancel_name_their_task(env):
    gw, _ = env

    async def go():
        async with Client(f"{gw.url}/agents/grpc-agent") as client:
            req = _msg("wait")
            req.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
            first = [ev async for ev in client.send_message(req)][-1].task
            got = await client.get_task(GetTaskRequest(id=first.id))
            canceled = await client.cancel_task(CancelTaskRequest(id=first.id))
            return first, got, canceled

    first, got, canceled = run(go())
    assert got.id == first.id and canceled.status.state == a2a_pb2.TASK_STATE_CANCELED
    g = log_entries(gw, a2a_method="GetTask", a2a_task_id=first.id)[-1]  # the id from the request
    c = log_entries(gw, a2a_method="CancelTask", a2a_task_id=first.id)[-1]
    assert g["route"] == c["route"] == "agent-grpc"
    assert g["a2a_task_state"] in ("submitted", "working") and c["a2a_task_state"] == "canceled"


def test_v03_grpc_interface_through_the_gateway(env):
    """A2A 0.3's service: the a2a-sdk client's 0.3 gRPC transport, chosen by the card's
    0.3 interface, on the route for ``/a2a.v1.A2AService/``."""
    gw, _ = env
    doc = get_card(f"{gw.url}/agents/grpc-agent/.well-known/agent-card.json")
    card = json_format.ParseDict(doc, AgentCard(), ignore_unknown_fields=True)
    keep = [i for i in card.supported_interfaces if not (i.protocol_binding == "GRPC" and i.protocol_version == "1.0")]
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(keep)

    async def go():
        c = Client(None, card=card)
        async with c as client:
            events = [ev async for ev in client.send_message(_msg("old"))]
            task = events[-1].task
            got = await client.get_task(GetTaskRequest(id=task.id))
        return task, got, c.dialed

    task, got, dialed = run(go())
    assert dialed == [f"127.0.0.1:{gw.port}"]
    assert task.status.state == a2a_pb2.TASK_STATE_COMPLETED and got.id == task.id
    e = log_entries(gw, route="agent-grpc03", a2a_method="SendMessage", a2a_task_id=task.id)[-1]
    assert e["path"] == "/a2a.v1.A2AService/SendMessage" and e["a2a_task_state"] == "completed"
    g = log_entries(gw, route="agent-grpc03", a2a_method="GetTask", a2a_task_id=task.id)[-1]  # from "tasks/{id}"
    assert g["a2a_task_state"] == "completed"


def test_grpc_over_tls_with_alpn_h2(env, tls_files):
    gw, _ = env
    base = f"https://localhost:{gw.ports[1]}"
    ctx = tls_files.client_context()
    card = get_card(f"{base}/secure/.well-known/agent-card.json", verify=ctx)
    assert grpc_interfaces(card)["1.0"] == f"localhost:{gw.ports[1]}"
    creds = grpc.ssl_channel_credentials(root_certificates=tls_files.ca_cert.read_bytes())
    events, dialed = _send(f"{base}/secure", "secure hello", creds=creds, verify=ctx)
    assert dialed == [f"localhost:{gw.ports[1]}"]
    task = events[-1].task
    assert _task_text(task).startswith(f"{AGENT}: secure hello")
    assert log_entries(gw, route="secure-grpc", a2a_method="SendMessage", a2a_task_id=task.id)


def _raw_call(gw, authority):
    """SendMessage with a plain stub, the channel's :authority set to ``authority``."""

    async def go():
        opts = [("grpc.default_authority", f"{authority}:{gw.port}")]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}", options=opts) as ch:
            stub = a2a_pb2_grpc.A2AServiceStub(ch)
            try:
                await stub.SendMessage(_msg("raw"), timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details()
            return grpc.StatusCode.OK, ""

    return run(go())


def test_gateway_errors_reach_grpc_clients_as_grpc_statuses(env):
    """No JSON-RPC error body for a gRPC call: the gateway's own answers are gRPC statuses."""
    gw, _ = env
    code, details = _raw_call(gw, "down.test")
    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert _raw_call(gw, "limited.test")[0] == grpc.StatusCode.OK
    code, _ = _raw_call(gw, "limited.test")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # the refusal (a trailers-only answer) is logged with the call's method
    entries = wait_for(lambda: [e for e in gw.access_log() if e.get("route") == "limited-grpc"][1:] or None, timeout=5)
    assert [e.get("a2a_method") for e in entries] == ["SendMessage"]

    # the a2a-sdk client, from the card, with its channel's :authority set to down.test
    async def sdk_call():
        opts = [("grpc.default_authority", f"down.test:{gw.port}")]
        async with Client(f"{gw.url}/agents/grpc-agent", channel_options=opts) as client:
            with pytest.raises(A2AClientError, match="UNAVAILABLE"):
                async for _ in client.send_message(_msg("x")):
                    pass

    run(sdk_call())


# -- without processes: the card rule ---------------------------------------------------------
def _table(*routes) -> RouteTable:
    """``(name, hostnames, kind, value, headers)`` → a route table."""
    entries = []
    for order, (name, hostnames, kind, value, headers) in enumerate(routes):
        entries.append((hostnames, [Match(name, kind=kind, value=value, headers=headers, order=order)]))
    return RouteTable(entries)


GRPC_CT = [("content-type", None, re.compile(r"application/grpc.*"))]


@pytest.mark.parametrize(
    ("routes", "v1", "v03"),
    [
        ([], False, False),
        ([("jsonrpc", [], PREFIX, "/", ()), ("other-agents-grpc", [], PREFIX, V1, ())], False, False),
        ([("jsonrpc", [], PREFIX, "/", ())], False, False),  # catch-all: the HTTP route
        ([("jsonrpc", [], PREFIX, "/agents/a", ())], False, False),
        ([("jsonrpc", [], PREFIX, "/", ()), ("grpc", [], PREFIX, V1, ())], True, False),
        ([("grpc", [], PREFIX, V1.rstrip("/"), ())], True, False),
        ([("grpc", [], PREFIX, V03, ())], False, True),
        ([("grpc", [], EXACT, V1 + "SendMessage", ())], True, False),
        # a route for gRPC's content type, whatever the path
        ([("jsonrpc", [], PREFIX, "/", ()), ("grpc", [], PREFIX, "/", GRPC_CT)], True, True),
        # another host's gRPC route does not count
        ([("jsonrpc", [], PREFIX, "/", ()), ("grpc", ["other.test"], PREFIX, V1, ())], False, False),
        ([("grpc", ["agents.test"], PREFIX, V1, ()), ("jsonrpc", ["agents.test"], PREFIX, "/", ())], True, False),
    ],
)
def test_grpc_route_probe(routes, v1, v03):
    # routes are named by their agent here: "grpc" and "jsonrpc" are the card's agent's
    probe = grpc_route_probe(_table(*routes), "agents.test:8080", lambda route: route in ("grpc", "jsonrpc"))
    assert (probe("lf.a2a.v1.A2AService"), probe("a2a.v1.A2AService")) == (v1, v03)


def _rewriter(origin="http://gw.test:8080", routed=("lf.a2a.v1.A2AService", "a2a.v1.A2AService")):
    return CardRewriter(origin, "/agents/a", "", lambda s: s in routed)


@pytest.mark.parametrize(
    ("origin", "url", "out"),
    [
        ("http://gw.test:8080", "10.0.0.5:50051", "gw.test:8080"),
        ("http://gw.test", "10.0.0.5:50051", "gw.test:80"),
        ("https://gw.test", "agent.internal:443", "gw.test:443"),
        ("http://[::1]:8080", "[fd00::5]:50051", "[::1]:8080"),
        ("http://[::1]", "agent:1", "[::1]:80"),
        ("https://gw.test:8443", "grpc://10.0.0.5:50051", "grpcs://gw.test:8443"),
        ("http://gw.test:8080", "grpcs://10.0.0.5:50051", "grpc://gw.test:8080"),
        ("https://gw.test:8443", "http://10.0.0.5:50051", "https://gw.test:8443"),
        ("http://gw.test:8080", "dns:///agent.internal:50051", "dns:///gw.test:8080"),
        ("http://gw.test:8080", "unix:/run/agent.sock", "gw.test:8080"),
    ],
)
def test_grpc_url(origin, url, out):
    assert _rewriter(origin).grpc_url(url) == out


def test_card_rewriting_keeps_only_routed_grpc_interfaces():
    def card():
        return {
            "supportedInterfaces": [
                {"url": "http://10.0.0.5:9999/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": "10.0.0.5:50051", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
                {"url": "10.0.0.5:50051", "protocolBinding": "GRPC", "protocolVersion": "0.3"},
                {"url": "10.0.0.5:50051", "protocolBinding": "GRPC"},  # no version: the current one
            ],
            "iconUrl": "http://10.0.0.5:50051/icon.png",
        }

    out = _rewriter().card(card())
    assert [i["url"] for i in out["supportedInterfaces"]] == [
        "http://gw.test:8080/agents/a/",
        "gw.test:8080",
        "gw.test:8080",
        "gw.test:8080",
    ]
    assert out["iconUrl"] == "http://gw.test:8080/agents/a/icon.png"  # the gRPC host is the agent's too
    out = _rewriter(routed=("lf.a2a.v1.A2AService",)).card(card())
    assert [i.get("protocolVersion") for i in out["supportedInterfaces"]] == ["1.0", "1.0", None]
    out = _rewriter(routed=()).card(card())
    assert [i["protocolBinding"] for i in out["supportedInterfaces"]] == ["JSONRPC"]
    assert out["iconUrl"] == "http://gw.test:8080/agents/a/icon.png"


def test_v03_card_grpc_preferred_transport():
    def card():
        return {
            "url": "10.0.0.5:50051",
            "preferredTransport": "GRPC",
            "additionalInterfaces": [
                {"url": "10.0.0.5:50051", "transport": "GRPC"},
                {"url": "http://10.0.0.5:9999/", "transport": "JSONRPC"},
            ],
        }

    out = _rewriter(routed=("a2a.v1.A2AService",)).card(card())
    assert (out["url"], out["preferredTransport"]) == ("gw.test:8080", "GRPC")
    assert out["additionalInterfaces"] == [
        {"url": "gw.test:8080", "transport": "GRPC"},
        {"url": "http://gw.test:8080/agents/a/", "transport": "JSONRPC"},
    ]
    # 1.0's service routed is not 0.3's: dropped, and the preferred transport falls back to
    # the first interface left (not to the gRPC one listed first)
    out = _rewriter(routed=("lf.a2a.v1.A2AService",)).card(card())
    assert (out["url"], out["preferredTransport"]) == ("http://gw.test:8080/agents/a/", "JSONRPC")
    assert out["additionalInterfaces"] == [{"url": "http://gw.test:8080/agents/a/", "transport": "JSONRPC"}]


# -- without processes: what the policy reads from gRPC messages --------------------------------
def test_grpc_method():
    assert grpc_method("/lf.a2a.v1.A2AService/SendMessage") == ("lf.a2a.v1.A2AService", "SendMessage", "SendMessage")
    assert grpc_method("/a2a.v1.A2AService/TaskSubscription") == (
        "a2a.v1.A2AService",
        "TaskSubscription",
        "SubscribeToTask",
    )
    assert grpc_method("/a2a.v1.A2AService/GetAgentCard")[2] == "GetExtendedAgentCard"  # type: ignore[index]
    for path in ("/grpc.health.v1.Health/Check", "/lf.a2a.v1.A2AService/", "/lf.a2a.v1.A2AService", "/", ""):
        assert grpc_method(path) is None


def _frame(msg, compressed=False) -> bytes:
    data = msg.SerializeToString()
    if compressed:
        data = gzip.compress(data)
    return bytes([1 if compressed else 0]) + len(data).to_bytes(4, "big") + data


def test_request_facts_v1_and_v03():
    v1 = "lf.a2a.v1.A2AService"
    msg = a2a_pb2.Message(message_id="m", task_id="t1", context_id="c1", role=a2a_pb2.ROLE_USER)
    send = a2a_pb2.SendMessageRequest(tenant="acme", message=msg)
    assert request_facts(v1, "SendMessage", send.SerializeToString()) == ("t1", "c1")
    assert request_facts(v1, "SendStreamingMessage", send.SerializeToString()) == ("t1", "c1")
    get = a2a_pb2.GetTaskRequest(tenant="acme", id="t2", history_length=3)
    assert request_facts(v1, "GetTask", get.SerializeToString()) == ("t2", None)
    cancel = a2a_pb2.CancelTaskRequest(id="t3").SerializeToString()
    assert request_facts(v1, "CancelTask", cancel) == ("t3", None)
    sub = a2a_pb2.SubscribeToTaskRequest(id="t4").SerializeToString()
    assert request_facts(v1, "SubscribeToTask", sub) == ("t4", None)
    v03 = "a2a.v1.A2AService"
    send03 = pb03.SendMessageRequest(request=pb03.Message(message_id="m", task_id="t5", context_id="c5"))
    assert request_facts(v03, "SendMessage", send03.SerializeToString()) == ("t5", "c5")
    assert request_facts(v03, "GetTask", pb03.GetTaskRequest(name="tasks/t6").SerializeToString()) == ("t6", None)
    sub03 = pb03.TaskSubscriptionRequest(name="tasks/t7").SerializeToString()
    assert request_facts(v03, "TaskSubscription", sub03) == ("t7", None)
    assert request_facts(v03, "CancelTask", pb03.CancelTaskRequest(name="oops").SerializeToString()) == (None, None)
    # framed, compressed as the call says
    framed = _frame(send, compressed=True)
    assert request_facts(v1, "SendMessage", first_message(framed, "gzip", 1 << 20)) == ("t1", "c1")
    with pytest.raises(ValueError):  # compressed with what it does not say: not read, refused
        first_message(framed, None, 1 << 20)
    with pytest.raises(ValueError):  # inflating past the limit
        first_message(framed, "gzip", 8)


def test_request_ids_are_read_as_protobuf_reads_them():
    """The ids authorization rules see are the ids the agent's protobuf parser reads:
    the last occurrence of a field wins (an empty one clears it), a field sent with
    another wire type and groups are unknown fields, skipped. Each case is checked
    against a2a-sdk's own parser."""
    v1 = "lf.a2a.v1.A2AService"
    get = a2a_pb2.GetTaskRequest(id="victim").SerializeToString()
    cases = {
        "an empty group after the id": get + b"\x9b\x06\x9c\x06",  # field 99, start + end group
        "a group holding a decoy id": get + b"\x9b\x06" + b"\x12\x05decoy" + b"\x9c\x06",
        "the id again, empty": get + b"\x12\x00",
        "the id again, another value": get + b"\x12\x05other",
        "the id's number with a varint": get + b"\x10\x07",
    }
    for what, raw in cases.items():
        upstream = a2a_pb2.GetTaskRequest.FromString(raw).id or None
        assert request_facts(v1, "GetTask", raw) == (upstream, None), what
    with pytest.raises(ValueError):  # an end group never started: the agent refuses it too
        request_facts(v1, "GetTask", get + b"\x9c\x06")


def _task(tid="t1", cid="c1", state=a2a_pb2.TASK_STATE_WORKING):
    return a2a_pb2.Task(id=tid, context_id=cid, status=a2a_pb2.TaskStatus(state=state))


@pytest.mark.parametrize(
    ("kind", "msg", "facts"),
    [
        ("task", _task(state=a2a_pb2.TASK_STATE_INPUT_REQUIRED), ("t1", "c1", "input-required", "task")),
        ("wrapped", a2a_pb2.SendMessageResponse(task=_task()), ("t1", "c1", "working", "task")),
        (
            "wrapped",
            a2a_pb2.SendMessageResponse(message=a2a_pb2.Message(message_id="m", task_id="t2", context_id="c2")),
            ("t2", "c2", None, "message"),
        ),
        (
            "wrapped",
            a2a_pb2.StreamResponse(
                status_update=a2a_pb2.TaskStatusUpdateEvent(
                    task_id="t3", context_id="c3", status=a2a_pb2.TaskStatus(state=a2a_pb2.TASK_STATE_AUTH_REQUIRED)
                )
            ),
            ("t3", "c3", "auth-required", "status-update"),
        ),
        (
            "wrapped",
            a2a_pb2.StreamResponse(
                artifact_update=a2a_pb2.TaskArtifactUpdateEvent(
                    task_id="t4", context_id="c4", artifact=a2a_pb2.Artifact(artifact_id="a", name="x")
                )
            ),
            ("t4", "c4", None, "artifact-update"),
        ),
        # 0.3's messages: the same numbers (and its CANCELLED is 1.0's CANCELED)
        (
            "task",
            pb03.Task(id="t5", context_id="c5", status=pb03.TaskStatus(state=pb03.TASK_STATE_CANCELLED)),
            ("t5", "c5", "canceled", "task"),
        ),
        (
            "wrapped",
            pb03.StreamResponse(
                status_update=pb03.TaskStatusUpdateEvent(
                    task_id="t6", context_id="c6", status=pb03.TaskStatus(state=pb03.TASK_STATE_REJECTED), final=True
                )
            ),
            ("t6", "c6", "rejected", "status-update"),
        ),
        ("wrapped", pb03.SendMessageResponse(msg=pb03.Message(task_id="t7")), ("t7", None, None, "message")),
    ],
)
def test_response_facts(kind, msg, facts):
    into: dict = {}
    response_facts(kind, msg.SerializeToString(), into)
    got = (into.get("task_id"), into.get("context_id"), into.get("state"), into.get("result_kind"))
    assert got == facts


def test_response_observer_reads_frames_across_chunks():
    done = []
    obs = GrpcResponseObserver("SendStreamingMessage", lambda attrs, facts: done.append(facts), {}, limit=4096)
    stream = b"".join(
        [
            _frame(a2a_pb2.StreamResponse(task=_task(state=a2a_pb2.TASK_STATE_SUBMITTED))),
            # an artifact larger than the limit: skipped, not buffered
            _frame(
                a2a_pb2.StreamResponse(
                    artifact_update=a2a_pb2.TaskArtifactUpdateEvent(
                        task_id="big",
                        artifact=a2a_pb2.Artifact(artifact_id="a", parts=[a2a_pb2.Part(text="x" * 10000)]),
                    )
                )
            ),
            b"\x00\x00\x00\x00\x03\xff\xff\xff",  # not a message: skipped
            _frame(
                a2a_pb2.StreamResponse(
                    status_update=a2a_pb2.TaskStatusUpdateEvent(
                        task_id="t1", status=a2a_pb2.TaskStatus(state=a2a_pb2.TASK_STATE_COMPLETED)
                    )
                )
            ),
        ]
    )
    for i in range(0, len(stream), 7):  # one byte-slice at a time, frames cut anywhere
        obs(stream[i : i + 7])
        assert len(obs.buf) <= 4096 + 5
    obs(None)
    assert done == [{"task_id": "t1", "context_id": "c1", "state": "completed", "result_kind": "status-update"}]
    # compressed messages, with the response's grpc-encoding
    done.clear()
    obs = GrpcResponseObserver("GetTask", lambda attrs, facts: done.append(facts), {})
    obs.encoding = "gzip"
    obs(_frame(_task(tid="t9", state=a2a_pb2.TASK_STATE_FAILED), compressed=True))
    obs(None)
    assert done == [{"task_id": "t9", "context_id": "c1", "state": "failed", "result_kind": "task"}]
    assert not GrpcResponseObserver.wanted("GetExtendedAgentCard")


def test_an_authorization_rule_on_the_task_id_holds_whatever_the_encoding(env):
    """A rule on ``a2a.taskId`` sees the id the agent will read, however the request
    message spells it: with unknown groups, the id repeated, compressed. A message the
    gateway can't read as the agent would is refused, not relayed unread."""
    gw, _agent = env
    get = a2a_pb2.GetTaskRequest(id="victim").SerializeToString()
    ch = grpc.insecure_channel(f"127.0.0.1:{gw.port}", options=[("grpc.default_authority", "guarded.test")])
    call = ch.unary_unary(f"/{V1}/GetTask")
    try:
        spellings = {
            "plain": get,
            "an unknown group after the id": get + b"\x9b\x06\x9c\x06",
            "the id first empty, then set": b"\x12\x00" + get,
        }
        for what, raw in spellings.items():
            with pytest.raises(grpc.RpcError) as err:
                call(raw, timeout=10)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, (what, err.value.details())
        # another task: the rule lets it through to the agent (which does not know it)
        with pytest.raises(grpc.RpcError) as err:
            call(a2a_pb2.GetTaskRequest(id="someone-else").SerializeToString(), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
        # a message that does not parse as protobuf: refused, unread
        with pytest.raises(grpc.RpcError) as err:
            call(b"garbage-that-is-no-protobuf\xff", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    finally:
        ch.close()
