"""A provider's whole (non-streamed) answer, in the client's API shape, sent to the client.

When the provider speaks the client's API the answer goes back as received (parsed once
for the usage); otherwise it is translated through the IR. Both request paths send it the
same way: with the fixed JSON head when no policy reads or edits the response head.
"""

from __future__ import annotations

import orjson

from ...engine.http import GatewayError, Headers
from . import anthropic as anth
from . import responses as resp_api
from .ir import Usage
from .models import Candidate

MAX_RESPONSE = 64 << 20  # the largest answer read from a provider

JSON_HEAD = b"content-type: application/json\r\n"  # an encoded header block (Exchange.send)


def whole_answer(p, api: str, native: bool, ir, model_out: str, body: dict, data: bytes):
    """A non-streamed provider answer in the client's API shape: (object, its bytes when
    unchanged from the provider's, usage)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise GatewayError(502, "invalid_provider_response", f"{p.system} answered invalid JSON") from None
    if native:
        return obj, data, p.usage_from(obj)
    if api == "embeddings":
        out_obj = p.parse_embeddings(obj, ir)
        return out_obj, None, Usage.from_openai(out_obj.get("usage"))
    ir_resp = p.parse_chat(obj, model_out)
    usage = Usage.from_openai(ir_resp.get("usage"))
    if api == "completions":
        out_obj = ir_resp
    elif api == "messages":
        out_obj = anth.response_from_ir(ir_resp, model_out)
    else:
        out_obj = resp_api.response_from_ir(ir_resp, model_out, body)
    return out_obj, None, usage


def add_response_headers(cand: Candidate, h: Headers) -> None:
    """The candidate's response header edits, if it has any."""
    if cand.resp_headers is not None:
        cand.resp_headers(h)


def send_answer(ctx, cand: Candidate, out_obj, out: bytes | None) -> None:
    """Send a whole answer: ``out``, or ``out_obj`` encoded when it is None."""
    if out is None:
        out = orjson.dumps(out_obj)
    trace = ctx.attrs.get("llm_trace")
    if trace is not None:
        trace.answer = out_obj
    route, listener = ctx.route, ctx.listener
    if (
        cand.resp_headers is None
        and not ctx.response_hooks
        and (route is None or not route.response_chain)
        and (listener is None or not listener.response_chain)
    ):
        ctx.ex.send(200, JSON_HEAD, out)  # no policy reads or edits this head
        return
    h = Headers([("content-type", "application/json")])
    add_response_headers(cand, h)
    ctx.finalize_headers(200, h)
    ctx.ex.send(200, h, out)
