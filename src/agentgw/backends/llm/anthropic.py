"""Anthropic Messages: the provider (IR → ``/v1/messages``) and the client-facing API
(``/v1/messages`` → IR for any other provider), both directions, streaming included."""

from __future__ import annotations

from typing import Any

import orjson

from .base import Provider, Upstream
from .caching import anthropic_points
from .ir import (
    ChunkMaker,
    TranslationError,
    Usage,
    data_url,
    max_tokens_of,
    merging_appender,
    new_id,
    parse_image_url,
    parts_of,
    stop_list,
    text_of,
)
from .openai import StreamError
from .sse import SSEParser, encode

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

STOP_TO_IR = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
STOP_FROM_IR = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


# -- IR → Anthropic request ---------------------------------------------------------------
def tool_arguments(s) -> dict:
    """A tool call's ``arguments`` (a JSON string in OpenAI's shape) as an object."""
    if isinstance(s, dict):
        return s
    if not s:
        return {}
    try:
        v = orjson.loads(s)
    except orjson.JSONDecodeError:
        raise TranslationError("tool call arguments are not valid JSON") from None
    return v if isinstance(v, dict) else {"value": v}


def _image_block(url: str) -> dict:
    kind, media, data = parse_image_url(url)
    if kind == "base64":
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": data}}


def ir_to_anthropic(ir: dict, model: str, stream: bool) -> dict:
    system: list[str] = []
    msgs: list[dict] = []

    push = merging_appender(msgs)

    for m in ir.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(text_of(m.get("content")))
        elif role == "user":
            blocks = []
            for p in parts_of(m.get("content")):
                if p.get("type") == "text":
                    blocks.append({"type": "text", "text": p.get("text", "")})
                elif p.get("type") == "image_url":
                    iu = p.get("image_url")
                    blocks.append(_image_block(iu.get("url", "") if isinstance(iu, dict) else str(iu)))
            push("user", blocks)
        elif role == "assistant":
            blocks = []
            t = text_of(m.get("content"))
            if t:
                blocks.append({"type": "text", "text": t})
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tc.get("id") or new_id("toolu_"),
                        "name": fn.get("name", ""),
                        "input": tool_arguments(fn.get("arguments")),
                    }
                )
            push("assistant", blocks)
        elif role == "tool":
            push(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": m.get("tool_call_id", ""),
                        "content": text_of(m.get("content")),
                    }
                ],
            )
        else:
            raise TranslationError(f"unsupported message role {role!r}")
    out: dict = {"model": model, "max_tokens": max_tokens_of(ir) or DEFAULT_MAX_TOKENS, "messages": msgs}
    if system:
        out["system"] = "\n\n".join(system)
    stops = stop_list(ir.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    for k in ("temperature", "top_p"):
        if ir.get(k) is not None:
            out[k] = ir[k]
    tools = ir.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}},
            }
            for t in tools
            if t.get("type") == "function"
        ]
        tc = ir.get("tool_choice")
        choice: dict[str, Any] | None = None
        if tc == "auto":
            choice = {"type": "auto"}
        elif tc == "required":
            choice = {"type": "any"}
        elif tc == "none":
            choice = {"type": "none"}
        elif isinstance(tc, dict) and tc.get("function"):
            choice = {"type": "tool", "name": tc["function"]["name"]}
        if ir.get("parallel_tool_calls") is False:
            choice = choice or {"type": "auto"}
            choice["disable_parallel_tool_use"] = True
        if choice:
            out["tool_choice"] = choice
    if ir.get("user"):
        out["metadata"] = {"user_id": str(ir["user"])}
    if stream:
        out["stream"] = True
    return out


def anthropic_to_ir_response(obj: dict, model: str) -> dict:
    from .ir import completion

    text = []
    calls = []
    for b in obj.get("content") or []:
        if b.get("type") == "text":
            text.append(b.get("text", ""))
        elif b.get("type") == "tool_use":
            calls.append(
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input") or {}).decode()},
                }
            )
    u = obj.get("usage") or {}
    usage = Usage(
        int(u.get("input_tokens") or 0)
        + int(u.get("cache_read_input_tokens") or 0)
        + int(u.get("cache_creation_input_tokens") or 0),
        int(u.get("output_tokens") or 0),
    )
    return completion(
        obj.get("model") or model,
        "".join(text) if text or not calls else None,
        calls,
        STOP_TO_IR.get(obj.get("stop_reason", ""), "stop"),
        usage,
        rid=obj.get("id"),
    )


class AnthropicStreamDecoder:
    """Anthropic SSE events → IR chunks, event by event."""

    def __init__(self, model: str):
        self.parser = SSEParser()
        self.mk = ChunkMaker(model)
        self.usage: Usage | None = None
        self.tools: dict[int, int] = {}
        self.finish_reason: str | None = None

    def feed(self, data: bytes) -> list[dict]:
        out = []
        for event, payload in self.parser.feed(data):
            try:
                ev = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            t = ev.get("type") or event
            if t == "message_start":
                msg = ev.get("message") or {}
                if msg.get("id"):
                    self.mk.id = msg["id"]
                if msg.get("model"):
                    self.mk.model = msg["model"]
                u = msg.get("usage") or {}
                self.usage = Usage(
                    int(u.get("input_tokens") or 0) + int(u.get("cache_read_input_tokens") or 0),
                    int(u.get("output_tokens") or 0),
                )
                out.append(self.mk.chunk({"role": "assistant", "content": ""}))
            elif t == "content_block_start":
                cb = ev.get("content_block") or {}
                if cb.get("type") == "tool_use":
                    ti = len(self.tools)
                    self.tools[ev.get("index", 0)] = ti
                    out.append(
                        self.mk.chunk(
                            {
                                "tool_calls": [
                                    {
                                        "index": ti,
                                        "id": cb.get("id"),
                                        "type": "function",
                                        "function": {"name": cb.get("name"), "arguments": ""},
                                    }
                                ]
                            }
                        )
                    )
                elif cb.get("type") == "text" and cb.get("text"):
                    out.append(self.mk.chunk({"content": cb["text"]}))
            elif t == "content_block_delta":
                d = ev.get("delta") or {}
                if d.get("type") == "text_delta":
                    out.append(self.mk.chunk({"content": d.get("text", "")}))
                elif d.get("type") == "input_json_delta":
                    ti = self.tools.get(ev.get("index", 0), 0)
                    out.append(
                        self.mk.chunk(
                            {"tool_calls": [{"index": ti, "function": {"arguments": d.get("partial_json", "")}}]}
                        )
                    )
            elif t == "message_delta":
                d = ev.get("delta") or {}
                u = ev.get("usage") or {}
                if self.usage is None:
                    self.usage = Usage()
                if u.get("output_tokens") is not None:
                    self.usage.output = int(u["output_tokens"])
                if u.get("input_tokens"):
                    self.usage.input = int(u["input_tokens"])
                if d.get("stop_reason"):
                    self.finish_reason = STOP_TO_IR.get(d["stop_reason"], "stop")
                    out.append(self.mk.chunk({}, self.finish_reason))
            elif t == "message_stop":
                if self.usage is not None:
                    out.append(self.mk.usage(self.usage))
            elif t == "error":
                err = ev.get("error") or {}
                raise StreamError(err.get("message", "provider stream error"))
        return out

    def finish(self) -> list[dict]:
        return []


class AnthropicProvider(Provider):
    system = "anthropic"
    native = frozenset({"messages", "models"})
    default_base = "https://api.anthropic.com"

    def key_headers(self, key: str) -> list:
        return [("x-api-key", key)]

    def forward_headers(self, client_headers) -> list:
        out = [(k, v) for k, v in client_headers if k in ("anthropic-version", "anthropic-beta")]
        if not any(k == "anthropic-version" for k, _ in out):
            out.append(("anthropic-version", API_VERSION))
        return out

    def native_path(self, api: str, stream: bool, model: str) -> str:
        if self.path_override and api == "messages":
            return self.path_override
        return self.prefix + {"messages": "/v1/messages", "models": "/v1/models"}[api]

    def chat(self, ir: dict, stream: bool) -> Upstream:
        model = ir.get("model") or ""
        body = ir_to_anthropic(ir, model, stream)
        pc = self.extra.get("prompt_caching")
        if pc is not None:
            body = anthropic_points(body, pc)
        return Upstream(self.native_path("messages", stream, model), orjson.dumps(body))

    def parse_chat(self, obj: dict, model: str) -> dict:
        return anthropic_to_ir_response(obj, model)

    def stream_decoder(self, model: str):
        return AnthropicStreamDecoder(model)

    @staticmethod
    def usage_from(obj) -> Usage | None:
        u = obj.get("usage") if isinstance(obj, dict) else None
        if not isinstance(u, dict):
            return None
        return Usage(
            int(u.get("input_tokens") or 0) + int(u.get("cache_read_input_tokens") or 0),
            int(u.get("output_tokens") or 0),
        )


# -- client-facing /v1/messages -------------------------------------------------------------
def _image_url_of(src: dict) -> str:
    if src.get("type") == "base64":
        return data_url(src.get("media_type", "image/png"), src.get("data", ""))
    return src.get("url", "")


def _tool_result_text(c) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "".join(b.get("text", "") for b in c if isinstance(b, dict) and b.get("type") == "text")
    return ""


def request_to_ir(req: dict) -> dict:
    if not isinstance(req.get("messages"), list):
        raise TranslationError("messages: field required")
    if req.get("max_tokens") is None:
        raise TranslationError("max_tokens: field required")
    msgs: list[dict] = []
    sysv = req.get("system")
    if sysv:
        msgs.append({"role": "system", "content": sysv if isinstance(sysv, str) else _tool_result_text(sysv)})
    for m in req["messages"]:
        role = m.get("role")
        content = m.get("content")
        if isinstance(content, str):
            msgs.append({"role": role, "content": content})
            continue
        if role == "user":
            parts = []
            for b in content or []:
                t = b.get("type")
                if t == "tool_result":
                    text = _tool_result_text(b.get("content"))
                    msgs.append(
                        {
                            "role": "tool",
                            "tool_call_id": b.get("tool_use_id", ""),
                            "content": ("[error] " + text) if b.get("is_error") else text,
                        }
                    )
                elif t == "text":
                    parts.append({"type": "text", "text": b.get("text", "")})
                elif t == "image":
                    parts.append({"type": "image_url", "image_url": {"url": _image_url_of(b.get("source") or {})}})
            if parts:
                msgs.append(
                    {
                        "role": "user",
                        "content": parts
                        if any(p["type"] != "text" for p in parts)
                        else "".join(p["text"] for p in parts),
                    }
                )
        elif role == "assistant":
            text = "".join(b.get("text", "") for b in content or [] if b.get("type") == "text")
            calls = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input") or {}).decode()},
                }
                for b in content or []
                if b.get("type") == "tool_use"
            ]
            msg: dict = {"role": "assistant", "content": text or None}
            if calls:
                msg["tool_calls"] = calls
            msgs.append(msg)
        else:
            raise TranslationError(f"messages: unsupported role {role!r}")
    ir: dict = {"model": req.get("model"), "messages": msgs, "max_tokens": req["max_tokens"]}
    if req.get("stop_sequences"):
        ir["stop"] = req["stop_sequences"]
    for k in ("temperature", "top_p", "stream"):
        if req.get(k) is not None:
            ir[k] = req[k]
    if req.get("tools"):
        ir["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {},
                },
            }
            for t in req["tools"]
            if "name" in t
        ]
    tc = req.get("tool_choice")
    if isinstance(tc, dict):
        ty = tc.get("type", "")
        ir["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(ty) or {
            "type": "function",
            "function": {"name": tc.get("name")},
        }
        if tc.get("disable_parallel_tool_use"):
            ir["parallel_tool_calls"] = False
    md = req.get("metadata")
    if isinstance(md, dict) and md.get("user_id"):
        ir["user"] = md["user_id"]
    return ir


def response_from_ir(ir: dict, model: str) -> dict:
    ch = (ir.get("choices") or [{}])[0]
    msg = ch.get("message") or {}
    content: list[dict[str, Any]] = []
    t = text_of(msg.get("content"))
    if t:
        content.append({"type": "text", "text": t})
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": tc.get("id") or new_id("toolu_"),
                "name": fn.get("name"),
                "input": tool_arguments(fn.get("arguments")),
            }
        )
    u = Usage.from_openai(ir.get("usage")) or Usage()
    rid = ir.get("id") or ""
    return {
        "id": rid if rid.startswith("msg_") else "msg_" + (rid or new_id(""))[-24:],
        "type": "message",
        "role": "assistant",
        "model": ir.get("model") or model,
        "content": content,
        "stop_reason": STOP_FROM_IR.get(ch.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": u.input, "output_tokens": u.output},
    }


class StreamFromIR:
    """IR chunks → Anthropic SSE events (message_start, content blocks, message_delta, message_stop)."""

    def __init__(self, model: str):
        self.model = model
        self.started = False
        self.block = -1
        self.block_type: str | None = None
        self.tool_blocks: dict[int, int] = {}
        self.stop = "end_turn"
        self.usage = Usage()

    def _start(self, chunk: dict | None) -> bytes:
        self.started = True
        rid = (chunk or {}).get("id") or new_id("")
        msg: dict[str, Any] = {
            "id": "msg_" + rid[-24:],
            "type": "message",
            "role": "assistant",
            "model": (chunk or {}).get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.usage.input, "output_tokens": 0},
        }
        return encode({"type": "message_start", "message": msg}, "message_start")

    def _close(self) -> bytes:
        if self.block_type is None:
            return b""
        self.block_type = None
        return encode({"type": "content_block_stop", "index": self.block}, "content_block_stop")

    def _open(self, cb: dict, kind: str) -> bytes:
        out = self._close()
        self.block += 1
        self.block_type = kind
        return out + encode(
            {"type": "content_block_start", "index": self.block, "content_block": cb}, "content_block_start"
        )

    def feed(self, chunk: dict) -> bytes:
        out = b""
        if not self.started:
            out += self._start(chunk)
        u = chunk.get("usage")
        if u:
            self.usage = Usage.from_openai(u) or self.usage
        for ch in chunk.get("choices") or []:
            d = ch.get("delta") or {}
            text = d.get("content")
            if text:
                if self.block_type != "text":
                    out += self._open({"type": "text", "text": ""}, "text")
                out += encode(
                    {"type": "content_block_delta", "index": self.block, "delta": {"type": "text_delta", "text": text}},
                    "content_block_delta",
                )
            for tc in d.get("tool_calls") or []:
                ti = tc.get("index", 0)
                fn = tc.get("function") or {}
                if ti not in self.tool_blocks:
                    out += self._open(
                        {
                            "type": "tool_use",
                            "id": tc.get("id") or new_id("toolu_"),
                            "name": fn.get("name") or "",
                            "input": {},
                        },
                        "tool",
                    )
                    self.tool_blocks[ti] = self.block
                args = fn.get("arguments")
                if args:
                    out += encode(
                        {
                            "type": "content_block_delta",
                            "index": self.tool_blocks[ti],
                            "delta": {"type": "input_json_delta", "partial_json": args},
                        },
                        "content_block_delta",
                    )
            if ch.get("finish_reason"):
                self.stop = STOP_FROM_IR.get(ch["finish_reason"], "end_turn")
        return out

    def finish(self) -> bytes:
        out = b"" if self.started else self._start(None)
        out += self._close()
        out += encode(
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop, "stop_sequence": None},
                "usage": {"input_tokens": self.usage.input, "output_tokens": self.usage.output},
            },
            "message_delta",
        )
        out += encode({"type": "message_stop"}, "message_stop")
        return out


def error_body(status: int, message: str) -> bytes:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def error_event(status: int, message: str) -> bytes:
    return b"event: error\ndata: " + error_body(status, message) + b"\n\n"
