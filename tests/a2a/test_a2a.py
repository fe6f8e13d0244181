"""A2A through a real agentgw process: discovery, JSON-RPC and REST bindings, streams,
tasks, errors, metrics, with a2a-sdk 1.x and 0.3 agents and the a2a-sdk 1.x client."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from a2a.client import ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import new_text_message
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
)
from tests.support.harness import gateway_config, route, wait_for


def a2a_route(name, backends, prefix=None, *, hostnames=None, extra=None, rewrite=True):
    pol = {"a2a": {}}
    if prefix and rewrite:
        pol["urlRewrite"] = {"path": {"prefix": "/"}}
    pol.update(extra or {})
    return route(name, backends, prefix=prefix, hostnames=hostnames, policies=pol)


@pytest.fixture(scope="module")
def env(module_harness, a2a_agents, tls_files):
    v1 = a2a_agents("v1", "weather-agent")
    v03 = a2a_agents("v03", "legacy-agent")
    echo = module_harness.upstream("echo")
    routes = [
        a2a_route("weather-agent", [v1.host], "/agents/weather-agent"),
        route(
            "legacy-agent",
            [{"a2a": {"targets": [{"name": "legacy", "static": {"host": "127.0.0.1", "port": v03.port}}]}}],
            prefix="/agents/legacy-agent",
            policies={"urlRewrite": {"path": {"prefix": "/"}}},
        ),
        a2a_route(
            "limited-agent",
            [v1.host],
            "/agents/limited",
            extra={"localRateLimit": [{"maxTokens": 2, "tokensPerFill": 1, "fillInterval": "60s"}]},
        ),
        route("echo-a2a", [echo.host], prefix="/echo-a2a", policies={"a2a": {"agent": "echo"}}),
        a2a_route("by-host", [v1.host], hostnames=["hello.agents.test"]),
    ]
    tls_listener = {
        "name": "tls",
        "protocol": "HTTPS",
        "tls": {"cert": str(tls_files.cert), "key": str(tls_files.key)},
        "routes": [a2a_route("secure-agent", [v1.host], "/secure")],
    }
    from tests.support.harness import free_port

    cfg = gateway_config(
        routes,
        extra_binds=[{"port": free_port(), "listeners": [tls_listener]}],
        extra_config={"trustedProxies": ["127.0.0.0/8"]},  # X-Forwarded-* from the tests count
    )
    gw = module_harness.gateway(cfg)
    return gw, v1, v03, echo


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def log_entries(gw, **match):
    def find():
        out = [e for e in gw.access_log() if e.get("msg") == "request" and all(e.get(k) == v for k, v in match.items())]
        return out or None

    return wait_for(find, timeout=5, message=f"access log entry {match}")


def _card(gw, path, headers=None, base=None, verify=True):
    r = httpx.get((base or gw.url) + path, headers=headers or {}, timeout=10, verify=verify)
    assert r.status_code == 200, r.text
    return r.json(), r.text


# -- discovery --------------------------------------------------------------------------
def test_card_by_host_is_rewritten_to_the_gateway(env):
    gw, v1, _, _ = env
    card, text = _card(gw, "/.well-known/agent-card.json", {"host": f"hello.agents.test:{gw.port}"})
    urls = {i["protocolBinding"]: i["url"] for i in card["supportedInterfaces"]}
    assert urls == {
        "JSONRPC": f"http://hello.agents.test:{gw.port}/",
        "HTTP+JSON": f"http://hello.agents.test:{gw.port}/rest",
    }  # the gRPC interface, which cannot cross the gateway, is gone
    assert card["iconUrl"] == f"http://hello.agents.test:{gw.port}/icon.png"
    assert card["documentationUrl"] == "https://docs.example.org/agent"  # not the backend: untouched
    assert str(v1.port) not in text and "127.0.0.1:1" not in text


def test_card_behind_path_prefix(env):
    gw, v1, _, _ = env
    for wk in ("/.well-known/agent-card.json", "/.well-known/agent.json"):
        card, text = _card(gw, "/agents/weather-agent" + wk)
        urls = sorted(i["url"] for i in card["supportedInterfaces"])
        assert urls == [f"{gw.url}/agents/weather-agent/", f"{gw.url}/agents/weather-agent/rest"], wk
        assert str(v1.port) not in text


def test_card_honours_x_forwarded_proto_and_host(env):
    gw, v1, _, _ = env
    card, text = _card(
        gw,
        "/agents/weather-agent/.well-known/agent-card.json",
        {"x-forwarded-proto": "https", "x-forwarded-host": "agents.example.com"},
    )
    assert sorted(i["url"] for i in card["supportedInterfaces"]) == [
        "https://agents.example.com/agents/weather-agent/",
        "https://agents.example.com/agents/weather-agent/rest",
    ]
    assert str(v1.port) not in text


def test_card_validators_name_the_rewritten_card_and_answer_304(env):
    """The agent's ETag describes its own card, not the rewritten one: the gateway sends
    an ETag of what it serves and answers If-None-Match / If-Modified-Since itself."""
    gw, _, _, _ = env
    path = "/agents/weather-agent/.well-known/agent-card.json"
    first = httpx.get(gw.url + path, timeout=10)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and len(etag) > 10
    again = httpx.get(gw.url + path, timeout=10)
    assert again.headers["etag"] == etag  # the same card through the same address
    other = httpx.get(gw.url + path, headers={"x-forwarded-host": "other.example"}, timeout=10)
    assert other.headers["etag"] != etag  # other URLs inside: another representation
    assert "X-Forwarded-Host" in other.headers["vary"]

    cached = httpx.get(gw.url + path, headers={"if-none-match": etag}, timeout=10)
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    weak = httpx.get(gw.url + path, headers={"if-none-match": f'"nope", W/{etag}'}, timeout=10)
    assert weak.status_code == 304
    stale = httpx.get(gw.url + path, headers={"if-none-match": '"an-old-card"'}, timeout=10)
    assert stale.status_code == 200 and stale.json() == first.json()
    # the agent's own validators are not relayed for the rewritten card
    assert httpx.get(gw.url + path, headers={"if-none-match": "*"}, timeout=10).status_code == 304


def test_card_ignores_x_forwarded_headers_from_untrusted_peers(harness, a2a_agents):
    """Without ``trustedProxies`` a client can't choose the URLs written into a card."""
    v1 = a2a_agents("v1", "weather-agent")
    gw = harness.gateway(gateway_config([a2a_route("weather-agent", [v1.host], "/agents/weather-agent")]))
    card, text = _card(
        gw,
        "/agents/weather-agent/.well-known/agent-card.json",
        {"x-forwarded-proto": "https", "x-forwarded-host": "evil.example.com"},
    )
    assert sorted(i["url"] for i in card["supportedInterfaces"]) == [
        f"{gw.url}/agents/weather-agent/",
        f"{gw.url}/agents/weather-agent/rest",
    ]
    assert "evil.example.com" not in text


def test_card_behind_tls_listener(env, tls_files):
    gw, v1, _, _ = env
    base = f"https://localhost:{gw.ports[1]}"
    card, text = _card(gw, "/secure/.well-known/agent-card.json", base=base, verify=tls_files.client_context())
    assert sorted(i["url"] for i in card["supportedInterfaces"]) == [f"{base}/secure/", f"{base}/secure/rest"]
    assert str(v1.port) not in text


def test_v03_card_url_and_additional_interfaces(env):
    gw, _, v03, _ = env
    for wk in ("/.well-known/agent-card.json", "/.well-known/agent.json"):
        card, text = _card(gw, "/agents/legacy-agent" + wk)
        assert card["url"] == f"{gw.url}/agents/legacy-agent/"
        assert card["preferredTransport"] == "JSONRPC"
        assert card["additionalInterfaces"] == [{"transport": "JSONRPC", "url": f"{gw.url}/agents/legacy-agent/"}]
        assert str(v03.port) not in text and "127.0.0.1:1" not in text


# -- JSON-RPC v1.0 with the a2a-sdk 1.x client ------------------------------------------
def _client(url, **cfg):
    async def make():
        http = httpx.AsyncClient(timeout=20)
        factory = ClientFactory(ClientConfig(httpx_client=http, **cfg))
        return await factory.create_from_url(url), http

    return make()


def _msg(text):
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


def test_send_via_card_discovered_through_gateway(env):
    gw, v1, _, _ = env

    async def go():
        client, http = await _client(f"{gw.url}/agents/weather-agent", streaming=False)
        try:
            out = [ev async for ev in client.send_message(_msg("hello"))]
        finally:
            await client.close()
            await http.aclose()
        return out

    events = run(go())
    task = events[-1].task
    assert task.status.state == 3  # TASK_STATE_COMPLETED
    text = task.artifacts[0].parts[0].text
    assert text.startswith("weather-agent: hello") and "[a2a-version=1.0]" in text  # A2A-Version forwarded
    # this call's entry (other tests send through the same gateway)
    e = log_entries(gw, route="weather-agent", a2a_method="SendMessage", a2a_task_id=task.id)[-1]
    assert e["a2a_agent"] == "weather-agent" and e["a2a_task_state"] == "completed"
    assert e["a2a_task_id"] == task.id and e["a2a_context_id"] == task.context_id
    assert (e["a2a_response_outcome"], e["a2a_result_kind"]) == ("success", "task")  # v1.0: result.task
    assert e["path"] == "/agents/weather-agent/"
    assert gw.metric("agentgw_a2a_requests_total", agent="weather-agent", method="SendMessage", status="200") >= 1
    assert gw.metric("agentgw_a2a_task_states_total", agent="weather-agent", state="completed") >= 1


def test_stream_is_relayed_event_by_event(env):
    gw, _, _, _ = env

    async def go():
        client, http = await _client(f"{gw.url}/agents/weather-agent", streaming=True)
        seen = []
        try:
            async for ev in client.send_message(_msg("steps 3")):
                seen.append((time.monotonic(), ev))
        finally:
            await client.close()
            await http.aclose()
        return seen

    seen = run(go())
    states = [ev.status_update.status.state for _, ev in seen if ev.HasField("status_update")]
    assert states.count(2) == 3 and states[-1] == 3  # 3× WORKING, then COMPLETED
    # the agent spaces its updates 0.25 s apart: buffered relaying would collapse them
    assert seen[-1][0] - seen[0][0] >= 0.6
    task_id = next(ev.status_update.task_id for _, ev in seen if ev.HasField("status_update"))
    # this call's entry (other tests stream through the same gateway)
    e = log_entries(gw, a2a_method="SendStreamingMessage", a2a_task_id=task_id)[-1]
    assert e["a2a_task_state"] == "completed"
    assert (e["a2a_response_outcome"], e["a2a_result_kind"]) == ("success", "status-update")  # the last event


def test_rest_binding(env):
    gw, _, _, _ = env

    async def go():
        client, http = await _client(
            f"{gw.url}/agents/weather-agent", streaming=False, supported_protocol_bindings=["HTTP+JSON"]
        )
        try:
            return [ev async for ev in client.send_message(_msg("over rest"))]
        finally:
            await client.close()
            await http.aclose()

    task = run(go())[-1].task
    assert task.status.state == 3
    e = log_entries(gw, path="/agents/weather-agent/rest/message:send", a2a_task_id=task.id)[-1]
    assert e["a2a_method"] == "SendMessage" and e["a2a_task_state"] == "completed"
    assert e["a2a_task_id"] == task.id and e["a2a_result_kind"] == "task"


def test_get_and_cancel(env):
    gw, _, _, _ = env

    async def go():
        client, http = await _client(f"{gw.url}/agents/weather-agent", streaming=False)
        try:
            req = _msg("wait")
            req.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
            first = [ev async for ev in client.send_message(req)][-1].task
            got = await client.get_task(GetTaskRequest(id=first.id))
            canceled = await client.cancel_task(CancelTaskRequest(id=first.id))
            return first, got, canceled
        finally:
            await client.close()
            await http.aclose()

    first, got, canceled = run(go())
    assert got.id == first.id and got.status.state in (1, 2)  # submitted / working
    assert canceled.status.state == 5  # TASK_STATE_CANCELED
    g = log_entries(gw, a2a_method="GetTask", a2a_task_id=first.id)
    c = log_entries(gw, a2a_method="CancelTask", a2a_task_id=first.id)
    assert c[-1]["a2a_task_state"] == "canceled" and g[-1]["status"] == 200


def test_resubscribe_after_a_dropped_stream(env):
    gw, _, _, _ = env
    body = {
        "jsonrpc": "2.0",
        "id": "s1",
        "method": "SendStreamingMessage",
        "params": {"message": {"role": "ROLE_USER", "messageId": "m-drop", "parts": [{"text": "steps 4"}]}},
    }
    task_id = None
    with httpx.Client(timeout=10) as c:
        with c.stream("POST", f"{gw.url}/agents/weather-agent/", json=body, headers={"a2a-version": "1.0"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data:"):
                    task_id = json.loads(line[5:])["result"]["task"]["id"]
                    break  # drop the stream after the first event
    assert task_id

    async def go():
        client, http = await _client(f"{gw.url}/agents/weather-agent", streaming=True)
        try:
            return [ev async for ev in client.subscribe(SubscribeToTaskRequest(id=task_id))]
        finally:
            await client.close()
            await http.aclose()

    events = run(go())
    final = [ev.status_update.status.state for ev in events if ev.HasField("status_update")]
    assert final and final[-1] == 3
    e = log_entries(gw, a2a_method="SubscribeToTask", a2a_task_id=task_id)[-1]
    assert e["a2a_task_state"] == "completed"


# -- the older protocol generation (a2a-sdk 0.3 server) ----------------------------------
def test_v03_agent_with_compat_client(env):
    gw, _, _, _ = env

    async def go(streaming):
        client, http = await _client(f"{gw.url}/agents/legacy-agent", streaming=streaming)
        try:
            return [ev async for ev in client.send_message(_msg("steps 1" if streaming else "hi"))]
        finally:
            await client.close()
            await http.aclose()

    events = run(go(False))
    assert events[-1].task.status.state == 3
    assert events[-1].task.artifacts[0].parts[0].text == "legacy-agent: hi"
    e = log_entries(gw, route="legacy-agent", a2a_method="message/send", a2a_task_id=events[-1].task.id)[-1]
    assert e["a2a_agent"] == "legacy-agent" and e["backend"] == "legacy" and e["a2a_task_state"] == "completed"
    streamed = run(go(True))
    sid = next(ev.status_update.task_id for ev in streamed if ev.HasField("status_update"))
    e = log_entries(gw, route="legacy-agent", a2a_method="message/stream", a2a_task_id=sid)[-1]
    assert e["a2a_task_state"] == "completed"


def test_v03_methods_get_cancel_resubscribe_and_legacy_names(env):
    gw, _, _, _ = env
    url = f"{gw.url}/agents/legacy-agent/"

    def rpc(method, params, rid=1):
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, timeout=10)
        assert r.status_code == 200
        return r.json()

    msg = {"role": "user", "messageId": "m-v03", "parts": [{"kind": "text", "text": "wait"}]}
    # blocking=false: the task comes back while the agent waits
    t = rpc("message/send", {"message": msg, "configuration": {"blocking": False}})["result"]
    tid = t["id"]
    assert rpc("tasks/get", {"id": tid})["result"]["status"]["state"] in ("submitted", "working")
    assert rpc("tasks/cancel", {"id": tid})["result"]["status"]["state"] == "canceled"
    # resubscribing to a finished task is refused by the agent; the gateway relays that
    res = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 7, "method": "tasks/resubscribe", "params": {"id": tid}}, timeout=10
    )
    assert res.status_code == 200
    # the pre-0.3 name is parsed and relayed; this agent doesn't know it
    err = rpc("tasks/send", {"id": "x", "message": msg}, rid="legacy-1")
    assert err["error"]["code"] == -32601 and err["id"] == "legacy-1"
    for m, state in (("tasks/get", None), ("tasks/cancel", "canceled")):
        e = log_entries(gw, route="legacy-agent", a2a_method=m, a2a_task_id=tid)[-1]
        if state:
            assert e["a2a_task_state"] == state
    log_entries(gw, route="legacy-agent", a2a_method="tasks/resubscribe", a2a_task_id=tid)
    e = log_entries(gw, route="legacy-agent", a2a_method="tasks/send", a2a_rpc_id="legacy-1")[-1]
    assert e["a2a_error_code"] == -32601 and e["a2a_rpc_id"] == "legacy-1"
    assert e["a2a_response_outcome"] == "error" and "a2a_result_kind" not in e
    assert gw.metric("agentgw_a2a_requests_total", agent="legacy-agent", method="tasks/send", status="200") == 1


# -- pass-through and errors -------------------------------------------------------------
def test_jsonrpc_body_and_headers_pass_through_untouched(env):
    gw, _, _, _ = env
    raw = b'{ "params" : {"id":"t-1", "x": 1.50, "u": "\\u00e9"},\n "method":"tasks/get", "jsonrpc":"2.0","id":9 }'
    r = httpx.post(
        f"{gw.url}/echo-a2a/rpc",
        content=raw,
        headers={"content-type": "application/json", "A2A-Version": "0.3", "X-A2A-Extensions": "urn:x"},
        timeout=10,
    )
    echo = r.json()
    assert echo["body"].encode() == raw.decode().encode()  # byte for byte, not re-encoded
    hdrs = {k.lower(): v for k, v in echo["headers"]}
    assert hdrs["a2a-version"] == "0.3" and hdrs["x-a2a-extensions"] == "urn:x"
    e = log_entries(gw, route="echo-a2a", a2a_method="tasks/get", a2a_rpc_id=9)[-1]
    assert e["a2a_agent"] == "echo" and e["a2a_task_id"] == "t-1" and e["a2a_rpc_id"] == 9


def test_gateway_errors_on_jsonrpc_calls_are_jsonrpc_errors(env):
    gw, _, _, _ = env
    body = {
        "jsonrpc": "2.0",
        "id": "rl-1",
        "method": "message/send",
        "params": {"message": {"role": "user", "messageId": "m", "parts": [{"kind": "text", "text": "hi"}]}},
    }
    statuses = []
    for _ in range(3):
        r = httpx.post(f"{gw.url}/agents/limited/", json=body, timeout=10)
        statuses.append(r.status_code)
    assert statuses == [200, 200, 429]
    doc = r.json()
    assert doc["jsonrpc"] == "2.0" and doc["id"] == "rl-1"
    assert doc["error"]["data"] == {"type": "rate_limited", "httpStatus": 429}
    # a non-JSON-RPC request on the same route keeps the gateway's plain error shape
    r = httpx.get(f"{gw.url}/agents/limited/.well-known/agent-card.json", timeout=10)
    assert r.status_code == 429 and "error" in r.json() and "jsonrpc" not in r.json()
    assert gw.metric("agentgw_a2a_requests_total", agent="limited-agent", method="message/send", status="429") == 1


def test_demo_agent_through_gateway(harness, a2a_agents):
    """The shipped demo agent speaks both generations; the sdk 1.x client uses v1.0."""
    demo = a2a_agents("demo", "weather-agent")
    gw = harness.gateway(gateway_config([a2a_route("weather-agent", [demo.host], "/agents/weather-agent")]))

    async def go():
        client, http = await _client(f"{gw.url}/agents/weather-agent", streaming=True)
        try:
            return [ev async for ev in client.send_message(_msg("hello"))]
        finally:
            await client.close()
            await http.aclose()

    events = run(go())
    arts = [ev.artifact_update.artifact.parts[0].text for ev in events if ev.HasField("artifact_update")]
    assert arts == ["Hello World"]
    card, text = _card(gw, "/agents/weather-agent/.well-known/agent-card.json")
    assert card["url"] == f"{gw.url}/agents/weather-agent/" and str(demo.port) not in text
