"""A tiny OpenAI-compatible server for trying the LLM gateway locally (stdlib only).

    python -m agentgw_demo.openai_server --port 9002

It answers ``POST /v1/chat/completions`` (streaming or not) by echoing the last user
message, calls the first tool once when ``tools`` are given (then answers with the tool
result it is sent back), and serves ``GET /v1/models`` and ``POST /v1/embeddings``. No
model, no key: it exists so the README's SDK snippet runs end to end without a provider.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
import uuid

MODELS = ["demo-echo"]


def _usage(prompt: str, completion: str) -> dict:
    p, c = max(1, len(prompt) // 4), max(1, len(completion) // 4)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def answer(req: dict) -> tuple[str | None, list | None, str]:
    msgs = req.get("messages") or []
    last = msgs[-1] if msgs else {}
    tools = req.get("tools") or []
    if last.get("role") == "tool":
        return f"The tool said: {_text(last.get('content'))}", None, "stop"
    if tools and req.get("tool_choice") != "none":
        fn = tools[0].get("function", {})
        call = {
            "id": "call_" + uuid.uuid4().hex[:12],
            "type": "function",
            "function": {
                "name": fn.get("name", "tool"),
                "arguments": json.dumps({"input": _text(last.get("content"))}),
            },
        }
        return None, [call], "tool_calls"
    return f"You said: {_text(last.get('content'))}", None, "stop"


def chat(req: dict) -> dict:
    text, calls, finish = answer(req)
    msg: dict = {"role": "assistant", "content": text}
    if calls:
        msg["tool_calls"] = calls
    prompt = "".join(_text(m.get("content")) for m in req.get("messages") or [])
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.get("model") or MODELS[0],
        "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(prompt, text or json.dumps(calls)),
    }


def chat_stream(req: dict) -> list[bytes]:
    text, calls, finish = answer(req)
    rid = "chatcmpl-" + uuid.uuid4().hex[:24]
    base = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": req.get("model") or MODELS[0],
    }

    def ev(delta, fin=None):
        return (
            b"data: "
            + json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]}).encode()
            + b"\n\n"
        )

    out = [ev({"role": "assistant", "content": ""})]
    if text:
        for word in text.split(" "):
            out.append(ev({"content": word + " "}))
    for i, c in enumerate(calls or []):
        out.append(
            ev(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        out.append(ev({"tool_calls": [{"index": i, "function": {"arguments": c["function"]["arguments"]}}]}))
    out.append(ev({}, finish))
    so = req.get("stream_options") or {}
    if so.get("include_usage"):
        prompt = "".join(_text(m.get("content")) for m in req.get("messages") or [])
        out.append(
            b"data: " + json.dumps({**base, "choices": [], "usage": _usage(prompt, text or "")}).encode() + b"\n\n"
        )
    out.append(b"data: [DONE]\n\n")
    return out


def embeddings(req: dict) -> dict:
    inp = req.get("input")
    items = [inp] if isinstance(inp, str) else list(inp or [])
    data = []
    for i, t in enumerate(items):
        h = hashlib.sha256(str(t).encode()).digest()
        data.append({"object": "embedding", "index": i, "embedding": [b / 255 for b in h[:8]]})
    n = sum(max(1, len(str(t)) // 4) for t in items)
    return {
        "object": "list",
        "data": data,
        "model": req.get("model") or "demo-embed",
        "usage": {"prompt_tokens": n, "total_tokens": n},
    }


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length") or 0)
            raw = await reader.readexactly(n) if n else b""
            path = path.split("?", 1)[0]
            status, ctype, body, chunks = 200, "application/json", b"", None
            try:
                req = json.loads(raw) if raw else {}
            except ValueError:
                req = None
            if req is None:
                status, body = (
                    400,
                    json.dumps({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}).encode(),
                )
            elif method == "GET" and path.endswith("/models"):
                body = json.dumps(
                    {
                        "object": "list",
                        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "demo"} for m in MODELS],
                    }
                ).encode()
            elif method == "POST" and path.endswith("/chat/completions"):
                if req.get("stream"):
                    ctype, chunks = "text/event-stream", chat_stream(req)
                else:
                    body = json.dumps(chat(req)).encode()
            elif method == "POST" and path.endswith("/embeddings"):
                body = json.dumps(embeddings(req)).encode()
            else:
                status, body = (
                    404,
                    json.dumps({"error": {"message": f"no route for {method} {path}", "type": "not_found"}}).encode(),
                )
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            if chunks is None:
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            else:
                writer.write(
                    f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n".encode()
                )
                for c in chunks:
                    writer.write(b"%x\r\n%s\r\n" % (len(c), c))
                    await writer.drain()
                    if delay:
                        await asyncio.sleep(delay)
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay), host, port)
    print(f"demo OpenAI-compatible server on http://{host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9002)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="pause between streamed chunks")
    a = ap.parse_args(argv)
    try:
        asyncio.run(serve(a.host, a.port, a.delay_ms / 1000))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
