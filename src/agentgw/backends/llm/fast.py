"""One non-streamed provider call on the task-free path, driven by connection callbacks.

``AiBackendSet.try_fast`` sends the request on an idle pooled connection and hands the
rest to a :class:`FastCall`: the upstream connection calls it back with the response head
(usually with the whole body), then the body's rest, and it answers from there without a
task. Anything that has to wait (a failed first provider, failover included) goes on in a
task from where the call stands. This is the LLM backend's hottest code (its cost per
request is what ``bench/instructions.py --route llm`` measures): one object per call, no
task unless something has to wait.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING

from ...engine.client import StaleConnection
from ...engine.http import GatewayError
from .answers import MAX_RESPONSE, send_answer, whole_answer
from .errors import failover_reason, read_provider_error
from .ir import TranslationError

if TYPE_CHECKING:
    from .backend import AiBackendSet

log = logging.getLogger("agentgw.llm")


class FastCall:
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
            out_obj, out, usage = whole_answer(p, self.api, self.native, self.ir, self.model_out, self.body, data)
        except (TranslationError, GatewayError) as exc:
            # an invalid answer fails over, as on the task path; the error goes to a task
            # without its traceback, whose frames hold this call (a reference cycle)
            self.failed(exc.with_traceback(None))
            return
        if usage is not None:
            usage.answer = out_obj  # (which model answered: read by traces, the request log)
        send_answer(ctx, cand, out_obj, out)
        b.meter.account(ctx, self.api, p, self.model_out, usage, self.t0, None)
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
        ctx.spawn(self.backend.answering(ctx, self.api, self.fail_over(first)))

    async def fail_over(self, first) -> None:
        """The first provider failed (``first``: the error, or the connection holding an
        error response): fail over from the second, in a task."""
        ctx = self.ctx
        b = self.backend
        exc = None
        try:
            if isinstance(first, BaseException):
                exc = first
            else:
                try:
                    exc = await read_provider_error(first, self.cand.provider, self.native)
                except GatewayError as read_error:  # the error body could not be read
                    exc = read_error
            first = None
            reason = failover_reason(ctx, exc)
            if reason is None:
                raise exc
            cands = self.cands
            if len(cands) > 1:
                b.note_failover(self.cand, reason, cands[1])
            await b.try_candidates(ctx, self.api, self.body, self.raw, cands, False, [], None, 1, exc)
        finally:
            exc = None  # not kept by this frame, which its traceback holds (see try_candidates)

    def crashed(self, conn) -> None:
        # No task or parser callback above this frame would answer the client: do it here.
        log.exception("unhandled error while handling %s %s", self.ctx.req.method, self.ctx.req.path)
        conn.close()
        if not self.ctx.ex.finished:
            self.ctx.ex.fail_internal()
        self.ctx.finish()
