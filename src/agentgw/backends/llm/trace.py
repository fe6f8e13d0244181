"""What the CEL ``llm`` variable holds for a traced LLM call (span attributes).

Kept only for requests that are traced (``ctx.attrs["trace"]`` set before the backend
runs): the request as sent on (after guards, prompts, defaults and overrides), the
answer's text, and the call's accounting. Read when the span ends:

* ``llm.streaming``, ``llm.requestModel`` (the client's ``model``), ``llm.responseModel``
  and ``llm.provider`` (``gen_ai.provider.name``), ``llm.inputTokens``,
  ``llm.outputTokens``, ``llm.totalTokens``;
* ``llm.prompt``: the messages as ``[{role, content}]`` (the system prompt first, as a
  ``system`` message; content parts joined as text);
* ``llm.completion``: the answer's texts, one per choice (a streamed answer: its deltas
  joined);
* ``llm.params``: ``temperature``, ``top_p``, ``frequency_penalty``,
  ``presence_penalty``, ``seed``, ``max_tokens`` when the request set them.
"""

from __future__ import annotations

from typing import Any

from .guards import collect_texts

_PARAMS = ("temperature", "top_p", "frequency_penalty", "presence_penalty", "seed", "max_tokens")
KEY = "llm_trace"


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") if isinstance(p.get("text"), str) else ""
            for p in content
            if isinstance(p, dict) and p.get("type") in (None, "text", "input_text", "output_text")
        )
    return ""


def prompt_of(body: dict, api: str) -> list[dict]:
    out: list[dict] = []
    if api in ("messages", "count_tokens"):
        if body.get("system"):
            out.append({"role": "system", "content": _text(body["system"])})
    elif api == "responses":
        if body.get("instructions"):
            out.append({"role": "system", "content": str(body["instructions"])})
        inp = body.get("input")
        if isinstance(inp, str):
            return [*out, {"role": "user", "content": inp}]
        body = {"messages": [m for m in inp or [] if isinstance(m, dict) and "role" in m]}
    elif api == "embeddings":
        inp = body.get("input")
        return [{"role": "user", "content": t} for t in ([inp] if isinstance(inp, str) else inp or []) if t]
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            out.append({"role": str(m.get("role", "")), "content": _text(m.get("content"))})
    return out


class LlmTrace:
    __slots__ = ("api", "body", "stream", "answer", "streamed")

    def __init__(self, api: str, body: dict, stream: bool):
        self.api = api
        self.body = body
        self.stream = stream
        self.answer: Any = None  # the whole answer, in the client's API shape
        self.streamed: list[str] | None = [] if stream else None  # text deltas

    def note_delta(self, s: str) -> str:
        if self.streamed is not None and s:
            self.streamed.append(s)
        return s

    def cel(self, attrs: dict) -> dict:
        body = self.body
        out: dict[str, Any] = {"streaming": self.stream}
        if isinstance(body.get("model"), str):
            out["requestModel"] = body["model"]
        call = attrs.get("llm.call")
        if call is not None:
            out["responseModel"], out["provider"] = call
        usage = attrs.get("llm_usage")
        if usage is not None:
            out["inputTokens"], out["outputTokens"], out["totalTokens"] = usage.input, usage.output, usage.total
        out["prompt"] = prompt_of(body, self.api)
        if self.streamed is not None:
            out["completion"] = ["".join(self.streamed)] if self.streamed else []
        elif self.answer is not None:
            out["completion"] = self._completion()
        params = {k: body[k] for k in _PARAMS if k in body}
        if params:
            out["params"] = params
        return out

    def _completion(self) -> list[str]:
        a, api = self.answer, self.api
        if not isinstance(a, dict):
            return []
        if api == "completions":
            return [
                _text((c.get("message") or {}).get("content")) for c in a.get("choices") or [] if isinstance(c, dict)
            ]
        if api == "embeddings":
            return []
        return ["".join(collect_texts(a, api, "response"))]
