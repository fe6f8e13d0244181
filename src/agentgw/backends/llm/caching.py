"""``promptCaching``: cache points in the provider request, so the provider can reuse the
processed prefix of a prompt on the next turn.

Where they go (as agentgateway places them): after the system prompt (``cacheSystem``,
when its estimated size — 1.3 tokens per word — reaches ``minTokens``); after the
message before the last one, ``cacheMessageOffset`` messages further back
(``cacheMessages``: the conversation so far is cached, the new turn is not); after the
last tool definition (``cacheTools``). Anthropic's Messages API marks a block with
``cache_control: {"type": "ephemeral"}`` (at most four per request: points the client set
count, and none are added past four); Bedrock's Converse API takes a
``{"cachePoint": {"type": "default"}}`` block, only for models that support it (Claude 3+
and Amazon Nova, or an application inference profile, whose model is not visible).

The request the client sent is never changed in place (it may go on to another provider
on failover): what gets a point is copied first.
"""

from __future__ import annotations

from dataclasses import dataclass

EPHEMERAL = {"type": "ephemeral"}
MAX_ANTHROPIC_POINTS = 4


@dataclass(frozen=True)
class PromptCaching:
    system: bool = True
    messages: bool = True
    tools: bool = False
    min_tokens: int | None = 1024
    offset: int = 0


def _estimate(words: int) -> int:
    return (words * 13) // 10


def _target_index(n: int, offset: int) -> int | None:
    if n < 2:
        return None
    return max(0, n - 2 - offset)


# -- Anthropic Messages -------------------------------------------------------------------------
def _count_points(body: dict) -> int:
    n = 0

    def walk(v) -> None:
        nonlocal n
        if isinstance(v, dict):
            if "cache_control" in v:
                n += 1
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(body.get("system"))
    walk(body.get("messages"))
    walk(body.get("tools"))
    return n


def _mark_content(content):
    """A copy of ``content`` (a string or a block list) with its last block marked; None
    when there is nothing to mark."""
    if isinstance(content, str):
        return [{"type": "text", "text": content, "cache_control": EPHEMERAL}] if content else None
    if isinstance(content, list) and content and isinstance(content[-1], dict):
        last = content[-1]
        if last.get("type") in ("thinking", "redacted_thinking"):  # these take no cache_control
            return None
        return [*content[:-1], {**last, "cache_control": EPHEMERAL}]
    return None


def anthropic_points(body: dict, pc: PromptCaching) -> dict:
    """``body`` (an Anthropic Messages request) with cache points; a new top-level dict
    when any was added, else ``body`` itself."""
    budget = MAX_ANTHROPIC_POINTS - _count_points(body)
    out = body
    if budget > 0 and pc.system and body.get("system"):
        sysv = body["system"]
        text = sysv if isinstance(sysv, str) else " ".join(b.get("text", "") for b in sysv if isinstance(b, dict))
        if pc.min_tokens is None or _estimate(len(text.split())) >= pc.min_tokens:
            marked = _mark_content(sysv)
            if marked is not None:
                out = {**out, "system": marked}
                budget -= 1
    msgs = body.get("messages")
    if budget > 0 and pc.messages and isinstance(msgs, list):
        i = _target_index(len(msgs), pc.offset)
        if i is not None and isinstance(msgs[i], dict):
            marked = _mark_content(msgs[i].get("content"))
            if marked is not None:
                msgs = list(msgs)
                msgs[i] = {**msgs[i], "content": marked}
                out = {**out, "messages": msgs}
                budget -= 1
    tools = body.get("tools")
    if budget > 0 and pc.tools and isinstance(tools, list) and tools and isinstance(tools[-1], dict):
        out = {**out, "tools": [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]}
    return out


# -- Bedrock Converse ---------------------------------------------------------------------------
def bedrock_supports(model_id: str) -> bool:
    m = model_id.lower()
    if "anthropic.claude" in m:
        return not any(x in m for x in ("claude-instant", "claude-v1", "claude-v2"))
    return "amazon.nova" in m or ":application-inference-profile/" in m


def bedrock_points(body: dict, pc: PromptCaching, model_id: str) -> None:
    """Add cache points to ``body`` (a Converse request the gateway built) in place."""
    if not bedrock_supports(model_id):
        return
    point = {"cachePoint": {"type": "default"}}
    system = body.get("system")
    if pc.system and isinstance(system, list) and system:
        words = sum(len(b.get("text", "").split()) for b in system if isinstance(b, dict))
        if pc.min_tokens is None or _estimate(words) >= pc.min_tokens:
            system.append(dict(point))
    msgs = body.get("messages")
    if pc.messages and isinstance(msgs, list):
        i = _target_index(len(msgs), pc.offset)
        if i is not None and isinstance(msgs[i], dict) and isinstance(msgs[i].get("content"), list):
            msgs[i]["content"].append(dict(point))
    tc = body.get("toolConfig")
    if pc.tools and isinstance(tc, dict) and isinstance(tc.get("tools"), list) and tc["tools"]:
        tc["tools"].append(dict(point))


def attach(c, prov, kind: str, cfg, path: str) -> None:
    """Compile ``promptCaching`` (``cfg``: the config model or its dict) onto a provider."""
    if isinstance(cfg, dict):
        from pydantic import ValidationError

        from ...config.models import PromptCachingConfig

        try:
            cfg = PromptCachingConfig.model_validate(cfg)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            c.errors.add(f"{path}.{where}" if where else path, err["msg"])
            return
    if kind.lower() not in ("anthropic", "bedrock"):
        c.errors.add(path, f"is only used with anthropic and bedrock providers, which take cache points (not {kind})")
        return
    prov.extra["prompt_caching"] = PromptCaching(
        cfg.cache_system, cfg.cache_messages, cfg.cache_tools, cfg.min_tokens, cfg.cache_message_offset
    )
