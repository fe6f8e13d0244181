"""Capabilities through the gateway: with one target the client sees what the server
declared (``tasks`` included) and task-augmented calls work end to end, as direct."""

from __future__ import annotations

import json
import time

import httpx

from .conftest import mcp_config

VERSION = "2025-11-25"


class Session:
    """A bare streamable-HTTP MCP client: the wire as the spec writes it, nothing hidden."""

    def __init__(self, url: str):
        self.url = url
        self.sid: str | None = None
        self.ids = 0

    def post(self, msg: dict) -> dict | None:
        h = {"accept": "application/json, text/event-stream", "mcp-protocol-version": VERSION}
        if self.sid:
            h["mcp-session-id"] = self.sid
        r = httpx.post(self.url, json=msg, headers=h, timeout=20)
        assert r.status_code in (200, 202), r.text
        self.sid = r.headers.get("mcp-session-id") or self.sid
        if r.status_code == 202:
            return None
        text = r.text
        if r.headers["content-type"].startswith("text/event-stream"):
            datas = [
                json.loads(d) for line in text.splitlines() if line.startswith("data:") and (d := line[5:].strip())
            ]
            (text,) = [json.dumps(d) for d in datas if d.get("id") == msg.get("id")]
        return json.loads(text)

    def call(self, method: str, params: dict | None = None) -> dict:
        self.ids += 1
        out = self.post({"jsonrpc": "2.0", "id": self.ids, "method": method, **({"params": params} if params else {})})
        assert out is not None and "result" in out, out
        return out["result"]

    def initialize(self) -> dict:
        res = self.call(
            "initialize", {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        )
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return res


def _research(s: Session) -> str:
    """A task-augmented tools/call run to completion (tasks/get polled), its result text."""
    created = s.call(
        "tools/call", {"name": "simulate-research-query", "arguments": {"topic": "gateways"}, "task": {"ttl": 60000}}
    )
    task = created["task"]
    assert task["status"] == "working"
    assert any(t["taskId"] == task["taskId"] for t in s.call("tasks/list")["tasks"])
    deadline = time.monotonic() + 30
    while s.call("tasks/get", {"taskId": task["taskId"]})["status"] == "working":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return s.call("tasks/result", {"taskId": task["taskId"]})["content"][0]["text"]


def test_one_target_relays_the_declared_capabilities_and_tasks(harness, servers):
    ev = servers.everything()
    gw = harness.gateway(mcp_config({"targets": [{"name": "ev", "mcp": {"host": ev.url}}]}))
    direct, through = Session(ev.url), Session(gw.url + "/mcp")
    caps = direct.initialize()["capabilities"]
    assert "tasks" in caps  # what the everything server declares
    assert through.initialize()["capabilities"] == caps
    tools = {t["name"]: t for t in through.call("tools/list")["tools"]}
    assert tools["simulate-research-query"]["execution"] == {"taskSupport": "required"}
    got = _research(through)
    assert "Research Report: gateways" in got and got == _research(direct)


def test_tasks_of_several_targets_are_routed_by_their_public_id(harness, servers):
    ev, fast = servers.everything(), servers.fast("plain")
    gw = harness.gateway(
        mcp_config({"targets": [{"name": "ev", "mcp": {"host": ev.url}}, {"name": "plain", "mcp": {"host": fast.url}}]})
    )
    s = Session(gw.url + "/mcp")
    caps = s.initialize()["capabilities"]
    # the union: the everything server's tasks, routed by the gateway
    assert caps["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    created = s.call(
        "tools/call", {"name": "ev_simulate-research-query", "arguments": {"topic": "ids"}, "task": {"ttl": 60000}}
    )
    tid = created["task"]["taskId"]
    assert tid.startswith("ev+")
    assert [t["taskId"] for t in s.call("tasks/list")["tasks"]] == [tid]
    deadline = time.monotonic() + 30
    while (task := s.call("tasks/get", {"taskId": tid}))["status"] == "working":
        assert task["taskId"] == tid and time.monotonic() < deadline
        time.sleep(0.3)
    assert task["status"] == "completed"
    res = s.call("tasks/result", {"taskId": tid})
    assert "Research Report: ids" in res["content"][0]["text"]
    # the server ties the result to its task: the id in it is the gateway's too
    assert res["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": tid}
    # an id the gateway never issued names no target
    s.ids += 1
    out = s.post({"jsonrpc": "2.0", "id": s.ids, "method": "tasks/get", "params": {"taskId": "nosuch+1"}})
    assert out["error"]["code"] == -32602 and "unknown task" in out["error"]["message"]
