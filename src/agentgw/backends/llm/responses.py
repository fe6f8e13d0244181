"""The OpenAI Responses API as a client-facing API for providers that don't speak it.

(OpenAI itself gets ``/v1/responses`` passed through.) Text, images, function calls and
function-call outputs map onto the IR; streaming emits the documented event sequence
(``response.created`` … ``response.output_text.delta`` … ``response.completed``) with
``sequence_number``s, translated chunk by chunk.
"""

from __future__ import annotations

import time

import orjson

from .ir import TranslationError, Usage, new_id, text_of
from .sse import encode


def _parts(content):
    if isinstance(content, str):
        return content
    parts = []
    for p in content or []:
        t = p.get("type")
        if t in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": p.get("text", "")})
        elif t == "input_image":
            url = p.get("image_url") or ""
            parts.append({"type": "image_url", "image_url": {"url": url}})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def request_to_ir(req: dict) -> dict:
    msgs: list[dict] = []
    if req.get("instructions"):
        msgs.append({"role": "system", "content": req["instructions"]})
    inp = req.get("input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        for it in inp:
            if not isinstance(it, dict):
                raise TranslationError("input: items must be objects")
            t = it.get("type", "message")
            if t == "message":
                role = it.get("role", "user")
                msgs.append({"role": role, "content": _parts(it.get("content"))})
            elif t == "function_call":
                call = {
                    "id": it.get("call_id"),
                    "type": "function",
                    "function": {"name": it.get("name"), "arguments": it.get("arguments") or "{}"},
                }
                if (msgs and msgs[-1]["role"] == "assistant" and not text_of(msgs[-1].get("content"))) or (
                    msgs and msgs[-1].get("tool_calls")
                ):
                    msgs[-1].setdefault("tool_calls", []).append(call)
                else:
                    msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
            elif t == "function_call_output":
                out = it.get("output")
                msgs.append(
                    {
                        "role": "tool",
                        "tool_call_id": it.get("call_id"),
                        "content": out if isinstance(out, str) else orjson.dumps(out).decode(),
                    }
                )
            elif t == "reasoning":
                continue
            else:
                raise TranslationError(f"input: item type {t!r} is not supported for this provider")
    else:
        raise TranslationError("input: field required")
    ir: dict = {"model": req.get("model"), "messages": msgs}
    if req.get("max_output_tokens") is not None:
        ir["max_tokens"] = req["max_output_tokens"]
    for k in ("temperature", "top_p", "stream", "user"):
        if req.get(k) is not None:
            ir[k] = req[k]
    tools = [t for t in req.get("tools") or [] if t.get("type") == "function"]
    if len(tools) != len(req.get("tools") or []):
        raise TranslationError("tools: only function tools are supported for this provider")
    if tools:
        ir["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description") or "",
                    "parameters": t.get("parameters") or {},
                },
            }
            for t in tools
        ]
    tc = req.get("tool_choice")
    if isinstance(tc, str):
        ir["tool_choice"] = tc
    elif isinstance(tc, dict) and tc.get("type") == "function":
        ir["tool_choice"] = {"type": "function", "function": {"name": tc.get("name")}}
    if req.get("parallel_tool_calls") is False:
        ir["parallel_tool_calls"] = False
    return ir


def _usage(u: Usage) -> dict:
    return {
        "input_tokens": u.input,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.total,
    }


def _shell(rid: str, model: str, req: dict, status: str, output: list, usage: Usage | None) -> dict:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "temperature": req.get("temperature"),
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p"),
        "usage": _usage(usage) if usage is not None else None,
        "metadata": req.get("metadata") or {},
    }


def _msg_item(iid: str, text: str, status: str = "completed") -> dict:
    return {
        "type": "message",
        "id": iid,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else [],
    }


def _call_item(iid: str, call_id: str, name: str, args: str, status: str = "completed") -> dict:
    return {"type": "function_call", "id": iid, "call_id": call_id, "name": name, "arguments": args, "status": status}


def response_from_ir(ir: dict, model: str, req: dict) -> dict:
    ch = (ir.get("choices") or [{}])[0]
    msg = ch.get("message") or {}
    output = []
    t = text_of(msg.get("content"))
    if t:
        output.append(_msg_item(new_id("msg_"), t))
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        output.append(
            _call_item(
                new_id("fc_"), tc.get("id") or new_id("call_"), fn.get("name") or "", fn.get("arguments") or "{}"
            )
        )
    status = "incomplete" if ch.get("finish_reason") == "length" else "completed"
    out = _shell(
        new_id("resp_"), ir.get("model") or model, req, status, output, Usage.from_openai(ir.get("usage")) or Usage()
    )
    if status == "incomplete":
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    return out


class StreamFromIR:
    def __init__(self, model: str, req: dict):
        self.model = model
        self.req = req
        self.rid = new_id("resp_")
        self.seq = 0
        self.started = False
        self.output: list[dict] = []
        # ("text", index, item_id, [text]) or ("call", index, item_id, call_id, name, [args])
        self.cur: tuple | None = None
        self.calls: dict[int, int] = {}
        self.usage = Usage()
        self.finish = None

    def _ev(self, kind: str, **fields) -> bytes:
        fields["type"] = kind
        fields["sequence_number"] = self.seq
        self.seq += 1
        return encode(fields, kind)

    def _start(self) -> bytes:
        self.started = True
        shell = _shell(self.rid, self.model, self.req, "in_progress", [], None)
        return self._ev("response.created", response=shell) + self._ev("response.in_progress", response=shell)

    def _close(self) -> bytes:
        cur, self.cur = self.cur, None
        if cur is None:
            return b""
        if cur[0] == "text":
            _, idx, iid, buf = cur
            text = "".join(buf)
            item = _msg_item(iid, text)
            part = item["content"][0]
            self.output.append(item)
            return (
                self._ev(
                    "response.output_text.done", item_id=iid, output_index=idx, content_index=0, text=text, logprobs=[]
                )
                + self._ev("response.content_part.done", item_id=iid, output_index=idx, content_index=0, part=part)
                + self._ev("response.output_item.done", output_index=idx, item=item)
            )
        _, idx, iid, call_id, name, buf = cur
        args = "".join(buf)
        item = _call_item(iid, call_id, name, args)
        self.output.append(item)
        return self._ev(
            "response.function_call_arguments.done", item_id=iid, output_index=idx, arguments=args
        ) + self._ev("response.output_item.done", output_index=idx, item=item)

    def feed(self, chunk: dict) -> bytes:
        out = b"" if self.started else self._start()
        u = chunk.get("usage")
        if u:
            self.usage = Usage.from_openai(u) or self.usage
        for ch in chunk.get("choices") or []:
            d = ch.get("delta") or {}
            text = d.get("content")
            if text:
                if self.cur is None or self.cur[0] != "text":
                    out += self._close()
                    idx = len(self.output)
                    iid = new_id("msg_")
                    self.cur = ("text", idx, iid, [])
                    out += self._ev(
                        "response.output_item.added", output_index=idx, item=_msg_item(iid, "", "in_progress")
                    )
                    out += self._ev(
                        "response.content_part.added",
                        item_id=iid,
                        output_index=idx,
                        content_index=0,
                        part={"type": "output_text", "text": "", "annotations": []},
                    )
                self.cur[3].append(text)
                out += self._ev(
                    "response.output_text.delta",
                    item_id=self.cur[2],
                    output_index=self.cur[1],
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            for tc in d.get("tool_calls") or []:
                ti = tc.get("index", 0)
                fn = tc.get("function") or {}
                if ti not in self.calls:
                    out += self._close()
                    idx = len(self.output)
                    iid = new_id("fc_")
                    self.calls[ti] = idx
                    self.cur = ("call", idx, iid, tc.get("id") or new_id("call_"), fn.get("name") or "", [])
                    out += self._ev(
                        "response.output_item.added",
                        output_index=idx,
                        item=_call_item(iid, self.cur[3], self.cur[4], "", "in_progress"),
                    )
                args = fn.get("arguments")
                if args and self.cur is not None and self.cur[0] == "call":
                    self.cur[5].append(args)
                    out += self._ev(
                        "response.function_call_arguments.delta",
                        item_id=self.cur[2],
                        output_index=self.cur[1],
                        delta=args,
                    )
            if ch.get("finish_reason"):
                self.finish = ch["finish_reason"]
        return out

    def finish_stream(self) -> bytes:
        out = b"" if self.started else self._start()
        out += self._close()
        status = "incomplete" if self.finish == "length" else "completed"
        shell = _shell(self.rid, self.model, self.req, status, self.output, self.usage)
        if status == "incomplete":
            shell["incomplete_details"] = {"reason": "max_output_tokens"}
            return out + self._ev("response.incomplete", response=shell)
        return out + self._ev("response.completed", response=shell)
