"""Streamed answers: a provider's event stream relayed to the client in its API's shape.

A stream already in the client's API shape is relayed as it comes (read on the side for
the usage, and rewritten only for response guards or usage the client didn't ask for);
any other is decoded chunk by chunk into the IR and re-encoded for the client's API. An
error once the stream has begun can only be told inside it, as that API's error event.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ...engine.http import GatewayError, Headers
from . import anthropic as anth
from . import responses as resp_api
from .answers import add_response_headers
from .errors import openai_error_body
from .guards import Rejected
from .ir import Usage
from .models import Candidate
from .openai import StreamError
from .sse import DONE, SSEParser, encode


class NativeStream:
    """A provider stream already in the client's API shape: relayed as it comes, read for
    usage and the model that answered (and, with response guards, for text deltas)."""

    __slots__ = ("api", "parser", "usage", "model")

    def __init__(self, api: str):
        self.api = api
        self.parser = SSEParser()
        self.usage: Usage | None = None
        self.model: str | None = None  # read from the events that carry the usage

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
                self.model = obj.get("model") or self.model
        elif api == "messages":
            t = obj.get("type")
            if t == "message_start":
                msg = obj.get("message") or {}
                self.model = msg.get("model") or self.model
                u = msg.get("usage") or {}
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
                r = obj.get("response") or {}
                self.usage = Usage.from_openai(r.get("usage"))
                self.model = r.get("model") or self.model

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


async def relay_stream(
    ctx, api, body, cand: Candidate, conn, native, inject_usage, model_out, guards_resp, t0
) -> tuple[Usage | None, float | None]:
    """Relay the provider's stream on ``conn`` to the client (the response begun here);
    the call's (usage, time to first token) for its accounting."""
    p = cand.provider
    ex = ctx.ex
    h = Headers([("content-type", "text/event-stream"), ("cache-control", "no-cache")])
    add_response_headers(cand, h)
    ctx.finalize_headers(200, h)
    ex.start(200, h)
    write = ex.write
    ttft = None
    guards = [g for g in guards_resp if hasattr(g, "stream_text")]
    trace = ctx.attrs.get("llm_trace")  # a traced call keeps the answer's text for its span
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
        if guards or trace is not None:
            for ch in chunk.get("choices") or []:
                d = ch.get("delta") or {}
                if isinstance(d.get("content"), str) and d["content"]:
                    if guards:
                        d["content"] = guard_text(d["content"])
                    if trace is not None:
                        trace.note_delta(d["content"])
        if front is None:
            if not chunk.get("choices") and chunk.get("usage") and not want_usage:
                return b""
            return encode(chunk)
        return front.feed(chunk)

    relay_raw = native and not inject_usage and not guards and trace is None
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
                    if trace is not None:
                        sniff.guard(obj, trace.note_delta)
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
            write(b"data: " + openai_error_body(kind, msg) + b"\n\n")
        conn.close()
    except GatewayError as exc:
        ctx.upstream_error = exc.message
        conn.close()
        ex.abort()
        return decoder.usage, ttft
    finally:
        conn.release()
        usage = decoder.usage
        if usage is not None:
            usage.model = getattr(decoder, "model", None)  # (traces, the request log)
    ex.end()
    return decoder.usage, ttft
