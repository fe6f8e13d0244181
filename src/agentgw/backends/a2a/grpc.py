"""A2A's gRPC binding: which A2A method a call names, and the task facts in its messages.

A gRPC call names its method in the ``:path``, ``/<package>.A2AService/<Method>``:
``lf.a2a.v1.A2AService`` for A2A 1.0 and ``a2a.v1.A2AService`` for 0.3 (a2a-sdk 1.3 serves
and calls both, the second through its v0.3 compatibility layer). The method is the 1.0
operation name itself (``SendMessage``, ``GetTask``, …); 0.3 names three differently
(:data:`V03_OPERATIONS`).

The messages are protobuf in gRPC's length-prefixed frames. agentgw does not ship the A2A
descriptors (a2a-sdk is not one of its dependencies); the few fields read here are read
from the wire format directly, by field number, and those numbers are the same in both
protocol generations for everything read from responses:

* ``Task``: ``id`` 1, ``context_id`` 2, ``status`` 3 (``TaskStatus.state`` 1, an enum
  numbered alike in both: :data:`STATES`);
* ``Message``: ``context_id`` 2, ``task_id`` 3;
* ``TaskStatusUpdateEvent`` / ``TaskArtifactUpdateEvent``: ``task_id`` 1, ``context_id`` 2
  (and ``status`` 3 in the first);
* ``SendMessageResponse`` and ``StreamResponse``: one of ``task`` 1, ``message`` 2,
  ``status_update`` 3, ``artifact_update`` 4.

Requests differ (1.0's carry a ``tenant`` first): see :func:`request_facts`. Nothing is
changed on the wire; a message that does not parse is skipped.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

SERVICE_V1 = "lf.a2a.v1.A2AService"
SERVICE_V03 = "a2a.v1.A2AService"
SERVICES = {SERVICE_V1: "1.0", SERVICE_V03: "0.3"}

#: A2A 0.3 gRPC method names that differ from the 1.0 operation names
V03_OPERATIONS = {
    "TaskSubscription": "SubscribeToTask",
    "ListTaskPushNotificationConfig": "ListTaskPushNotificationConfigs",
    "GetAgentCard": "GetExtendedAgentCard",
}

#: ``TaskState`` enum values (the same numbers in 1.0 and 0.3), as the JSON bindings spell them
STATES = {
    1: "submitted",
    2: "working",
    3: "completed",
    4: "failed",
    5: "canceled",
    6: "input-required",
    7: "rejected",
    8: "auth-required",
}

# what each operation's response is: a Task, or a SendMessageResponse / StreamResponse
# (the same oneof numbering); the other operations' responses hold no task facts
_TASK = "task"
_WRAPPED = "wrapped"
_RESPONSES = {
    "SendMessage": _WRAPPED,
    "SendStreamingMessage": _WRAPPED,
    "SubscribeToTask": _WRAPPED,
    "GetTask": _TASK,
    "CancelTask": _TASK,
}
_KINDS = {1: "task", 2: "message", 3: "status-update", 4: "artifact-update"}


def grpc_method(path: str) -> tuple[str, str, str] | None:
    """``(service, method, operation)`` for the ``:path`` of an A2A gRPC call, else None."""
    if not path.startswith("/"):
        return None
    service, sep, method = path[1:].partition("/")
    version = SERVICES.get(service)
    if version is None or not sep or not method or "/" in method:
        return None
    op = V03_OPERATIONS.get(method, method) if version == "0.3" else method
    return service, method, op


# -- protobuf wire format ------------------------------------------------------------------
def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[i]  # IndexError past the end: a truncated message
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(b: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of each field of one message, in order: an int for a
    varint, the bytes of a length-delimited field; fixed-width fields and groups (wire
    types 3/4, which protobuf parsers skip as unknown fields) are skipped as they do.
    Raises ValueError (or IndexError) on a malformed message."""
    i, n = 0, len(b)
    depth = 0  # inside groups being skipped
    while i < n:
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
            if not depth:
                yield num, v
        elif wt == 2:
            ln, i = _varint(b, i)
            if i + ln > n:
                raise ValueError("field past the end of the message")
            if not depth:
                yield num, b[i : i + ln]
            i += ln
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        elif wt == 3:
            depth += 1
        elif wt == 4:
            if not depth:
                raise ValueError("end of a group that was not started")
            depth -= 1
        else:
            raise ValueError(f"wire type {wt}")
    if i != n or depth:
        raise ValueError("field past the end of the message")


def _str(v) -> str | None:
    if isinstance(v, bytes) and v:
        try:
            return v.decode()
        except UnicodeDecodeError:
            return None
    return None


# -- requests --------------------------------------------------------------------------------
def request_facts(service: str, method: str, msg: bytes) -> tuple[str | None, str | None]:
    """``(task id, context id)`` named by one request message, as far as it names them.

    1.0: ``SendMessageRequest.message`` is field 2 (a Message); ``GetTaskRequest``,
    ``CancelTaskRequest`` and ``SubscribeToTaskRequest`` carry ``id`` 2. 0.3:
    ``SendMessageRequest.request`` is field 1; ``GetTaskRequest``, ``CancelTaskRequest``
    and ``TaskSubscriptionRequest`` carry ``name`` 1, ``tasks/{id}``."""
    v1 = service == SERVICE_V1
    task = ctxid = None
    # As protobuf reads them: a string field's last occurrence wins (an empty one
    # clears it), occurrences of a message field merge, and an occurrence with another
    # wire type is an unknown field, skipped.
    if method in ("SendMessage", "SendStreamingMessage"):
        want = 2 if v1 else 1
        for num, v in fields(msg):
            if num == want and isinstance(v, bytes):
                for mnum, mv in fields(v):
                    if mnum == 2 and isinstance(mv, bytes):
                        ctxid = _str(mv)
                    elif mnum == 3 and isinstance(mv, bytes):
                        task = _str(mv)
    elif method in ("GetTask", "CancelTask", "SubscribeToTask", "TaskSubscription"):
        want = 2 if v1 else 1
        for num, v in fields(msg):
            if num == want and isinstance(v, bytes):
                task = _str(v)
        if not v1 and task is not None:
            parts = task.split("/")
            task = parts[1] if len(parts) >= 2 and parts[0] == "tasks" and parts[1] else None
    return task, ctxid


# -- responses -------------------------------------------------------------------------------
def _object_facts(b: bytes, task_field: int, status_field: int | None, into: dict) -> None:
    """The facts of a Task (task id in field 1, status 3), a status update event (1, 3), an
    artifact update event (1, no status) or a Message (task id in 3, no status); the
    context id is field 2 in all four."""
    for num, v in fields(b):
        if num == task_field:
            s = _str(v)
            if s:
                into["task_id"] = s
        elif num == 2:
            s = _str(v)
            if s:
                into["context_id"] = s
        elif num == status_field and isinstance(v, bytes):
            for snum, sv in fields(v):
                if snum == 1 and isinstance(sv, int):
                    state = STATES.get(sv)
                    if state:
                        into["state"] = state


#: (task id field, status field) of what each oneof member of a SendMessageResponse /
#: StreamResponse holds
_MEMBERS = {1: (1, 3), 2: (3, None), 3: (1, 3), 4: (1, None)}


def response_facts(kind: str, msg: bytes, into: dict) -> None:
    """Update ``into`` with what one response message says (the last message's win)."""
    if kind == _TASK:
        into["result_kind"] = "task"
        _object_facts(msg, 1, 3, into)
        return
    for num, v in fields(msg):
        member = _MEMBERS.get(num)
        if member is not None and isinstance(v, bytes):
            into["result_kind"] = _KINDS[num]
            _object_facts(v, member[0], member[1], into)


def _inflate(encoding: str | None, data: bytes, limit: int) -> bytes | None:
    enc = (encoding or "").strip().lower()
    if enc == "gzip":
        d = zlib.decompressobj(31)
    elif enc == "deflate":
        d = zlib.decompressobj()
    else:  # identity claimed compressed, or an encoding not read here
        return None
    try:
        out = d.decompress(data, limit)
    except zlib.error:
        return None
    return out if not d.unconsumed_tail else None


def first_message(data: bytes, encoding: str | None, limit: int) -> bytes:
    """The first message of a whole gRPC body (a request's), decompressed when it says so.
    Raises ValueError when it can't be read as the server would read it: no whole
    message, an encoding not read here, a broken or larger than ``limit`` inflation."""
    if len(data) < 5:
        raise ValueError("no whole gRPC message")
    flag, ln = data[0], int.from_bytes(data[1:5], "big")
    if 5 + ln > len(data):
        raise ValueError("no whole gRPC message")
    msg = data[5 : 5 + ln]
    if flag & 1:
        inflated = _inflate(encoding, msg, limit)
        if inflated is None:
            raise ValueError("a compressed message not read here (its encoding, its size)")
        msg = inflated
    return msg


class GrpcResponseObserver:
    """Watches a gRPC response body go by (``ctx.body_observer``), frame by frame, and
    calls ``done(attrs, facts)`` at its end, like :class:`.rpc.ResponseObserver` does for
    JSON (same facts: task id, context id, state, result kind). ``encoding`` (the
    response's ``grpc-encoding``) is set from the response head by the owning policy.

    A message larger than ``limit`` is skipped, not buffered."""

    __slots__ = ("kind", "buf", "skip", "facts", "done", "attrs", "limit", "encoding")

    def __init__(self, operation: str, done, attrs: dict, limit: int = 1 << 20):
        self.kind = _RESPONSES.get(operation)
        self.buf = bytearray()
        self.skip = 0
        self.facts: dict = {}
        self.done = done
        self.attrs = attrs
        self.limit = limit
        self.encoding: str | None = None

    @staticmethod
    def wanted(operation: str) -> bool:
        """Whether this operation's responses hold task facts at all."""
        return operation in _RESPONSES

    def __call__(self, chunk) -> None:
        if chunk is None:
            self.buf = bytearray()
            self.done(self.attrs, self.facts)
            return
        if not chunk:
            return
        if self.skip:
            n = min(self.skip, len(chunk))
            self.skip -= n
            chunk = chunk[n:]
            if not chunk:
                return
        # (one buffer grown in place and cut once per chunk: a large message arriving in
        # many DATA frames is copied once, not once per frame)
        buf = self.buf
        buf += chunk
        off, n = 0, len(buf)
        while n - off >= 5:
            ln = int.from_bytes(buf[off + 1 : off + 5], "big")
            if ln > self.limit:
                have = n - off - 5
                if have >= ln:
                    off += 5 + ln
                    continue
                self.skip = ln - have
                off = n
                break
            if n - off < 5 + ln:
                break
            self._message(buf[off], bytes(buf[off + 5 : off + 5 + ln]))
            off += 5 + ln
        if off:
            del buf[:off]

    def _message(self, flag: int, msg: bytes) -> None:
        if flag & 1:
            inflated = _inflate(self.encoding, msg, self.limit)
            if inflated is None:
                return
            msg = inflated
        facts: dict = {}
        try:
            response_facts(self.kind, msg, facts)  # type: ignore[arg-type]  # (wanted(): set)
        except (ValueError, IndexError):
            return
        self.facts.update(facts)
