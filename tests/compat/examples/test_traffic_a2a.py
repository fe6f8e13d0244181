"""agentgateway's traffic-a2a example, run as its README runs it, against a real agentgw and
a real a2a-sdk agent.

README steps (agentgateway commit 75b4e6ce6, ``examples/traffic-a2a/README.md``): start the
gateway on ``examples/traffic-a2a/config.yaml``; run a2a-samples' ``agents/helloworld`` on
``localhost:9999`` and its ``hosts/cli --agent http://localhost:3000``; then:

* ``curl http://localhost:3000/.well-known/agent.json``: the agent's card, with "the
  ``url`` ... rewritten to point back to agentgateway" (``http://localhost:3000``);
* "as we send requests we can see A2A specific information in the logs": ``a2a.method=
  message/stream a2a.response.outcome=success a2a.result.kind=task a2a.task.state=completed
  a2a.context.id=...`` ("stable across every turn of one conversation");
* "If the upstream agent returns a JSON-RPC error with an HTTP 200 status, the log includes
  the A2A response outcome and error code": ``a2a.response.outcome=error
  a2a.response.error_code=-32602``.

agentgw's access log names these facts its own way (docs/a2a.md: ``a2a_method``,
``a2a_context_id``, ``a2a_task_state``, ``a2a_error_code``, ...), and they are checked
under those names. Not checked, because agentgw does not log them (a gap, see the report
of this test's author): ``a2a.response.outcome`` and ``a2a.result.kind``.

Local stand-ins: the agent is ``tests/a2a/agents/sdk_v03_agent.py`` (a2a-sdk 0.3, the
card and method names of the README's helloworld and CLI: card at
``/.well-known/agent.json`` with a top-level ``url``, JSON-RPC ``message/send`` /
``message/stream`` at ``/``), started as ``hello-world``; the CLI's requests are sent as it
sends them (JSON-RPC over HTTP, the streaming one read as server-sent events).

Changed from the vendored config, and why:

* ``binds[0].port`` 3000 -> a free port (3000 may be taken here);
* the backend ``localhost:9999`` -> ``localhost:<the agent's port>`` (a fixed port may be
  taken here);
* ``config`` gets admin/stats/readiness addresses on free ports (the harness waits on
  readiness); ``logging.format: json`` stays (the log checks read it).

``frontendPolicies.accessLog`` (``backend: backend``), the route's CORS and ``a2a: {}``
policies are as written (asserted below), and checked: the log's ``backend`` field, a CORS
preflight from a browser page.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.a2a.conftest import A2A03_PYTHON, AgentProc
from tests.support.harness import REPO_ROOT, free_port, wait_for

EXAMPLE = Path(__file__).parents[1] / "agentgateway" / "examples" / "traffic-a2a" / "config.yaml"

pytestmark = pytest.mark.timeout(60)


def _route(cfg: dict) -> dict:
    return cfg["binds"][0]["listeners"][0]["routes"][0]


def _config(agent_port: int) -> dict:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    # the example as vendored
    assert cfg["config"] == {"logging": {"format": "json"}}
    assert cfg["frontendPolicies"] == {"accessLog": {"add": {"backend": "backend"}}}
    assert cfg["binds"][0]["port"] == 3000
    assert _route(cfg) == {
        "policies": {"cors": {"allowOrigins": ["*"], "allowHeaders": ["content-type", "cache-control"]}, "a2a": {}},
        "backends": [{"host": "localhost:9999"}],
    }
    # the changes (see the module docstring)
    cfg["binds"][0]["port"] = free_port()
    _route(cfg)["backends"][0]["host"] = f"localhost:{agent_port}"
    cfg["config"].update({f"{k}Addr": f"127.0.0.1:{free_port()}" for k in ("admin", "stats", "readiness")})
    return cfg


@pytest.fixture(scope="module")
def example(module_harness):
    if not A2A03_PYTHON.exists():
        pytest.fail(f"{A2A03_PYTHON} is missing: run scripts/install-test-deps.sh (it creates the a2a-sdk 0.3 venv)")
    agent = AgentProc(
        module_harness.workdir,
        "hello-world",
        [str(A2A03_PYTHON), str(REPO_ROOT / "tests/a2a/agents/sdk_v03_agent.py"), "--name", "hello-world"],
    )
    try:
        gw = module_harness.gateway(_config(agent.port))
        yield gw, agent
    finally:  # (the harness stops the gateway)
        agent.stop()


def _requests(gw, **match) -> list[dict]:
    def find():
        out = [e for e in gw.access_log() if e.get("msg") == "request" and all(e.get(k) == v for k, v in match.items())]
        return out or None

    return wait_for(find, timeout=5, message=f"access log entry {match}")


def _message(text: str, context_id: str | None = None) -> dict:
    msg = {"role": "user", "parts": [{"kind": "text", "text": text}], "messageId": uuid.uuid4().hex, "kind": "message"}
    if context_id:
        msg["contextId"] = context_id
    return msg


def _rpc(method: str, params: dict) -> dict:
    return {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}


def _stream(gw, body: dict) -> list[dict]:
    """A ``message/stream`` call as the CLI makes it: the events of the SSE answer."""
    events = []
    with httpx.stream("POST", f"http://localhost:{gw.port}/", json=body, headers={"accept": "text/event-stream"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


def test_the_card_url_is_rewritten_to_the_gateway(example):
    """``curl http://localhost:3000/.well-known/agent.json``: the agent's card, its ``url``
    (and every interface's) pointing back to the gateway, as the client addressed it."""
    gw, agent = example
    r = httpx.get(f"http://localhost:{gw.port}/.well-known/agent.json", timeout=10)
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["name"] == "hello-world" and card["description"] == "test agent hello-world (a2a-sdk 0.3)"
    assert card["url"] == f"http://localhost:{gw.port}/"
    assert [i["url"] for i in card.get("additionalInterfaces", [])] == [f"http://localhost:{gw.port}/"]
    assert str(agent.port) not in r.text  # "future requests do not bypass the gateway"


def test_a_streamed_message_and_its_log(example):
    """The CLI's ``message/stream``: the agent's task events come through, and the request's
    log line carries the README's A2A fields (and the config's ``backend``)."""
    gw, agent = example
    body = _rpc("message/stream", {"message": _message("hello")})
    events = _stream(gw, body)
    results = [e["result"] for e in events]
    assert all(e["id"] == body["id"] for e in events)
    assert results[-1]["kind"] == "status-update" and results[-1]["status"]["state"] == "completed"
    artifacts = [r["artifact"] for r in results if r["kind"] == "artifact-update"]
    assert [p["text"] for a in artifacts for p in a["parts"]] == ["hello-world: hello"]
    context_id = results[0]["contextId"]
    (entry,) = _requests(gw, a2a_method="message/stream")
    assert (entry["status"], entry["method"], entry["path"]) == (200, "POST", "/")
    assert "a2a_error_code" not in entry  # (the README's a2a.response.outcome=success)
    assert entry["a2a_task_state"] == "completed"
    assert entry["a2a_context_id"] == context_id
    assert results[0]["kind"] == "task"  # (the README's a2a.result.kind=task)
    assert entry["a2a_task_id"] == results[0]["id"]
    # accessLog.add ``backend: backend``: the CEL ``backend`` (name, type, protocol)
    assert entry["backend"] == {"name": f"localhost:{agent.port}", "type": "static", "protocol": "a2a"}


def test_the_context_id_is_stable_across_the_turns_of_a_conversation(example):
    gw, _ = example
    with httpx.Client(base_url=f"http://localhost:{gw.port}", timeout=10) as c:
        first = c.post("/", json=_rpc("message/send", {"message": _message("turn one")})).json()["result"]
        ctx = first["contextId"]
        second = c.post("/", json=_rpc("message/send", {"message": _message("turn two", ctx)})).json()["result"]
    assert second["contextId"] == ctx and second["id"] != first["id"]
    assert first["status"]["state"] == second["status"]["state"] == "completed"
    entries = wait_for(lambda: len(e := _requests(gw, a2a_context_id=ctx)) == 2 and e, 5)
    assert [e["a2a_task_id"] for e in entries] == [first["id"], second["id"]]
    assert {(e["a2a_method"], e["a2a_task_state"]) for e in entries} == {("message/send", "completed")}


def test_a_json_rpc_error_with_http_200_is_logged_with_its_code(example):
    """A ``message/send`` whose params the agent rejects: HTTP 200, a JSON-RPC error -32602,
    and the log line's error code (the README's ``a2a.response.error_code=-32602``)."""
    gw, _ = example
    body = _rpc("message/send", {"message": {"role": "user"}})  # no parts, no messageId
    r = httpx.post(f"http://localhost:{gw.port}/", json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["error"]["code"] == -32602, r.text
    (entry,) = _requests(gw, a2a_rpc_id=body["id"])
    assert entry["a2a_method"] == "message/send"
    assert entry["a2a_error_code"] == -32602
    assert entry["status"] == 200


def test_cors_lets_a_browser_page_call_the_agent(example):
    """The route's ``cors``: any origin, ``content-type`` / ``cache-control`` request headers."""
    gw, _ = example
    r = httpx.options(
        f"http://localhost:{gw.port}/",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "https://app.example")
    assert "content-type" in r.headers["access-control-allow-headers"].lower()
