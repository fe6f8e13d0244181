"""The internal representation every translation goes through.

A chat request, response and stream event are kept in the OpenAI Chat Completions shape
(plain dicts, as parsed by orjson): it is what most clients and half the providers speak,
so the common OpenAI→OpenAI path needs no translation at all, and every other pair is one
hop into it and one hop out (Anthropic Messages, Bedrock Converse, Gemini and the
Responses API each have a ``to_ir``/``from_ir`` pair, not one per pair of APIs).

* request: ``{"model", "messages": [...], "tools", "tool_choice", "max_tokens",
  "temperature", "top_p", "stop", "stream", ...}``; messages have roles
  ``system|developer|user|assistant|tool``; assistant ``tool_calls`` carry
  ``{"id", "type": "function", "function": {"name", "arguments": <JSON string>}}``;
  user content may be a list of ``text`` / ``image_url`` parts.
* response: ``chat.completion`` with one choice, ``finish_reason`` in
  ``stop|length|tool_calls|content_filter``, and ``usage``.
* stream event: a ``chat.completion.chunk``; tool-call argument fragments arrive as
  ``delta.tool_calls[{index, id?, function: {name?, arguments}}]``; the last chunk may
  carry ``usage`` with empty ``choices``.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

FINISH = ("stop", "length", "tool_calls", "content_filter")


class Usage:
    """Tokens of one provider answer; and what tells which model answered: ``answer``
    (the whole answer, read only when asked: traces, the request log) or ``model`` (a
    stream's, read from its events)."""

    __slots__ = ("input", "output", "answer", "model")

    def __init__(self, input: int = 0, output: int = 0):
        self.input = input
        self.output = output
        self.answer: Any = None
        self.model: str | None = None

    @property
    def response_model(self) -> str | None:
        """The model the provider says answered (``gen_ai.response.model``), if it said."""
        if self.model:
            return self.model
        answer = self.answer
        m = answer.get("model") if isinstance(answer, dict) else None
        return m if isinstance(m, str) and m else None

    @property
    def total(self) -> int:
        return self.input + self.output

    def openai(self) -> dict:
        return {"prompt_tokens": self.input, "completion_tokens": self.output, "total_tokens": self.total}

    @classmethod
    def from_openai(cls, u) -> Usage | None:
        if not isinstance(u, dict):
            return None
        i = u.get("prompt_tokens", u.get("input_tokens")) or 0
        o = u.get("completion_tokens", u.get("output_tokens")) or 0
        return cls(int(i), int(o))


def new_id(prefix: str = "chatcmpl-") -> str:
    return prefix + uuid.uuid4().hex[:24]


def completion(
    model: str, content: str | None, tool_calls: list | None, finish: str, usage: Usage | None, rid: str | None = None
) -> dict:
    msg: dict = {"role": "assistant", "content": content}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    out = {
        "id": rid or new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
    }
    if usage is not None:
        out["usage"] = usage.openai()
    return out


class ChunkMaker:
    """Builds ``chat.completion.chunk`` events with a stable id/created/model."""

    __slots__ = ("id", "created", "model")

    def __init__(self, model: str, rid: str | None = None):
        self.id = rid or new_id()
        self.created = int(time.time())
        self.model = model

    def chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def usage(self, usage: Usage) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.openai(),
        }


def merging_appender(msgs: list[dict], key: str = "content"):
    """``push(role, blocks)`` for providers that need alternating roles (Anthropic,
    Bedrock Converse, Gemini): consecutive blocks of one role become one message, its
    blocks under ``key`` (Gemini's is ``parts``)."""

    def push(role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if msgs and msgs[-1]["role"] == role:
            msgs[-1][key].extend(blocks)
        else:
            msgs.append({"role": role, key: blocks})

    return push


def text_of(content) -> str:
    """The text of a message's content (string or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text")
        )
    return ""


def parts_of(content) -> list[dict]:
    """Content as a list of OpenAI parts (``text`` / ``image_url``)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [p for p in content if isinstance(p, dict)]


def parse_image_url(url: str) -> tuple[str, str | None, str]:
    """``("base64", media_type, data)`` for a data URL, ``("url", None, url)`` otherwise."""
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media = head[5:].split(";")[0] or "application/octet-stream"
        if ";base64" not in head:
            data = base64.b64encode(data.encode()).decode()
        return "base64", media, data
    return "url", None, url


def data_url(media_type: str, data_b64: str) -> str:
    return f"data:{media_type};base64,{data_b64}"


def stop_list(stop) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    return list(stop)


def max_tokens_of(req: dict) -> int | None:
    v = req.get("max_completion_tokens")
    if v is None:
        v = req.get("max_tokens")
    return v


class TranslationError(Exception):
    """The request can't be expressed for the chosen provider (a 400 to the client)."""
