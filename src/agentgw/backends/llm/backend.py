"""The ``ai`` backend: one OpenAI- and Anthropic-compatible front door for many providers.

Per request: find which client API is being called (from the path), read the JSON body,
resolve the model (aliases, the model table of the ``llm:`` shorthand or the provider
list of an ``ai`` backend), run request guards, apply prompts/defaults/overrides, then
try the candidate providers in order — failing over on connect errors, timeouts, 429 and
5xx while nothing has been sent to the client — and answer in the client's API shape.

When the provider speaks the client's API natively (OpenAI→OpenAI, Anthropic→Anthropic)
the body goes out as received unless something had to change, and the answer comes back
as received; the only work is one JSON parse each way for the model and the usage.
Otherwise the request goes through the IR (see ``ir.py``) and the answer, streamed or
not, is translated event by event.
"""

from __future__ import annotations

import logging
import random
import time
from functools import partial
from typing import Any

import orjson

from ...engine.client import StaleConnection
from ...engine.http import GatewayError, Headers, encode_headers
from ...proxy.backend import Backend
from . import anthropic as anth
from . import responses as resp_api
from . import tokens
from .base import Upstream
from .guards import Rejected, collect_texts
from .ir import TranslationError, Usage
from .openai import StreamError
from .sse import DONE, SSEParser, encode

log = logging.getLogger("agentgw.llm")

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
OP_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

DEFAULT_HEAD_TIMEOUT = 600.0
MAX_RESPONSE = 64 << 20

_SUFFIXES = (
    ("/chat/completions", "completions"),
    ("/messages/count_tokens", "count_tokens"),
    ("/messages", "messages"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/models", "models"),
)
_JSON_HEAD = b"content-type: application/json\r\n"  # an encoded header block (Exchange.send)
_FAST_APIS = frozenset(("completions", "messages", "responses", "embeddings"))
_OPERATION = {"completions": "chat", "messages": "chat", "responses": "chat", "embeddings": "embeddings"}


class ProviderError(Exception):
    native = False  # its body is already in the client's API shape (see _native_error_ok)

    def __init__(self, status: int, message: str, body: bytes = b"", headers=None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body
        self.headers = headers or []
        self.retryable = retryable


class Candidate:
    """One provider a request may go to, with its per-model settings."""

    __slots__ = ("provider", "model", "strip_prefix", "defaults", "overrides", "req_headers", "resp_headers", "weight")

    def __init__(
        self,
        provider,
        model=None,
        strip_prefix="",
        defaults=None,
        overrides=None,
        req_headers=None,
        resp_headers=None,
        weight=1,
    ):
        self.provider = provider
        self.model = model
        self.strip_prefix = strip_prefix
        self.defaults = defaults
        self.overrides = overrides
        self.req_headers = req_headers
        self.resp_headers = resp_headers
        self.weight = weight

    def model_for(self, requested: str | None) -> str:
        if self.model:
            return self.model
        m = requested or ""
        if self.strip_prefix and m.startswith(self.strip_prefix):
            return m[len(self.strip_prefix) :]
        return m


class ModelEntry:
    __slots__ = ("name", "candidate", "guards_req", "guards_resp", "header_matches")

    def __init__(self, name: str, candidate: Candidate, guards_req=(), guards_resp=(), header_matches=()):
        self.name = name
        self.candidate = candidate
        self.guards_req = list(guards_req)
        self.guards_resp = list(guards_resp)
        self.header_matches = header_matches  # list of [(name, exact, regex)] (any of them)

    def matches(self, model: str) -> bool:
        n = self.name
        if n == "*":
            return True
        if n.startswith("*"):
            return model.endswith(n[1:])
        if n.endswith("*"):
            return model.startswith(n[:-1])
        return model == n

    def headers_match(self, headers) -> bool:
        if not self.header_matches:
            return True
        for group in self.header_matches:
            ok = True
            for name, exact, rx in group:
                v = headers.get(name)
                if v is None or (exact is not None and v != exact) or (rx is not None and not rx.fullmatch(v)):
                    ok = False
                    break
            if ok:
                return True
        return False


class AiPolicy:
    """The compiled ``ai`` policy (route or backend level)."""

    def __init__(
        self,
        *,
        request_guards=(),
        response_guards=(),
        defaults=None,
        overrides=None,
        prepend=(),
        append=(),
        aliases=None,
        routes=None,
    ):
        self.request_guards = list(request_guards)
        self.response_guards = list(response_guards)
        self.defaults = defaults or None
        self.overrides = overrides or None
        self.prepend = list(prepend)
        self.append = list(append)
        self.aliases = aliases or {}
        self.routes = routes or None  # [(path suffix or "*", kind)]


EMPTY_POLICY = AiPolicy()


def _apply_params(body: dict, defaults, overrides) -> bool:
    changed = False
    if defaults:
        for k, v in defaults.items():
            if k not in body:
                body[k] = v
                changed = True
    if overrides:
        for k, v in overrides.items():
            if body.get(k, object()) != v:
                body[k] = v
                changed = True
    return changed


def _error_openai(status: int, kind: str, message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})


class AiBackendSet(Backend):
    """A route's ``ai`` backend (or the routes of the ``llm:`` shorthand)."""

    kind = "ai"

    def __init__(
        self,
        *,
        pool,
        metrics,
        groups=None,
        models: list[ModelEntry] | None = None,
        policy: AiPolicy | None = None,
        head_timeout=None,
        request_timeout=None,
        tokenize=False,
        label="",
    ):
        self.pool = pool
        self.metrics = metrics
        self.groups = groups or []  # [[Candidate, ...], ...] priority groups (ai backends)
        self.models = models  # model table (llm shorthand) or None
        self.policy = policy or EMPTY_POLICY
        self.head_timeout = head_timeout or DEFAULT_HEAD_TIMEOUT
        self.request_timeout = request_timeout
        self.tokenize = tokenize
        self.label = label
        self._head_prefixes: dict[tuple, bytes] = {}  # see _constant_head
        # the model table's plain names, when no entry matches on headers:
        # name -> (candidates in table order, first entry), as ``candidates`` finds them
        self._exact: dict[str, tuple[list[Candidate], ModelEntry]] | None = None
        if models is not None and not any(e.header_matches for e in models):
            self._exact = {}
            for e in models:
                if e.name not in self._exact:
                    same = [x for x in models if x.name == e.name]
                    self._exact[e.name] = ([x.candidate for x in same], same[0])
        # what ``try_fast`` can't do without awaiting: guards, token pre-counts, a deadline
        self.fast_ok = (
            pool is not None
            and not self.policy.request_guards
            and not self.policy.response_guards
            and not tokenize
            and not request_timeout
        )
        if metrics is None:  # `agentgw validate` compiles without services
            from ...telemetry.metrics import GatewayMetrics

            metrics = self.metrics = GatewayMetrics()
        m = metrics.m
        self.m_tokens = m.histogram(
            "agentgw_gen_ai_client_token_usage",
            "Tokens used per LLM request (gen_ai.client.token.usage).",
            ("model", "provider", "type"),
            TOKEN_BUCKETS,
        )
        self.m_duration = m.histogram(
            "agentgw_gen_ai_client_operation_duration_seconds",
            "Duration of LLM requests (gen_ai.client.operation.duration).",
            ("model", "provider", "operation"),
            OP_DURATION_BUCKETS,
        )
        self.m_ttft = m.histogram(
            "agentgw_gen_ai_time_to_first_token_seconds",
            "Time from request to the first streamed token sent to the client.",
            ("model", "provider"),
            TTFT_BUCKETS,
        )
        self.m_failover = m.counter(
            "agentgw_gen_ai_failovers_total",
            "Provider attempts that failed over to the next provider.",
            ("provider", "reason"),
        )

    # -- entry ------------------------------------------------------------------------------
    def api_of(self, ctx) -> str | None:
        path = ctx.path
        routes = self.policy.routes
        if routes:
            for suffix, kind in routes:
                if suffix == "*" or path.endswith(suffix):
                    return kind
            return None
        for suffix, kind in _SUFFIXES:
            if path.endswith(suffix):
                return kind
        return None

    async def serve(self, ctx) -> None:
        api = self.api_of(ctx)
        ctx.backend_name = self.label
        if api is None:
            self._error(
                ctx,
                api,
                404,
                "not_found",
                f"{ctx.path} is not an LLM API served here (chat/completions, messages, responses, embeddings, models)",
            )
            return
        await self._answering(ctx, api, self._models(ctx) if api == "models" else self._serve(ctx, api))

    async def _answering(self, ctx, api: str, work) -> None:
        """Run ``work``, answering what fails in the client's API shape."""
        try:
            await work
        except (Rejected, TranslationError, ProviderError, GatewayError) as exc:
            if not self._answer_exc(ctx, api, exc):
                raise

    def _native_error_ok(self, ctx, api, exc: ProviderError) -> bool:
        """A provider error already in the client's API shape goes through as it is."""
        if not getattr(exc, "native", False):
            return False
        h = Headers([("content-type", "application/json")])
        ctx.finalize_headers(exc.status, h)
        ctx.ex.send(exc.status, h, exc.body)
        return True

    def _error(self, ctx, api, status: int, kind: str, message: str, extra=()) -> None:
        ex = ctx.ex
        if ex.started:
            if not ex.finished:
                ex.abort()
            return
        if api in ("messages", "count_tokens"):
            body = anth.error_body(status, message)
        else:
            body = _error_openai(status, kind, message)
        h = Headers([("content-type", "application/json"), *extra])
        ctx.finalize_headers(status, h)
        ex.send(status, h, body)

    # -- /v1/models -------------------------------------------------------------------------
    def model_names(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        seen = set()
        if self.models is not None:
            for e in self.models:
                if "*" not in e.name and e.name not in seen:
                    seen.add(e.name)
                    out.append((e.name, e.candidate.provider.system))
        else:
            for g in self.groups:
                for c in g:
                    if c.model and c.model not in seen:
                        seen.add(c.model)
                        out.append((c.model, c.provider.system))
        for alias in self.policy.aliases:
            if alias not in seen and "*" not in alias:
                seen.add(alias)
                out.append((alias, "agentgw"))
        return out

    async def _models(self, ctx) -> None:
        names = self.model_names()
        if not names and self.models is None and self.groups:
            cand = self.groups[0][0]
            if "models" in cand.provider.native:
                await self._passthrough(ctx, cand, "models")
                return
        if ctx.req.headers.has("anthropic-version"):
            data = [
                {"id": n, "type": "model", "display_name": n, "created_at": "1970-01-01T00:00:00Z"} for n, _ in names
            ]
            body = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {
                "object": "list",
                "data": [{"id": n, "object": "model", "created": 0, "owned_by": p} for n, p in names],
            }
        h = Headers([("content-type", "application/json")])
        ctx.finalize_headers(200, h)
        ctx.ex.send(200, h, orjson.dumps(body))

    # -- candidates -------------------------------------------------------------------------
    def candidates(self, model: str | None, headers) -> tuple[list[Candidate], ModelEntry | None]:
        if self.models is None:
            out: list[Candidate] = []
            for g in self.groups:
                if len(g) == 1:
                    out.append(g[0])
                    continue
                # weighted random order inside a group (weights >0), then the next group
                pool = [c for c in g if c.weight > 0]
                while pool:
                    total = sum(c.weight for c in pool)
                    r = random.random() * total
                    for i, c in enumerate(pool):
                        r -= c.weight
                        if r < 0:
                            out.append(pool.pop(i))
                            break
                    else:
                        out.append(pool.pop())
            return out, None
        if not model:
            return [], None
        exact = self._exact
        if exact is not None:  # no entry matches on headers: a named model is one lookup
            hit = exact.get(model)
            if hit is not None:
                return hit
        entries = [e for e in self.models if e.headers_match(headers)]
        named = [e for e in entries if e.name == model]
        if named:
            return [e.candidate for e in named], named[0]
        for e in entries:
            if "*" in e.name and e.matches(model):
                same = [x for x in entries if x.name == e.name]
                return [x.candidate for x in same], e
        return [], None

    # -- the request ------------------------------------------------------------------------
    async def _serve(self, ctx, api: str) -> None:
        req = ctx.req
        raw = await req.body.read_all()
        body = _parse(raw, api)
        cands, entry, dirty = self._resolve(body, req.headers)
        policy = self.policy
        guards_req = policy.request_guards + (entry.guards_req if entry else [])
        guards_resp = policy.response_guards + (entry.guards_resp if entry else [])
        for g in guards_req:
            if await g.apply(ctx, body, api, "request", self):
                dirty = True
        if self._shape(body, api):
            dirty = True
        if api == "count_tokens":
            if "messages" not in cands[0].provider.native:
                n = tokens.count(collect_texts(body, "messages", "request"))
                h = Headers([("content-type", "application/json")])
                ctx.finalize_headers(200, h)
                ctx.ex.send(200, h, orjson.dumps({"input_tokens": n}))
                return
        buckets = ctx.attrs.get("token_buckets")
        if self.tokenize:
            est = tokens.count(collect_texts(body, api if api != "count_tokens" else "messages", "request"))
            ctx.attrs["llm_prompt_tokens_estimate"] = est
            if buckets:
                for b in buckets:
                    if est > b.tokens:
                        raise GatewayError(
                            429,
                            "rate_limited",
                            f"request needs about {est} tokens; the token rate limit has {max(0, int(b.tokens))} left",
                        )
        stream = bool(body.get("stream")) and api != "embeddings"
        loop = ctx.bind.services.loop  # (get_running_loop is a getpid() syscall on 3.11)
        deadline = loop.time() + self.request_timeout if self.request_timeout else None
        await self._try_candidates(ctx, api, body, None if dirty else raw, cands, stream, guards_resp, deadline)

    def _resolve(self, body: dict, headers) -> tuple[list[Candidate], ModelEntry | None, bool]:
        """The candidate providers for ``body``'s model (aliases applied, in the body too);
        True as the third item when that changed the body."""
        policy = self.policy
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise TranslationError("model must be a string")
        dirty = False
        alias = policy.aliases.get(model) if model else None
        if alias is None and model and policy.aliases:
            for k, v in policy.aliases.items():
                if "*" in k and (
                    (k.endswith("*") and model.startswith(k[:-1])) or (k.startswith("*") and model.endswith(k[1:]))
                ):
                    alias = v
                    break
        if alias is not None:
            model = alias
            body["model"] = model
            dirty = True
        cands, entry = self.candidates(model, headers)
        if not cands:
            if self.models is not None and not model:
                raise TranslationError("model: field required")
            raise GatewayError(404, "model_not_found", f"model {model!r} is not served by this gateway")
        return cands, entry, dirty

    def _shape(self, body: dict, api: str) -> bool:
        """Prompts, defaults and overrides of the ``ai`` policy; True if the body changed."""
        policy = self.policy
        dirty = False
        if policy.prepend or policy.append:
            dirty = self._prompts(body, api)
        if _apply_params(body, policy.defaults, policy.overrides):
            dirty = True
        return dirty

    async def _try_candidates(
        self, ctx, api, body, raw, cands, stream, guards_resp, deadline, start=0, last=None
    ) -> None:
        """Try ``cands[start:]`` in order, failing over while nothing has reached the client."""
        try:
            for i in range(start, len(cands)):
                cand = cands[i]
                ctx.backend_name = cand.provider.name
                try:
                    await self._attempt(ctx, api, body, raw, cand, stream, guards_resp, deadline)
                    return
                except (ProviderError, GatewayError) as exc:
                    reason = _failover_reason(ctx, exc)
                    if reason is None:
                        raise
                    last = exc
                if i + 1 < len(cands):
                    self._note_failover(cand, reason, cands[i + 1])
            assert last is not None
            raise last
        finally:
            # ``last``'s traceback holds this frame: a frame that kept ``last`` would make
            # a reference cycle of every failed-over request
            last = None

    def _note_failover(self, cand: Candidate, reason: str, nxt: Candidate) -> None:
        self.m_failover.inc((cand.provider.name, reason))
        log.info("provider %s failed (%s); failing over to %s", cand.provider.name, reason, nxt.provider.name)

    def _prompts(self, body: dict, api: str) -> bool:
        p = self.policy
        if api == "completions" and isinstance(body.get("messages"), list):
            body["messages"] = [dict(m) for m in p.prepend] + body["messages"] + [dict(m) for m in p.append]
            return True
        if api == "messages" and isinstance(body.get("messages"), list):
            sys_pre = [m["content"] for m in p.prepend if m.get("role") in ("system", "developer")]
            if sys_pre:
                cur = body.get("system")
                cur_text = (
                    cur
                    if isinstance(cur, str)
                    else "".join(b.get("text", "") for b in cur or [] if isinstance(b, dict))
                )
                body["system"] = "\n\n".join([*sys_pre, cur_text] if cur_text else sys_pre)
            pre = [
                {"role": m["role"], "content": m["content"]}
                for m in p.prepend
                if m.get("role") in ("user", "assistant")
            ]
            post = [
                {"role": m["role"], "content": m["content"]} for m in p.append if m.get("role") in ("user", "assistant")
            ]
            body["messages"] = pre + body["messages"] + post
            return True
        return False

    def _prepare(self, api, body: dict, raw: bytes | None, cand: Candidate, stream: bool):
        """The provider request for ``body``: (Upstream, native, usage injected into the
        stream, model sent, IR or None)."""
        p = cand.provider
        requested = body.get("model")
        model_out = cand.model_for(requested)
        native = api in p.native
        inject_usage = False
        ir = None
        if native:
            b = body
            if (model_out and model_out != requested) or cand.defaults or cand.overrides:
                b = dict(body)
                if model_out:
                    b["model"] = model_out
                _apply_params(b, cand.defaults, cand.overrides)
                raw = None
            if stream and api == "completions":
                so = b.get("stream_options")
                if not (isinstance(so, dict) and so.get("include_usage")):
                    if b is body:
                        b = dict(body)
                    b["stream_options"] = {**(so if isinstance(so, dict) else {}), "include_usage": True}
                    inject_usage = True
                    raw = None
            payload = raw if raw is not None else orjson.dumps(b)
            up = Upstream(
                p.native_path(api if api != "count_tokens" else "messages", stream, model_out)
                + ("/count_tokens" if api == "count_tokens" else ""),
                payload,
            )
            return up, native, inject_usage, model_out, ir
        if api == "completions":
            ir = dict(body)
        elif api == "messages":
            ir = anth.request_to_ir(body)
        elif api == "responses":
            ir = resp_api.request_to_ir(body)
        elif api == "embeddings":
            ir = dict(body)
        else:
            raise TranslationError(f"{api} is not supported for provider {p.system}")
        ir["model"] = model_out
        _apply_params(ir, cand.defaults, cand.overrides)
        if api == "embeddings":
            up = p.embeddings(ir)
        else:
            if not isinstance(ir.get("messages"), list):
                raise TranslationError("messages: field required")
            up = p.chat(ir, stream)
        return up, native, inject_usage, model_out, ir

    async def _attempt(
        self, ctx, api, body: dict, raw: bytes | None, cand: Candidate, stream: bool, guards_resp, deadline
    ) -> None:
        p = cand.provider
        t0 = time.perf_counter()
        up, native, inject_usage, model_out, ir = self._prepare(api, body, raw, cand, stream)
        conn = await self._send(ctx, p, cand, up, deadline)
        if conn.status >= 400:
            raise await _provider_error(conn, p, native)
        if not stream:
            try:
                data = await conn.read_body(MAX_RESPONSE)
            finally:
                conn.release()
            out_obj, out, usage = _whole_answer(p, api, native, ir, model_out, body, data)
            for g in guards_resp:
                if await g.apply(ctx, out_obj, api, "response", self):
                    out = None
            self._send_answer(ctx, cand, out_obj, out)
            self._account(ctx, api, p, model_out, usage, t0, None)
            return
        await self._stream(ctx, api, body, cand, conn, native, inject_usage, model_out, guards_resp, t0)

    def _send_answer(self, ctx, cand: Candidate, out_obj, out: bytes | None) -> None:
        if out is None:
            out = orjson.dumps(out_obj)
        route, listener = ctx.route, ctx.listener
        if (
            cand.resp_headers is None
            and not ctx.response_hooks
            and (route is None or not route.response_chain)
            and (listener is None or not listener.response_chain)
        ):
            ctx.ex.send(200, _JSON_HEAD, out)  # no policy reads or edits this head
            return
        h = Headers([("content-type", "application/json")])
        self._resp_headers(cand, h)
        ctx.finalize_headers(200, h)
        ctx.ex.send(200, h, out)

    @staticmethod
    def _own_headers(p, up: Upstream) -> list:
        """The provider request's headers that come from neither the client nor credentials."""
        hdrs = [("host", p.host), ("content-type", "application/json")]
        if not any(k == "accept" for k, _ in up.headers):
            hdrs.append(("accept", "application/json"))
        hdrs.extend(up.headers)
        return hdrs

    def _request_headers(self, ctx, p, up: Upstream) -> list:
        """The provider request's headers before credentials."""
        hdrs = self._own_headers(p, up)
        hdrs.extend(p.forward_headers(ctx.req.headers))
        return hdrs

    def _head(self, cand: Candidate, up: Upstream, hdrs: list) -> bytes:
        if cand.req_headers is not None:
            hh = Headers(hdrs)
            cand.req_headers(hh)
            hdrs = list(hh)
        hdrs.append(("content-length", str(len(up.body))))
        return f"{up.method} {up.path} HTTP/1.1\r\n".encode("latin-1") + encode_headers(hdrs) + b"\r\n"

    async def _send(self, ctx, p, cand, up: Upstream, deadline):
        hdrs = self._request_headers(ctx, p, up)
        hdrs.extend(await p.auth.headers(p, up, hdrs, ctx.req.headers))
        head = self._head(cand, up, hdrs)
        timeout = self.head_timeout
        if deadline is not None:
            remaining = deadline - ctx.bind.services.loop.time()
            if remaining <= 0:
                raise GatewayError(504, "request_timeout", "request timed out")
            timeout = min(timeout, remaining)
        try:
            return await self.pool.exchange(p.target, head, up.body, timeout)
        except GatewayError as exc:
            ctx.upstream_error = exc.message
            raise

    # -- the task-free path -------------------------------------------------------------------
    def try_fast(self, ctx) -> bool:
        """Serve a non-streamed call from callbacks, without a task, when nothing on its way
        has to wait: the body is in, no guard or token pre-count applies, the credentials
        are at hand and an idle pooled connection to the first provider is there.

        Declines (False, nothing done) before the request is read and shaped when it can
        tell, and on any request error: ``serve`` in a task then does the same work with
        awaits and answers errors in the client's API shape. Once the request is read and
        shaped, what must wait (credentials to fetch or sign, no idle connection) goes on
        from there in a task, not from the start. A failed first attempt (connect error,
        429, 5xx, timeout) continues in a task too, failing over as ``serve`` would."""
        if not self.fast_ok:
            return False
        req = ctx.req
        rb = req.body
        if not rb.complete or rb.error is not None:
            return False
        api = self.api_of(ctx)
        if api not in _FAST_APIS:
            return False
        raw = rb.buffered()
        try:
            body = _parse(raw, api)
            if body.get("stream") and api != "embeddings":
                return False
            cands, entry, dirty = self._resolve(body, req.headers)
            if entry is not None and (entry.guards_req or entry.guards_resp):
                return False
            if self._shape(body, api):
                dirty = True
        except (TranslationError, GatewayError):
            return False
        if dirty:
            raw = None
        cand = cands[0]
        p = cand.provider
        conn = self.pool.take_idle(p.target) if p.auth.at_hand else None
        if conn is None:
            self._go_on_in_a_task(ctx, api, body, raw, cands)
            return True
        try:
            up, native, _, model_out, ir = self._prepare(api, body, raw, cand, False)
        except (TranslationError, GatewayError):
            conn.release()  # unused: back to the pool
            self._go_on_in_a_task(ctx, api, body, raw, cands)  # (which answers the error)
            return True
        if p.auth.constant and not up.headers and cand.req_headers is None:
            head = self._constant_head(ctx, p, up)
        else:
            hdrs = self._request_headers(ctx, p, up)
            hdrs.extend(p.auth.headers_now(p, up, hdrs, req.headers))
            head = self._head(cand, up, hdrs)
        ctx.backend_name = p.name
        call = _FastCall(self, ctx, api, body, raw, cands, cand, native, ir, model_out)
        ctx.ex.on_disconnect(conn.close)
        conn.send_head_cb(head, up.body, call.on_head, timeout=self.head_timeout)
        return True

    def _go_on_in_a_task(self, ctx, api: str, body: dict, raw: bytes | None, cands: list) -> None:
        """Serve a call ``try_fast`` has read and shaped, in a task, as ``serve`` would from
        there (on this path no guard, token pre-count or request deadline applies)."""
        work = self._try_candidates(ctx, api, body, raw, cands, False, [], None)
        ctx.spawn(self._answering(ctx, api, work))

    def _constant_head(self, ctx, p, up: Upstream) -> bytes:
        """The request head when only the forwarded client headers and the length vary:
        the rest is encoded once per provider and path (a bounded number of them)."""
        key = (p, up.path)
        prefix = self._head_prefixes.get(key)
        if prefix is None:
            hdrs = self._own_headers(p, up)
            hdrs.extend(p.auth.headers_now(p, up, hdrs, None))
            prefix = f"{up.method} {up.path} HTTP/1.1\r\n".encode("latin-1") + encode_headers(hdrs)
            if len(self._head_prefixes) < 256:  # paths can name models (Gemini, Bedrock)
                self._head_prefixes[key] = prefix
        fwd = p.forward_headers(ctx.req.headers)
        if fwd:
            prefix += encode_headers(fwd)
        return prefix + b"content-length: %d\r\n\r\n" % len(up.body)

    def _answer_exc(self, ctx, api, exc: BaseException) -> bool:
        """Answer a failed request in the client's API shape; False if it can't be (a
        response already began, or not an error this backend answers)."""
        if isinstance(exc, Rejected):
            self._error(ctx, api, exc.status, "prompt_guard_rejected", exc.message, exc.headers)
        elif isinstance(exc, TranslationError):
            self._error(ctx, api, 400, "invalid_request_error", str(exc))
        elif isinstance(exc, ProviderError):
            if not (exc.body and self._native_error_ok(ctx, api, exc)):
                self._error(ctx, api, exc.status, "provider_error", exc.message)
        elif isinstance(exc, GatewayError):
            if exc.status >= 500 and not ctx.upstream_error:
                ctx.upstream_error = exc.message
            if ctx.ex.started:
                return False
            self._error(ctx, api, exc.status, exc.kind, exc.message)
        else:
            return False
        return True

    async def _fail_over(self, ctx, call: _FastCall, first) -> None:
        """The first provider failed on the task-free path (``first``: the error, or the
        connection holding an error response): fail over from the second, in a task."""
        exc = None
        try:
            if isinstance(first, BaseException):
                exc = first
            else:
                try:
                    exc = await _provider_error(first, call.cand.provider, call.native)
                except GatewayError as read_error:  # the error body could not be read
                    exc = read_error
            first = None
            reason = _failover_reason(ctx, exc)
            if reason is None:
                raise exc
            cands = call.cands
            if len(cands) > 1:
                self._note_failover(call.cand, reason, cands[1])
            await self._try_candidates(ctx, call.api, call.body, call.raw, cands, False, [], None, 1, exc)
        finally:
            exc = None  # not kept by this frame, which its traceback holds (see _try_candidates)

    def _resp_headers(self, cand, h: Headers) -> None:
        if cand.resp_headers is not None:
            cand.resp_headers(h)

    async def _passthrough(self, ctx, cand, api: str) -> None:
        p = cand.provider
        up = Upstream(p.native_path(api, False, ""), b"", method="GET")
        conn = await self._send(ctx, p, cand, up, None)
        try:
            data = await conn.read_body(MAX_RESPONSE)
        finally:
            conn.release()
        h = Headers([("content-type", conn.headers.get("content-type") or "application/json")])
        ctx.finalize_headers(conn.status, h)
        ctx.ex.send(conn.status, h, data)

    # -- streaming ----------------------------------------------------------------------------
    async def _stream(self, ctx, api, body, cand, conn, native, inject_usage, model_out, guards_resp, t0) -> None:
        p = cand.provider
        ex = ctx.ex
        h = Headers([("content-type", "text/event-stream"), ("cache-control", "no-cache")])
        self._resp_headers(cand, h)
        ctx.finalize_headers(200, h)
        ex.start(200, h)
        write = ex.write
        ttft = None
        guards = [g for g in guards_resp if hasattr(g, "stream_text")]
        want_usage = isinstance(body.get("stream_options"), dict) and body["stream_options"].get("include_usage")

        def guard_text(s: str) -> str:
            for g in guards:
                s = g.stream_text(s, "")
            return s

        decoder: Any  # read for usage; and, unless native, the provider's stream decoder
        front: anth.StreamFromIR | resp_api.StreamFromIR | None
        if native:
            sniff = NativeStream(api)
            decoder = sniff
            front = None
        else:
            decoder = p.stream_decoder(model_out)
            front = (
                None
                if api == "completions"
                else anth.StreamFromIR(model_out)
                if api == "messages"
                else resp_api.StreamFromIR(model_out, body)
            )

        def emit(chunk: dict) -> bytes:
            if guards:
                for ch in chunk.get("choices") or []:
                    d = ch.get("delta") or {}
                    if isinstance(d.get("content"), str) and d["content"]:
                        d["content"] = guard_text(d["content"])
            if front is None:
                if not chunk.get("choices") and chunk.get("usage") and not want_usage:
                    return b""
                return encode(chunk)
            return front.feed(chunk)

        relay_raw = native and not inject_usage and not guards
        try:
            async for data in conn.iter_body():
                if relay_raw:
                    write(data)
                    sniff.feed(data, False)
                elif native:
                    out = []
                    for event, payload, obj in sniff.feed(data, True):
                        if obj is None:
                            out.append(
                                b"data: " + payload.encode() + b"\n\n"
                                if not event
                                else b"event: " + event.encode() + b"\ndata: " + payload.encode() + b"\n\n"
                            )
                            continue
                        if inject_usage and not obj.get("choices") and obj.get("usage"):
                            continue
                        if guards:
                            sniff.guard(obj, guard_text)
                        out.append(encode(obj, event))
                    if out:
                        write(b"".join(out))
                else:
                    out = [emit(c) for c in decoder.feed(data)]
                    if out:
                        write(b"".join(out))
                if ttft is None:
                    ttft = time.perf_counter() - t0
            if not native:
                tail = [emit(c) for c in decoder.finish()]
                if front is None:
                    tail.append(DONE)
                elif isinstance(front, anth.StreamFromIR):  # (api == "messages")
                    tail.append(front.finish())
                else:
                    tail.append(front.finish_stream())
                write(b"".join(tail))
        except (StreamError, Rejected) as exc:
            msg = exc.message if isinstance(exc, Rejected) else str(exc)
            ctx.upstream_error = msg
            if api == "messages":
                write(anth.error_event(400 if isinstance(exc, Rejected) else 500, msg))
            else:
                kind = "prompt_guard_rejected" if isinstance(exc, Rejected) else "provider_error"
                write(b"data: " + _error_openai(0, kind, msg) + b"\n\n")
            conn.close()
        except GatewayError as exc:
            ctx.upstream_error = exc.message
            conn.close()
            ex.abort()
            self._account(ctx, api, p, model_out, decoder.usage, t0, ttft)
            return
        finally:
            conn.release()
        ex.end()
        self._account(ctx, api, p, model_out, decoder.usage, t0, ttft)

    # -- accounting ---------------------------------------------------------------------------
    def _account(self, ctx, api, p, model, usage: Usage | None, t0: float, ttft: float | None) -> None:
        system = p.system
        self.m_duration.observe((model, system, _OPERATION.get(api, api)), time.perf_counter() - t0)
        if ttft is not None:
            self.m_ttft.observe((model, system), ttft)
        if usage is None:
            return
        self.m_tokens.observe((model, system, "input"), usage.input)
        self.m_tokens.observe((model, system, "output"), usage.output)
        ctx.attrs["llm_usage"] = usage
        ctx.attrs["llm.call"] = (model, system)  # for tracing
        buckets = ctx.attrs.get("token_buckets")
        if buckets:
            for b in buckets:
                b.charge(usage.total)


def _parse(raw: bytes, api: str) -> dict:
    """The request body as a JSON object, checked as far as every API needs."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise TranslationError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise TranslationError("request body must be a JSON object")
    if api in ("completions", "messages") and not isinstance(body.get("messages"), list):
        raise TranslationError("messages: an array is required")
    return body


def _failover_reason(ctx, exc: BaseException) -> str | None:
    """Why the next provider may be tried after ``exc``, or None if it may not: only
    while nothing has reached the client, and only for 429/5xx answers, connect errors
    and upstream timeouts (not the request's own deadline)."""
    if ctx.ex.started:
        return None
    if isinstance(exc, ProviderError):
        return str(exc.status) if exc.retryable else None
    if isinstance(exc, GatewayError) and exc.status in (502, 503, 504) and exc.kind != "request_timeout":
        return exc.kind
    return None


async def _provider_error(conn, p, native: bool) -> ProviderError:
    """The ProviderError for an error response (its body read, the connection released)."""
    try:
        data = await conn.read_body(1 << 20)
    finally:
        conn.release()
    status = conn.status
    err = ProviderError(
        status,
        f"{p.system} ({p.name}): {p.error_message(status, data)}",
        data,
        retryable=status == 429 or status >= 500,
    )
    err.native = native
    return err


def _whole_answer(p, api: str, native: bool, ir, model_out: str, body: dict, data: bytes):
    """A non-streamed provider answer in the client's API shape: (object, its bytes when
    unchanged from the provider's, usage)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise GatewayError(502, "invalid_provider_response", f"{p.system} answered invalid JSON") from None
    if native:
        return obj, data, p.usage_from(obj)
    if api == "embeddings":
        out_obj = p.parse_embeddings(obj, ir)
        return out_obj, None, Usage.from_openai(out_obj.get("usage"))
    ir_resp = p.parse_chat(obj, model_out)
    usage = Usage.from_openai(ir_resp.get("usage"))
    if api == "completions":
        out_obj = ir_resp
    elif api == "messages":
        out_obj = anth.response_from_ir(ir_resp, model_out)
    else:
        out_obj = resp_api.response_from_ir(ir_resp, model_out, body)
    return out_obj, None, usage


class _FastCall:
    """One non-streamed call on the task-free path, driven by the upstream connection's
    callbacks: the response head (with, usually, the whole body), then the body's rest."""

    __slots__ = (
        "backend",
        "ctx",
        "api",
        "body",
        "raw",
        "cands",
        "cand",
        "native",
        "ir",
        "model_out",
        "t0",
        "parts",
        "size",
    )

    def __init__(self, backend: AiBackendSet, ctx, api, body, raw, cands, cand, native, ir, model_out):
        self.backend = backend
        self.ctx = ctx
        self.api = api
        self.body = body
        self.raw = raw
        self.cands = cands
        self.cand = cand
        self.native = native
        self.ir = ir
        self.model_out = model_out
        self.t0 = time.perf_counter()
        self.parts: list[bytes] = []
        self.size = 0

    def on_head(self, conn, exc) -> None:
        ctx = self.ctx
        ex = ctx.ex
        try:
            if exc is not None:
                conn.close()
                if isinstance(exc, StaleConnection) and not ex.disconnected:
                    ctx.spawn()  # the whole call again, on a new connection
                    return
                if isinstance(exc, GatewayError):
                    ctx.upstream_error = exc.message
                self.failed(exc)
                return
            if conn.status >= 400:
                self.failed(conn)
                return
            if conn.done:
                data = b"".join(conn.chunks) if conn.chunks else b""
                conn.chunks = []
                conn.release()
                self.answer(data)
                return
            conn.stream_to(self.on_chunk, partial(self.on_end, conn), partial(self.on_error, conn))
        except Exception:
            self.crashed(conn)

    def on_chunk(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= MAX_RESPONSE:  # past it, the call fails at the end: hold no more
            self.parts.append(chunk)

    def on_end(self, conn) -> None:
        conn.release()
        try:
            if self.size > MAX_RESPONSE:
                self.failed(
                    GatewayError(502, "upstream_response_too_large", f"upstream response exceeds {MAX_RESPONSE} bytes")
                )
                return
            self.answer(b"".join(self.parts))
        except Exception:
            self.crashed(conn)

    def on_error(self, conn, exc: BaseException) -> None:
        conn.close()
        self.failed(
            exc
            if isinstance(exc, GatewayError)
            else GatewayError(502, "upstream_reset", f"upstream connection failed: {exc}")
        )

    def answer(self, data: bytes) -> None:
        b = self.backend
        ctx = self.ctx
        cand = self.cand
        p = cand.provider
        try:
            out_obj, out, usage = _whole_answer(p, self.api, self.native, self.ir, self.model_out, self.body, data)
        except (TranslationError, GatewayError) as exc:
            # an invalid answer fails over, as on the task path; the error goes to a task
            # without its traceback, whose frames hold this call (a reference cycle)
            self.failed(exc.with_traceback(None))
            return
        b._send_answer(ctx, cand, out_obj, out)
        b._account(ctx, self.api, p, self.model_out, usage, self.t0, None)
        ctx.finish()

    def failed(self, first) -> None:
        """The first provider failed (``first``: the error, or the connection holding an
        error response): the rest, failover included, goes on in a task."""
        ctx = self.ctx
        ex = ctx.ex
        if ex.disconnected:
            if not isinstance(first, BaseException):
                first.close()
            ctx.finish()  # the client left, as a cancelled task would
            return
        b = self.backend
        ctx.spawn(b._answering(ctx, self.api, b._fail_over(ctx, self, first)))

    def crashed(self, conn) -> None:
        # No task or parser callback above this frame would answer the client: do it here.
        log.exception("unhandled error while handling %s %s", self.ctx.req.method, self.ctx.req.path)
        conn.close()
        if not self.ctx.ex.finished:
            self.ctx.ex.fail_internal()
        self.ctx.finish()


class NativeStream:
    """A provider stream already in the client's API shape: relayed as it comes, read for
    usage (and, with response guards, for text deltas)."""

    __slots__ = ("api", "parser", "usage")

    def __init__(self, api: str):
        self.api = api
        self.parser = SSEParser()
        self.usage: Usage | None = None

    def feed(self, data: bytes, want_all: bool) -> list:
        out: list[tuple[str | None, str, dict | None]] = []
        for event, payload in self.parser.feed(data):
            if payload == "[DONE]" or (not want_all and "usage" not in payload and '"error"' not in payload):
                if want_all:
                    out.append((event, payload, None))
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                if want_all:
                    out.append((event, payload, None))
                continue
            if isinstance(obj, dict):
                self._usage(obj)
                if want_all:
                    out.append((event, payload, obj))
            elif want_all:
                out.append((event, payload, None))
        return out

    def _usage(self, obj: dict) -> None:
        api = self.api
        if api == "completions":
            u = obj.get("usage")
            if u:
                self.usage = Usage.from_openai(u)
        elif api == "messages":
            t = obj.get("type")
            if t == "message_start":
                u = (obj.get("message") or {}).get("usage") or {}
                self.usage = Usage(
                    int(u.get("input_tokens") or 0) + int(u.get("cache_read_input_tokens") or 0),
                    int(u.get("output_tokens") or 0),
                )
            elif t == "message_delta":
                u = obj.get("usage") or {}
                if self.usage is None:
                    self.usage = Usage()
                if u.get("output_tokens") is not None:
                    self.usage.output = int(u["output_tokens"])
        elif api == "responses":
            if obj.get("type") in ("response.completed", "response.incomplete"):
                self.usage = Usage.from_openai((obj.get("response") or {}).get("usage"))

    def guard(self, obj: dict, fn) -> None:
        api = self.api
        if api == "completions":
            for ch in obj.get("choices") or []:
                d = ch.get("delta") or {}
                if isinstance(d.get("content"), str) and d["content"]:
                    d["content"] = fn(d["content"])
        elif api == "messages":
            d = obj.get("delta")
            if isinstance(d, dict) and d.get("type") == "text_delta":
                d["text"] = fn(d.get("text", ""))
        elif api == "responses":
            if obj.get("type") == "response.output_text.delta" and isinstance(obj.get("delta"), str):
                obj["delta"] = fn(obj["delta"])
