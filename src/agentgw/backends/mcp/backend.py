"""The MCP backend: one streamable-HTTP (and legacy SSE) endpoint over many MCP servers.

Client side (on the gateway's own HTTP engine):

* ``POST`` — one JSON-RPC message (or a batch). ``initialize`` creates a session whose
  ``Mcp-Session-Id`` is sealed state (see ``token.py``); a request is answered with
  ``application/json`` unless the target sends something first (progress, logging, a
  sampling/elicitation request), in which case the answer becomes a ``text/event-stream``
  carrying those messages and then the response (a client that ranks
  ``text/event-stream`` above ``application/json`` in ``Accept`` always gets a stream).
  Notifications and responses get 202.
* ``GET`` — the session's stream of server-initiated messages.
* ``DELETE`` — end the session (upstream sessions deleted, stdio servers stopped).
* ``GET …/sse`` + ``POST …/message?sessionId=`` — the 2024-11-05 HTTP+SSE transport.

Method routing: list methods fan out and merge (every page of every target), names are
prefixed ``<target>_<name>`` and resource URIs ``<target>+<uri>`` (MCP Apps ``ui://`` URIs
as ``ui://<target>+<rest>``, so they stay ``ui://``), agentgateway's forms; calls strip
the prefix and go to one target.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import time

import orjson

from ... import __version__
from ...engine.http import Headers
from ...proxy.backend import Backend
from .jsonrpc import (
    FORBIDDEN,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RATE_LIMITED,
    TOO_MANY_SESSIONS,
    RpcError,
    dumps,
    error,
    is_notification,
    is_request,
    is_response,
    result,
    sse_event,
)
from .limits import client_key
from .session import ClientCall, GatewaySession, Registry, request_key
from .tasks import BY_ID as TASK_METHODS
from .tasks import TaskRouting
from .token import SessionCodec

log = logging.getLogger("agentgw.mcp")

LIST_METHODS = {
    "tools/list": ("tools", "name"),
    "prompts/list": ("prompts", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
}
MAX_PAGES = 1000
#: the URI prefix of earlier agentgw versions (``agw://<target>/<uri>``), still understood
LEGACY_URI_PREFIX = "agw://"
UI_SCHEME = "ui://"
_JSON = "application/json"


def _headers(*pairs) -> Headers:
    return Headers(list(pairs))


class McpBackend(Backend):
    kind = "mcp"

    def __init__(
        self,
        name: str,
        targets: list,
        *,
        registry: Registry,
        codec: SessionCodec,
        pool,
        metrics,
        stateless: bool = False,
        prefix_mode: str = "conditional",
        fail_open: bool = False,
        authz=None,
        rate_limits=(),
        passthrough_headers=(),
        rebinding=None,
        request_timeout: float | None = None,
    ):
        self.name = name
        self.label = name
        self.targets = targets
        self.by_name = {t.name: t for t in targets}
        self.registry = registry
        self.codec = codec
        self.pool = pool
        self.stateless = stateless
        self.prefix = prefix_mode == "always" or (prefix_mode == "conditional" and len(targets) > 1)
        # URIs and task ids name their target whenever there is a choice, whatever
        # prefixMode says of names (it is about names: agentgateway reads it so too)
        self.prefix_uris = prefix_mode == "always" or len(targets) > 1
        self.tasks = TaskRouting(self.prefix_uris, [t.name for t in targets])
        self.fail_open = fail_open
        self.authz = authz  # McpAuthz or None
        self.rate_limits = list(rate_limits)  # [(tool names or None, target or None, TokenBucket)]
        self.passthrough = tuple(h.lower() for h in passthrough_headers)
        self.rebinding = rebinding  # (allowed hosts, allowed origins) or None
        self.request_timeout = request_timeout
        self.init_timeout = 60.0 if request_timeout is None else request_timeout
        self.version = __version__
        self._shared_key = ("stateless", name, tuple(t.name for t in targets))
        if metrics is None:
            from ...telemetry.metrics import Metrics

            m = Metrics()
        else:
            m = metrics.m
        self.m_requests = m.counter(
            "agentgw_mcp_requests_total", "MCP requests handled by the gateway.", ("method", "target", "tool", "status")
        )
        self.m_duration = m.histogram(
            "agentgw_mcp_tool_call_duration_seconds", "Duration of MCP tools/call requests.", ("target", "tool")
        )
        self.m_errors = m.counter("agentgw_mcp_errors_total", "MCP target errors by type.", ("target", "type"))

    # -- names and URIs -------------------------------------------------------------------
    def prefix_name(self, target: str, name: str) -> str:
        return f"{target}_{name}" if self.prefix else name

    def prefix_uri(self, target: str, uri: str) -> str:
        """``uri`` of ``target`` as the client sees it: ``<target>+<uri>``, or for an MCP
        Apps ``ui://`` resource ``ui://<target>+<rest>`` (hosts recognize apps by scheme).
        Target names cannot hold ``+``, so the first one always ends the target."""
        if not self.prefix_uris:
            return uri
        if uri[:5].lower() == UI_SCHEME:
            return f"{UI_SCHEME}{target}+{uri[5:]}"
        return f"{target}+{uri}"

    def split_name(self, session: GatewaySession, name: str) -> tuple[str, str]:
        if not self.prefix:
            if len(self.targets) == 1:
                return self.targets[0].name, name
            t = session.tool_index.get(name)
            if t is None:
                raise RpcError(INVALID_PARAMS, f"unknown name {name!r}")
            return t, name
        best = None
        for t in self.by_name:
            if name.startswith(t + "_") and (best is None or len(t) > len(best)):
                best = t
        if best is None:
            raise RpcError(INVALID_PARAMS, f"unknown name {name!r}: expected <target>_<name>")
        return best, name[len(best) + 1 :]

    def split_uri(self, session: GatewaySession, uri: str) -> tuple[str, str]:
        if not self.prefix_uris:
            return self.targets[0].name, uri
        if uri[:5].lower() == UI_SCHEME:
            rest = uri[5:]
            end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
            t, sep, orig = rest[:end].partition("+")
            if sep and t in self.by_name:
                return t, UI_SCHEME + orig + rest[end:]
        elif uri.startswith(LEGACY_URI_PREFIX):
            t, sep, orig = uri[len(LEGACY_URI_PREFIX) :].partition("/")
            if sep and t in self.by_name:
                return t, orig
        else:
            t, sep, orig = uri.partition("+")
            if sep and t in self.by_name and orig[:5].lower() != UI_SCHEME:
                return t, orig
        raise RpcError(INVALID_PARAMS, f"unknown resource {uri!r}: expected <target>+<uri>")

    def count_error(self, target: str, kind: str) -> None:
        self.m_errors.inc((target, kind))

    # -- entry ----------------------------------------------------------------------------
    async def serve(self, ctx) -> None:
        req = ctx.req
        ctx.backend_name = self.name
        if self.rebinding is not None:
            bad = self._rebinding_check(ctx, req)
            if bad is not None:
                self._send(ctx, bad[0], {"error": {"type": "forbidden", "message": bad[1]}})
                return
        method = req.method
        path = ctx.path
        if method == "POST":
            if path.endswith("/message") or path.endswith("/messages"):
                await self._legacy_post(ctx)
            else:
                await self._post(ctx)
        elif method == "GET":
            if path.endswith("/sse"):
                await self._legacy_stream(ctx)
            else:
                await self._get_stream(ctx)
        elif method == "DELETE":
            await self._delete(ctx)
        else:
            self._send(
                ctx,
                405,
                {"error": {"type": "method_not_allowed", "message": f"{method} is not an MCP method"}},
                extra=(("allow", "GET, POST, DELETE"),),
            )

    def _rebinding_check(self, ctx, req):
        """Against DNS rebinding (the MCP spec: servers validate Origin). Configured:
        ``Host`` among the allowed hosts and ``Origin``, when sent, among the allowed
        origins or hosts. By default (unset): a browser request (one with ``Origin``)
        arriving from a loopback or private address, not through a trusted proxy, must
        come from an origin that cannot be rebound: ``localhost`` or an IP literal. A page
        whose DNS name an attacker points at this machine is refused."""
        hosts, origins = self.rebinding
        if hosts is None:
            origin = req.headers.get("origin")
            if origin is None or not _nearby(req.client_addr) or ctx.bind.trusts(req.client_addr):
                return None
            if _unbindable(_hostname(origin.lower().split("://", 1)[-1])):
                return None
            return 403, (
                f"origin {origin!r} is not allowed from a local or private address (DNS rebinding protection; "
                "list it in dnsRebindingProtection.allowedOrigins, or set dnsRebindingProtection: false)"
            )
        host = req.headers.get("host") or ""
        if _hostname(host) not in hosts:
            return 421, f"host {host!r} is not allowed (dnsRebindingProtection)"
        origin = req.headers.get("origin")
        if origin is not None:
            o = origin.lower().rstrip("/")
            if o not in origins and _hostname(o.split("://", 1)[-1]) not in hosts:
                return 403, f"origin {origin!r} is not allowed (dnsRebindingProtection)"
        return None

    def _send(self, ctx, status: int, doc, extra=(), session_id: str | None = None) -> None:
        h = _headers(("content-type", _JSON), *extra)
        if session_id:
            h.append(("mcp-session-id", session_id))
        ctx.finalize_headers(status, h)
        ctx.ex.send(status, h, dumps(doc) if doc is not None else b"")

    def _send_empty(self, ctx, status: int) -> None:
        h = Headers()
        ctx.finalize_headers(status, h)
        ctx.ex.send(status, h, b"")

    # -- sessions -------------------------------------------------------------------------
    def _client_headers(self, ctx) -> list:
        trace = ctx.attrs.get("trace_headers") or []  # W3C trace context when traced
        if not self.passthrough:
            return list(trace)
        out = [(k, v) for k, v in ctx.req.headers if k in self.passthrough and k != "traceparent"]
        if "authorization" in self.passthrough and not any(k == "authorization" for k, _ in out):
            token = ctx.attrs.get("jwt_token")  # backendAuth.passthrough: the token jwtAuth validated (and removed)
            if token is not None:
                out.append(("authorization", f"Bearer {token}"))
        return out + trace

    async def _session(self, ctx, sid: str | None, stdio: bool = True) -> GatewaySession | None:
        """The session for a request, resuming a sealed one; None → answer 404/400.
        ``stdio=False``: a resumed session starts no stdio process (it is to be deleted)."""
        if self.stateless:
            return await self._shared()
        if not sid:
            return None
        reg = self.registry
        s = reg.sessions.get(sid)
        if s is None:
            if reg.has_ended(sid):
                return None  # deleted or expired here: 404, not a resumption
            state = self.codec.open(sid)
            if state is None or state.get("k") != "s":
                return None
            s = GatewaySession(self, reg, sid, client=client_key(ctx))
            s.client_headers[:] = self._client_headers(ctx)
            reg.add(s)
            try:
                await s.resume(state, stdio=stdio)
            except BaseException:  # an error, or the client gone: nothing stays behind
                if reg.sessions.get(sid) is s:
                    reg.sessions.pop(sid, None)
                await asyncio.shield(s.close(delete=False))
                raise
        else:
            await s.ready.wait()
            if s.init_error is not None or s.closed:
                return None
        s.touch()
        hdrs = self._client_headers(ctx)
        if hdrs:
            s.client_headers[:] = hdrs
        return s

    async def _shared(self) -> GatewaySession:
        reg = self.registry
        s = reg.shared.get(self._shared_key)
        if s is not None and s.init_result is not None and not s.closed:
            return s
        if s is None or s.closed or (s.ready.is_set() and s.init_error is not None):
            s = GatewaySession(self, reg, None, stateless=True)
            reg.shared[self._shared_key] = s
            # its own task: a client leaving mid-initialize cancels its wait, not the
            # initialize that every other request waits on too
            s.init_task = t = asyncio.get_running_loop().create_task(self._init_shared(s))
            t.add_done_callback(_retrieve)
        task = s.init_task
        assert task is not None  # (a shared session starts with its initialize task)
        await asyncio.shield(task)  # raises the initialize's RpcError
        return s

    async def _init_shared(self, s: GatewaySession) -> None:
        try:
            await s.initialize(
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "agentgw", "version": __version__},
                }
            )
        except BaseException:
            reg = self.registry
            if reg.shared.get(self._shared_key) is s:
                reg.shared.pop(self._shared_key, None)
            await s.close()  # the targets that did start
            raise

    async def _new_session(self, ctx, params: dict) -> GatewaySession:
        reg = self.registry
        s = GatewaySession(self, reg, None, client=client_key(ctx))
        s.client_headers[:] = self._client_headers(ctx)
        try:
            await s.initialize(params if isinstance(params, dict) else {})
        except BaseException:  # an error, or the client gone mid-initialize
            await asyncio.shield(s.close(delete=True))
            raise
        state = s.state()
        state["k"] = "s"
        state["n"] = os.urandom(6).hex()
        s.id = self.codec.seal(state)
        s.touch()  # idle from now, however long its initialize took
        reg.add(s)
        return s

    # -- streamable HTTP: POST ------------------------------------------------------------
    async def _post(self, ctx) -> None:
        req = ctx.req
        body = await req.body.read_all()
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            self._send(ctx, 400, error(None, PARSE_ERROR, "invalid JSON"))
            return
        accept = (req.headers.get("accept") or "").lower()
        sse_ok = "text/event-stream" in accept or "*/*" in accept
        sid = req.headers.get("mcp-session-id")
        if isinstance(msg, list):
            await self._batch(ctx, msg, sid)
            return
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            self._send(ctx, 400, error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message"))
            return
        method = msg.get("method")
        if method == "initialize" and is_request(msg):
            await self._initialize(ctx, msg)
            return
        if method == "server/discover" and is_request(msg) and not sid:
            # 2026-07-28 per-request envelope: not served; clients fall back to initialize
            self._send(ctx, 200, error(msg["id"], METHOD_NOT_FOUND, "server/discover is not supported; use initialize"))
            return
        try:
            session = await self._session(ctx, sid)
        except RpcError as exc:
            status = 200 if is_request(msg) else _status(exc)
            self._send(ctx, status, error(msg.get("id"), exc.code, exc.message, exc.data))
            return
        if session is None:
            if sid:
                self._send(
                    ctx,
                    404,
                    error(msg.get("id"), INVALID_REQUEST, "session not found (expired or unknown): initialize again"),
                )
            else:
                self._send(ctx, 400, error(msg.get("id"), INVALID_REQUEST, "missing Mcp-Session-Id header"))
            return
        if not is_request(msg):
            await self._client_message(ctx, session, msg)
            self._send_empty(ctx, 202)
            return
        post = _PostAnswer(ctx, sse_ok and _prefers_sse(accept))
        call = ClientCall(msg["id"], post.emit if sse_ok else None)
        session.busy += 1
        session.inflight[request_key(msg["id"])] = call
        try:
            resp = await self.dispatch(ctx, session, msg, call)
        except asyncio.CancelledError:
            call.done = True
            await session.client_cancelled({"requestId": msg["id"], "reason": "client disconnected"})
            raise
        finally:
            session.busy -= 1
            session.inflight.pop(request_key(msg["id"]), None)
            session.touch()
        call.done = True
        post.finish(resp)

    async def _initialize(self, ctx, msg: dict) -> None:
        params = msg.get("params") or {}
        try:
            if self.stateless:
                s = await self._shared()
                assert s.init_result is not None  # (initialized, or _shared raised)
                res = dict(s.init_result)
                want = params.get("protocolVersion")
                from .jsonrpc import SUPPORTED_VERSIONS, version_rank

                if want in SUPPORTED_VERSIONS and version_rank(want) < version_rank(res["protocolVersion"]):
                    res["protocolVersion"] = want
                self.m_requests.inc(("initialize", "", "", "ok"))
                self._send(ctx, 200, result(msg["id"], res))
                return
            s = await self._new_session(ctx, params)
        except RpcError as exc:
            self.m_requests.inc(
                ("initialize", "", "", "too_many_sessions" if exc.code == TOO_MANY_SESSIONS else "error")
            )
            self._send(ctx, 200, error(msg["id"], exc.code, exc.message, exc.data))
            return
        self.m_requests.inc(("initialize", "", "", "ok"))
        self._send(ctx, 200, result(msg["id"], s.init_result), session_id=s.id)

    async def _client_message(self, ctx, session: GatewaySession, msg: dict) -> None:
        if is_response(msg):
            await session.client_response(msg)
            return
        method = msg.get("method")
        if method == "notifications/cancelled":
            await session.client_cancelled(msg.get("params") or {})
        elif method == "notifications/initialized":
            # each target got its own right after its initialize. From now on a target may
            # send requests and notifications that belong to no request on its GET stream:
            # open those streams now, not when the client opens its own (a message sent
            # in between would be lost); what arrives waits in the session for the client
            await session.open_streams()
        elif is_notification(msg) and isinstance(method, str):
            # roots/list_changed and the like: every target may care
            params = msg.get("params")
            await asyncio.gather(
                *(u.notify(method, params) for u in session.upstreams.values()), return_exceptions=True
            )

    async def _batch(self, ctx, msgs: list, sid) -> None:
        out = []
        for m in msgs:
            if not isinstance(m, dict):
                out.append(error(None, INVALID_REQUEST, "invalid message"))
                continue
            if m.get("method") == "initialize":
                out.append(error(m.get("id"), INVALID_REQUEST, "initialize cannot be batched"))
                continue
            try:
                session = await self._session(ctx, sid)
            except RpcError as exc:
                out.append(error(m.get("id"), exc.code, exc.message))
                continue
            if session is None:
                self._send(ctx, 404 if sid else 400, error(None, INVALID_REQUEST, "session not found"))
                return
            if is_request(m):
                out.append(await self.dispatch(ctx, session, m, ClientCall(m["id"])))
            else:
                await self._client_message(ctx, session, m)
        if out:
            self._send(ctx, 200, out)
        else:
            self._send_empty(ctx, 202)

    # -- streamable HTTP: GET / DELETE ----------------------------------------------------
    async def _get_stream(self, ctx) -> None:
        req = ctx.req
        if "text/event-stream" not in (req.headers.get("accept") or ""):
            # 406, as agentgateway answers (its mcp-tls README: `curl -k` gets Not Acceptable)
            self._send(
                ctx, 406, {"error": {"type": "not_acceptable", "message": "client must accept text/event-stream"}}
            )
            return
        if self.stateless:
            self._send(
                ctx,
                405,
                {"error": {"type": "method_not_allowed", "message": "stateless MCP has no server stream"}},
                extra=(("allow", "POST"),),
            )
            return
        try:
            session = await self._session(ctx, req.headers.get("mcp-session-id"))
        except RpcError as exc:
            status = _status(exc)
            kind = "too_many_sessions" if status == 429 else "upstream_error"
            self._send(ctx, status, {"error": {"type": kind, "message": exc.message}})
            return
        if session is None:
            self._send(
                ctx,
                404 if req.headers.get("mcp-session-id") else 400,
                {"error": {"type": "session_not_found", "message": "unknown or missing Mcp-Session-Id"}},
            )
            return
        await self._pump(ctx, session, b"")

    async def _pump(self, ctx, session: GatewaySession, first: bytes) -> None:
        ex = ctx.ex
        h = _headers(("content-type", "text/event-stream"), ("cache-control", "no-cache"))
        ctx.finalize_headers(200, h)
        ex.start(200, h)
        if first:
            ex.write(first)
        session.get_streams += 1
        idle = 0.0
        try:
            await session.open_streams()
            # wake up every second: a draining gateway (shutdown, port removed) ends its
            # streams so clients reconnect elsewhere instead of holding shutdown up
            while not session.closed and not ex.disconnected and not ex.draining:
                msgs = await session.next_messages(1.0)
                if msgs:
                    ex.write(b"".join(sse_event(m) for m in msgs))
                    idle = 0.0
                else:
                    idle += 1.0
                    if idle < 15.0:
                        continue
                    ex.write(b": ping\n\n")
                    idle = 0.0
                await ex.drain()
                session.touch()
        finally:
            session.get_streams -= 1
        ex.end()

    async def _delete(self, ctx) -> None:
        sid = ctx.req.headers.get("mcp-session-id")
        if self.stateless or not sid:
            self._send(
                ctx,
                405 if self.stateless else 400,
                {"error": {"type": "bad_request", "message": "no session to delete"}},
            )
            return
        if sid not in self.registry.sessions:
            try:
                s = await self._session(ctx, sid, stdio=False)
            except RpcError:
                s = None
            if s is None:
                self._send(ctx, 404, {"error": {"type": "session_not_found", "message": "unknown session"}})
                return
        await self.registry.remove(sid, delete=True)
        self.m_requests.inc(("session/delete", "", "", "ok"))
        self._send_empty(ctx, 200)

    # -- legacy HTTP+SSE ------------------------------------------------------------------
    async def _legacy_stream(self, ctx) -> None:
        reg = self.registry
        sid = os.urandom(16).hex()
        s = GatewaySession(self, reg, sid, client=client_key(ctx))
        s.legacy = True
        s.client_headers[:] = self._client_headers(ctx)
        reg.add(s)
        base = ctx.req.path.rsplit("/", 1)[0]
        endpoint = f"{base}/message?sessionId={sid}"
        try:
            await self._pump(ctx, s, b"event: endpoint\ndata: " + endpoint.encode() + b"\n\n")
        finally:
            await reg.remove(sid, delete=True)

    async def _legacy_post(self, ctx) -> None:
        from urllib.parse import parse_qs

        sid = (parse_qs(ctx.query).get("sessionId") or [""])[0]
        s = self.registry.sessions.get(sid)
        if s is None or not s.legacy:
            self._send(ctx, 404, {"error": {"type": "session_not_found", "message": "unknown sessionId"}})
            return
        body = await ctx.req.body.read_all()
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            self._send(ctx, 400, error(None, PARSE_ERROR, "invalid JSON"))
            return
        s.touch()
        self._send_empty(ctx, 202)
        msgs = msg if isinstance(msg, list) else [msg]
        for m in msgs:
            if isinstance(m, dict):
                asyncio.get_running_loop().create_task(self._legacy_one(ctx, s, m))

    async def _legacy_one(self, ctx, s: GatewaySession, m: dict) -> None:
        try:
            if m.get("method") == "initialize" and is_request(m):
                try:
                    res = await s.initialize(m.get("params") or {})
                    s.push(result(m["id"], res))
                except RpcError as exc:
                    s.push(error(m["id"], exc.code, exc.message, exc.data))
                return
            if m.get("method") == "server/discover" and is_request(m) and not s.initializing:
                # as on streamable HTTP: a probe before initialize is refused at once, so an
                # SDK client in "auto" mode falls back to initialize instead of timing out
                s.push(error(m["id"], METHOD_NOT_FOUND, "server/discover is not supported; use initialize"))
                return
            await s.ready.wait()
            if not is_request(m):
                await self._client_message(ctx, s, m)
                return

            def emit(x) -> bool:
                s.push(x)
                return True

            call = ClientCall(m["id"], emit)
            s.busy += 1
            s.inflight[request_key(m["id"])] = call
            try:
                s.push(await self.dispatch(ctx, s, m, call))
            finally:
                s.busy -= 1
                s.inflight.pop(request_key(m["id"]), None)
        except Exception:  # never let a background task die silently
            log.exception("MCP legacy message handling failed")

    # -- dispatch -------------------------------------------------------------------------
    async def dispatch(self, ctx, session: GatewaySession, msg: dict, call: ClientCall) -> dict:
        """Answer one client request (always a JSON-RPC response, never an exception)."""
        id_ = msg["id"]
        method = msg.get("method")
        if not isinstance(method, str):
            return error(id_, INVALID_REQUEST, "method must be a string")
        params = msg.get("params")
        if params is not None and not isinstance(params, dict):
            return error(id_, INVALID_PARAMS, "params must be an object")
        params = params or {}
        try:
            if method in LIST_METHODS:
                return result(id_, await self._list(ctx, session, method, params, call))
            if method == "tools/call":
                return result(id_, await self._call_tool(ctx, session, params, call))
            if method == "prompts/get":
                target, name = self.split_name(session, str(params.get("name", "")))
                self._authorize(ctx, "prompts/get", target, name, kind="prompt")
                return result(id_, await self._forward(session, target, method, dict(params, name=name), call, name))
            if method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
                target, uri = self.split_uri(session, str(params.get("uri", "")))
                self._authorize(ctx, method, target, uri, kind="resource")
                return result(id_, await self._resource(session, target, method, dict(params, uri=uri), call))
            if method == "completion/complete":
                ref = dict(params.get("ref") or {})
                if ref.get("type") == "ref/prompt":
                    target, ref["name"] = self.split_name(session, str(ref.get("name", "")))
                else:
                    target, ref["uri"] = self.split_uri(session, str(ref.get("uri", "")))
                return result(id_, await self._forward(session, target, method, dict(params, ref=ref), call, ""))
            if method == "ping":
                return result(id_, {})
            if method == "logging/setLevel":
                await asyncio.gather(
                    *(u.request(method, params, None, self.request_timeout) for u in session.upstreams.values()),
                    return_exceptions=True,
                )
                self.m_requests.inc((method, "", "", "ok"))
                return result(id_, {})
            if method in TASK_METHODS:
                target, tid = self.tasks.route(str(params.get("taskId", "")))
                res = await self._forward(session, target, method, dict(params, taskId=tid), call, "")
                return result(id_, self.tasks.result(target, res))
            if method == "tasks/list":
                return result(id_, await self.tasks.list(session, params, call, self.request_timeout))
            if len(session.upstreams) == 1:
                (target,) = session.upstreams
                return result(id_, await self._forward(session, target, method, params, call, ""))
            raise RpcError(METHOD_NOT_FOUND, f"method {method!r} is not supported by the MCP gateway")
        except RpcError as exc:
            return error(id_, exc.code, exc.message, exc.data)

    def _upstream(self, session: GatewaySession, target: str):
        u = session.upstreams.get(target)
        if u is None:
            why = session.failed.get(target)
            raise RpcError(INTERNAL_ERROR, f"target {target!r} is unavailable" + (f": {why}" if why else ""))
        return u

    async def _forward(self, session, target: str, method: str, params, call, tool: str):
        u = self._upstream(session, target)
        try:
            res = await u.request(method, params, call, self.request_timeout)
        except RpcError as exc:
            from .upstream import UpstreamGone

            if isinstance(exc, UpstreamGone):
                self.count_error(target, "expired" if exc.expired else "unavailable")
            self.m_requests.inc((method, target, tool, "error"))
            raise
        self.m_requests.inc((method, target, tool, "ok"))
        return res

    async def _resource(self, session, target, method, params, call):
        res = await self._forward(session, target, method, params, call, "")
        if method == "resources/read" and isinstance(res, dict) and self.prefix:
            res = dict(
                res,
                contents=[
                    dict(c, uri=self.prefix_uri(target, c["uri"])) if isinstance(c, dict) and "uri" in c else c
                    for c in res.get("contents") or []
                ],
            )
        return res

    async def _call_tool(self, ctx, session, params: dict, call: ClientCall):
        name = str(params.get("name", ""))
        target, tool = self.split_name(session, name)
        try:
            self._authorize(ctx, "tools/call", target, tool, kind="tool")
        except RpcError:
            self.m_requests.inc(("tools/call", target, tool, "denied"))
            raise
        for tools, tgt, bucket in self.rate_limits:
            if (tools is None or tool in tools or name in tools) and (tgt is None or tgt == target):
                if not bucket.try_take():
                    self.m_requests.inc(("tools/call", target, tool, "rate_limited"))
                    raise RpcError(
                        RATE_LIMITED,
                        f"rate limit exceeded for tool {name!r}; retry in {bucket.reset_in():.0f}s",
                        {"retryAfterSeconds": round(bucket.reset_in(), 3)},
                    )
        hook = ctx.attrs.get("mcp_rate_limit")  # globalRateLimit descriptors on mcp.*
        if hook is not None:
            why = await hook(ctx, target, tool)
            if why is not None:
                self.m_requests.inc(("tools/call", target, tool, "rate_limited"))
                raise RpcError(RATE_LIMITED, why)
        ctx.attrs["mcp.call"] = (target, tool)  # for tracing and the access log
        ctx.attrs.setdefault("mcp", {"method": "tools/call", "tool": {"name": tool, "target": target}})
        t0 = time.perf_counter()
        try:
            res = await self._forward(session, target, "tools/call", dict(params, name=tool), call, tool)
            return self.tasks.result(target, res) if "task" in params else res
        finally:
            self.m_duration.observe((target, tool), time.perf_counter() - t0)

    def _authorize(self, ctx, method: str, target: str, name: str, kind: str) -> None:
        az = self.authz
        if az is None:
            return
        spec = self.by_name.get(target)
        if not az.allows(ctx, method, target, name, kind, spec.authz if spec else None):
            raise RpcError(FORBIDDEN, f"not authorized: {kind} {name!r} on target {target!r}")

    async def _list(self, ctx, session: GatewaySession, method: str, params: dict, call: ClientCall) -> dict:
        key, field = LIST_METHODS[method]
        if params.get("cursor"):
            # everything is returned on the first page; a cursor means the client is
            # replaying one we never issued
            return {key: []}

        async def all_pages(name, u):
            items: list = []
            cursor = None
            for _ in range(MAX_PAGES):
                p = {"cursor": cursor} if cursor else None
                res = await u.request(method, p, call, self.request_timeout)
                items.extend((res or {}).get(key) or [])
                cursor = (res or {}).get("nextCursor")
                if not cursor:
                    break
            return items

        names = list(session.upstreams)
        results = await asyncio.gather(*(all_pages(n, session.upstreams[n]) for n in names), return_exceptions=True)
        out = []
        kind = {"tools": "tool", "prompts": "prompt"}.get(key, "resource")
        for name, res in zip(names, results):
            if isinstance(res, BaseException):
                if isinstance(res, RpcError) and res.code == METHOD_NOT_FOUND:
                    continue  # the target has no such capability
                if not isinstance(res, (RpcError, OSError)):
                    raise res
                self.count_error(name, "list")
                self.m_requests.inc((method, name, "", "error"))
                if not self.fail_open:
                    raise RpcError(INTERNAL_ERROR, f"target {name!r} failed {method}: {getattr(res, 'message', res)}")
                log.warning("MCP target %s failed %s (failOpen): %s", name, method, getattr(res, "message", res))
                continue
            self.m_requests.inc((method, name, "", "ok"))
            spec = self.by_name.get(name)
            for item in res:
                if not isinstance(item, dict) or field not in item:
                    continue
                orig = item[field]
                if self.authz is not None and not self.authz.allows(
                    ctx, method, name, orig, kind, spec.authz if spec else None
                ):
                    continue
                if field == "name":
                    session.tool_index[orig] = name
                    item = dict(item, name=self.prefix_name(name, orig))
                    if key == "tools" and isinstance(item.get("_meta"), dict):
                        item = self._ui_meta(ctx, session, name, spec, item)
                else:
                    item = dict(item, **{field: self.prefix_uri(name, orig)})
                out.append(item)
        return {key: out}

    def _ui_meta(self, ctx, session: GatewaySession, target: str, spec, tool: dict) -> dict:
        """MCP Apps: a tool's UI resource (``_meta.ui.resourceUri``, and the older flat
        ``_meta["ui/resourceUri"]``) named as the client must read it, and left out when
        reading it would be refused, so no host is offered a UI it cannot load."""
        meta = dict(tool["_meta"])
        ui = meta.get("ui")
        changed = False
        for holder, k in ((ui if isinstance(ui, dict) else None, "resourceUri"), (meta, "ui/resourceUri")):
            if holder is None or not isinstance(holder.get(k), str):
                continue
            uri = holder[k]
            if holder is ui:
                ui = holder = dict(ui)
                meta["ui"] = ui
            changed = True
            if self.authz is not None and not self.authz.allows(
                ctx, "resources/read", target, uri, "resource", spec.authz if spec else None
            ):
                del holder[k]
                continue
            holder[k] = self.prefix_uri(target, uri)
        if not changed:
            return tool
        if isinstance(ui, dict) and not ui:
            del meta["ui"]
        return dict(tool, _meta=meta) if meta else {k: v for k, v in tool.items() if k != "_meta"}


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _retrieve(t: asyncio.Task) -> None:
    """Mark a background task's exception as seen (its waiters may all have left)."""
    if not t.cancelled():
        t.exception()


def _status(exc: RpcError) -> int:
    """HTTP status for an error that is not the answer to a JSON-RPC request."""
    return 429 if exc.code == TOO_MANY_SESSIONS else 502


def _nearby(addr: str) -> bool:
    """A loopback, private or link-local peer: where a rebound browser page connects from."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_private or ip.is_link_local


def _unbindable(host: str) -> bool:
    """An origin host no DNS answer can move: localhost or an IP literal."""
    if host in LOCAL_HOSTS:
        return True
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=64)  # a client sends the same Accept on every POST: parsed once
def _prefers_sse(accept: str) -> bool:
    """Does the client rank ``text/event-stream`` above ``application/json``?

    Answers are JSON unless something has to be streamed; a client that asks for SSE
    first (a higher q, or the same q and listed first, or JSON not listed at all) gets
    its answer as a one-event stream, as a server that always streams (the TypeScript
    SDK's) gives it. SDK clients send ``application/json, text/event-stream`` and still
    get JSON; the conformance suite's SEP-1699 check sends ``text/event-stream,
    application/json`` and reads each concurrent POST's stream."""
    ranks: dict[str, tuple[float, int]] = {}
    for i, part in enumerate(accept.split(",")):
        mtype, *params = (x.strip() for x in part.split(";"))
        mtype = mtype.lower()
        if mtype not in ("text/event-stream", "application/json") or mtype in ranks:
            continue
        q = 1.0
        for p in params:
            k, _, v = p.partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        ranks[mtype] = (q, -i)
    sse = ranks.get("text/event-stream")
    if sse is None or sse[0] <= 0:
        return False
    js = ranks.get("application/json")
    return js is None or js[0] <= 0 or sse > js


def _hostname(hostport: str) -> str:
    h = hostport.strip().lower()
    if h.startswith("["):
        return h[: h.find("]") + 1]
    return h.rsplit(":", 1)[0] if ":" in h else h


class _PostAnswer:
    """The response side of one POST: JSON, or SSE once an interim message has to go out.

    Its ``emit`` is the call's interim channel (``ClientCall.emit_fn``); it does not hold
    the call back (the session checks ``call.done`` before emitting), so no cycle keeps
    the exchange from being freed by reference counting."""

    __slots__ = ("ctx", "streaming", "sse")

    def __init__(self, ctx, sse: bool = False):
        self.ctx = ctx
        self.streaming = False
        self.sse = sse  # the client prefers text/event-stream: the answer is SSE in any case

    def emit(self, msg) -> bool:
        ex = self.ctx.ex
        if ex.disconnected or ex.finished:
            return False
        if not self.streaming:
            self.streaming = True
            h = _headers(("content-type", "text/event-stream"), ("cache-control", "no-cache"))
            self.ctx.finalize_headers(200, h)
            ex.start(200, h)
        ex.write(sse_event(msg))
        return True

    def finish(self, resp: dict) -> None:
        ctx = self.ctx
        ex = ctx.ex
        if self.sse and not self.streaming and self.emit(resp):
            ex.end()
            return
        if self.streaming:
            ex.write(sse_event(resp))
            ex.end()
            return
        h = _headers(("content-type", _JSON))
        ctx.finalize_headers(200, h)
        ex.send(200, h, dumps(resp))
