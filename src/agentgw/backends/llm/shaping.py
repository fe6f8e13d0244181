"""Request shaping: from the client's body to the bytes sent to a provider.

The body parsed and checked, the ``ai`` policy's prompts, defaults and overrides applied,
then for each candidate the provider request (the body as received when the provider
speaks the client's API and nothing had to change, else through the IR) and its HTTP
head. Both request paths (the task path and the task-free one) shape requests the same
way, so this is plain functions of the request, the policy and the candidate.
"""

from __future__ import annotations

import orjson

from ...engine.http import Headers, encode_headers
from . import anthropic as anth
from . import responses as resp_api
from .base import Upstream
from .caching import anthropic_points
from .ir import TranslationError
from .models import AiPolicy, Candidate


def parse_body(raw: bytes, api: str) -> dict:
    """The request body as a JSON object, checked as far as every API needs."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise TranslationError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise TranslationError("request body must be a JSON object")
    if api in ("completions", "messages") and not isinstance(body.get("messages"), list):
        raise TranslationError("messages: an array is required")
    return body


def apply_params(body: dict, defaults, overrides) -> bool:
    """Defaults for what ``body`` lacks, overrides over what it has; True if it changed."""
    changed = False
    if defaults:
        for k, v in defaults.items():
            if k not in body:
                body[k] = v
                changed = True
    if overrides:
        for k, v in overrides.items():
            if body.get(k, object()) != v:
                body[k] = v
                changed = True
    return changed


def add_prompts(policy: AiPolicy, body: dict, api: str) -> bool:
    """The policy's prepended and appended messages; True if the body changed."""
    p = policy
    if api == "completions" and isinstance(body.get("messages"), list):
        body["messages"] = [dict(m) for m in p.prepend] + body["messages"] + [dict(m) for m in p.append]
        return True
    if api == "messages" and isinstance(body.get("messages"), list):
        sys_pre = [m["content"] for m in p.prepend if m.get("role") in ("system", "developer")]
        if sys_pre:
            cur = body.get("system")
            cur_text = (
                cur if isinstance(cur, str) else "".join(b.get("text", "") for b in cur or [] if isinstance(b, dict))
            )
            body["system"] = "\n\n".join([*sys_pre, cur_text] if cur_text else sys_pre)
        pre = [
            {"role": m["role"], "content": m["content"]} for m in p.prepend if m.get("role") in ("user", "assistant")
        ]
        post = [
            {"role": m["role"], "content": m["content"]} for m in p.append if m.get("role") in ("user", "assistant")
        ]
        body["messages"] = pre + body["messages"] + post
        return True
    if api == "responses" and isinstance(body.get("input"), (str, list)):
        # input items (a text input becomes one user item), each prompt an easy input message
        inp = body["input"]
        items = [{"type": "message", "role": "user", "content": inp}] if isinstance(inp, str) else inp

        def item(m):
            return {"type": "message", "role": m["role"], "content": m["content"]}

        body["input"] = [item(m) for m in p.prepend] + items + [item(m) for m in p.append]
        return True
    return False


def apply_policy(policy: AiPolicy, body: dict, api: str) -> bool:
    """Prompts, defaults and overrides of the ``ai`` policy; True if the body changed."""
    dirty = False
    if policy.prepend or policy.append:
        dirty = add_prompts(policy, body, api)
    if apply_params(body, policy.defaults, policy.overrides):
        dirty = True
    return dirty


def provider_request(api, body: dict, raw: bytes | None, cand: Candidate, stream: bool, ctx=None):
    """The provider request for ``body``: (Upstream, native, usage injected into the
    stream, model sent, IR or None). ``ctx``: the request (read by a model's
    ``transformation``)."""
    p = cand.provider
    overrides = cand.overrides
    xf = p.extra.get("transformation")
    if xf is not None:  # (on a copy: the body may go on to another provider)
        body = xf.apply(ctx, body)
        overrides = xf.without(overrides)
        raw = None
    requested = body.get("model")
    model_out = cand.model_for(requested)
    native = api in p.native
    inject_usage = False
    ir = None
    if native:
        b = body
        if (model_out and model_out != requested) or cand.defaults or overrides or xf is not None:
            b = dict(body)
            if model_out:
                b["model"] = model_out
            apply_params(b, cand.defaults, overrides)
            raw = None
        if stream and api == "completions":
            so = b.get("stream_options")
            if not (isinstance(so, dict) and so.get("include_usage")):
                if b is body:
                    b = dict(body)
                b["stream_options"] = {**(so if isinstance(so, dict) else {}), "include_usage": True}
                inject_usage = True
                raw = None
        pc = p.extra.get("prompt_caching")
        if pc is not None and api == "messages":
            marked = anthropic_points(b, pc)
            if marked is not b:
                b, raw = marked, None
        payload = raw if raw is not None else orjson.dumps(b)
        up = Upstream(
            p.native_path(api if api != "count_tokens" else "messages", stream, model_out)
            + ("/count_tokens" if api == "count_tokens" else ""),
            payload,
        )
        return up, native, inject_usage, model_out, ir
    if api == "completions":
        ir = dict(body)
    elif api == "messages":
        ir = anth.request_to_ir(body)
    elif api == "responses":
        ir = resp_api.request_to_ir(body)
    elif api == "embeddings":
        ir = dict(body)
    else:
        raise TranslationError(f"{api} is not supported for provider {p.system}")
    ir["model"] = model_out
    apply_params(ir, cand.defaults, overrides)
    if api == "embeddings":
        up = p.embeddings(ir)
    else:
        if not isinstance(ir.get("messages"), list):
            raise TranslationError("messages: field required")
        up = p.chat(ir, stream)
    return up, native, inject_usage, model_out, ir


# -- the request head -----------------------------------------------------------------------
def own_headers(p, up: Upstream) -> list:
    """The provider request's headers that come from neither the client nor credentials."""
    hdrs = [("host", p.host), ("content-type", "application/json")]
    if not any(k == "accept" for k, _ in up.headers):
        hdrs.append(("accept", "application/json"))
    hdrs.extend(up.headers)
    return hdrs


def request_headers(ctx, p, up: Upstream) -> list:
    """The provider request's headers before credentials."""
    hdrs = own_headers(p, up)
    hdrs.extend(p.forward_headers(ctx.req.headers))
    return hdrs


def request_head(cand: Candidate, up: Upstream, hdrs: list) -> bytes:
    """The encoded request head: ``hdrs`` (credentials included), the candidate's header
    edits, the length."""
    if cand.req_headers is not None:
        hh = Headers(hdrs)
        cand.req_headers(hh)
        hdrs = list(hh)
    hdrs.append(("content-length", str(len(up.body))))
    return f"{up.method} {up.path} HTTP/1.1\r\n".encode("latin-1") + encode_headers(hdrs) + b"\r\n"


def constant_head(prefixes: dict[tuple, bytes], ctx, p, up: Upstream) -> bytes:
    """The request head when only the forwarded client headers and the length vary:
    the rest is encoded once per provider and path (a bounded number of them), kept in
    ``prefixes`` (the backend's)."""
    key = (p, up.path)
    prefix = prefixes.get(key)
    if prefix is None:
        hdrs = own_headers(p, up)
        hdrs.extend(p.auth.headers_now(p, up, hdrs, None))
        prefix = f"{up.method} {up.path} HTTP/1.1\r\n".encode("latin-1") + encode_headers(hdrs)
        if len(prefixes) < 256:  # paths can name models (Gemini, Bedrock)
            prefixes[key] = prefix
    fwd = p.forward_headers(ctx.req.headers)
    if fwd:
        prefix += encode_headers(fwd)
    return prefix + b"content-length: %d\r\n\r\n" % len(up.body)
