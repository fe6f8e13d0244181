"""What the A2A response observer reads from each shape an agent can answer with.

The end-to-end tests drive real SDK agents; this table pins the shapes one by one,
including the ones those agents rarely send (REST bodies, v1.0 wrappers, odd states).
"""

import orjson
import pytest

from agentgw.backends.a2a.rpc import ResponseObserver, facts_from, normalize_state

TASK_03 = {"kind": "task", "id": "t1", "contextId": "c1", "status": {"state": "input-required"}}
CASES = [
    # JSON-RPC v0.3 result: a Task
    (
        {"jsonrpc": "2.0", "id": 1, "result": TASK_03},
        {"task_id": "t1", "context_id": "c1", "state": "input-required", "outcome": "success", "result_kind": "task"},
    ),
    # v0.3 Message result: ids, no state
    (
        {"jsonrpc": "2.0", "id": 1, "result": {"kind": "message", "messageId": "m", "taskId": "t2", "contextId": "c2"}},
        {"task_id": "t2", "context_id": "c2", "outcome": "success", "result_kind": "message"},
    ),
    # v0.3 status-update event (SSE data)
    (
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "kind": "status-update",
                "taskId": "t3",
                "contextId": "c3",
                "status": {"state": "completed"},
                "final": True,
            },
        },
        {
            "task_id": "t3",
            "context_id": "c3",
            "state": "completed",
            "outcome": "success",
            "result_kind": "status-update",
        },
    ),
    # v1.0 stream response wrapping a status update, proto enum spelling
    (
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "statusUpdate": {"taskId": "t4", "contextId": "c4", "status": {"state": "TASK_STATE_AUTH_REQUIRED"}}
            },
        },
        {
            "task_id": "t4",
            "context_id": "c4",
            "state": "auth-required",
            "outcome": "success",
            "result_kind": "status-update",  # the v1.0 wrapper key, named as v0.3's kind
        },
    ),
    # v1.0 SendMessage answer wrapping a Task
    (
        {"task": {"id": "t5", "contextId": "c5", "status": {"state": "TASK_STATE_CANCELED"}}},
        {
            "task_id": "t5",
            "context_id": "c5",
            "state": "canceled",
            "result_kind": "task",
        },  # (REST: no JSON-RPC outcome)
    ),
    # REST body: a bare Task without kind
    (
        {"id": "t6", "contextId": "c6", "status": {"state": "TASK_STATE_WORKING"}},
        {"task_id": "t6", "context_id": "c6", "state": "working"},
    ),
    # a JSON-RPC error carries only its code (and the outcome)
    (
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "Task not found"}},
        {"error_code": -32001, "outcome": "error"},
    ),
    # an HTTP+JSON error (a google.rpc.Status)
    ({"error": {"code": 404, "status": "NOT_FOUND", "message": "no task"}}, {"outcome": "error"}),
    # not an object: nothing; a result that isn't one: only that it succeeded
    ([1, 2], {}),
    ({"jsonrpc": "2.0", "id": 1, "result": "ok"}, {"outcome": "success"}),
    # ids of the wrong type are ignored (the wrapper still names the kind)
    ({"task": {"id": 7, "contextId": None, "status": {"state": 3}}}, {"result_kind": "task"}),
]


@pytest.mark.parametrize("doc,want", CASES)
def test_facts_from_each_shape(doc, want):
    got: dict = {}
    facts_from(doc, got)
    assert got == want


def test_state_spellings_normalize_alike():
    assert normalize_state("TASK_STATE_INPUT_REQUIRED") == normalize_state("input-required") == "input-required"
    assert normalize_state("TASK_STATE_UNSPECIFIED") == "unspecified"  # not in the table: computed
    assert normalize_state("") is None and normalize_state(None) is None


def test_observer_reads_a_json_body_in_pieces_and_an_event_stream():
    seen = []
    attrs = {"a2a": {}}
    obs = ResponseObserver(lambda a, facts: seen.append((a, dict(facts))), attrs)
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": TASK_03})
    obs(body[:10])
    obs(body[10:])
    obs(None)
    want = {"task_id": "t1", "context_id": "c1", "state": "input-required", "outcome": "success", "result_kind": "task"}
    assert seen == [(attrs, want)]

    seen.clear()
    obs = ResponseObserver(lambda a, facts: seen.append(dict(facts)), {})
    obs.sse = True
    ev1 = b"data: " + orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": {**TASK_03, "status": {"state": "working"}}})
    ev2 = b"data: " + orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {"kind": "status-update", "taskId": "t1", "contextId": "c1", "status": {"state": "completed"}},
        }
    )
    stream = ev1 + b"\r\n\r\n" + ev2 + b"\n\n"
    for i in range(0, len(stream), 7):
        obs(stream[i : i + 7])
    obs(None)
    # the last event's facts win: its state and its kind
    want = {
        "task_id": "t1",
        "context_id": "c1",
        "state": "completed",
        "outcome": "success",
        "result_kind": "status-update",
    }
    assert seen == [want]
