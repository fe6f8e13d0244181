"""A2A request and response facts, read without changing a byte of the traffic.

Requests: the JSON-RPC envelope (both protocol generations, and the legacy
``tasks/send`` names) or the HTTP+JSON (REST) path is read once from the buffered body
to get the method, the request id, the task id and the context id.

Responses: :class:`ResponseObserver` sees the body as it streams by (a JSON document or
server-sent events) and keeps the last task id, context id, task state and JSON-RPC
error code it finds. It buffers at most what one JSON document or one event needs.
"""

from __future__ import annotations

import re

import orjson

from ...engine.http import Headers, Reply

# JSON-RPC method → v1.0 operation name (v1.0 names map to themselves).
OPERATIONS = {
    "message/send": "SendMessage",
    "tasks/send": "SendMessage",
    "message/stream": "SendStreamingMessage",
    "tasks/sendSubscribe": "SendStreamingMessage",
    "tasks/get": "GetTask",
    "tasks/list": "ListTasks",
    "tasks/cancel": "CancelTask",
    "tasks/resubscribe": "SubscribeToTask",
    "tasks/pushNotificationConfig/set": "CreateTaskPushNotificationConfig",
    "tasks/pushNotification/set": "CreateTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/get": "GetTaskPushNotificationConfig",
    "tasks/pushNotification/get": "GetTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/list": "ListTaskPushNotificationConfigs",
    "tasks/pushNotificationConfig/delete": "DeleteTaskPushNotificationConfig",
    "agent/getAuthenticatedExtendedCard": "GetExtendedAgentCard",
}
for _op in (
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
):
    OPERATIONS[_op] = _op
CARD_OPERATIONS = frozenset({"GetExtendedAgentCard"})

# HTTP+JSON binding (v1.0 paths, with v0.3's ``/v1`` prefix and an optional tenant
# segment in front; matched on the path's end).
_REST = [
    (re.compile(r"/message:send$"), {"POST": "SendMessage"}),
    (re.compile(r"/message:stream$"), {"POST": "SendStreamingMessage"}),
    (re.compile(r"/tasks/([^/]+):cancel$"), {"POST": "CancelTask"}),
    (re.compile(r"/tasks/([^/]+):subscribe$"), {"GET": "SubscribeToTask", "POST": "SubscribeToTask"}),
    (
        re.compile(r"/tasks/([^/]+)/pushNotificationConfigs/[^/]+$"),
        {"GET": "GetTaskPushNotificationConfig", "DELETE": "DeleteTaskPushNotificationConfig"},
    ),
    (
        re.compile(r"/tasks/([^/]+)/pushNotificationConfigs$"),
        {"GET": "ListTaskPushNotificationConfigs", "POST": "CreateTaskPushNotificationConfig"},
    ),
    (re.compile(r"/tasks/([^/:]+)$"), {"GET": "GetTask"}),
    (re.compile(r"/tasks$"), {"GET": "ListTasks"}),
    (re.compile(r"/(?:extendedAgentCard|card)$"), {"GET": "GetExtendedAgentCard"}),
]


def rest_operation(method: str, path: str) -> tuple[str, str | None] | None:
    """``(operation, task id)`` for an HTTP+JSON binding request, else ``None``."""
    for rx, by_method in _REST:
        m = rx.search(path)
        if m is not None:
            op = by_method.get(method)
            if op is None:
                return None
            return op, (m.group(1) if m.groups() else None)
    return None


def _ids(params) -> tuple[str | None, str | None]:
    if not isinstance(params, dict):
        return None, None
    msg = params.get("message")
    task = params.get("id") or params.get("taskId")
    ctxid = params.get("contextId")
    if isinstance(msg, dict):
        task = task or msg.get("taskId")
        ctxid = ctxid or msg.get("contextId")
    if not isinstance(task, str):
        task = None
    if not isinstance(ctxid, str):
        ctxid = None
    if task is None and isinstance(params.get("name"), str):
        # v1.0 resource names: "tasks/{id}" or "tasks/{id}/pushNotificationConfigs/{x}"
        parts = params["name"].split("/")
        if len(parts) >= 2 and parts[0] == "tasks":
            task = parts[1]
    return task, ctxid


def parse_jsonrpc(doc) -> dict | None:
    """Facts from a parsed JSON-RPC request object; ``None`` if it isn't one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("method"), str):
        return None
    method = doc["method"]
    task, ctxid = _ids(doc.get("params"))
    return {
        "method": method,
        "operation": OPERATIONS.get(method, method),
        "rpc_id": doc.get("id"),
        "jsonrpc": True,
        "task_id": task,
        "context_id": ctxid,
    }


def parse_body(body: bytes):
    """Parse a request body as JSON; ``None`` when it isn't."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


# -- responses ----------------------------------------------------------------------------
def normalize_state(s) -> str | None:
    """``TASK_STATE_INPUT_REQUIRED`` / ``input-required`` → ``input-required``."""
    if not isinstance(s, str) or not s:
        return None
    known = _STATES.get(s)
    if known is not None:
        return known
    if s.startswith("TASK_STATE_"):
        s = s[11:]
    return s.lower().replace("_", "-")


# every spelling of the states both protocol generations define, normalized once
_STATES: dict[str, str] = {}
for _s in (
    "submitted",
    "working",
    "input-required",
    "completed",
    "canceled",
    "failed",
    "rejected",
    "auth-required",
    "unknown",
):
    _STATES[_s] = _s
    _STATES["TASK_STATE_" + _s.upper().replace("-", "_")] = _s

_EVENT_KEYS = ("task", "statusUpdate", "artifactUpdate", "message", "status_update", "artifact_update")
#: the v0.3 ``kind`` of what each v1.0 wrapper key holds (as agentgateway logs it)
_KINDS = {
    "task": "task",
    "message": "message",
    "statusUpdate": "status-update",
    "status_update": "status-update",
    "artifactUpdate": "artifact-update",
    "artifact_update": "artifact-update",
}


def facts_from(doc, into: dict) -> None:
    """Update ``into`` with the task id / context id / state / error found in one
    JSON-RPC response, v1.0 stream response, REST body or v0.3 event."""
    if not isinstance(doc, dict):
        return
    if "jsonrpc" in doc:
        err = doc.get("error")
        if isinstance(err, dict):
            into["error_code"] = err.get("code")
            into["outcome"] = "error"
            return
        doc = doc.get("result")
        if not isinstance(doc, dict):
            into["outcome"] = "success" if doc is not None else "unknown"
            return
        into["outcome"] = "success"
    elif isinstance(doc.get("error"), dict):  # HTTP+JSON: a google.rpc.Status
        into["outcome"] = "error"
        return
    _object_facts(doc, into)
    kind = doc.get("kind")
    if isinstance(kind, str):
        into["result_kind"] = kind
        return  # a v0.3 object names its own type and wraps no other
    for k in _EVENT_KEYS:  # a v1.0 response or stream response wraps one object
        v = doc.get(k)
        if isinstance(v, dict):
            into["result_kind"] = _KINDS[k]
            _object_facts(v, into)


def _object_facts(c: dict, into: dict) -> None:
    """Facts of one Task, Message or status/artifact update object."""
    tid = c.get("taskId")
    st = c.get("status")
    if isinstance(st, dict):
        if tid is None:
            tid = c.get("id")  # a Task
        state = normalize_state(st.get("state"))
        if state:
            into["state"] = state
    if isinstance(tid, str):
        into["task_id"] = tid
    cid = c.get("contextId")
    if isinstance(cid, str):
        into["context_id"] = cid


class ResponseObserver:
    """Watches a response body go by (``ctx.body_observer``) and calls
    ``done(attrs, facts)`` at its end. ``sse`` is set from the response head by the
    owning policy.

    It holds the request's ``attrs``, never the request context: the context holds the
    observer, and a body cut short never reaches the end, so a reference back would make
    every such exchange garbage that only the cyclic collector can free."""

    __slots__ = ("sse", "buf", "facts", "done", "attrs", "broken", "limit")

    def __init__(self, done, attrs: dict, limit: int = 1 << 20):
        self.sse = False
        self.buf = b""
        self.facts: dict = {}
        self.done = done
        self.attrs = attrs
        self.broken = False
        self.limit = limit

    def __call__(self, chunk) -> None:
        if chunk is None:
            if not self.sse and self.buf and not self.broken:
                facts_from(parse_body(self.buf), self.facts)
            self.buf = b""
            self.done(self.attrs, self.facts)
            return
        if self.broken or not chunk:
            return
        if not self.sse:
            if len(self.buf) + len(chunk) > self.limit:
                self.broken, self.buf = True, b""
                return
            self.buf += chunk
            return
        buf = self.buf + chunk if self.buf else chunk
        while True:
            i = buf.find(b"\n\n")
            j = buf.find(b"\r\n\r\n")
            if i < 0 and j < 0:
                break
            if j >= 0 and (i < 0 or j < i):
                event, buf = buf[:j], buf[j + 4 :]
            else:
                event, buf = buf[:i], buf[i + 2 :]
            self._event(event)
        if len(buf) > self.limit:
            self.broken, buf = True, b""
        self.buf = buf

    def _event(self, event: bytes) -> None:
        data = [line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:")]
        if data:
            facts_from(parse_body(b"\n".join(data)), self.facts)


# -- gateway errors as JSON-RPC errors -----------------------------------------------------
def jsonrpc_code(status: int) -> int:
    if status in (400, 411, 413, 414, 431):
        return -32600  # Invalid Request
    return -32000  # server error (details in data)


def shape_reply(rpc_id, reply: Reply) -> Reply:
    """A gateway-generated error reply, re-expressed as a JSON-RPC error response with
    the same HTTP status (401 stays 401, 403 stays 403, 429 stays 429)."""
    if reply.status < 400:
        return reply
    kind, message = "error", ""
    try:
        doc = orjson.loads(reply.body) if reply.body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        kind = doc["error"].get("type", kind)
        message = doc["error"].get("message", "")
    elif reply.body:
        message = reply.body.decode("utf-8", "replace")[:500]
    body = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": rpc_id,
            "error": {
                "code": jsonrpc_code(reply.status),
                "message": message or kind,
                "data": {"type": kind, "httpStatus": reply.status},
            },
        }
    )
    headers = Headers([kv for kv in reply.headers if kv[0] not in ("content-type", "content-length")])
    headers.append(("content-type", "application/json"))
    return Reply(reply.status, headers, body)
