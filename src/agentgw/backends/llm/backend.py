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

This module is that flow and nothing else; each step has its own module: ``models`` (which
providers serve a model), ``shaping`` (the provider request and its head), ``answers``
(whole answers), ``streaming`` (streamed ones), ``errors`` (errors in the client's API
shape, and which allow failover), ``metrics`` (the LLM metrics and token accounting) and
``fast`` (a call served from callbacks, without a task: see ``try_fast``).
"""

from __future__ import annotations

import logging
import time

import orjson

from ...engine.http import GatewayError, Headers
from ...proxy.backend import Backend
from . import tokens
from .answers import MAX_RESPONSE, send_answer, whole_answer
from .base import Upstream
from .errors import (
    ProviderError,
    answer_exception,
    failover_reason,
    read_provider_error,
    send_error,
)
from .fast import FastCall
from .guards import Rejected, collect_texts
from .ir import TranslationError
from .metrics import LlmMetrics
from .models import EMPTY_POLICY, AiPolicy, Candidate, ModelEntry, ModelTable
from .shaping import (
    apply_policy,
    constant_head,
    parse_body,
    provider_request,
    request_head,
    request_headers,
)
from .streaming import relay_stream

log = logging.getLogger("agentgw.llm")

DEFAULT_HEAD_TIMEOUT = 600.0

_SUFFIXES = (
    ("/chat/completions", "completions"),
    ("/messages/count_tokens", "count_tokens"),
    ("/messages", "messages"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/models", "models"),
)
_FAST_APIS = frozenset(("completions", "messages", "responses", "embeddings"))


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
        virtual: dict | None = None,
        policy: AiPolicy | None = None,
        head_timeout=None,
        request_timeout=None,
        tokenize=False,
        label="",
    ):
        self.pool = pool
        self.metrics = metrics
        self.policy = policy or EMPTY_POLICY
        self.table = ModelTable(groups or [], models, self.policy.aliases, virtual)
        self.head_timeout = head_timeout or DEFAULT_HEAD_TIMEOUT
        self.request_timeout = request_timeout
        self.tokenize = tokenize
        self.label = label
        self._head_prefixes: dict[tuple, bytes] = {}  # see shaping.constant_head
        # what ``try_fast`` can't do without awaiting: guards, token pre-counts, a deadline
        self.fast_ok = (
            pool is not None
            and not self.policy.request_guards
            and not self.policy.response_guards
            and not tokenize
            and not request_timeout
            # outlier detection judges every answer: on the task path
            and not (models and any(e.candidate.health is not None for e in models))
        )
        if metrics is None:  # `agentgw validate` compiles without services
            from ...telemetry.metrics import GatewayMetrics

            metrics = self.metrics = GatewayMetrics()
        self.meter = LlmMetrics(metrics)

    # -- entry ------------------------------------------------------------------------------
    def api_of(self, ctx) -> str | None:
        """The API a request speaks: the first ``ai.routes`` suffix it ends with (``*``
        matches any), else the known API suffixes. An ``ai`` backend takes any other path
        as chat completions, as agentgateway does (its examples post to ``/``); the
        ``llm:`` model table answers 404 instead."""
        path = ctx.path
        for suffix, kind in self.policy.routes or ():
            if suffix == "*" or path.endswith(suffix):
                return kind
        for suffix, kind in _SUFFIXES:
            if path.endswith(suffix):
                return kind
        return "completions" if self.table.entries is None else None

    async def serve(self, ctx) -> None:
        api = self.api_of(ctx)
        ctx.backend_name = self.label
        if api is None:
            send_error(
                ctx,
                api,
                404,
                "not_found",
                f"{ctx.path} is not an LLM API served here (chat/completions, messages, responses, embeddings, models)",
            )
            return
        await self.answering(ctx, api, self._models(ctx) if api == "models" else self._serve(ctx, api))

    async def answering(self, ctx, api: str, work) -> None:
        """Run ``work``, answering what fails in the client's API shape."""
        try:
            await work
        except (Rejected, TranslationError, ProviderError, GatewayError) as exc:
            if not answer_exception(ctx, api, exc):
                raise

    # -- /v1/models -------------------------------------------------------------------------
    async def _models(self, ctx) -> None:
        table = self.table
        names = table.names()
        if not names and table.entries is None and table.groups:
            cand = table.groups[0][0]
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

    # -- the request ------------------------------------------------------------------------
    async def _serve(self, ctx, api: str) -> None:
        req = ctx.req
        raw = await req.body.read_all()
        body = parse_body(raw, api)
        cands, entry, dirty = self.table.resolve(body, req.headers, ctx, raw)
        policy = self.policy
        guards_req = policy.request_guards + (entry.guards_req if entry else [])
        guards_resp = policy.response_guards + (entry.guards_resp if entry else [])
        for g in guards_req:
            if await g.apply(ctx, body, api, "request", self):
                dirty = True
        if apply_policy(policy, body, api):
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
        if "trace" in ctx.attrs:  # what tracing's CEL ``llm`` variable reads
            from .trace import KEY, LlmTrace

            ctx.attrs[KEY] = LlmTrace(api, body, stream)
        loop = ctx.bind.services.loop  # (get_running_loop is a getpid() syscall on 3.11)
        deadline = loop.time() + self.request_timeout if self.request_timeout else None
        await self.try_candidates(ctx, api, body, None if dirty else raw, cands, stream, guards_resp, deadline)

    async def try_candidates(
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
                    reason = failover_reason(ctx, exc)
                    if reason is None:
                        raise
                    last = exc
                if i + 1 < len(cands):
                    self.note_failover(cand, reason, cands[i + 1])
            assert last is not None
            raise last
        finally:
            # ``last``'s traceback holds this frame: a frame that kept ``last`` would make
            # a reference cycle of every failed-over request
            last = None

    def note_failover(self, cand: Candidate, reason: str, nxt: Candidate) -> None:
        self.meter.failovers.inc((cand.provider.name, reason))
        log.info("provider %s failed (%s); failing over to %s", cand.provider.name, reason, nxt.provider.name)

    async def _attempt(
        self, ctx, api, body: dict, raw: bytes | None, cand: Candidate, stream: bool, guards_resp, deadline
    ) -> None:
        p = cand.provider
        t0 = time.perf_counter()
        up, native, inject_usage, model_out, ir = provider_request(api, body, raw, cand, stream, ctx)
        conn = await self._send(ctx, p, cand, up, deadline)
        if conn.status >= 400:
            raise await read_provider_error(conn, p, native)
        if not stream:
            try:
                data = await conn.read_body(MAX_RESPONSE)
            finally:
                conn.release()
            out_obj, out, usage = whole_answer(p, api, native, ir, model_out, body, data)
            if usage is not None:
                usage.answer = out_obj  # (which model answered: read by traces, the request log)
            for g in guards_resp:
                if await g.apply(ctx, out_obj, api, "response", self):
                    out = None
            send_answer(ctx, cand, out_obj, out)
            self.meter.account(ctx, api, p, model_out, usage, t0, None)
            return
        usage, ttft = await relay_stream(ctx, api, body, cand, conn, native, inject_usage, model_out, guards_resp, t0)
        self.meter.account(ctx, api, p, model_out, usage, t0, ttft)

    async def _send(self, ctx, p, cand, up: Upstream, deadline):
        hdrs = request_headers(ctx, p, up)
        hdrs.extend(await p.auth.headers(p, up, hdrs, ctx.req.headers))
        head = request_head(cand, up, hdrs)
        timeout = self.head_timeout
        if deadline is not None:
            remaining = deadline - ctx.bind.services.loop.time()
            if remaining <= 0:
                raise GatewayError(504, "request_timeout", "request timed out")
            timeout = min(timeout, remaining)
        try:
            conn = await self.pool.exchange(p.target, head, up.body, timeout)
        except GatewayError as exc:
            ctx.upstream_error = exc.message
            if cand.health is not None:
                cand.health.observe(None)
            raise
        if cand.health is not None:
            cand.health.observe(conn.status, conn.headers)
        return conn

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
            body = parse_body(raw, api)
            if body.get("stream") and api != "embeddings":
                return False
            cands, entry, dirty = self.table.resolve(body, req.headers, ctx, raw)
            if entry is not None and (entry.guards_req or entry.guards_resp):
                return False
            if apply_policy(self.policy, body, api):
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
            up, native, _, model_out, ir = provider_request(api, body, raw, cand, False, ctx)
        except (TranslationError, GatewayError):
            conn.release()  # unused: back to the pool
            self._go_on_in_a_task(ctx, api, body, raw, cands)  # (which answers the error)
            return True
        if p.auth.constant and not up.headers and cand.req_headers is None:
            head = constant_head(self._head_prefixes, ctx, p, up)
        else:
            hdrs = request_headers(ctx, p, up)
            hdrs.extend(p.auth.headers_now(p, up, hdrs, req.headers))
            head = request_head(cand, up, hdrs)
        ctx.backend_name = p.name
        call = FastCall(self, ctx, api, body, raw, cands, cand, native, ir, model_out)
        ctx.ex.on_disconnect(conn.close)
        conn.send_head(head, up.body, call.on_head, timeout=self.head_timeout)
        return True

    def _go_on_in_a_task(self, ctx, api: str, body: dict, raw: bytes | None, cands: list) -> None:
        """Serve a call ``try_fast`` has read and shaped, in a task, as ``serve`` would from
        there (on this path no guard, token pre-count or request deadline applies)."""
        work = self.try_candidates(ctx, api, body, raw, cands, False, [], None)
        ctx.spawn(self.answering(ctx, api, work))
