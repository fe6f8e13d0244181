"""Gateway-side MCP sessions: one per client, holding one upstream session per target.

A :class:`GatewaySession` fans ``initialize`` out, keeps the per-target upstreams, maps
server→client request ids to ids of its own (so two targets can't collide and answers
route back), and queues what has nowhere else to go for the client's GET stream.
The :class:`Registry` is process-wide (it outlives config reloads, so a reload does not
drop sessions or restart stdio servers) and closes sessions idle past the TTL.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import OrderedDict, deque

from .jsonrpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    RpcError,
    is_request,
    version_rank,
)
from .limits import ProcessGate, reserve
from .upstream import HttpUpstream, SseUpstream, StdioUpstream, Upstream

log = logging.getLogger("agentgw.mcp")

GET_QUEUE_MAX = 1000


class ClientCall:
    """One client request in flight: where its interim messages go, what it was sent as."""

    __slots__ = ("id", "emit_fn", "sent", "done")

    def __init__(self, id_, emit_fn=None):
        self.id = id_
        self.emit_fn = emit_fn  # emit(msg) -> bool (False: could not deliver)
        self.sent: list[tuple[Upstream, int]] = []
        self.done = False


class GatewaySession:
    def __init__(
        self, runtime, registry: Registry, sid: str | None = None, stateless: bool = False, client: tuple | None = None
    ):
        self.runtime = runtime  # the McpBackend that created it (its targets, settings)
        self.registry = registry
        self.id = sid
        self.stateless = stateless
        self.client = client  # who its stdio processes count against (limits.client_key)
        self.upstreams: dict[str, Upstream] = {}
        self.failed: dict[str, str] = {}
        self.client_version = LATEST_VERSION
        self.client_caps: dict = {}
        self.client_info: dict = {"name": "agentgw", "version": "0"}
        self.version = LATEST_VERSION  # negotiated with the client
        self.last_used = time.monotonic()
        self.busy = 0
        self.closed = False
        self.ready = asyncio.Event()
        self.init_error: RpcError | None = None
        self.init_result: dict | None = None
        self.inflight: dict = {}  # client request id -> ClientCall
        self.server_requests: dict[str, tuple[Upstream, object]] = {}
        self._srv_seq = 0
        self.get_queue: deque = deque()
        self.get_waiter: asyncio.Future | None = None
        self.get_streams = 0
        self.tool_index: dict[str, str] = {}  # unprefixed tool/prompt name -> target (prefix "never")
        self.client_headers: list[tuple[str, str]] = []
        self.legacy = False
        self.initializing = False
        self.init_task: asyncio.Task | None = None  # stateless: the shared session's initialize

    # -- lifecycle ----------------------------------------------------------------------
    def touch(self) -> None:
        self.last_used = time.monotonic()

    def _make(self, spec, slots: dict) -> Upstream:
        pool = self.runtime.pool
        u: Upstream
        if spec.kind == "mcp":
            u = HttpUpstream(spec, self.on_upstream_message, pool)
        elif spec.kind == "sse":
            u = SseUpstream(spec, self.on_upstream_message, pool)
        elif spec.kind == "stdio":
            u = StdioUpstream(spec, self.on_upstream_message, slots.pop(spec.name, None))
        else:
            from .openapi import OpenApiUpstream

            u = OpenApiUpstream(spec, self.on_upstream_message, pool)
        u.client_headers = self.client_headers
        return u

    def _init_params(self, version: str) -> dict:
        return {"protocolVersion": version, "capabilities": self.client_caps, "clientInfo": self.client_info}

    async def initialize(self, params: dict) -> dict:
        """Fan ``initialize`` out to every target; merge what they answer.

        The stdio targets' process slots are taken first, all or none: at a cap the
        client gets the error and no process starts."""
        slots: dict = {}
        if self.initializing:  # a second initialize (legacy SSE): would orphan the first's processes
            raise RpcError(INVALID_REQUEST, "initialize was already sent on this MCP session")
        self.initializing = True
        try:
            if self.closed:
                raise RpcError(INTERNAL_ERROR, "the MCP session was closed")
            requested = params.get("protocolVersion") or LATEST_VERSION
            self.client_version = requested
            self.client_caps = params.get("capabilities") or {}
            self.client_info = params.get("clientInfo") or self.client_info
            version = requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION
            rt = self.runtime
            timeout = rt.init_timeout
            slots = reserve(rt.targets, self.client)

            async def one(spec):
                if self.closed:  # closed (client gone) before this target's turn
                    return spec.name, "the MCP session was closed"
                u = self._make(spec, slots)
                self.upstreams[spec.name] = u
                try:
                    await u.initialize(self._init_params(version), timeout)
                    return spec.name, None
                except (TimeoutError, RpcError, OSError) as exc:
                    msg = exc.message if isinstance(exc, RpcError) else str(exc) or exc.__class__.__name__
                    return spec.name, msg

            results = await asyncio.gather(*(one(s) for s in rt.targets))
            for name, err in results:
                if err is not None:
                    self.failed[name] = err
                    rt.count_error(name, "initialize")
                    u = self.upstreams.pop(name, None)
                    if u is not None:
                        await u.close()
            if self.failed and (not rt.fail_open or not self.upstreams):
                detail = "; ".join(f"{k}: {v}" for k, v in self.failed.items())
                raise RpcError(INTERNAL_ERROR, f"failed to initialize MCP targets: {detail}")
            for name, err in self.failed.items():
                log.warning("MCP target %s unavailable (failOpen): %s", name, err)
            self.version = min(
                [version, *(u.version for u in self.upstreams.values() if u.version in SUPPORTED_VERSIONS)],
                key=version_rank,
            )
            self.init_result = self._merged_init()
            return self.init_result
        except RpcError as exc:
            self.init_error = exc
            raise
        finally:
            for slot in slots.values():  # targets whose turn never came
                slot.release()
            self.ready.set()

    def _merged_init(self) -> dict:
        """The ``initialize`` result the client sees. One target: its capabilities as it
        declared them (``tasks``, ``experimental`` and ones newer than this gateway
        included), since every method it serves is forwarded. Several: the union of the
        capabilities the gateway can fan out or route (tools, prompts, resources, logging,
        completions, tasks: see tasks.py); the rest name methods no single target could
        answer for all."""
        caps: dict = {}
        instructions = []
        single = len(self.upstreams) == 1 and len(self.runtime.targets) == 1
        for name, u in self.upstreams.items():
            res = u.init_result or {}
            declared = res.get("capabilities")
            if single and isinstance(declared, dict):
                caps = copy.deepcopy(declared)
                declared = None
            for k, v in (declared or {}).items():
                if k in ("tools", "prompts", "resources"):
                    cur = caps.setdefault(k, {})
                    if isinstance(v, dict):
                        for kk, vv in v.items():
                            if vv:
                                cur[kk] = True
                elif k in ("logging", "completions"):
                    caps[k] = {}
                elif k == "tasks" and isinstance(v, dict):
                    # task ids are routed per target (backend.py): the union of what they offer
                    caps[k] = _union(caps.get(k) or {}, v)
            if res.get("instructions"):
                instructions.append(
                    f"[{name}] {res['instructions']}" if len(self.upstreams) > 1 else res["instructions"]
                )
        # list changes of the merged view happen whenever any target's do; the gateway
        # itself can always say "tools" (possibly empty)
        caps.setdefault("tools", {})
        out = {
            "protocolVersion": self.version,
            "capabilities": caps,
            "serverInfo": {"name": "agentgw", "version": self.runtime.version},
        }
        if instructions:
            out["instructions"] = "\n\n".join(instructions)
        return out

    def state(self) -> dict:
        """What goes into the session id: enough to resume on another replica."""
        t = {}
        for name, u in self.upstreams.items():
            t[name] = [u.session_id if u.resumable else None, u.version]
        return {
            "v": self.version,
            "c": self.client_caps,
            "i": self.client_info,
            "t": t,
            "f": sorted(self.failed),
        }

    async def resume(self, state: dict, stdio: bool = True) -> None:
        """Rebuild a session sealed by another process (or before a restart).

        A stdio target gets a new process (under the caps, as for ``initialize``);
        ``stdio=False`` leaves them out (a session resumed only to be deleted)."""
        slots: dict = {}
        try:
            self.version = state.get("v") or LATEST_VERSION
            self.client_caps = state.get("c") or {}
            self.client_info = state.get("i") or self.client_info
            saved = state.get("t") or {}
            rt = self.runtime
            skipped = set(state.get("f", ())) - set(saved)  # down when it started (failOpen)
            specs = [s for s in rt.targets if stdio or s.kind != "stdio"]
            slots = reserve([s for s in specs if s.name not in skipped], self.client)

            async def one(spec):
                if self.closed:
                    return
                u = self._make(spec, slots)
                entry = saved.get(spec.name)
                if entry is not None and u.resumable and entry[0]:
                    u.session_id, u.version = entry[0], entry[1]
                    self.upstreams[spec.name] = u
                    return
                if entry is None and spec.name in state.get("f", ()):
                    return  # was down when the session started (failOpen): stays out
                self.upstreams[spec.name] = u
                try:
                    ver = (entry[1] if entry else None) or self.version
                    await u.initialize(self._init_params(ver), rt.init_timeout)
                except (RpcError, OSError) as exc:
                    self.upstreams.pop(spec.name, None)
                    await u.close()
                    self.failed[spec.name] = getattr(exc, "message", str(exc))

            await asyncio.gather(*(one(s) for s in specs))
            if self.failed and not rt.fail_open:
                detail = "; ".join(f"{k}: {v}" for k, v in self.failed.items())
                raise RpcError(INTERNAL_ERROR, f"failed to resume MCP targets: {detail}")
        except RpcError as exc:
            self.init_error = exc
            raise
        finally:
            for slot in slots.values():
                slot.release()
            self.ready.set()

    async def close(self, delete: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        ups, self.upstreams = list(self.upstreams.values()), {}
        await asyncio.gather(*(u.close(delete) for u in ups), return_exceptions=True)
        w = self.get_waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- server → client ----------------------------------------------------------------
    def on_upstream_message(self, upstream: Upstream, msg: dict, related) -> None:
        rt = self.runtime
        method = msg.get("method", "")
        if is_request(msg):
            self._srv_seq += 1
            gid = f"agw-{self._srv_seq}"
            self.server_requests[gid] = (upstream, msg["id"])
            msg = dict(msg, id=gid)
        elif method == "notifications/cancelled":
            params = msg.get("params") or {}
            rid = params.get("requestId")
            for gid, (u, orig) in self.server_requests.items():
                if u is upstream and orig == rid:
                    msg = dict(msg, params=dict(params, requestId=gid))
                    self.server_requests.pop(gid, None)
                    break
            else:
                return  # cancels nothing the client knows about
        elif method == "notifications/resources/updated":
            params = msg.get("params") or {}
            if "uri" in params:
                msg = dict(msg, params=dict(params, uri=rt.prefix_uri(upstream.name, params["uri"])))
        elif method == "notifications/tools/list_changed":
            self.tool_index.clear()
        if method:
            msg = rt.tasks.outgoing(upstream.name, msg)
        if related is not None and not related.done and related.emit_fn is not None:
            if related.emit_fn(msg):
                return
        self.push(msg)

    def push(self, msg) -> None:
        q = self.get_queue
        if len(q) >= GET_QUEUE_MAX:
            q.popleft()
        q.append(msg)
        w = self.get_waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def next_messages(self, timeout: float) -> list:
        if not self.get_queue and not self.closed:
            loop = asyncio.get_running_loop()
            self.get_waiter = loop.create_future()
            try:
                await asyncio.wait_for(self.get_waiter, timeout)
            except TimeoutError:
                pass
            finally:
                self.get_waiter = None
        out = list(self.get_queue)
        self.get_queue.clear()
        return out

    async def open_streams(self) -> None:
        """Open every target's GET stream; returns when they are open (see open_stream)."""
        ups = list(self.upstreams.values())
        if len(ups) == 1:
            await ups[0].open_stream()
        elif ups:
            await asyncio.gather(*(u.open_stream() for u in ups))

    async def client_response(self, msg: dict) -> None:
        """The client answered a server→client request: send it to the target that asked."""
        entry = self.server_requests.pop(str(msg.get("id")), None)
        if entry is None:
            return
        upstream, orig = entry
        out = {"jsonrpc": "2.0", "id": orig}
        if "error" in msg:
            out["error"] = msg["error"]
        else:
            out["result"] = msg.get("result")
        try:
            await upstream.respond(out)
        except RpcError as exc:
            log.info("could not relay an answer to target %s: %s", upstream.name, exc.message)

    async def client_cancelled(self, params: dict) -> None:
        call = self.inflight.get(request_key(params.get("requestId")))
        if call is None:
            return
        for upstream, rid in call.sent:
            try:
                await upstream.notify(
                    "notifications/cancelled", {"requestId": rid, "reason": params.get("reason", "cancelled by client")}
                )
            except RpcError:
                pass


def request_key(id_):
    """A JSON-RPC request id as a dict key: ``1`` and ``1.0`` are the same request."""
    return id_ if not isinstance(id_, float) else int(id_)


ENDED_FOR = 24 * 3600.0
ENDED_MAX = 100_000


class Registry:
    """All live sessions of this process, with an idle sweeper."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self.loop = loop
        self.codecs: dict = {}
        self.sessions: dict[str, GatewaySession] = {}
        self.shared: dict = {}  # stateless mode: one upstream set per backend
        self.ttl = 1800.0
        self._sweeper: asyncio.TimerHandle | None = None
        self.gates: dict = {}  # stdio target key -> ProcessGate
        # ids of sessions that ended here (DELETE, or idle expiry without a shared key):
        # answered 404 from then on, as the spec says, instead of being resumed
        self.ended: OrderedDict[str, float] = OrderedDict()

    def gate(self, key, name: str, gauge=None) -> ProcessGate:
        """The process gate of a stdio target, one per ``key`` for the life of the process
        (a config reload keeps the counts of the processes that are running)."""
        g = self.gates.get(key)
        if g is None:
            g = self.gates[key] = ProcessGate(name, gauge)
        return g

    def add(self, s: GatewaySession) -> None:
        assert s.id is not None  # (a stateless session is never registered)
        self.sessions[s.id] = s
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = loop.call_later(min(5.0, self.ttl), self._sweep, loop)

    def codec(self, key_hex: str | None):
        """One codec per key for the life of the process (a random key survives reloads)."""
        from .token import SessionCodec

        c = self.codecs.get(key_hex)
        if c is None:
            c = self.codecs[key_hex] = SessionCodec(key_hex)
        return c

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = None
        cutoff = time.monotonic() - self.ttl
        for sid, s in list(self.sessions.items()):
            if s.closed:
                self.sessions.pop(sid, None)
            elif s.last_used < cutoff and not s.busy and not s.get_streams:
                self.sessions.pop(sid, None)
                if s.runtime.codec.shared:
                    # another replica may be serving it: closed here only, resumable
                    log.info("MCP session idle for %gs: closing its connections here", self.ttl)
                    loop.create_task(s.close(delete=False))
                else:
                    # no other process can open it: the session has expired
                    log.info("MCP session idle for %gs: expired", self.ttl)
                    self.end(sid)
                    loop.create_task(s.close(delete=True))
        if self.sessions:
            self._sweeper = loop.call_later(min(5.0, self.ttl), self._sweep, loop)

    def end(self, sid: str) -> None:
        """Remember that ``sid`` ended (for a day, the last 100,000 ids)."""
        self.ended[sid] = time.monotonic() + ENDED_FOR
        self.ended.move_to_end(sid)
        while len(self.ended) > ENDED_MAX:
            self.ended.popitem(last=False)

    def has_ended(self, sid: str) -> bool:
        t = self.ended.get(sid)
        if t is None:
            return False
        if t < time.monotonic():
            del self.ended[sid]
            return False
        return True

    async def remove(self, sid: str, delete: bool) -> bool:
        if delete:
            self.end(sid)
        s = self.sessions.pop(sid, None)
        if s is None:
            return False
        await s.close(delete=delete)
        return True

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        sessions = list(self.sessions.values()) + list(self.shared.values())
        self.sessions.clear()
        self.shared.clear()
        await asyncio.gather(*(s.close(delete=False) for s in sessions), return_exceptions=True)


def _union(a: dict, b: dict) -> dict:
    """Two capability objects merged: a key either side declares is declared."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _union(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
