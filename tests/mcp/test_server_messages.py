"""Server-initiated messages that belong to no request (sent on the target's own GET
stream) reach a client that opens its GET stream only later: the gateway opens the
target's stream when the session is initialized and keeps what arrives for the client."""

from __future__ import annotations

import json
import time

import httpx

from .conftest import mcp_config
from .flaky_target import flaky  # noqa: F401 (fixture)

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _rpc(client: httpx.Client, url: str, msg: dict, sid: str | None = None) -> httpx.Response:
    h = dict(ACCEPT)
    if sid:
        h["mcp-session-id"] = sid
        h["mcp-protocol-version"] = "2025-06-18"
    return client.post(url, json=msg, headers=h)


def test_a_message_sent_before_the_client_opens_its_get_stream_is_not_lost(harness, servers):
    alpha = servers.fast("alpha")
    gw = harness.gateway(mcp_config({"targets": [{"name": "alpha", "mcp": {"host": alpha.url}}]}))
    url = f"{gw.url}/mcp"
    with httpx.Client(timeout=10) as c:
        r = _rpc(
            c,
            url,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            },
        )
        sid = r.headers["mcp-session-id"]
        assert _rpc(c, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid).status_code == 202
        r = _rpc(
            c,
            url,
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "log_later", "arguments": {"text": "hello"}}},
            sid,
        )
        assert r.status_code == 200 and "scheduled" in r.text
        time.sleep(1.0)  # the target has sent its message by now; the client has no GET stream yet
        got = []
        deadline = time.monotonic() + 8
        with c.stream(
            "GET", url, headers={"accept": "text/event-stream", "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        ) as s:
            assert s.status_code == 200
            for line in s.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    got.append(msg)
                    if msg.get("method") == "notifications/message":
                        break
                if time.monotonic() > deadline:
                    break
    logs = [m for m in got if m.get("method") == "notifications/message"]
    assert logs and logs[0]["params"]["data"] == "hello", got


def test_the_first_call_after_initialized_reaches_a_target_whose_get_stream_is_open(harness, flaky):  # noqa: F811
    """``notifications/initialized`` is answered once the target has answered the GET for
    its stream, so a message the target sends on it while handling the client's next call
    is not lost (a target slow to answer its GET, here 0.5 s, made that a race)."""
    t = flaky("slowget")
    t.get_stream_delay = 0.5
    gw = harness.gateway(mcp_config({"targets": [{"name": "slowget", "mcp": {"host": t.url}}]}))
    url = f"{gw.url}/mcp"
    with httpx.Client(timeout=10) as c:
        r = _rpc(
            c,
            url,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            },
        )
        sid = r.headers["mcp-session-id"]
        assert _rpc(c, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid).status_code == 202
        r = _rpc(c, url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "flaky"}}, sid)
        assert r.status_code == 200 and "answered call 1" in r.text
        assert t.dropped == 0, "the call reached the target before its GET stream was open"
        got = []
        with c.stream(
            "GET", url, headers={"accept": "text/event-stream", "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        ) as s:
            assert s.status_code == 200
            for line in s.iter_lines():
                if line.startswith("data:"):
                    got.append(json.loads(line[5:]))
                    break
    assert got and got[0]["params"]["data"] == "aside", got


def test_a_client_that_ranks_sse_first_gets_its_answer_as_a_stream(harness, flaky):  # noqa: F811
    """Answers are JSON unless something has to be streamed, but a client whose Accept
    ranks text/event-stream above application/json gets a one-event stream."""
    t = flaky("plain")
    gw = harness.gateway(mcp_config({"targets": [{"name": "plain", "mcp": {"host": t.url}}]}))
    url = f"{gw.url}/mcp"
    with httpx.Client(timeout=10) as c:
        r = _rpc(
            c,
            url,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            },
        )
        h = {"content-type": "application/json", "mcp-session-id": r.headers["mcp-session-id"]}
        msg = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        for accept, ctype in [
            ("application/json, text/event-stream", "application/json"),
            ("text/event-stream, application/json", "text/event-stream"),
            ("application/json;q=0.5, text/event-stream", "text/event-stream"),
        ]:
            r = c.post(url, json=msg, headers={**h, "accept": accept})
            assert r.status_code == 200 and r.headers["content-type"].startswith(ctype), (accept, r.headers)
            body = r.text if ctype == "application/json" else r.text.split("data:", 1)[1].strip()
            assert json.loads(body)["result"]["tools"][0]["name"] == "flaky", r.text
