"""Provider fakes for the LLM tests: OpenAI, Anthropic, Bedrock, Gemini, Vertex, Azure.

    python -m tests.llm.fakes --port N

One aiohttp process serves every provider's documented endpoint (their paths don't
collide). Each request is checked against the provider's documented request schema —
required fields and types, allowed keys, role/content rules, and the auth headers
(``Authorization: Bearer``, ``x-api-key`` + ``anthropic-version``, a SigV4 signature
recomputed with botocore, ``x-goog-api-key``/``key=``, ``api-key`` + ``api-version``).
A request that fails validation gets a 400 naming the problem (the tests assert none
did). Answers use each provider's documented response and stream shapes: OpenAI SSE,
Anthropic SSE events, Bedrock ``application/vnd.amazon.eventstream`` binary frames,
Gemini ``streamGenerateContent?alt=sse``.

Behaviour is deterministic: with tools and no tool result yet, the model calls the first
tool with ``{"city": "Paris"}``; after a tool result it answers ``tool said: <result>``;
otherwise ``echo: <last user text>`` prefixed by ``[system: ...]`` when a system prompt
came through and followed by `` [image]`` when an image did. Usage is always 11 input /
7 output tokens. Model names steer failures: ``fail-429``, ``fail-500``, ``slow`` (3 s).

``GET /_log`` returns every request seen (path, headers, JSON body, validation error);
``POST /_reset`` clears it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import struct
import time
import uuid

from aiohttp import web

OPENAI_KEY = "sk-openai-test"
ANTHROPIC_KEY = "sk-ant-test"
GEMINI_KEY = "gemini-test-key"
VERTEX_TOKEN = "ya29.vertex-test"
AZURE_KEY = "azure-test-key"
AWS_KEY_ID = "AKIDEXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_REGION = "us-west-2"

IN_TOKENS, OUT_TOKENS = 11, 7
NO_AUTH = False  # --no-auth: the OpenAI-style endpoints take no key (as a local Ollama)
LOG: list[dict] = []


class Invalid(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Invalid(msg)


def only_keys(obj: dict, allowed: set, where: str):
    extra = set(obj) - allowed
    need(not extra, f"{where}: unknown fields {sorted(extra)}")


# -- deterministic model -------------------------------------------------------------------
class Conv:
    """What the fake model saw, provider-independently."""

    def __init__(self):
        self.system = ""
        self.last_user = ""
        self.image = False
        self.tools: list[str] = []
        self.tool_result: str | None = None

    def answer(self) -> tuple[str | None, dict | None]:
        if self.tool_result is not None:
            return f"tool said: {self.tool_result}", None
        if self.tools:
            return None, {"name": self.tools[0], "args": {"city": "Paris"}, "id": "call_" + uuid.uuid4().hex[:10]}
        t = f"echo: {self.last_user}"
        if self.system:
            t = f"[system: {self.system}] " + t
        if self.image:
            t += " [image]"
        return t, None


def pieces(text: str) -> list[str]:
    """Split an answer into stream deltas."""
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch == " ":
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def behaviour(model: str):
    if model == "fail-429":
        return web.json_response({"error": {"message": "rate limited by fake", "type": "rate_limit"}}, status=429)
    if model == "fail-500":
        return web.json_response({"error": {"message": "fake exploded", "type": "server_error"}}, status=500)
    return None


# -- OpenAI / Azure -----------------------------------------------------------------------
OPENAI_CHAT_KEYS = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "user",
    "parallel_tool_calls",
    "response_format",
    "seed",
    "logprobs",
    "presence_penalty",
    "frequency_penalty",
    "metadata",
    "store",
    "reasoning_effort",
}


def validate_openai_chat(body: dict, azure: bool) -> Conv:
    only_keys(body, OPENAI_CHAT_KEYS, "body")
    if not azure:
        need(isinstance(body.get("model"), str) and body["model"], "model: required string")
    msgs = body.get("messages")
    need(isinstance(msgs, list) and msgs, "messages: required non-empty array")
    conv = Conv()
    call_ids = set()
    for i, m in enumerate(msgs):
        need(isinstance(m, dict), f"messages[{i}]: object")
        role = m.get("role")
        need(role in ("system", "developer", "user", "assistant", "tool"), f"messages[{i}].role: invalid {role!r}")
        c = m.get("content")
        if role == "tool":
            need(isinstance(m.get("tool_call_id"), str), f"messages[{i}].tool_call_id: required")
            need(m["tool_call_id"] in call_ids, f"messages[{i}].tool_call_id: no such call")
            need(isinstance(c, (str, list)), f"messages[{i}].content: required")
            conv.tool_result = c if isinstance(c, str) else "".join(p.get("text", "") for p in c)
            continue
        if role == "assistant":
            need(c is None or isinstance(c, (str, list)), f"messages[{i}].content: string, array or null")
            for j, tc in enumerate(m.get("tool_calls") or []):
                need(
                    tc.get("type") == "function" and isinstance(tc.get("id"), str),
                    f"messages[{i}].tool_calls[{j}]: id and type=function required",
                )
                fn = tc.get("function") or {}
                need(
                    isinstance(fn.get("name"), str) and isinstance(fn.get("arguments"), str),
                    f"messages[{i}].tool_calls[{j}].function: name and arguments (string) required",
                )
                json.loads(fn["arguments"])
                call_ids.add(tc["id"])
            conv.tool_result = None
            continue
        need(isinstance(c, (str, list)), f"messages[{i}].content: string or array")
        text = c if isinstance(c, str) else ""
        if isinstance(c, list):
            for j, p in enumerate(c):
                t = p.get("type")
                need(t in ("text", "image_url"), f"messages[{i}].content[{j}].type: invalid {t!r}")
                if t == "text":
                    need(isinstance(p.get("text"), str), f"messages[{i}].content[{j}].text: required")
                    text += p["text"]
                else:
                    need(
                        isinstance((p.get("image_url") or {}).get("url"), str),
                        f"messages[{i}].content[{j}].image_url.url: required",
                    )
                    conv.image = True
        if role in ("system", "developer"):
            conv.system = text
        else:
            conv.last_user = text
            conv.tool_result = None
    for j, t in enumerate(body.get("tools") or []):
        need(
            t.get("type") == "function" and isinstance((t.get("function") or {}).get("name"), str),
            f"tools[{j}]: type=function and function.name required",
        )
        conv.tools.append(t["function"]["name"])
    if "stream" in body:
        need(isinstance(body["stream"], bool), "stream: boolean")
    if "stream_options" in body:
        need(body.get("stream") is True, "stream_options: only with stream=true")
    return conv


def openai_completion(model: str, conv: Conv) -> dict:
    text, call = conv.answer()
    msg = {"role": "assistant", "content": text, "refusal": None}
    if call:
        msg["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
        ]
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:20],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": "tool_calls" if call else "stop"}],
        "usage": {"prompt_tokens": IN_TOKENS, "completion_tokens": OUT_TOKENS, "total_tokens": IN_TOKENS + OUT_TOKENS},
    }


async def openai_stream(request, model: str, conv: Conv, include_usage: bool):
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await resp.prepare(request)
    rid = "chatcmpl-" + uuid.uuid4().hex[:20]
    created = int(time.time())

    async def ev(delta, finish=None, usage=None, choices=True):
        obj = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
        }
        if usage:
            obj["usage"] = usage
        elif include_usage:
            obj["usage"] = None
        await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")

    text, call = conv.answer()
    await ev({"role": "assistant", "content": "", "refusal": None})
    if text:
        for p in pieces(text):
            await ev({"content": p})
    if call:
        args = json.dumps(call["args"])
        await ev(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                ]
            }
        )
        for k in range(0, len(args), 5):
            await ev({"tool_calls": [{"index": 0, "function": {"arguments": args[k : k + 5]}}]})
    await ev({}, "tool_calls" if call else "stop")
    if include_usage:
        await ev(
            None,
            usage={"prompt_tokens": IN_TOKENS, "completion_tokens": OUT_TOKENS, "total_tokens": IN_TOKENS + OUT_TOKENS},
            choices=False,
        )
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


_HUGE: list[bytes] = []


def _huge_answer() -> bytes:
    if not _HUGE:
        _HUGE.append(b'{"id": "chatcmpl-huge", "pad": "' + b"a" * (65 << 20) + b'"}')
    return _HUGE[0]


async def openai_chat(request: web.Request, body: dict, azure: bool = False):
    if azure:
        need(request.headers.get("api-key") == AZURE_KEY, "api-key header: missing or wrong")
        need("authorization" not in request.headers, "authorization: must not be sent to Azure with api-key auth")
        need(request.query.get("api-version"), "api-version query parameter: required")
        model = request.match_info["deployment"]
    elif NO_AUTH:  # a local server that takes no key (Ollama)
        need("authorization" not in request.headers, "authorization: not expected by a server without keys")
        model = body.get("model", "")
    else:
        need(
            request.headers.get("authorization") == f"Bearer {OPENAI_KEY}", "authorization: missing or wrong Bearer key"
        )
        model = body.get("model", "")
    need(
        request.headers.get("content-type", "").startswith("application/json"),
        "content-type: application/json required",
    )
    conv = validate_openai_chat(body, azure)
    bad = behaviour(model)
    if bad is not None:
        return bad
    if model == "slow":
        await asyncio.sleep(3)
    if model == "bad-json":  # a broken provider: 200 with a body that is not JSON
        return web.Response(body=b'{"id": "chatcmpl-x", "choices": [', content_type="application/json")
    if model == "huge":  # an answer past the gateway's 64 MiB limit (a JSON string of 65 MiB)
        return web.Response(body=_huge_answer(), content_type="application/json")
    if body.get("stream"):
        return await openai_stream(request, model, conv, bool((body.get("stream_options") or {}).get("include_usage")))
    if model == "slow-body":  # the head at once, the body 200 ms later (two writes)
        data = json.dumps(openai_completion(model, conv)).encode()
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.drain()
        await asyncio.sleep(0.2)
        await resp.write(data)
        await resp.write_eof()
        return resp
    return web.json_response(openai_completion(model, conv))


async def openai_embeddings(request: web.Request, body: dict):
    need(request.headers.get("authorization") == f"Bearer {OPENAI_KEY}", "authorization: missing or wrong Bearer key")
    only_keys(body, {"model", "input", "encoding_format", "dimensions", "user"}, "body")
    need(isinstance(body.get("model"), str), "model: required")
    inp = body.get("input")
    need(isinstance(inp, (str, list)), "input: string or array")
    items = [inp] if isinstance(inp, str) else inp
    data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]} for i in range(len(items))]
    if body.get("encoding_format") == "base64":
        for d in data:
            d["embedding"] = base64.b64encode(struct.pack("<3f", *d["embedding"])).decode()
    return web.json_response(
        {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 5, "total_tokens": 5}}
    )


async def openai_responses(request: web.Request, body: dict):
    need(request.headers.get("authorization") == f"Bearer {OPENAI_KEY}", "authorization: missing or wrong Bearer key")
    need(isinstance(body.get("model"), str), "model: required")
    need(isinstance(body.get("input"), (str, list)), "input: required")
    text = body["input"] if isinstance(body["input"], str) else "items"
    out = {
        "id": "resp_" + uuid.uuid4().hex[:20],
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body["model"],
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": f"native: {text}", "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": IN_TOKENS,
            "output_tokens": OUT_TOKENS,
            "total_tokens": IN_TOKENS + OUT_TOKENS,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
    }
    return web.json_response(out)


# -- Anthropic ----------------------------------------------------------------------------
ANTHROPIC_KEYS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "service_tier",
}


def validate_anthropic(request, body: dict) -> Conv:
    need(request.headers.get("x-api-key") == ANTHROPIC_KEY, "x-api-key: missing or wrong")
    need("authorization" not in request.headers, "authorization: must not be sent with x-api-key")
    need(request.headers.get("anthropic-version"), "anthropic-version header: required")
    need(
        request.headers.get("content-type", "").startswith("application/json"),
        "content-type: application/json required",
    )
    only_keys(body, ANTHROPIC_KEYS, "body")
    marks = []

    def find_marks(v):
        if isinstance(v, dict):
            if "cache_control" in v:
                marks.append(v["cache_control"])
            for x in v.values():
                find_marks(x)
        elif isinstance(v, list):
            for x in v:
                find_marks(x)

    find_marks([body.get("system"), body.get("messages"), body.get("tools")])
    need(len(marks) <= 4, "cache_control: at most 4 breakpoints")
    need(all(m.get("type") == "ephemeral" and set(m) <= {"type", "ttl"} for m in marks), "cache_control: ephemeral")
    need(isinstance(body.get("model"), str) and body["model"], "model: required")
    need(isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 0, "max_tokens: required positive integer")
    msgs = body.get("messages")
    need(isinstance(msgs, list) and msgs, "messages: required non-empty array")
    conv = Conv()
    sysv = body.get("system")
    if sysv is not None:
        need(isinstance(sysv, (str, list)), "system: string or array of text blocks")
        conv.system = sysv if isinstance(sysv, str) else "".join(b["text"] for b in sysv)
    tool_ids = set()
    prev = None
    for i, m in enumerate(msgs):
        role = m.get("role")
        need(role in ("user", "assistant"), f"messages[{i}].role: must be user or assistant, got {role!r}")
        need(role != prev, f"messages[{i}]: roles must alternate")
        prev = role
        c = m.get("content")
        need(isinstance(c, (str, list)), f"messages[{i}].content: string or array")
        if isinstance(c, str):
            if role == "user":
                conv.last_user, conv.tool_result = c, None
            continue
        text = ""
        saw_result = False
        for j, b in enumerate(c):
            t = b.get("type")
            w = f"messages[{i}].content[{j}]"
            if t == "text":
                need(isinstance(b.get("text"), str), f"{w}.text: required")
                text += b["text"]
            elif t == "image":
                need(role == "user", f"{w}: images only in user turns")
                src = b.get("source") or {}
                need(src.get("type") in ("base64", "url"), f"{w}.source.type: base64 or url")
                if src["type"] == "base64":
                    need(
                        src.get("media_type") in ("image/png", "image/jpeg", "image/gif", "image/webp"),
                        f"{w}.source.media_type: invalid",
                    )
                    base64.b64decode(src.get("data", ""), validate=True)
                conv.image = True
            elif t == "tool_use":
                need(role == "assistant", f"{w}: tool_use only in assistant turns")
                need(
                    isinstance(b.get("id"), str)
                    and isinstance(b.get("name"), str)
                    and isinstance(b.get("input"), dict),
                    f"{w}: id, name, input(object) required",
                )
                tool_ids.add(b["id"])
            elif t == "tool_result":
                need(role == "user", f"{w}: tool_result only in user turns")
                need(b.get("tool_use_id") in tool_ids, f"{w}.tool_use_id: no such tool_use")
                rc = b.get("content")
                conv.tool_result = rc if isinstance(rc, str) else "".join(x.get("text", "") for x in rc or [])
                saw_result = True
            else:
                raise Invalid(f"{w}.type: invalid {t!r}")
        if role == "user" and not saw_result:
            conv.last_user, conv.tool_result = text, None
    need(msgs[0]["role"] == "user", "messages[0].role: must be user")
    for j, t in enumerate(body.get("tools") or []):
        need(
            isinstance(t.get("name"), str) and isinstance(t.get("input_schema"), dict),
            f"tools[{j}]: name and input_schema required",
        )
        conv.tools.append(t["name"])
    tc = body.get("tool_choice")
    if tc is not None:
        need(tc.get("type") in ("auto", "any", "tool", "none"), "tool_choice.type: invalid")
    return conv


def anthropic_message(model: str, conv: Conv) -> dict:
    text, call = conv.answer()
    content = []
    if text:
        content.append({"type": "text", "text": text})
    if call:
        content.append(
            {"type": "tool_use", "id": "toolu_" + call["id"][5:], "name": call["name"], "input": call["args"]}
        )
    return {
        "id": "msg_" + uuid.uuid4().hex[:20],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if call else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": IN_TOKENS,
            "output_tokens": OUT_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


async def anthropic_stream(request, model: str, conv: Conv):
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await resp.prepare(request)

    async def ev(kind, obj):
        obj = {"type": kind, **obj}
        await resp.write(f"event: {kind}\ndata: {json.dumps(obj)}\n\n".encode())

    text, call = conv.answer()
    msg = anthropic_message(model, conv)
    await ev(
        "message_start",
        {
            "message": {
                **msg,
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": IN_TOKENS, "output_tokens": 1},
            }
        },
    )
    await ev("ping", {})
    idx = 0
    if text:
        await ev("content_block_start", {"index": idx, "content_block": {"type": "text", "text": ""}})
        for p in pieces(text):
            await ev("content_block_delta", {"index": idx, "delta": {"type": "text_delta", "text": p}})
        await ev("content_block_stop", {"index": idx})
        idx += 1
    if call:
        await ev(
            "content_block_start",
            {
                "index": idx,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_" + call["id"][5:],
                    "name": call["name"],
                    "input": {},
                },
            },
        )
        args = json.dumps(call["args"])
        for k in range(0, len(args), 5):
            await ev(
                "content_block_delta",
                {"index": idx, "delta": {"type": "input_json_delta", "partial_json": args[k : k + 5]}},
            )
        await ev("content_block_stop", {"index": idx})
    await ev(
        "message_delta",
        {
            "delta": {"stop_reason": "tool_use" if call else "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": OUT_TOKENS},
        },
    )
    await ev("message_stop", {})
    await resp.write_eof()
    return resp


async def anthropic_messages(request: web.Request, body: dict):
    conv = validate_anthropic(request, body)
    bad = behaviour(body["model"])
    if bad is not None:
        return bad
    if body.get("stream"):
        return await anthropic_stream(request, body["model"], conv)
    return web.json_response(anthropic_message(body["model"], conv))


# -- Bedrock ------------------------------------------------------------------------------
def verify_sigv4(request: web.Request, raw: bytes):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = request.headers.get("authorization", "")
    need(auth.startswith("AWS4-HMAC-SHA256 "), "authorization: SigV4 (AWS4-HMAC-SHA256) required")
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    cred = parts.get("Credential", "").split("/")
    need(
        len(cred) == 5
        and cred[0] == AWS_KEY_ID
        and cred[2] == AWS_REGION
        and cred[3] == "bedrock"
        and cred[4] == "aws4_request",
        f"authorization: bad credential scope {parts.get('Credential')}",
    )
    amz_date = request.headers.get("x-amz-date")
    need(amz_date and amz_date.startswith(cred[1]), "x-amz-date: required and matching the scope date")
    signed = parts["SignedHeaders"].split(";")
    need("host" in signed and "x-amz-date" in signed, "SignedHeaders: must include host and x-amz-date")
    url = f"http://{request.headers['host']}{request.raw_path}"
    hdrs = {h: request.headers[h] for h in signed if h in request.headers}
    areq = AWSRequest(method=request.method, url=url, data=raw, headers=hdrs)
    areq.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(AWS_KEY_ID, AWS_SECRET), "bedrock", AWS_REGION)
    canonical = signer.canonical_request(areq)
    sts = signer.string_to_sign(areq, canonical)
    expect = signer.signature(sts, areq)
    need(expect == parts.get("Signature"), "authorization: SigV4 signature does not verify")


def validate_converse(body: dict) -> Conv:
    only_keys(
        body,
        {
            "messages",
            "system",
            "inferenceConfig",
            "toolConfig",
            "guardrailConfig",
            "additionalModelRequestFields",
            "additionalModelResponseFieldPaths",
            "promptVariables",
            "requestMetadata",
            "performanceConfig",
        },
        "body",
    )
    msgs = body.get("messages")
    need(isinstance(msgs, list) and msgs, "messages: required non-empty array")
    conv = Conv()
    for s in body.get("system") or []:
        if "cachePoint" in s:  # prompt caching
            need(s == {"cachePoint": {"type": "default"}}, "system[].cachePoint: {type: default}")
            continue
        need(isinstance(s.get("text"), str), "system[]: {text} blocks")
        conv.system += s["text"]
    tool_ids = set()
    prev = None
    for i, m in enumerate(msgs):
        need(m.get("role") in ("user", "assistant"), f"messages[{i}].role: user or assistant")
        need(m["role"] != prev, f"messages[{i}]: roles must alternate")
        prev = m["role"]
        need(isinstance(m.get("content"), list) and m["content"], f"messages[{i}].content: non-empty array")
        text, saw = "", False
        for j, b in enumerate(m["content"]):
            w = f"messages[{i}].content[{j}]"
            need(len(b) == 1, f"{w}: exactly one member (text, image, toolUse, toolResult, ...)")
            ((k, v),) = b.items()
            if k == "text":
                need(isinstance(v, str), f"{w}.text: string")
                text += v
            elif k == "image":
                need(v.get("format") in ("png", "jpeg", "gif", "webp"), f"{w}.image.format: invalid")
                base64.b64decode(v["source"]["bytes"], validate=True)
                conv.image = True
            elif k == "toolUse":
                need(m["role"] == "assistant", f"{w}: toolUse only in assistant turns")
                need(
                    isinstance(v.get("toolUseId"), str)
                    and isinstance(v.get("name"), str)
                    and isinstance(v.get("input"), dict),
                    f"{w}.toolUse: toolUseId, name, input required",
                )
                tool_ids.add(v["toolUseId"])
            elif k == "cachePoint":
                need(v == {"type": "default"}, f"{w}.cachePoint: {{type: default}}")
            elif k == "toolResult":
                need(v.get("toolUseId") in tool_ids, f"{w}.toolResult.toolUseId: no such toolUse")
                need(isinstance(v.get("content"), list), f"{w}.toolResult.content: array")
                conv.tool_result = "".join(x.get("text", "") for x in v["content"])
                saw = True
            else:
                raise Invalid(f"{w}: unsupported block {k!r}")
        if m["role"] == "user" and not saw:
            conv.last_user, conv.tool_result = text, None
    ic = body.get("inferenceConfig")
    if ic is not None:
        only_keys(ic, {"maxTokens", "temperature", "topP", "stopSequences"}, "inferenceConfig")
    tc = body.get("toolConfig")
    if tc is not None:
        for j, t in enumerate(tc.get("tools") or []):
            if "cachePoint" in t:
                need(t == {"cachePoint": {"type": "default"}}, f"toolConfig.tools[{j}].cachePoint: {{type: default}}")
                continue
            spec = t.get("toolSpec") or {}
            need(
                isinstance(spec.get("name"), str) and isinstance((spec.get("inputSchema") or {}).get("json"), dict),
                f"toolConfig.tools[{j}].toolSpec: name and inputSchema.json required",
            )
            conv.tools.append(spec["name"])
    return conv


def es_frame(event: str, payload: dict, message_type: str = "event") -> bytes:
    def header(name: str, value: str) -> bytes:
        n, v = name.encode(), value.encode()
        return struct.pack("B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v

    if message_type == "event":
        headers = (
            header(":event-type", event)
            + header(":content-type", "application/json")
            + header(":message-type", "event")
        )
    else:
        headers = (
            header(":exception-type", event)
            + header(":content-type", "application/json")
            + header(":message-type", "exception")
        )
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + headers + body
    return msg + struct.pack(">I", binascii.crc32(msg) & 0xFFFFFFFF)


async def bedrock(request: web.Request, body: dict, raw: bytes):
    verify_sigv4(request, raw)
    model = request.match_info["model"]
    conv = validate_converse(body)
    bad = behaviour(model)
    if bad is not None:
        return bad
    text, call = conv.answer()
    usage = {"inputTokens": IN_TOKENS, "outputTokens": OUT_TOKENS, "totalTokens": IN_TOKENS + OUT_TOKENS}
    stop = "tool_use" if call else "end_turn"
    if request.match_info["op"] == "converse":
        content = []
        if text:
            content.append({"text": text})
        if call:
            content.append(
                {"toolUse": {"toolUseId": "tooluse_" + call["id"][5:], "name": call["name"], "input": call["args"]}}
            )
        return web.json_response(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop,
                "usage": usage,
                "metrics": {"latencyMs": 12},
            }
        )
    resp = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
    await resp.prepare(request)
    await resp.write(es_frame("messageStart", {"role": "assistant"}))
    idx = 0
    if text:
        for p in pieces(text):
            await resp.write(es_frame("contentBlockDelta", {"contentBlockIndex": idx, "delta": {"text": p}}))
        await resp.write(es_frame("contentBlockStop", {"contentBlockIndex": idx}))
        idx += 1
    if call:
        await resp.write(
            es_frame(
                "contentBlockStart",
                {
                    "contentBlockIndex": idx,
                    "start": {"toolUse": {"toolUseId": "tooluse_" + call["id"][5:], "name": call["name"]}},
                },
            )
        )
        args = json.dumps(call["args"])
        frames = b"".join(
            es_frame("contentBlockDelta", {"contentBlockIndex": idx, "delta": {"toolUse": {"input": args[k : k + 5]}}})
            for k in range(0, len(args), 5)
        )
        # split frames across writes at odd offsets: the decoder must reassemble them
        for k in range(0, len(frames), 37):
            await resp.write(frames[k : k + 37])
        await resp.write(es_frame("contentBlockStop", {"contentBlockIndex": idx}))
    await resp.write(es_frame("messageStop", {"stopReason": stop}))
    await resp.write(es_frame("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
    await resp.write_eof()
    return resp


# -- Gemini / Vertex ----------------------------------------------------------------------
def validate_gemini(body: dict) -> Conv:
    only_keys(
        body,
        {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings", "cachedContent"},
        "body",
    )
    contents = body.get("contents")
    need(isinstance(contents, list) and contents, "contents: required non-empty array")
    conv = Conv()
    si = body.get("systemInstruction")
    if si is not None:
        need(isinstance(si.get("parts"), list), "systemInstruction.parts: array")
        conv.system = "".join(p.get("text", "") for p in si["parts"])
    called = set()
    for i, c in enumerate(contents):
        need(c.get("role") in ("user", "model"), f"contents[{i}].role: user or model")
        need(isinstance(c.get("parts"), list) and c["parts"], f"contents[{i}].parts: non-empty array")
        text, saw = "", False
        for j, p in enumerate(c["parts"]):
            w = f"contents[{i}].parts[{j}]"
            data_keys = [k for k in p if k in ("text", "inlineData", "fileData", "functionCall", "functionResponse")]
            need(len(data_keys) == 1, f"{w}: exactly one of text, inlineData, fileData, functionCall, functionResponse")
            k = data_keys[0]
            if k == "text":
                text += p["text"]
            elif k == "inlineData":
                need(isinstance(p[k].get("mimeType"), str), f"{w}.inlineData.mimeType: required")
                base64.b64decode(p[k].get("data", ""), validate=True)
                conv.image = True
            elif k == "functionCall":
                need(c["role"] == "model", f"{w}: functionCall only in model turns")
                need(
                    isinstance(p[k].get("name"), str) and isinstance(p[k].get("args", {}), dict),
                    f"{w}.functionCall: name and args",
                )
                called.add(p[k]["name"])
            elif k == "functionResponse":
                need(p[k].get("name") in called, f"{w}.functionResponse.name: no such functionCall")
                need(isinstance(p[k].get("response"), dict), f"{w}.functionResponse.response: object")
                r = p[k]["response"]
                conv.tool_result = r.get("result") if isinstance(r.get("result"), str) else json.dumps(r)
                saw = True
        if c["role"] == "user" and not saw:
            conv.last_user, conv.tool_result = text, None
    gc = body.get("generationConfig")
    if gc is not None:
        only_keys(
            gc,
            {
                "maxOutputTokens",
                "temperature",
                "topP",
                "topK",
                "stopSequences",
                "candidateCount",
                "responseMimeType",
                "responseSchema",
                "thinkingConfig",
                "seed",
            },
            "generationConfig",
        )
    for t in body.get("tools") or []:
        for j, d in enumerate(t.get("functionDeclarations") or []):
            need(isinstance(d.get("name"), str), f"functionDeclarations[{j}].name: required")
            if "parameters" in d:
                need(
                    "additionalProperties" not in json.dumps(d["parameters"]),
                    "parameters: additionalProperties is not allowed in Gemini schemas",
                )
            conv.tools.append(d["name"])
    return conv


def gemini_response(model: str, conv: Conv, parts_override=None, finish="STOP", with_usage=True) -> dict:
    text, call = conv.answer()
    parts = parts_override
    if parts is None:
        parts = [{"text": text}] if text else [{"functionCall": {"name": call["name"], "args": call["args"]}}]
    out = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:16],
    }
    if finish:
        out["candidates"][0]["finishReason"] = finish
    if with_usage:
        out["usageMetadata"] = {
            "promptTokenCount": IN_TOKENS,
            "candidatesTokenCount": OUT_TOKENS,
            "totalTokenCount": IN_TOKENS + OUT_TOKENS,
        }
    return out


async def gemini(request: web.Request, body: dict, vertex: bool):
    if vertex:
        need(request.headers.get("authorization") == f"Bearer {VERTEX_TOKEN}", "authorization: Bearer token required")
    else:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        need(key == GEMINI_KEY, "x-goog-api-key header or key= parameter: missing or wrong")
        need("authorization" not in request.headers, "authorization: not expected with an API key")
    model, op = request.match_info["model"], request.match_info["op"]
    need(op in ("generateContent", "streamGenerateContent", "batchEmbedContents"), f"unknown method {op}")
    if op == "batchEmbedContents":
        reqs = body.get("requests")
        need(isinstance(reqs, list) and reqs, "requests: required")
        for r in reqs:
            need(r.get("model") == f"models/{model}", "requests[].model: must be models/{model}")
        return web.json_response({"embeddings": [{"values": [0.5, float(i)]} for i in range(len(reqs))]})
    conv = validate_gemini(body)
    bad = behaviour(model)
    if bad is not None:
        return bad
    if op == "generateContent":
        return web.json_response(gemini_response(model, conv))
    need(request.query.get("alt") == "sse", "streamGenerateContent: alt=sse expected")
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    text, call = conv.answer()
    if text:
        ps = pieces(text)
        for k, p in enumerate(ps):
            last = k == len(ps) - 1
            await resp.write(
                b"data: "
                + json.dumps(gemini_response(model, conv, [{"text": p}], "STOP" if last else None, last)).encode()
                + b"\r\n\r\n"
            )
    else:
        await resp.write(b"data: " + json.dumps(gemini_response(model, conv)).encode() + b"\r\n\r\n")
    await resp.write_eof()
    return resp


# -- guardrail webhook --------------------------------------------------------------------
async def guard_webhook(request: web.Request, body: dict):
    direction = request.path.strip("/")
    inner = body.get("body") or {}
    if direction == "request":
        msgs = inner.get("messages")
        need(isinstance(msgs, list), "body.messages: required")
        texts = [m.get("content", "") for m in msgs]
    else:
        ch = inner.get("choices")
        need(isinstance(ch, list), "body.choices: required")
        texts = [c["message"]["content"] for c in ch]
    if any("forbidden" in t for t in texts):
        return web.json_response(
            {"action": {"reason": "forbidden word", "status_code": 422, "body": "webhook says no"}}
        )
    if any("secret-word" in t for t in texts):
        new = [t.replace("secret-word", "[redacted]") for t in texts]
        if direction == "request":
            return web.json_response(
                {"action": {"reason": "masked", "body": {"messages": [{"role": "user", "content": t} for t in new]}}}
            )
        return web.json_response(
            {
                "action": {
                    "reason": "masked",
                    "body": {"choices": [{"message": {"role": "assistant", "content": t}} for t in new]},
                }
            }
        )
    return web.json_response({"action": {"reason": "pass"}})


# -- app ----------------------------------------------------------------------------------
def route(handler, kind):
    async def wrapped(request: web.Request):
        raw = await request.read()
        entry = {
            "kind": kind,
            "method": request.method,
            "path": request.path_qs,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "error": None,
        }
        LOG.append(entry)
        try:
            body = json.loads(raw) if raw else {}
            entry["body"] = body
            need(isinstance(body, dict), "body: JSON object required")
            if kind == "bedrock":
                return await handler(request, body, raw)
            return await handler(request, body)
        except (Invalid, ValueError, KeyError, TypeError) as exc:
            entry["error"] = str(exc)
            return web.json_response(
                {"error": {"message": f"fake validation failed: {exc}", "type": "invalid_request_error"}}, status=400
            )

    return wrapped


async def get_log(request):
    return web.json_response(LOG)


async def reset(request):
    LOG.clear()
    return web.json_response({})


async def list_models(request):
    return web.json_response(
        {"object": "list", "data": [{"id": "gpt-fake", "object": "model", "created": 0, "owned_by": "fake"}]}
    )


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/_log", get_log)
    app.router.add_post("/_reset", reset)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", route(openai_chat, "openai"))
    # OpenAI-compatible services at their own paths (provider presets)
    app.router.add_post("/openai/v1/chat/completions", route(openai_chat, "groq"))
    app.router.add_post("/compatibility/v1/chat/completions", route(openai_chat, "cohere"))
    app.router.add_post("/compatibility/v1/embeddings", route(openai_embeddings, "cohere"))
    app.router.add_post("/v1/embeddings", route(openai_embeddings, "openai"))
    app.router.add_post("/v1/responses", route(openai_responses, "openai"))
    app.router.add_post("/v1/messages", route(anthropic_messages, "anthropic"))
    app.router.add_post("/model/{model}/{op:converse|converse-stream}", route(bedrock, "bedrock"))
    app.router.add_post("/v1beta/models/{model}:{op}", route(lambda r, b: gemini(r, b, False), "gemini"))
    app.router.add_post(
        "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:{op}",
        route(lambda r, b: gemini(r, b, True), "vertex"),
    )
    app.router.add_post(
        "/openai/deployments/{deployment}/chat/completions", route(lambda r, b: openai_chat(r, b, azure=True), "azure")
    )
    app.router.add_post("/request", route(guard_webhook, "webhook"))
    app.router.add_post("/response", route(guard_webhook, "webhook"))
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-auth", action="store_true")
    a = ap.parse_args()
    global NO_AUTH
    NO_AUTH = a.no_auth
    web.run_app(make_app(), host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
