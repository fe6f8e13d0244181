"""Clients for the MCP servers behind the gateway: streamable HTTP, legacy SSE, stdio.

Each gateway session owns one :class:`Upstream` per target. They share one shape:
``initialize(params)``, ``request(method, params, related)``, ``notify``, ``respond``
(answer a server→client request), ``open_stream`` (server-initiated messages) and
``close``. Whatever a server sends that is not the answer to one of our requests —
notifications, progress, sampling/elicitation requests, cancellations — goes to
``on_message(upstream, msg, related)``, where ``related`` is the client request it
belongs to when the transport says so (it arrived on that request's SSE stream, or
carries its progress token) and None otherwise.

HTTP targets run on the gateway's own pooled HTTP/1.1 client: a ``tools/call`` is one
write and one buffered read on a warm keep-alive connection, no per-call task.

Retries (the route's ``retry`` policy, :func:`exchange`) are for HTTP requests the target
cannot have acted on: the connection could not be made or closed before any byte of an
answer, or the answer's status is one of ``codes`` (error statuses only). Nothing is sent
again once an answer's body is being read, so nothing already relayed to the client is
ever repeated. A stdio target is never retried: what is written to its stdin is received.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import orjson

from ...engine.client import ConnectionPool, NoResponse, UpstreamConnectError, UpstreamConnection, UpstreamTarget
from ...engine.http import GatewayError, encode_headers
from .jsonrpc import (
    INTERNAL_ERROR,
    SESSION_EXPIRED,
    UPSTREAM_ERROR,
    RpcError,
    SseParser,
    dumps,
    is_request,
    is_response,
    loads,
)

if TYPE_CHECKING:
    from ..http import RetryPolicy
    from .authz import RuleSet
    from .limits import ProcessGate
    from .openapi import OpenApiTools

log = logging.getLogger("agentgw.mcp")


def json_messages(parser: SseParser, chunks: list[bytes], on_event: Callable[[str, bytes], None] | None = None):
    """JSON-RPC messages in some chunks of an SSE body. ``message`` events that aren't
    JSON are skipped; other events go to ``on_event``. A plain generator: a reader may
    stop at any message without leaving anything for the loop to close."""
    for chunk in chunks:
        for event, data, _ in parser.feed(chunk):
            if event != "message":
                if on_event is not None:
                    on_event(event, data)
                continue
            if not data:
                continue
            try:
                yield loads(data)
            except orjson.JSONDecodeError:
                continue


async def sse_messages(conn, on_event: Callable[[str, bytes], None] | None = None):
    """JSON-RPC messages from an upstream SSE body, as they arrive (long-lived streams)."""
    parser = SseParser()
    while (chunks := await conn.read_chunks()) is not None:
        for m in json_messages(parser, chunks, on_event):
            yield m


async def exchange(
    pool: ConnectionPool,
    spec: TargetSpec,
    head: bytes,
    body: bytes | None,
    timeout: float | None,
    deadline: float | None = None,
    fresh: bool = False,
):
    """Send one HTTP request to ``spec``'s target; return the connection holding the
    response head (``ConnectionPool.exchange``), sending it again under the target's
    ``retry`` policy while the target cannot have acted on it:

    * it could not be reached (connection refused, connect timeout, TLS handshake), or
      the connection closed before any byte of an answer (a pooled connection found
      closed is replaced once more, outside the count, as for every request);
    * it answered with a status in ``codes`` (4xx/5xx only: see ``compile.py``), read
      from the head alone -- the body is dropped unread.

    Never after an answer's head with another status (its body may be relayed), and never
    after a timeout (the target may be working on it). ``attempts`` counts every send;
    ``backoff`` is waited before each resend (doubling, at most 10×), and no resend
    starts that would wait past ``deadline`` (loop time). The last attempt's outcome is
    the outcome. ``fresh``: a new connection per attempt (a long-lived stream)."""
    target = _address(spec)
    retry = spec.retry
    if retry is None and not fresh:
        return await pool.exchange(target, head, body, timeout)
    loop = asyncio.get_running_loop()
    attempts = retry.attempts if retry is not None else 1
    attempt = 0
    while True:
        t = timeout
        if deadline is not None:
            left = max(0.001, deadline - loop.time())
            t = left if t is None else min(t, left)
        try:
            if fresh:
                conn = await pool.connect(target)
                try:
                    conn.send_head(head, body)
                    await conn.wait_head(t)
                except BaseException:
                    conn.close()
                    del conn  # see UpstreamConnection._unheld
                    raise
            else:
                conn = await pool.exchange(target, head, body, t)
        except (UpstreamConnectError, NoResponse) as exc:
            if retry is None or not _again(retry, attempt, attempts, deadline, loop):
                raise
            why = exc.message
        else:
            if retry is None or conn.status not in retry.codes or not _again(retry, attempt, attempts, deadline, loop):
                return conn
            why = f"answered HTTP {conn.status}"
            conn.close()
            del conn
        delay = retry.delay(attempt)
        attempt += 1
        log.debug("target %s: %s; attempt %d of %d in %.3gs", spec.name, why, attempt + 1, attempts, delay)
        if delay:
            await asyncio.sleep(delay)


def _address(spec: TargetSpec) -> UpstreamTarget:
    """An HTTP target's address (compiled for every kind of target but stdio)."""
    if spec.target is None:
        raise GatewayError(502, "upstream_error", f"target {spec.name} has no address")
    return spec.target


def _again(retry, attempt: int, attempts: int, deadline: float | None, loop) -> bool:
    """Another attempt: one is left, and its backoff ends before ``deadline``."""
    if retry is None or attempt + 1 >= attempts:
        return False
    return deadline is None or loop.time() + retry.delay(attempt) < deadline


class UpstreamGone(RpcError):
    """The target is unreachable or its session/process is gone."""

    def __init__(self, message: str, expired: bool = False):
        super().__init__(SESSION_EXPIRED if expired else UPSTREAM_ERROR, message)
        self.expired = expired


class Signer(Protocol):
    """Signs each request to a target (an AgentCore runtime's :class:`Endpoint`)."""

    async def sign(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> list[tuple[str, str]]: ...


class TargetSpec:
    """A compiled ``targets[]`` entry: everything needed to reach one MCP server."""

    def __init__(self, name: str, kind: str):
        self.name = name
        self.kind = kind  # "mcp" | "sse" | "stdio" | "openapi"
        self.target: UpstreamTarget | None = None
        self.host = ""  # Host header
        self.path = "/mcp"
        self.headers: list[tuple[str, str]] = []  # static headers (incl. backend auth)
        # client headers the session passes through that this target must not get:
        # another target's backendAuth.passthrough, or one this target sets itself
        self.withheld: frozenset[str] = frozenset()
        self.replaces: set[str] = set()  # headers it sets itself (compile time)
        self.retry: RetryPolicy | None = None  # the route's (HTTP targets; see exchange())
        # an AgentCore runtime's endpoint (backends/aws/agentcore.py): every request is
        # SigV4-signed, and only POST is sent (InvokeAgentRuntime has no GET or DELETE)
        self.signer: Signer | None = None
        self.cmd = ""
        self.args: list[str] = []
        self.env: dict[str, str] = {}
        self.clear_env = False
        self.openapi: OpenApiTools | None = None
        self.authz: RuleSet | None = None  # per-target mcpAuthorization
        # stdio: the caps on live processes and the gate that counts them (limits.py)
        self.gate: ProcessGate | None = None
        self.max_processes = 0
        self.max_processes_per_client = 0


class Upstream:
    """Base for one session's connection to one target."""

    kind = ""
    resumable = False  # does session_id alone let another process continue it?

    def __init__(self, spec: TargetSpec, on_message: Callable):
        self.spec = spec
        self.name = spec.name
        self.on_message = on_message
        self.session_id: str | None = None
        self.version: str | None = None
        self.init_result: dict | None = None
        self.client_headers: list[tuple[str, str]] = []  # per-request passthrough headers
        self._next_id = 0
        self.closed = False

    def passed_headers(self) -> list[tuple[str, str]]:
        """The client's passed-through headers that this target gets."""
        w = self.spec.withheld
        if not w:
            return self.client_headers
        return [kv for kv in self.client_headers if kv[0] not in w]

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def initialize(self, params: dict, timeout: float | None) -> dict:
        res = await self.request("initialize", params, None, timeout)
        self.version = res.get("protocolVersion") or params.get("protocolVersion")
        self.init_result = res
        await self.notify("notifications/initialized", None)
        return res

    async def request(self, method: str, params, related, timeout: float | None):
        raise NotImplementedError

    async def notify(self, method: str, params) -> None:
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        await self.respond(msg)

    async def respond(self, msg: dict) -> None:
        """Send a message that gets no answer (a response or a notification)."""
        raise NotImplementedError

    async def open_stream(self) -> None:
        return None

    async def close(self, delete: bool = False) -> None:
        self.closed = True


def _unwrap(resp: dict):
    if "error" in resp:
        e = resp["error"] or {}
        raise RpcError(e.get("code", INTERNAL_ERROR), e.get("message", "error"), e.get("data"))
    return resp.get("result")


# ---------------------------------------------------------------------------------------
# Streamable HTTP
# ---------------------------------------------------------------------------------------


STREAM_END_GRACE_S = 0.1
STREAM_OPEN_WAIT_S = 5.0  # how long open_stream waits for the target to answer its GET


def _release_at_end(conn, grace: float = 10.0) -> None:
    """Pool ``conn`` once its response ends; close it if that takes longer than ``grace``."""
    state = [False]

    def on_end() -> None:
        state[0] = True
        timer.cancel()
        conn.release()

    def on_error(exc) -> None:
        state[0] = True
        timer.cancel()
        conn.close()

    def expire() -> None:
        if not state[0]:
            state[0] = True
            conn.close()

    timer = conn.loop.call_later(grace, expire)
    conn.stream_to(lambda chunk: None, on_end, on_error)


class HttpUpstream(Upstream):
    kind = "mcp"
    resumable = True

    def __init__(self, spec: TargetSpec, on_message: Callable, pool: ConnectionPool):
        super().__init__(spec, on_message)
        self.pool = pool
        self._stream_task: asyncio.Task | None = None
        self._stream_conn: UpstreamConnection | None = None
        self._stream_opened: asyncio.Future | None = None  # set once the GET's answer head is in
        self._pending: dict[int, asyncio.Future] = {}  # answers that arrive on the GET stream
        self.await_stream_end = True  # see _await_stream_end

    def _headers(self, accept: str) -> list[tuple[str, str]]:
        h = [
            ("content-type", "application/json"),
            ("accept", accept),
        ]
        if self.session_id:
            h.append(("mcp-session-id", self.session_id))
        if self.version:
            h.append(("mcp-protocol-version", self.version))
        h.extend(self.spec.headers)
        h.extend(self.passed_headers())
        return h

    def _head(self, method: str, length: int, accept: str) -> bytes:
        spec = self.spec
        line = f"{method} {spec.path} HTTP/1.1\r\nhost: {spec.host}\r\n"
        if method == "POST":
            line += f"content-length: {length}\r\n"
        return line.encode("latin-1") + encode_headers(self._headers(accept)) + b"\r\n"

    async def _signed_head(self, signer: Signer, body: bytes, accept: str) -> bytes:
        """A POST's head with the signer's headers (they sign the host, the headers and the body)."""
        spec = self.spec
        h = [("host", spec.host), *self._headers(accept)]
        h += await signer.sign("POST", spec.path, h, body)
        line = f"POST {spec.path} HTTP/1.1\r\ncontent-length: {len(body)}\r\n"
        return line.encode("latin-1") + encode_headers(h) + b"\r\n"

    async def _post(self, msg: dict, timeout: float | None, deadline: float | None = None):
        body = dumps(msg)
        accept = "application/json, text/event-stream"
        try:
            signer = self.spec.signer
            if signer is not None:
                head = await self._signed_head(signer, body, accept)
            else:
                head = self._head("POST", len(body), accept)
            return await exchange(self.pool, self.spec, head, body, timeout, deadline)
        except GatewayError as exc:
            raise UpstreamGone(f"target {self.name}: {exc.message}") from None

    async def request(self, method: str, params, related, timeout: float | None):
        rid = self.next_id()
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        if related is not None:
            related.sent.append((self, rid))
        # ``timeout`` bounds the whole call, as for stream targets: the head, then the body
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        conn = await self._post(msg, timeout, deadline)
        try:
            status = conn.status
            ctype = (conn.headers.get("content-type") or "").lower()
            if method == "initialize" and status < 300:
                sid = conn.headers.get("mcp-session-id")
                if sid:
                    self.session_id = sid
            if status == 404 and self.session_id:
                await conn.read_body(1 << 20)
                raise UpstreamGone(f"target {self.name}: upstream session expired", expired=True)
            if status >= 400:
                body = await conn.read_body(1 << 20)
                try:
                    doc = loads(body)
                    if isinstance(doc, dict) and "error" in doc:
                        return _unwrap(doc)
                except orjson.JSONDecodeError:
                    pass
                aws = (conn.headers.get("x-amzn-errortype") or "").split(":", 1)[0]  # AgentCore's error kind
                raise RpcError(
                    UPSTREAM_ERROR, f"target {self.name} answered HTTP {status}" + (f" ({aws})" if aws else "")
                )
            if ctype.startswith("text/event-stream"):
                res = await self._read_sse_answer(conn, rid, related, deadline)
                if self.await_stream_end and not conn.done:
                    await self._await_stream_end(conn, deadline)
                if not conn.done and not conn.closed:
                    # a stream kept open past the answer: pool the connection when it ends
                    _release_at_end(conn)
                    conn = None
                return res
            if status == 202:
                # answer will come on the GET stream
                fut = asyncio.get_running_loop().create_future()
                self._pending[rid] = fut
                await conn.read_body(None, deadline)
                conn.release()
                conn = None
                try:
                    return _unwrap(
                        await asyncio.wait_for(
                            fut, None if deadline is None else max(0.0, deadline - fut.get_loop().time())
                        )
                    )
                except TimeoutError:
                    raise RpcError(UPSTREAM_ERROR, f"target {self.name} did not answer within {timeout:g}s") from None
                finally:
                    self._pending.pop(rid, None)
            body = await conn.read_body(64 << 20, deadline)
            doc = loads(body)
            if isinstance(doc, list):
                for m in doc:
                    if is_response(m) and m.get("id") == rid:
                        return _unwrap(m)
                raise RpcError(UPSTREAM_ERROR, f"target {self.name} sent no answer")
            return _unwrap(doc)
        except GatewayError as exc:
            if exc.status == 504 and timeout is not None:  # outlived the call's timeout: the target is alive
                raise RpcError(UPSTREAM_ERROR, f"target {self.name} did not answer within {timeout:g}s") from None
            raise UpstreamGone(f"target {self.name}: {exc.message}") from None
        except orjson.JSONDecodeError:
            raise RpcError(UPSTREAM_ERROR, f"target {self.name} sent invalid JSON") from None
        finally:
            if conn is not None:
                conn.release()

    async def _read_sse_answer(self, conn, rid: int, related, deadline: float | None):
        # read_chunks, not sse_messages(): this reader stops at the answer, and an async
        # generator left behind would cost a closing task per call.
        parser = SseParser()
        while (chunks := await conn.read_chunks(deadline)) is not None:
            for m in json_messages(parser, chunks):
                if is_response(m) and m.get("id") == rid:
                    return _unwrap(m)
                self.on_message(self, m, related)
        raise UpstreamGone(f"target {self.name}: stream ended without an answer")

    async def _await_stream_end(self, conn, deadline: float | None) -> None:
        """Wait, briefly, for the end of an answer's SSE stream before the answer goes on.

        A server closes the stream right after the answer, usually in the next packet.
        Answering the client only then keeps the server's load what a direct client gives
        it: one call per session in flight, on one connection. Answering earlier lets the
        session's next call reach the server while it is still finishing the last one, on
        a second connection; at 32 sessions that made the Python SDK server spend ~10 %
        more CPU per call (bench/RESULTS.md). A server that keeps the stream open is
        waited for once (``STREAM_END_GRACE_S``); after that this session stops waiting.
        """
        tail = conn.loop.time() + STREAM_END_GRACE_S
        if deadline is not None and deadline < tail:
            tail = deadline
        try:
            while await conn.read_chunks(tail) is not None:
                pass  # what follows the answer on its stream is not relayed (nobody awaits it)
        except GatewayError:
            if not conn.error:  # the grace ran out, not the connection
                self.await_stream_end = False

    async def _send_no_answer(self, msg: dict) -> None:
        conn = await self._post(msg, 30.0)
        try:
            await conn.read_body(1 << 20)
        except GatewayError:
            conn.close()
        finally:
            conn.release()
        if conn.status == 404 and self.session_id:
            raise UpstreamGone(f"target {self.name}: upstream session expired", expired=True)

    async def respond(self, msg: dict) -> None:
        await self._send_no_answer(msg)

    async def open_stream(self) -> None:
        """GET stream for server-initiated messages (405 means the server has none).

        Returns once the target has answered the GET (or after ``STREAM_OPEN_WAIT_S``),
        not when the request is merely sent: a server that sends a request belonging to
        no client request (``server.request(...)`` in the TypeScript SDK, e.g. an
        elicitation from a tool) writes it to its GET stream if one is open, and drops
        it (or only stores it for a resumption) if not. The session's next request must
        therefore reach the target after the stream does; otherwise the tool waits for
        an answer to a request nobody got (a conformance-suite elicitation scenario
        timed out that way through a fresh gateway). The GET used to be only started
        here, and a call on a warm pooled connection could overtake its new one."""
        if self.closed or self.spec.signer is not None:
            return
        if self._stream_task is None:
            self._stream_opened = asyncio.get_running_loop().create_future()
            self._stream_task = asyncio.get_running_loop().create_task(self._stream(self._stream_opened))
        opened = self._stream_opened
        if opened is not None and not opened.done():
            try:
                await asyncio.wait_for(asyncio.shield(opened), STREAM_OPEN_WAIT_S)
            except TimeoutError:
                pass  # a slow target: the stream keeps opening in the background

    async def _stream(self, opened: asyncio.Future) -> None:
        conn = None
        try:
            conn = await self.pool.connect(_address(self.spec))
            self._stream_conn = conn
            conn.send_head(self._head("GET", 0, "text/event-stream"), None)
            await conn.wait_head(30.0)
            if not opened.done():
                opened.set_result(None)
            if conn.status != 200:
                return
            async for m in sse_messages(conn):
                if is_response(m):
                    fut = self._pending.pop(m.get("id"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(m)
                    continue
                self.on_message(self, m, None)
        except (GatewayError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if not opened.done():
                opened.set_result(None)
            if conn is not None:
                conn.close()
            self._stream_conn = None
            self._stream_task = None
            self._stream_opened = None

    async def close(self, delete: bool = False) -> None:
        self.closed = True
        t = self._stream_task
        if t is not None:
            t.cancel()
        if self._stream_opened is not None and not self._stream_opened.done():
            self._stream_opened.set_result(None)  # (a task cancelled before it ran)
        if self._stream_conn is not None:
            self._stream_conn.close()
        if delete and self.session_id and self.spec.signer is None:
            try:
                conn = await asyncio.wait_for(
                    self.pool.exchange(_address(self.spec), self._head("DELETE", 0, "application/json"), b"", 5.0), 5.0
                )
                try:
                    await conn.read_body(1 << 20)
                finally:
                    conn.release()
            except (TimeoutError, GatewayError, OSError):
                pass


# ---------------------------------------------------------------------------------------
# Message-stream transports (stdio, legacy SSE): requests matched to answers by id
# ---------------------------------------------------------------------------------------


class _StreamUpstream(Upstream):
    def __init__(self, spec: TargetSpec, on_message: Callable):
        super().__init__(spec, on_message)
        # by the id sent (an int), looked up by the id an answer carries (any JSON value)
        self._waiting: dict[object, asyncio.Future] = {}
        self._related: dict[int, object] = {}  # upstream request id -> client request
        self._progress: dict = {}  # progress token -> client request
        self._dead_reason = ""

    async def _write(self, msg: dict, deadline: float | None = None) -> None:
        """Send one message; ``deadline`` (loop time) bounds resends (``exchange``)."""
        raise NotImplementedError

    async def request(self, method: str, params, related, timeout: float | None):
        if self.closed:
            raise UpstreamGone(f"target {self.name}: {self._dead_reason or 'closed'}")
        rid = self.next_id()
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        fut = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        token = None
        if related is not None:
            related.sent.append((self, rid))
            self._related[rid] = related
            meta = params.get("_meta") if isinstance(params, dict) else None
            if isinstance(meta, dict):
                token = meta.get("progressToken")
                if token is not None:
                    self._progress[token] = related
        try:
            if timeout is not None:
                deadline = asyncio.get_running_loop().time() + timeout
                await self._write(msg, deadline)
                resp = await asyncio.wait_for(fut, max(0.0, deadline - asyncio.get_running_loop().time()))
            else:
                await self._write(msg)
                resp = await fut
        except TimeoutError:
            raise RpcError(UPSTREAM_ERROR, f"target {self.name} did not answer within {timeout:g}s") from None
        finally:
            self._waiting.pop(rid, None)
            self._related.pop(rid, None)
            if token is not None:
                self._progress.pop(token, None)
        return _unwrap(resp)

    def _dispatch(self, m) -> None:
        if isinstance(m, list):
            for x in m:
                self._dispatch(x)
            return
        if not isinstance(m, dict):
            return
        if is_response(m):
            fut = self._waiting.get(m.get("id"))
            if fut is not None and not fut.done():
                fut.set_result(m)
            return
        related = None
        params = m.get("params")
        if isinstance(params, dict):
            tok = params.get("progressToken")
            if tok is not None:
                related = self._progress.get(tok)
            elif m.get("method") == "notifications/cancelled":
                related = None
        if related is None and (is_request(m) or m.get("method") in ("notifications/message",)) and self._related:
            # a server→client request while one of our requests is in flight belongs to
            # that request (stdio carries no other relation): the most recent one.
            related = self._related[max(self._related)]
        self.on_message(self, m, related)

    def _fail_all(self, reason: str) -> None:
        self._dead_reason = reason
        self.closed = True
        for fut in list(self._waiting.values()):
            if not fut.done():
                fut.set_exception(UpstreamGone(f"target {self.name}: {reason}"))

    async def respond(self, msg: dict) -> None:
        await self._write(msg)


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the gateway
    except Exception:
        pass


class StdioUpstream(_StreamUpstream):
    """A child process speaking newline-delimited JSON-RPC on stdin/stdout.

    The child runs in its own process group (so cleanup reaches its children too), is
    killed if the gateway dies (PR_SET_PDEATHSIG), and is always waited for (reaped).
    ``slot`` (limits.py) is its place under the target's process caps: given back once
    the process has been reaped, or at once if it never starts.
    """

    kind = "stdio"

    def __init__(self, spec: TargetSpec, on_message: Callable, slot=None):
        super().__init__(spec, on_message)
        self.proc: asyncio.subprocess.Process | None = None
        self.slot = slot
        self._starting = False
        self._reader: asyncio.Task | None = None
        self._err_reader: asyncio.Task | None = None
        self._stopper: asyncio.Task | None = None  # the one _stop of this process
        self._reaper: asyncio.Task | None = None
        self._wlock = asyncio.Lock()

    def _release(self) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()

    async def start(self) -> None:
        spec = self.spec
        if self.closed:  # closed before it got going: start nothing
            self._release()
            raise UpstreamGone(f"target {self.name}: {self._dead_reason or 'session closed'}")
        env = {} if spec.clear_env else dict(os.environ)
        env.update(spec.env)
        self._starting = True
        try:
            proc = await asyncio.create_subprocess_exec(
                spec.cmd,
                *spec.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
                preexec_fn=_pdeathsig,
                limit=64 << 20,
            )
        except OSError as exc:
            self.closed = True
            self._release()
            raise UpstreamGone(f"target {self.name}: cannot start {spec.cmd!r}: {exc.strerror or exc}") from None
        except BaseException:
            # cancelled while starting: the event loop kills a half-started child
            self.closed = True
            self._release()
            raise
        finally:
            self._starting = False
        self.proc = proc
        if self.closed:  # the session closed while the process was being started
            await asyncio.shield(self._stop_task(proc))
            raise UpstreamGone(f"target {self.name}: {self._dead_reason or 'session closed'}")
        loop = asyncio.get_running_loop()
        assert proc.stdout is not None and proc.stderr is not None  # (pipes)
        self._reader = loop.create_task(self._read(proc, proc.stdout))
        self._err_reader = loop.create_task(self._read_stderr(proc.stderr))

    async def initialize(self, params: dict, timeout: float | None) -> dict:
        if self.proc is None:
            await self.start()
        return await super().initialize(params, timeout if timeout is not None else 60.0)

    async def _write(self, msg: dict, deadline: float | None = None) -> None:
        proc = self.proc
        if proc is None or self.closed or proc.stdin is None or proc.stdin.is_closing():
            raise UpstreamGone(f"target {self.name}: {self._dead_reason or 'process is not running'}")
        async with self._wlock:
            try:
                proc.stdin.write(dumps(msg) + b"\n")
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
                raise UpstreamGone(f"target {self.name}: process stdin closed ({exc})") from None

    async def _read(self, proc: asyncio.subprocess.Process, stdout: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                line = line.strip()
                if not line:
                    continue
                try:
                    m = loads(line)
                except orjson.JSONDecodeError:
                    log.debug("target %s: non-JSON line on stdout: %.200r", self.name, line)
                    continue
                self._dispatch(m)
        except (asyncio.CancelledError, ValueError, ConnectionError):
            pass
        finally:
            rc = proc.returncode
            self._fail_all("process exited" + (f" with status {rc}" if rc is not None else ""))
            self._stop_task(proc)

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await stderr.readline()
                if not line:
                    return
                log.debug("target %s stderr: %s", self.name, line.rstrip().decode("utf-8", "replace"))
        except (asyncio.CancelledError, ValueError, ConnectionError):
            pass

    def _stop_task(self, proc: asyncio.subprocess.Process) -> asyncio.Task:
        """Stop and reap the process (``self.proc``), once: a task, so that a cancelled
        caller (a client gone mid-request) cannot leave it half done."""
        t = self._stopper
        if t is None:
            t = self._stopper = asyncio.get_running_loop().create_task(self._stop(proc))
        return t

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            try:
                if proc.stdin is not None and not proc.stdin.is_closing():
                    proc.stdin.close()
            except Exception:
                pass
            try:
                await asyncio.wait_for(proc.wait(), 1.0)
            except TimeoutError:
                _killpg(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 2.0)
                except TimeoutError:
                    pass
        # the leader may be gone while its children live on: the group goes too
        _killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                log.error("target %s: process %d did not exit after SIGKILL", self.name, proc.pid)
                # it keeps its slot until it is reaped
                self._reaper = asyncio.get_running_loop().create_task(self._reaped(proc))
                return
        self._release()

    async def _reaped(self, proc) -> None:
        await proc.wait()
        self._release()

    async def close(self, delete: bool = False) -> None:
        self._fail_all("session closed")
        if self.proc is not None:
            await asyncio.shield(self._stop_task(self.proc))
        elif not self._starting:  # never started (a start under way cleans up itself)
            self._release()
        for t in (self._reader, self._err_reader):
            if t is not None and not t.done():
                t.cancel()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class SseUpstream(_StreamUpstream):
    """The 2024-11-05 HTTP+SSE transport: a long GET for server messages, POSTs for ours."""

    kind = "sse"

    def __init__(self, spec: TargetSpec, on_message: Callable, pool: ConnectionPool):
        super().__init__(spec, on_message)
        self.pool = pool
        self.endpoint: str | None = None
        self._conn = None
        self._task: asyncio.Task | None = None

    async def start(self, timeout: float | None) -> None:
        spec = self.spec
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        h = [("accept", "text/event-stream"), *spec.headers, *self.passed_headers()]
        head = f"GET {spec.path} HTTP/1.1\r\nhost: {spec.host}\r\n".encode("latin-1") + encode_headers(h) + b"\r\n"
        try:
            conn = await exchange(self.pool, spec, head, None, 30.0, loop.time() + (timeout or 30.0), fresh=True)
        except GatewayError as exc:
            raise UpstreamGone(f"target {self.name}: {exc.message}") from None
        self._conn = conn
        self._task = loop.create_task(self._read(conn, ready))
        try:
            await asyncio.wait_for(ready, timeout or 30.0)
        except (TimeoutError, GatewayError) as exc:
            await self.close()
            raise UpstreamGone(f"target {self.name}: no endpoint event ({exc!r})") from None

    async def _read(self, conn, ready: asyncio.Future) -> None:
        try:
            await conn.wait_head(30.0)
            if conn.status != 200:
                raise GatewayError(502, "upstream_error", f"SSE endpoint answered {conn.status}")

            def on_event(event: str, data: bytes) -> None:
                if event == "endpoint":
                    self.endpoint = data.decode("utf-8").strip()
                    if not ready.done():
                        ready.set_result(None)

            async for m in sse_messages(conn, on_event):
                self._dispatch(m)
        except GatewayError as exc:
            if not ready.done():
                ready.set_exception(exc)
        except asyncio.CancelledError:
            pass
        finally:
            if not ready.done():
                ready.set_exception(GatewayError(502, "upstream_error", "SSE stream ended"))
            self._fail_all("SSE stream closed")
            conn.close()

    def _endpoint_path(self) -> str:
        ep = self.endpoint or "/message"
        if "://" in ep:
            ep = "/" + ep.split("://", 1)[1].split("/", 1)[1] if "/" in ep.split("://", 1)[1] else "/"
        elif not ep.startswith("/"):
            base = self.spec.path.rsplit("/", 1)[0]
            ep = f"{base}/{ep}"
        return ep

    async def initialize(self, params: dict, timeout: float | None) -> dict:
        if self._conn is None:
            await self.start(timeout)
        return await super().initialize(params, timeout if timeout is not None else 60.0)

    async def _write(self, msg: dict, deadline: float | None = None) -> None:
        if self.closed:
            raise UpstreamGone(f"target {self.name}: {self._dead_reason or 'closed'}")
        body = dumps(msg)
        spec = self.spec
        h = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            *spec.headers,
            *self.passed_headers(),
        ]
        head = (
            f"POST {self._endpoint_path()} HTTP/1.1\r\nhost: {spec.host}\r\n".encode("latin-1")
            + encode_headers(h)
            + b"\r\n"
        )
        try:
            conn = await exchange(self.pool, spec, head, body, 30.0, deadline)
        except GatewayError as exc:
            raise UpstreamGone(f"target {self.name}: {exc.message}") from None
        try:
            await conn.read_body(1 << 20)
        except GatewayError:
            conn.close()
        finally:
            conn.release()
        if conn.status >= 400:
            raise UpstreamGone(
                f"target {self.name}: message endpoint answered HTTP {conn.status}", expired=conn.status == 404
            )

    async def close(self, delete: bool = False) -> None:
        self._fail_all("session closed")
        if self._task is not None:
            self._task.cancel()
        if self._conn is not None:
            self._conn.close()
