"""AWS Bedrock Converse / ConverseStream, signed with SigV4.

The streaming answer is ``application/vnd.amazon.eventstream``: binary frames (prelude,
headers, JSON payload, CRCs) decoded with botocore's ``EventStreamBuffer`` as bytes
arrive, each event translated to an IR chunk on the spot.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamError

from .anthropic import tool_arguments
from .base import Provider, Upstream
from .caching import bedrock_points
from .ir import (
    ChunkMaker,
    TranslationError,
    Usage,
    completion,
    max_tokens_of,
    merging_appender,
    parse_image_url,
    parts_of,
    stop_list,
    text_of,
)
from .openai import StreamError

STOP_TO_IR = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


def ir_to_converse(ir: dict) -> dict:
    system = []
    msgs: list[dict] = []

    push = merging_appender(msgs)

    for m in ir.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append({"text": text_of(m.get("content"))})
        elif role == "user":
            blocks = []
            for p in parts_of(m.get("content")):
                if p.get("type") == "text":
                    blocks.append({"text": p.get("text", "")})
                elif p.get("type") == "image_url":
                    iu = p.get("image_url")
                    kind, media, data = parse_image_url(iu.get("url", "") if isinstance(iu, dict) else str(iu))
                    if kind != "base64" or media not in _FORMATS:
                        raise TranslationError("Bedrock accepts images only as base64 data URLs (png, jpeg, gif, webp)")
                    blocks.append({"image": {"format": _FORMATS[media], "source": {"bytes": data}}})
            push("user", blocks)
        elif role == "assistant":
            blocks = []
            t = text_of(m.get("content"))
            if t:
                blocks.append({"text": t})
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": tc.get("id"),
                            "name": fn.get("name"),
                            "input": tool_arguments(fn.get("arguments")),
                        }
                    }
                )
            push("assistant", blocks)
        elif role == "tool":
            push(
                "user",
                [
                    {
                        "toolResult": {
                            "toolUseId": m.get("tool_call_id", ""),
                            "content": [{"text": text_of(m.get("content"))}],
                        }
                    }
                ],
            )
        else:
            raise TranslationError(f"unsupported message role {role!r}")
    out: dict = {"messages": msgs}
    if system:
        out["system"] = system
    inf: dict[str, Any] = {}
    mt = max_tokens_of(ir)
    if mt is not None:
        inf["maxTokens"] = mt
    if ir.get("temperature") is not None:
        inf["temperature"] = ir["temperature"]
    if ir.get("top_p") is not None:
        inf["topP"] = ir["top_p"]
    stops = stop_list(ir.get("stop"))
    if stops:
        inf["stopSequences"] = stops
    if inf:
        out["inferenceConfig"] = inf
    tools = [t for t in ir.get("tools") or [] if t.get("type") == "function"]
    if tools and ir.get("tool_choice") != "none":
        tool_config: dict = {
            "tools": [
                {
                    "toolSpec": {
                        "name": t["function"]["name"],
                        "description": t["function"].get("description") or t["function"]["name"],
                        "inputSchema": {
                            "json": t["function"].get("parameters") or {"type": "object", "properties": {}}
                        },
                    }
                }
                for t in tools
            ]
        }
        choice = ir.get("tool_choice")
        if choice == "auto":
            tool_config["toolChoice"] = {"auto": {}}
        elif choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        elif isinstance(choice, dict) and choice.get("function"):
            tool_config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
        out["toolConfig"] = tool_config
    return out


def converse_to_ir(obj: dict, model: str) -> dict:
    msg = ((obj.get("output") or {}).get("message")) or {}
    text, calls = [], []
    for b in msg.get("content") or []:
        if "text" in b:
            text.append(b["text"])
        elif "toolUse" in b:
            tu = b["toolUse"]
            calls.append(
                {
                    "id": tu.get("toolUseId"),
                    "type": "function",
                    "function": {"name": tu.get("name"), "arguments": orjson.dumps(tu.get("input") or {}).decode()},
                }
            )
    u = obj.get("usage") or {}
    usage = Usage(int(u.get("inputTokens") or 0), int(u.get("outputTokens") or 0))
    return completion(
        model,
        "".join(text) if text or not calls else None,
        calls,
        STOP_TO_IR.get(obj.get("stopReason", ""), "stop"),
        usage,
    )


class ConverseStreamDecoder:
    """Event-stream frames → IR chunks."""

    def __init__(self, model: str):
        self.buf = EventStreamBuffer()
        self.mk = ChunkMaker(model)
        self.usage: Usage | None = None
        self.tools: dict[int, int] = {}

    def feed(self, data: bytes) -> list[dict]:
        self.buf.add_data(data)
        out = []
        try:
            for msg in self.buf:
                h = msg.headers
                mtype = h.get(":message-type")
                try:
                    payload = orjson.loads(msg.payload) if msg.payload else {}
                except orjson.JSONDecodeError:
                    payload = {}
                if mtype in ("exception", "error"):
                    name = h.get(":exception-type") or h.get(":error-code") or "error"
                    raise StreamError(
                        f"{name}: {payload.get('message') or payload.get('Message') or h.get(':error-message', '')}"
                    )
                ev = h.get(":event-type")
                out.extend(self._event(ev, payload))
        except EventStreamError as exc:
            raise StreamError(f"malformed event stream from Bedrock: {exc}") from None
        return out

    def _event(self, ev: str, p: dict) -> list[dict]:
        mk = self.mk
        if ev == "messageStart":
            return [mk.chunk({"role": p.get("role", "assistant"), "content": ""})]
        if ev == "contentBlockStart":
            tu = (p.get("start") or {}).get("toolUse")
            if tu:
                ti = len(self.tools)
                self.tools[p.get("contentBlockIndex", 0)] = ti
                return [
                    mk.chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": ti,
                                    "id": tu.get("toolUseId"),
                                    "type": "function",
                                    "function": {"name": tu.get("name"), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            return []
        if ev == "contentBlockDelta":
            d = p.get("delta") or {}
            if "text" in d:
                return [mk.chunk({"content": d["text"]})]
            if "toolUse" in d:
                ti = self.tools.get(p.get("contentBlockIndex", 0), 0)
                return [
                    mk.chunk({"tool_calls": [{"index": ti, "function": {"arguments": d["toolUse"].get("input", "")}}]})
                ]
            return []
        if ev == "messageStop":
            return [mk.chunk({}, STOP_TO_IR.get(p.get("stopReason", ""), "stop"))]
        if ev == "metadata":
            u = p.get("usage") or {}
            self.usage = Usage(int(u.get("inputTokens") or 0), int(u.get("outputTokens") or 0))
            return [mk.usage(self.usage)]
        return []

    def finish(self) -> list[dict]:
        return []


class BedrockProvider(Provider):
    system = "aws.bedrock"
    native = frozenset()

    def key_headers(self, key: str) -> list:
        return [("authorization", f"Bearer {key}")]  # Bedrock API keys

    def chat(self, ir: dict, stream: bool) -> Upstream:
        model = ir.get("model") or ""
        body = ir_to_converse(ir)
        pc = self.extra.get("prompt_caching")
        if pc is not None:
            bedrock_points(body, pc, model)
        g = self.extra.get("guardrail")
        if g:
            body["guardrailConfig"] = {"guardrailIdentifier": g[0], "guardrailVersion": g[1]}
        op = "converse-stream" if stream else "converse"
        path = self.path_override or f"{self.prefix}/model/{quote(model, safe='')}/{op}"
        return Upstream(
            path,
            orjson.dumps(body),
            [("accept", "application/vnd.amazon.eventstream" if stream else "application/json")],
            stream_kind="eventstream",
        )

    def parse_chat(self, obj: dict, model: str) -> dict:
        return converse_to_ir(obj, model)

    def stream_decoder(self, model: str):
        return ConverseStreamDecoder(model)

    @staticmethod
    def usage_from(obj) -> Usage | None:
        u = obj.get("usage") if isinstance(obj, dict) else None
        return Usage(int(u.get("inputTokens") or 0), int(u.get("outputTokens") or 0)) if isinstance(u, dict) else None
