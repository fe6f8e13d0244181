"""What goes wrong on a call to a provider, and how the client hears of it.

A client of the OpenAI API expects ``{"error": {...}}`` in OpenAI's shape, one of the
Anthropic API Anthropic's: every error this backend answers (a guard's rejection, a
request it cannot translate, a provider's error, a gateway error) is put in the shape of
the API the client called, unless the provider's own body already is. Which errors allow
trying the next provider is decided here too, from the error alone.
"""

from __future__ import annotations

import orjson

from ...engine.http import GatewayError, Headers
from . import anthropic as anth
from .guards import Rejected
from .ir import TranslationError


class ProviderError(Exception):
    native = False  # its body is already in the client's API shape (see send_native_error)

    def __init__(self, status: int, message: str, body: bytes = b"", headers=None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body
        self.headers = headers or []
        self.retryable = retryable


def openai_error_body(kind: str, message: str) -> bytes:
    """An error body in the OpenAI API's shape."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})


def send_error(ctx, api, status: int, kind: str, message: str, extra=(), drop=()) -> None:
    """Answer an error in the client's API shape (or abort a response already begun)."""
    ex = ctx.ex
    if ex.started:
        if not ex.finished:
            ex.abort()
        return
    if api in ("messages", "count_tokens"):
        body = anth.error_body(status, message)
    else:
        body = openai_error_body(kind, message)
    h = Headers([("content-type", "application/json"), *extra])
    for name in drop:
        h.remove(name)
    ctx.finalize_headers(status, h)
    ex.send(status, h, body)


def send_native_error(ctx, exc: ProviderError) -> bool:
    """A provider error already in the client's API shape goes through as it is."""
    if not getattr(exc, "native", False):
        return False
    h = Headers([("content-type", "application/json")])
    ctx.finalize_headers(exc.status, h)
    ctx.ex.send(exc.status, h, exc.body)
    return True


def answer_exception(ctx, api, exc: BaseException) -> bool:
    """Answer a failed request in the client's API shape; False if it can't be (a
    response already began, or not an error this backend answers)."""
    if isinstance(exc, Rejected):
        adds = [kv for kv in exc.headers if kv[1] is not None]
        drop = [k for k, v in exc.headers if v is None]  # rejection.headers.remove
        if exc.raw:  # the guard's configured rejection, as written
            if ctx.ex.started:
                return False
            h = Headers(adds)
            for name in drop:
                h.remove(name)
            ctx.finalize_headers(exc.status, h)
            ctx.ex.send(exc.status, h, exc.message.encode())
        else:
            send_error(ctx, api, exc.status, "prompt_guard_rejected", exc.message, adds, drop)
    elif isinstance(exc, TranslationError):
        send_error(ctx, api, 400, "invalid_request_error", str(exc))
    elif isinstance(exc, ProviderError):
        if not (exc.body and send_native_error(ctx, exc)):
            send_error(ctx, api, exc.status, "provider_error", exc.message)
    elif isinstance(exc, GatewayError):
        if exc.status >= 500 and not ctx.upstream_error:
            ctx.upstream_error = exc.message
        if ctx.ex.started:
            return False
        send_error(ctx, api, exc.status, exc.kind, exc.message)
    else:
        return False
    return True


async def read_provider_error(conn, p, native: bool) -> ProviderError:
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


def failover_reason(ctx, exc: BaseException) -> str | None:
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
