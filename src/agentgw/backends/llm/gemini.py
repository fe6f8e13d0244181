"""Google Gemini (Generative Language API, API key) and Vertex AI (OAuth token).

``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``; Gemini's
function calls have no ids, so the gateway makes them up on the way out and maps tool
results back to function names from the conversation on the way in.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from .anthropic import tool_arguments
from .base import Provider, Upstream
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
from .sse import SSEParser

FINISH_TO_IR = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
}


def _clean_schema(s):
    """Gemini's Schema is an OpenAPI subset: drop JSON-Schema keys it rejects."""
    if isinstance(s, dict):
        return {
            k: _clean_schema(v)
            for k, v in s.items()
            if k not in ("$schema", "additionalProperties", "strict", "$id", "$defs")
        }
    if isinstance(s, list):
        return [_clean_schema(v) for v in s]
    return s


def ir_to_gemini(ir: dict) -> dict:
    system = []
    contents: list[dict] = []
    names: dict[str, str] = {}

    push = merging_appender(contents, key="parts")

    for m in ir.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append({"text": text_of(m.get("content"))})
        elif role == "user":
            parts = []
            for p in parts_of(m.get("content")):
                if p.get("type") == "text":
                    parts.append({"text": p.get("text", "")})
                elif p.get("type") == "image_url":
                    iu = p.get("image_url")
                    kind, media, data = parse_image_url(iu.get("url", "") if isinstance(iu, dict) else str(iu))
                    if kind == "base64":
                        parts.append({"inlineData": {"mimeType": media, "data": data}})
                    else:
                        parts.append({"fileData": {"mimeType": "image/*", "fileUri": data}})
            push("user", parts)
        elif role == "assistant":
            parts = []
            t = text_of(m.get("content"))
            if t:
                parts.append({"text": t})
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                names[tc.get("id", "")] = fn.get("name", "")
                parts.append({"functionCall": {"name": fn.get("name"), "args": tool_arguments(fn.get("arguments"))}})
            push("model", parts)
        elif role == "tool":
            tid = m.get("tool_call_id", "")
            name = names.get(tid)
            if name is None:
                raise TranslationError(f"tool message refers to unknown tool_call_id {tid!r}")
            text = text_of(m.get("content"))
            try:
                resp = orjson.loads(text)
                if not isinstance(resp, dict):
                    resp = {"result": resp}
            except orjson.JSONDecodeError:
                resp = {"result": text}
            push("user", [{"functionResponse": {"name": name, "response": resp}}])
        else:
            raise TranslationError(f"unsupported message role {role!r}")
    out: dict = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    gc: dict[str, Any] = {}
    mt = max_tokens_of(ir)
    if mt is not None:
        gc["maxOutputTokens"] = mt
    if ir.get("temperature") is not None:
        gc["temperature"] = ir["temperature"]
    if ir.get("top_p") is not None:
        gc["topP"] = ir["top_p"]
    stops = stop_list(ir.get("stop"))
    if stops:
        gc["stopSequences"] = stops
    rf = ir.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        gc["responseMimeType"] = "application/json"
    if gc:
        out["generationConfig"] = gc
    tools = [t for t in ir.get("tools") or [] if t.get("type") == "function"]
    if tools:
        decls = []
        for t in tools:
            d: dict[str, Any] = {"name": t["function"]["name"], "description": t["function"].get("description", "")}
            if t["function"].get("parameters"):
                d["parameters"] = _clean_schema(t["function"]["parameters"])
            decls.append(d)
        out["tools"] = [{"functionDeclarations": decls}]
        choice = ir.get("tool_choice")
        mode: dict[str, Any] | None = None
        if choice == "auto":
            mode = {"mode": "AUTO"}
        elif choice == "required":
            mode = {"mode": "ANY"}
        elif choice == "none":
            mode = {"mode": "NONE"}
        elif isinstance(choice, dict) and choice.get("function"):
            mode = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
        if mode:
            out["toolConfig"] = {"functionCallingConfig": mode}
    return out


def _usage(obj) -> Usage | None:
    u = obj.get("usageMetadata")
    if not isinstance(u, dict):
        return None
    return Usage(
        int(u.get("promptTokenCount") or 0),
        int(u.get("candidatesTokenCount") or 0) + int(u.get("thoughtsTokenCount") or 0),
    )


def gemini_to_ir(obj: dict, model: str) -> dict:
    cands = obj.get("candidates") or []
    if not cands:
        fb = obj.get("promptFeedback") or {}
        return completion(model, None, None, "content_filter" if fb.get("blockReason") else "stop", _usage(obj))
    c = cands[0]
    text: list[str] = []
    calls: list[dict] = []
    for p in (c.get("content") or {}).get("parts") or []:
        if "text" in p and not p.get("thought"):
            text.append(p["text"])
        elif "functionCall" in p:
            fc = p["functionCall"]
            calls.append(
                {
                    "id": fc.get("id") or f"call_{len(calls)}_{fc.get('name')}",
                    "type": "function",
                    "function": {"name": fc.get("name"), "arguments": orjson.dumps(fc.get("args") or {}).decode()},
                }
            )
    finish = "tool_calls" if calls else FINISH_TO_IR.get(c.get("finishReason"), "stop")
    return completion(
        obj.get("modelVersion") or model,
        "".join(text) if text or not calls else None,
        calls,
        finish,
        _usage(obj),
        rid=obj.get("responseId") and "chatcmpl-" + obj["responseId"],
    )


class GeminiStreamDecoder:
    """``streamGenerateContent?alt=sse`` events (each a GenerateContentResponse) → IR chunks."""

    def __init__(self, model: str):
        self.parser = SSEParser()
        self.mk = ChunkMaker(model)
        self.usage: Usage | None = None
        self.started = False
        self.ncalls = 0
        self.finish_sent = False

    def feed(self, data: bytes) -> list[dict]:
        out = []
        for _ev, payload in self.parser.feed(data):
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and "error" in obj:
                raise StreamError((obj["error"] or {}).get("message", "provider stream error"))
            if not self.started:
                self.started = True
                out.append(self.mk.chunk({"role": "assistant", "content": ""}))
            u = _usage(obj)
            if u is not None:
                self.usage = u
            for c in (obj.get("candidates") or [])[:1]:
                for p in (c.get("content") or {}).get("parts") or []:
                    if "text" in p and not p.get("thought") and p["text"]:
                        out.append(self.mk.chunk({"content": p["text"]}))
                    elif "functionCall" in p:
                        fc = p["functionCall"]
                        ti = self.ncalls
                        self.ncalls += 1
                        out.append(
                            self.mk.chunk(
                                {
                                    "tool_calls": [
                                        {
                                            "index": ti,
                                            "id": fc.get("id") or f"call_{ti}_{fc.get('name')}",
                                            "type": "function",
                                            "function": {
                                                "name": fc.get("name"),
                                                "arguments": orjson.dumps(fc.get("args") or {}).decode(),
                                            },
                                        }
                                    ]
                                }
                            )
                        )
                fr = c.get("finishReason")
                if fr and not self.finish_sent:
                    self.finish_sent = True
                    out.append(self.mk.chunk({}, "tool_calls" if self.ncalls else FINISH_TO_IR.get(fr, "stop")))
        return out

    def finish(self) -> list[dict]:
        return [self.mk.usage(self.usage)] if self.usage is not None else []


class GeminiProvider(Provider):
    system = "gcp.gemini"
    default_base = "https://generativelanguage.googleapis.com"

    def key_headers(self, key: str) -> list:
        return [("x-goog-api-key", key)]

    def _model_path(self, model: str) -> str:
        return f"{self.prefix or '/v1beta'}/models/{quote(model, safe='')}"

    def chat(self, ir: dict, stream: bool) -> Upstream:
        model = ir.get("model") or ""
        op = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        path = self.path_override or self._model_path(model) + op
        return Upstream(path, orjson.dumps(ir_to_gemini(ir)))

    def parse_chat(self, obj: dict, model: str) -> dict:
        return gemini_to_ir(obj, model)

    def stream_decoder(self, model: str):
        return GeminiStreamDecoder(model)

    @staticmethod
    def usage_from(obj) -> Usage | None:
        return _usage(obj) if isinstance(obj, dict) else None

    def embeddings(self, req: dict) -> Upstream:
        model = req.get("model") or ""
        inp = req.get("input")
        texts = [inp] if isinstance(inp, str) else list(inp or [])
        if not all(isinstance(t, str) for t in texts):
            raise TranslationError("Gemini embeddings take text input only")
        full = f"models/{model}"
        body = {"requests": [{"model": full, "content": {"parts": [{"text": t}]}} for t in texts]}
        if req.get("dimensions"):
            for r in body["requests"]:
                r["outputDimensionality"] = req["dimensions"]
        return Upstream(self._model_path(model) + ":batchEmbedContents", orjson.dumps(body))

    def parse_embeddings(self, obj: dict, req: dict) -> dict:
        data = [
            {"object": "embedding", "index": i, "embedding": e.get("values", [])}
            for i, e in enumerate(obj.get("embeddings") or [])
        ]
        return {
            "object": "list",
            "data": data,
            "model": req.get("model"),
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }


class VertexProvider(GeminiProvider):
    system = "gcp.vertex_ai"

    def key_headers(self, key: str) -> list:
        return [("authorization", f"Bearer {key}")]

    def _model_path(self, model: str) -> str:
        p, r = self.extra["project"], self.extra["region"]
        return f"{self.prefix or '/v1'}/projects/{p}/locations/{r}/publishers/google/models/{quote(model, safe='')}"

    def embeddings(self, req: dict) -> Upstream:
        raise TranslationError("embeddings through Vertex AI are not supported by this gateway; use the Gemini API")
