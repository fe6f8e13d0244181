"""AWS Bedrock AgentCore Runtime backend: A2A (or raw bodies) in, InvokeAgentRuntime out.

A backend ``aws: {agentCore: {agentRuntimeArn, qualifier, endpoint}}`` sends each request
as ``POST https://bedrock-agentcore.<region>.amazonaws.com/runtimes/<ARN, percent-encoded
as one path segment>/invocations[?qualifier=…]``, signed with SigV4 for the service
``bedrock-agentcore`` in the ARN's region, with credentials from
:mod:`agentgw.backends.aws.credentials` (botocore's chain: environment, profiles, web
identity / IRSA, container and instance metadata; refreshed off the event loop).
``endpoint`` (an agentgw extension) replaces the base URL for local stand-ins and VPC
endpoints; the request is signed exactly as for AWS (the Host is the one sent). Without
it, the AWS SDKs' own variables do the same for every AgentCore backend of the process:
``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``, else ``AWS_ENDPOINT_URL`` (read at load), so a
config written for AWS runs unchanged against a stand-in.

Two modes, chosen per request:

* **A2A**: a JSON-RPC ``tasks/send`` / ``message/send`` (answered with one JSON-RPC
  response) or ``message/stream`` / ``tasks/sendSubscribe`` (answered with SSE). The
  A2A message becomes the invocation payload ``{"prompt": <text parts>, "message": …,
  "taskId": …, "contextId": …}`` — what AgentCore HTTP-protocol agents (Strands, the
  AgentCore starter kits) read — and the agent's answer (JSON or ``text/event-stream``)
  becomes an A2A Task, or a stream of A2A status/artifact events relayed as the agent's
  events arrive. An agent that already answers in JSON-RPC (an A2A-protocol runtime) is
  passed through untouched.
* **raw**: anything else is passed through as the payload, signed, and the answer is
  relayed as it streams.

With ``answer: runtime`` an A2A call's payload is built the same way, but the runtime's
answer goes back as it is (``{"result": {...}}`` from a Strands agent), as the
enterprise gateway's AgentCore workshop shows it.

``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` (33–256 characters) keeps one
conversation on one runtime session: it is derived from the A2A context id (or task id)
and the authenticated principal, so the same conversation always lands on the same
session and two callers never share one. A client's own session header is honoured in
raw mode. Agent cards (``GET …/.well-known/agent-card.json``) are fetched with
``GetAgentCard``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import quote

import orjson

from ...engine.client import StaleConnection, UpstreamConnection
from ...engine.http import GatewayError, Headers, Reply, strip_hop_by_hop
from ...proxy.backend import Backend
from ...proxy.relay import relay_response
from ..a2a.rpc import parse_body, shape_reply
from .credentials import CredentialError
from .sigv4 import sign_headers

if TYPE_CHECKING:
    from ...proxy.scope import CompileScope

log = logging.getLogger("agentgw.aws")

SERVICE = "bedrock-agentcore"
SESSION_HEADER = "x-amzn-bedrock-agentcore-runtime-session-id"
SESSION_MIN, SESSION_MAX = 33, 256
CREDENTIAL_TIMEOUT = 10.0  # a request never waits longer than this for credentials

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):bedrock-agentcore:(?P<region>[a-z0-9-]+):(?P<account>[^:/\s]+):(?:runtime/)?(?P<id>[^\s]+)$"
)
_SESSION_OK = re.compile(r"^[A-Za-z0-9_.:-]+$")

# A2A methods this backend translates; everything else goes through raw.
SEND = {"tasks/send": "legacy", "message/send": "v03", "SendMessage": "v1"}
STREAM = {"tasks/sendSubscribe": "legacy", "message/stream": "v03", "SendStreamingMessage": "v1"}

# Client request headers forwarded (and signed) in raw mode, besides content-type/accept.
_RAW_FORWARD = ("mcp-session-id", "mcp-protocol-version", "traceparent", "tracestate", "baggage")
_CARD_PATH = re.compile(r"/\.well-known/agent(?:-card)?\.json$")


class RuntimeArn:
    __slots__ = ("arn", "partition", "region", "account", "runtime_id")

    def __init__(self, arn: str):
        m = _ARN.match(arn)
        if m is None:
            raise ValueError(f"not an AgentCore runtime ARN: {arn!r}")
        self.arn = arn
        self.partition = m["partition"]
        self.region = m["region"]
        self.account = m["account"]
        self.runtime_id = m["id"]

    @property
    def default_host(self) -> str:
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return f"{SERVICE}.{self.region}.{suffix}"


def invocation_path(arn: str, qualifier: str | None, op: str = "/invocations") -> str:
    """``/runtimes/<ARN as one encoded segment><op>[?qualifier=…]`` as botocore serialises it."""
    path = f"/runtimes/{quote(arn, safe='-_.~')}{op}"
    if qualifier:
        path += f"?qualifier={quote(qualifier, safe='-_.~')}"
    return path


def session_id_for(key: str, principal: str | None = None) -> str:
    """A runtime session id for a conversation key (A2A context or task id).

    Deterministic (same key and caller → same session), within AgentCore's 33–256
    characters, and scoped to the authenticated caller so that guessing someone's
    context id never joins their session.
    """
    h = hashlib.sha256(f"{principal or ''}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"a2a-{h}"  # 68 characters


def valid_session_id(s: str | None) -> bool:
    return s is not None and SESSION_MIN <= len(s) <= SESSION_MAX and _SESSION_OK.match(s) is not None


# -- A2A ↔ AgentCore payloads ---------------------------------------------------------------
class A2aCall:
    __slots__ = ("rpc_id", "method", "style", "stream", "task_id", "context_id", "message", "text", "params")

    def __init__(self, doc: dict, style: str, stream: bool):
        params = doc.get("params")
        if not isinstance(params, dict):
            params = {}
        msg = params.get("message")
        if not isinstance(msg, dict):
            msg = params.get("request")
            if not isinstance(msg, dict):
                msg = {}
        self.rpc_id = doc.get("id")
        self.method = doc["method"]
        self.style = style
        self.stream = stream
        self.params = params
        self.message = msg
        tid = params.get("id") if style == "legacy" else None
        tid = tid or msg.get("taskId") or msg.get("task_id")
        cid = msg.get("contextId") or msg.get("context_id") or params.get("contextId") or params.get("sessionId")
        self.task_id = tid if isinstance(tid, str) and tid else None
        self.context_id = cid if isinstance(cid, str) and cid else None
        self.text = "\n".join(_part_texts(msg.get("parts") or msg.get("content") or []))


def a2a_call(doc) -> A2aCall | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("method"), str):
        return None
    m = doc["method"]
    if m in SEND:
        return A2aCall(doc, SEND[m], False)
    if m in STREAM:
        return A2aCall(doc, STREAM[m], True)
    return None


def _part_texts(parts) -> list[str]:
    out = []
    if isinstance(parts, list):
        for p in parts:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                out.append(p["text"])
            elif isinstance(p, str):
                out.append(p)
    return out


def answer_text(doc) -> str | None:
    """The text of an agent's answer in the common AgentCore agent shapes: a string,
    ``{"result": …}`` (Strands: ``{"role", "content": [{"text"}]}``), ``{"response"}``,
    ``{"output"}``, ``{"message"}``, ``{"text"}``, content/parts lists."""
    if isinstance(doc, str):
        return doc
    if isinstance(doc, list):
        texts = [t for t in (answer_text(x) for x in doc) if t]
        return "".join(texts) if texts else None
    if not isinstance(doc, dict):
        return None
    for k in ("text", "result", "response", "output", "completion", "message", "content", "parts", "data"):
        if k in doc:
            t = answer_text(doc[k])
            if t is not None:
                return t
    return None


def stream_delta(doc) -> str | None:
    """The text delta in one streamed agent event (a string, Strands' ``{"data": "…"}``,
    or a Bedrock ``contentBlockDelta`` event, raw or wrapped in ``{"event": …}``)."""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("data"), str):
        return doc["data"]
    ev = doc.get("event")
    if not isinstance(ev, dict):
        ev = doc
    cbd = ev.get("contentBlockDelta")
    if isinstance(cbd, dict):
        d = cbd.get("delta")
        if isinstance(d, dict) and isinstance(d.get("text"), str):
            return d["text"]
    for k in ("delta", "text"):
        if isinstance(doc.get(k), str):
            return doc[k]
    return None


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _parts(style: str, text: str) -> list:
    return [{"type": "text", "text": text}] if style == "legacy" else [{"kind": "text", "text": text}]


def task_result(call: A2aCall, task_id: str, context_id: str, text: str, session: str) -> dict:
    """A completed A2A Task holding the agent's answer, in the caller's protocol generation."""
    style = call.style
    if style == "legacy":
        agent_msg = {"role": "agent", "parts": _parts(style, text)}
        return {
            "id": task_id,
            "sessionId": context_id,
            "status": {"state": "completed", "message": agent_msg, "timestamp": _now_iso()},
            "artifacts": [{"name": "response", "index": 0, "parts": _parts(style, text)}],
            "metadata": {"agentcore": {"runtimeSessionId": session}},
        }
    agent_msg = {
        "kind": "message",
        "role": "agent",
        "messageId": str(uuid.uuid4()),
        "taskId": task_id,
        "contextId": context_id,
        "parts": _parts(style, text),
    }
    if style == "v1":
        agent_msg = {
            "role": "ROLE_AGENT",
            "messageId": agent_msg["messageId"],
            "taskId": task_id,
            "contextId": context_id,
            "parts": [{"text": text}],
        }
        return {
            "task": {
                "id": task_id,
                "contextId": context_id,
                "status": {"state": "TASK_STATE_COMPLETED", "message": agent_msg, "timestamp": _now_iso()},
                "artifacts": [{"artifactId": "response", "name": "response", "parts": [{"text": text}]}],
                "metadata": {"agentcore": {"runtimeSessionId": session}},
            }
        }
    return {
        "kind": "task",
        "id": task_id,
        "contextId": context_id,
        "status": {"state": "completed", "message": agent_msg, "timestamp": _now_iso()},
        "artifacts": [{"artifactId": "response", "name": "response", "parts": _parts(style, text)}],
        "history": [m for m in (call.message,) if m],
        "metadata": {"agentcore": {"runtimeSessionId": session}},
    }


class EventMaker:
    """A2A streaming events (JSON-RPC responses) for one ``message/stream`` call."""

    def __init__(self, call: A2aCall, task_id: str, context_id: str):
        self.call = call
        self.task_id = task_id
        self.context_id = context_id
        self.chunks = 0

    def _frame(self, result: dict) -> bytes:
        doc = {"jsonrpc": "2.0", "id": self.call.rpc_id, "result": result}
        return b"data: " + orjson.dumps(doc) + b"\n\n"

    def status(self, state: str, final: bool) -> bytes:
        style = self.call.style
        if style == "legacy":
            return self._frame(
                {"id": self.task_id, "status": {"state": state, "timestamp": _now_iso()}, "final": final}
            )
        if style == "v1":
            st = "TASK_STATE_" + state.upper().replace("-", "_")
            return self._frame(
                {
                    "statusUpdate": {
                        "taskId": self.task_id,
                        "contextId": self.context_id,
                        "status": {"state": st, "timestamp": _now_iso()},
                    }
                }
            )
        return self._frame(
            {
                "kind": "status-update",
                "taskId": self.task_id,
                "contextId": self.context_id,
                "status": {"state": state, "timestamp": _now_iso()},
                "final": final,
            }
        )

    def artifact(self, text: str) -> bytes:
        style = self.call.style
        append = self.chunks > 0
        self.chunks += 1
        if style == "legacy":
            return self._frame(
                {
                    "id": self.task_id,
                    "artifact": {"name": "response", "index": 0, "append": append, "parts": _parts(style, text)},
                }
            )
        if style == "v1":
            return self._frame(
                {
                    "artifactUpdate": {
                        "taskId": self.task_id,
                        "contextId": self.context_id,
                        "append": append,
                        "artifact": {"artifactId": "response", "parts": [{"text": text}]},
                    }
                }
            )
        return self._frame(
            {
                "kind": "artifact-update",
                "taskId": self.task_id,
                "contextId": self.context_id,
                "append": append,
                "lastChunk": False,
                "artifact": {"artifactId": "response", "name": "response", "parts": _parts(style, text)},
            }
        )


def sse_events(buf: bytes):
    """Split complete SSE events off ``buf``: ``(list of data payloads, rest)``."""
    out: list[bytes] = []
    while True:
        i = buf.find(b"\n\n")
        j = buf.find(b"\r\n\r\n")
        if i < 0 and j < 0:
            return out, buf
        if j >= 0 and (i < 0 or j < i):
            event, buf = buf[:j], buf[j + 4 :]
        else:
            event, buf = buf[:i], buf[i + 2 :]
        data = [line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:")]
        if data:
            out.append(b"\n".join(data))


def _event_doc(data: bytes):
    doc = parse_body(data)
    return doc if doc is not None else data.decode("utf-8", "replace")


# -- upstream errors --------------------------------------------------------------------------
_PASS_STATUS = {400, 404, 408, 413, 424, 429, 500, 502, 503, 504}


def upstream_error(status: int, headers: Headers, body: bytes) -> tuple[int, str, str]:
    """``(status for the client, type, message)`` for an AgentCore error answer."""
    etype = (headers.get("x-amzn-errortype") or "").split(":", 1)[0]
    msg = ""
    doc = parse_body(body)
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("Message") or ""
        etype = etype or doc.get("__type", "") or ""
    if not msg:
        msg = body[:300].decode("utf-8", "replace")
    kind = etype or "agentcore_error"
    if status in (401, 403):
        # the gateway's own AWS identity was refused: a gateway-side problem, not the client's
        return 502, kind, f"AgentCore refused the gateway's AWS credentials ({status} {etype or 'error'}): {msg}"
    return (status if status in _PASS_STATUS else 502), kind, f"AgentCore answered {status} {etype}: {msg}".strip()


# -- the backend --------------------------------------------------------------------------------
class AgentCoreBackend(Backend):
    kind = "agentcore"

    def __init__(
        self,
        name: str,
        endpoint: Endpoint,
        pool,
        *,
        request_timeout: float | None = None,
        backend_timeout: float | None = None,
        max_response: int = 10 << 20,
        request_edits: tuple = (),
        response_hooks: tuple = (),
        answer: str = "a2a",
    ):
        self.ep = endpoint
        self.answer = answer  # "a2a" | "runtime": how an A2A call is answered
        self.rt = endpoint.rt
        # requestHeaderModifier edits (the route's, then the backend's): applied to every
        # request to AgentCore before it is signed; responseHeaderModifier hooks of the
        # backend's policies, run over the answer to the client
        self.request_edits = request_edits
        self.response_hooks = response_hooks
        self.arn = arn = self.rt.arn
        self.qualifier = qualifier = endpoint.qualifier
        self.region = endpoint.region
        self.label = name
        self.backend_name = f"agentcore/{name}"
        self.target = endpoint.target
        self.host = endpoint.host
        self.scheme = endpoint.scheme
        self.pool = pool
        self.request_timeout = request_timeout
        self.backend_timeout = backend_timeout
        self.max_response = max_response
        self.invoke_path = invocation_path(arn, qualifier)
        self.card_path = invocation_path(arn, qualifier, "/invocations/.well-known/agent-card.json")

    # -- entry ----------------------------------------------------------------------------
    async def serve(self, ctx) -> None:
        if self.request_timeout:
            try:
                await asyncio.wait_for(self._serve(ctx), self.request_timeout)
            except TimeoutError:
                raise GatewayError(
                    504, "request_timeout", f"request timed out after {self.request_timeout:g}s"
                ) from None
        else:
            await self._serve(ctx)

    async def _serve(self, ctx) -> None:
        req = ctx.req
        ctx.backend_name = self.backend_name
        for hook in self.response_hooks:
            ctx.add_response_hook(hook)
        logf = ctx.attrs.get("log")
        if logf is None:
            logf = ctx.attrs["log"] = {}
        logf["agentcore_runtime_arn"] = self.arn
        if req.method == "GET" and _CARD_PATH.search(ctx.path):
            await self._card(ctx, logf)
            return
        if req.method != "POST":
            raise GatewayError(405, "method_not_allowed", "an AgentCore runtime is invoked with POST")
        body = req.body
        data = body.buffered() if body.complete and body.error is None else await body.read_all()
        ctype = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        doc = parse_body(data) if ctype in ("", "application/json") or ctype.endswith("+json") else None
        call = a2a_call(doc)
        principal = ctx.attrs.get("principal")
        principal = principal if isinstance(principal, str) else None
        if call is not None:
            await self._a2a(ctx, call, principal, logf)
        else:
            await self._raw(ctx, data, doc, principal, logf)

    # -- upstream exchange -------------------------------------------------------------------
    async def _send(self, method: str, path: str, headers: list[tuple[str, str]], payload: bytes) -> UpstreamConnection:
        """Sign and send one request; return the connection holding the response head."""
        headers = [("host", self.host)] + headers
        if self.request_edits:
            edited = Headers(headers)
            for e in self.request_edits:
                e.apply(edited)
            headers = [kv for kv in edited if kv[0] != "content-length"]  # (set below, from the payload)
        auth = await self.ep.sign(method, path, headers, payload)
        lines = [f"{method} {path} HTTP/1.1\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in headers + auth)
        if method == "POST" or payload:
            lines.append(f"content-length: {len(payload)}\r\n")
        head = ("".join(lines) + "\r\n").encode("latin-1")
        for attempt in (0, 1):
            conn = self.pool.take_idle(self.target) if attempt == 0 else None
            if conn is None:
                conn = await self.pool.connect(self.target)
            try:
                conn.send_head(head, payload)
                await conn.wait_head(self.backend_timeout)
                return conn
            except StaleConnection:
                conn.close()
                if attempt:
                    raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    # -- agent card ----------------------------------------------------------------------------
    async def _card(self, ctx, logf) -> None:
        conn = await self._send("GET", self.card_path, [("accept", "application/json")], b"")
        try:
            body = await conn.read_body(self.max_response)
            status = conn.status
            headers = strip_hop_by_hop(conn.headers)
            headers.remove("content-length")
            if status >= 400:
                st, kind, msg = upstream_error(status, headers, body)
                raise GatewayError(st, kind, msg)
            if ctx.body_filter is not None:
                status, body = ctx.body_filter(ctx, status, headers, body)
            ctx.finalize_headers(status, headers)
            ctx.ex.send(status, headers, body)
        finally:
            conn.release()

    # -- raw mode ------------------------------------------------------------------------------
    async def _raw(self, ctx, data: bytes, doc, principal, logf) -> None:
        req = ctx.req
        sid = req.headers.get(SESSION_HEADER)
        if not valid_session_id(sid):
            key = None
            if isinstance(doc, dict):
                for k in ("contextId", "sessionId", "session_id", "runtimeSessionId"):
                    if isinstance(doc.get(k), str) and doc[k]:
                        key = doc[k]
                        break
            sid = session_id_for(key, principal) if key else f"agentgw-{uuid.uuid4()}"
        logf["agentcore_session_id"] = sid
        headers = [("content-type", req.headers.get("content-type") or "application/octet-stream")]
        accept = req.headers.get("accept")
        if accept:
            headers.append(("accept", accept))
        headers.append((SESSION_HEADER, sid))
        for h in _RAW_FORWARD:
            v = req.headers.get(h)
            if v:
                headers.append((h, v))
        conn = await self._send("POST", self.invoke_path, headers, data)
        try:
            await self._relay_raw(ctx, conn, sid)
        finally:
            conn.release()

    async def _relay_raw(self, ctx, conn: UpstreamConnection, sid: str) -> None:
        status = conn.status
        headers = strip_hop_by_hop(conn.headers)
        cl = headers.get("content-length")
        headers.remove("content-length")
        if not headers.has(SESSION_HEADER):
            headers.append((SESSION_HEADER, sid))
        if status >= 400:
            ctx.upstream_error = (
                f"AgentCore answered {status} {(headers.get('x-amzn-errortype') or '').split(':', 1)[0]}".strip()
            )
        ctx.finalize_headers(status, headers)
        await relay_response(ctx, conn, status, headers, cl)

    # -- A2A mode ------------------------------------------------------------------------------
    async def _a2a(self, ctx, call: A2aCall, principal, logf) -> None:
        task_id = call.task_id or str(uuid.uuid4())
        context_id = call.context_id or (task_id if call.style == "legacy" else str(uuid.uuid4()))
        key = call.context_id or call.task_id or context_id
        sid = session_id_for(key, principal)
        logf["agentcore_session_id"] = sid
        payload = {"prompt": call.text, "message": call.message, "taskId": task_id, "contextId": context_id}
        headers = [
            ("content-type", "application/json"),
            ("accept", "text/event-stream" if call.stream else "application/json"),
            (SESSION_HEADER, sid),
        ]
        conn = await self._send("POST", self.invoke_path, headers, orjson.dumps(payload))
        if self.answer == "runtime":  # the runtime's answer as it is (or AWS's error)
            try:
                await self._relay_raw(ctx, conn, sid)
            finally:
                conn.release()
            return
        try:
            status = conn.status
            up_headers = conn.headers
            if status >= 400:
                body = await conn.read_body(self.max_response)
                st, kind, msg = upstream_error(status, up_headers, body)
                ctx.upstream_error = msg[:300]
                log.warning("AgentCore %s: %s", self.arn, msg[:500])
                self._send_reply(ctx, shape_reply(call.rpc_id, Reply.error(st, kind, msg)))
                return
            sse = (up_headers.get("content-type") or "").startswith("text/event-stream")
            if call.stream:
                await self._a2a_stream(ctx, call, conn, sse, task_id, context_id, sid)
            else:
                await self._a2a_send(ctx, call, conn, sse, task_id, context_id, sid)
        finally:
            conn.release()

    def _send_reply(self, ctx, reply: Reply) -> None:
        ctx.finalize_headers(reply.status, reply.headers)
        obs = ctx.body_observer
        if obs is not None:
            obs(reply.body)
            obs(None)
        ctx.ex.send(reply.status, reply.headers, reply.body)

    async def _a2a_send(self, ctx, call, conn, sse: bool, task_id, context_id, sid) -> None:
        body = await conn.read_body(self.max_response)
        if sse:
            texts: list[str] | None = []
            events, _rest = sse_events(body + b"\n\n")
            for data in events:
                d = _event_doc(data)
                if isinstance(d, dict) and "jsonrpc" in d:
                    # an A2A-protocol runtime's stream: its last response is the answer
                    texts = None
                    last = data
                    continue
                t = stream_delta(d)
                if t and texts is not None:
                    texts.append(t)
            if texts is None:
                out = last
            else:
                out = orjson.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": call.rpc_id,
                        "result": task_result(call, task_id, context_id, "".join(texts), sid),
                    }
                )
        else:
            doc = parse_body(body)
            if isinstance(doc, dict) and "jsonrpc" in doc:
                out = body  # the runtime speaks A2A itself
            else:
                text = answer_text(doc) if doc is not None else body.decode("utf-8", "replace")
                if text is None:
                    text = body.decode("utf-8", "replace")
                out = orjson.dumps(
                    {"jsonrpc": "2.0", "id": call.rpc_id, "result": task_result(call, task_id, context_id, text, sid)}
                )
        headers = Headers([("content-type", "application/json"), (SESSION_HEADER, sid)])
        self._send_reply(ctx, Reply(200, headers, out))

    async def _a2a_stream(self, ctx, call, conn, sse: bool, task_id, context_id, sid) -> None:
        ex = ctx.ex
        headers = Headers([("content-type", "text/event-stream"), ("cache-control", "no-cache"), (SESSION_HEADER, sid)])
        ctx.finalize_headers(200, headers)
        ex.start(200, headers)
        obs = ctx.body_observer
        ev = EventMaker(call, task_id, context_id)

        def emit(b: bytes) -> None:
            if obs is not None:
                obs(b)
            ex.write(b)

        passthrough = False
        hook = ex.add_pause_hook(conn.pause_reading, conn.resume_reading)
        try:
            if not sse:
                body = await conn.read_body(self.max_response)
                doc = parse_body(body)
                if isinstance(doc, dict) and "jsonrpc" in doc:
                    emit(b"data: " + body.strip() + b"\n\n")
                else:
                    emit(ev.status("working", False))
                    text = answer_text(doc) if doc is not None else body.decode("utf-8", "replace")
                    emit(ev.artifact(text if text is not None else body.decode("utf-8", "replace")))
                    emit(ev.status("completed", True))
            else:
                started = False
                buf = b""
                async for chunk in conn.iter_body():
                    events, buf = sse_events(buf + chunk)
                    for data in events:
                        d = _event_doc(data)
                        if passthrough or (isinstance(d, dict) and "jsonrpc" in d):
                            passthrough = True
                            emit(b"data: " + data + b"\n\n")
                            continue
                        if not started:
                            started = True
                            emit(ev.status("working", False))
                        t = stream_delta(d)
                        if t:
                            emit(ev.artifact(t))
                if not passthrough:
                    if not started:
                        emit(ev.status("working", False))
                    emit(ev.status("completed", True))
        except GatewayError as exc:
            ctx.upstream_error = exc.message
            if not passthrough:
                # tell the A2A client the task failed, then end the stream cleanly
                emit(ev.status("failed", True))
                if obs is not None:
                    obs(None)
                ex.end()
                return
            ex.abort()
            return
        finally:
            ex.remove_pause_hook(hook)
            conn.resume_reading()
        if obs is not None:
            obs(None)
        ex.end()


class Endpoint:
    """Where and how one runtime is invoked: what an ``aws: {agentCore: …}`` backend compiles
    to, shared by the AgentCore backend and by MCP targets on AgentCore."""

    __slots__ = ("rt", "qualifier", "target", "host", "scheme", "credentials", "region", "service")

    def __init__(self, rt: RuntimeArn, qualifier, target, host: str, scheme: str, credentials, region, service):
        self.rt = rt
        self.qualifier = qualifier
        self.target = target
        self.host = host
        self.scheme = scheme
        self.credentials = credentials
        self.region = region
        self.service = service

    async def snapshot(self):
        """Credentials for one signature, waiting at most ``CREDENTIAL_TIMEOUT``."""
        try:
            return await asyncio.wait_for(self.credentials.get(), CREDENTIAL_TIMEOUT)
        except TimeoutError:
            log.error("AWS credentials for %s not available after %gs", self.rt.arn, CREDENTIAL_TIMEOUT)
            raise CredentialError(f"AWS credentials not available after {CREDENTIAL_TIMEOUT:g}s") from None

    async def sign(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
        """The SigV4 headers for a request to this runtime (``headers`` include ``host``)."""
        snap = await self.snapshot()
        return sign_headers(
            snap,
            service=self.service,
            region=self.region,
            method=method,
            url=f"{self.scheme}://{self.host}{path}",
            headers=headers,
            body=body,
        )


def compile_endpoint(compiler: CompileScope, cfg, path: str, backend_policies, policies_path: str) -> Endpoint | None:
    """The :class:`Endpoint` of ``aws: {agentCore: …}`` at ``path``; the credentials come
    from the backend's ``backendAuth.aws`` (explicit keys, a role to assume, a region or
    service name), else from the ambient chain, as agentgateway signs AWS backends by
    default. Other ``backendAuth`` kinds are refused: AgentCore takes SigV4 only."""
    from ..http import make_target
    from .credentials import shared_source

    ac = cfg.agent_core
    try:
        rt = RuntimeArn(ac.agent_runtime_arn)
    except ValueError as exc:
        compiler.errors.add(f"{path}.agentCore.agentRuntimeArn", str(exc))
        return None
    override = ac.endpoint or os.environ.get("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE") or os.environ.get("AWS_ENDPOINT_URL")
    if override:
        addr, scheme = override.rstrip("/"), override.split("://", 1)[0]
    else:
        addr, scheme = f"https://{rt.default_host}", "https"
    try:
        target, host = make_target(addr, tls=None, sni=None, connect_timeout=compiler.connect_timeout)
    except (ValueError, IndexError) as exc:
        compiler.errors.add(f"{path}.agentCore.endpoint", f"invalid endpoint {addr!r}: {exc}")
        return None
    region, service, kw = rt.region, SERVICE, {}
    ba = getattr(backend_policies, "backend_auth", None)
    if ba is not None:
        kind = ba.kind()
        if kind != "aws" or ba.credentials:
            field = "credentials" if kind in ("aws", None) else type(ba).model_fields[kind].alias or kind
            compiler.errors.add(
                f"{policies_path}.backendAuth.{field}",
                "not supported on aws backends (an AgentCore runtime takes AWS SigV4: only aws applies)",
            )
            return None
        a = ba.aws
        region = a.region or region
        service = a.service_name or service
        kw = {
            "access_key_id": a.access_key_id,
            "secret_access_key": a.secret_access_key,
            "session_token": a.session_token,
            "role_arn": a.assume_role.role_arn if a.assume_role else None,
        }
    src = shared_source(region=region, **{k: v for k, v in kw.items() if v})  # resolved on first use
    return Endpoint(rt, ac.qualifier, target, host or target.authority, scheme, src, region, service)


def compile_agentcore(
    compiler: CompileScope,
    cfg,
    path: str,
    *,
    name: str | None,
    traffic: dict,
    route_policies=None,
    backend_policies=None,
) -> AgentCoreBackend | None:
    """Build the backend for ``aws: {agentCore: …}`` (errors go to ``compiler.errors``).

    ``requestHeaderModifier`` of the route and of the backend edit the headers sent to
    AgentCore (the signature covers them); the backend's ``responseHeaderModifier`` edits
    the answer (the route's runs as for any route)."""
    from ...policies.header_modifier import HeaderEdits, ResponseHeaderModifier

    ep = compile_endpoint(compiler, cfg, path, backend_policies, path.rsplit(".", 1)[0] + ".policies")
    if ep is None:
        return None
    svc = compiler.services
    edits = tuple(
        HeaderEdits(h.add, h.set, h.remove)
        for h in (getattr(p, "request_header_modifier", None) for p in (route_policies, backend_policies))
        if h is not None
    )
    rh = getattr(backend_policies, "response_header_modifier", None)
    hooks = (ResponseHeaderModifier(rh.add, rh.set, rh.remove).on_response,) if rh is not None else ()
    return AgentCoreBackend(
        name or ep.rt.runtime_id,
        ep,
        svc.pool,
        request_timeout=traffic.get("request_timeout"),
        backend_timeout=traffic.get("backend_timeout"),
        request_edits=edits,
        response_hooks=hooks,
        answer=cfg.agent_core.answer,
    )
