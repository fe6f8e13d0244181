"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, Groq, Together, ...).

Chat completions, embeddings, the Responses API and the model list are native here:
the gateway sends the client's body as it is (re-encoded only when it had to change
something, such as the model name), so OpenAI→OpenAI costs one JSON parse.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

from .base import Provider, Upstream
from .ir import Usage
from .sse import SSEParser


class OpenAIProvider(Provider):
    system = "openai"
    native = frozenset({"completions", "embeddings", "responses", "models"})
    default_base = "https://api.openai.com/v1"

    _PATHS: ClassVar[dict[str, str]] = {
        "completions": "/chat/completions",
        "embeddings": "/embeddings",
        "responses": "/responses",
        "models": "/models",
    }

    _FORWARD = frozenset(("openai-organization", "openai-project", "openai-beta"))

    def forward_headers(self, client_headers) -> list:
        fwd = self._FORWARD
        return [kv for kv in client_headers if kv[0] in fwd]

    def native_path(self, api: str, stream: bool, model: str) -> str:
        if self.path_override and api == "completions":
            return self.path_override
        return self.prefix + self._PATHS[api]

    def chat(self, ir: dict, stream: bool) -> Upstream:
        if stream:
            ir = {**ir, "stream": True, "stream_options": {**(ir.get("stream_options") or {}), "include_usage": True}}
        return Upstream(self.native_path("completions", stream, ir.get("model", "")), orjson.dumps(ir))

    def parse_chat(self, obj: dict, model: str) -> dict:
        return obj

    def stream_decoder(self, model: str):
        return OpenAIStreamDecoder()

    def embeddings(self, req: dict) -> Upstream:
        return Upstream(self.native_path("embeddings", False, req.get("model", "")), orjson.dumps(req))

    def parse_embeddings(self, obj: dict, req: dict) -> dict:
        return obj


class OpenAIStreamDecoder:
    """OpenAI SSE → IR chunks (already in IR shape: parse and collect usage)."""

    __slots__ = ("parser", "usage", "done")

    def __init__(self):
        self.parser = SSEParser()
        self.usage: Usage | None = None
        self.done = False

    def feed(self, data: bytes) -> list[dict]:
        out = []
        for _event, payload in self.parser.feed(data):
            if payload == "[DONE]":
                self.done = True
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            if "error" in obj and "choices" not in obj:
                raise StreamError(
                    obj["error"].get("message", "provider stream error")
                    if isinstance(obj["error"], dict)
                    else str(obj["error"])
                )
            u = obj.get("usage")
            if u:
                self.usage = Usage.from_openai(u)
            out.append(obj)
        return out

    def finish(self) -> list[dict]:
        return []


class StreamError(Exception):
    """The provider reported an error in the middle of a stream."""
