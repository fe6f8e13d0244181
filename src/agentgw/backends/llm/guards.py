"""Prompt guards: regex rules (custom patterns and built-in detectors) and webhooks,
applied to what the client sends and to what the model answers; each either rejects
the exchange or masks what matched.

Guards see the text fields of a body in the client's own API shape (chat completions,
Anthropic messages, Responses, embeddings input), so the same guard works whatever
provider is behind. On a streamed answer, each text delta is checked as it passes: a
reject ends the stream with an error event, a mask rewrites the delta (a match split
across two deltas is not seen by a regex; a webhook sees whole non-streamed answers).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ...engine.http import GatewayError

BUILTINS: dict[str, tuple[str, re.Pattern[str], object]] = {}


def _luhn(digits: str) -> bool:
    ds = [int(c) for c in digits if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(ds)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _builtin(names, pattern: str, label: str, check=None) -> None:
    rx = re.compile(pattern)
    for n in names:
        BUILTINS[n.lower()] = (label, rx, check)


_builtin(["email", "emailAddress"], r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "EMAIL_ADDRESS")
_builtin(
    ["creditCard", "credit_card"],
    r"\b(?:\d[ -]?){12,18}\d\b",
    "CREDIT_CARD",
    lambda s: _luhn(s) and 13 <= sum(c.isdigit() for c in s) <= 19,
)
_builtin(["ssn", "usSsn"], r"\b\d{3}[- ]\d{2}[- ]\d{4}\b", "SSN")
_builtin(
    ["phoneNumber", "phone", "phone_number"],
    r"(?<![\w+])(?:\+?1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]\d{3}[ .-]\d{4}\b",
    "PHONE_NUMBER",
)
_builtin(["caSin", "ca_sin"], r"\b\d{3}[- ]\d{3}[- ]\d{3}\b", "CA_SIN", _luhn)


class Rejected(Exception):
    """A guard said no. ``raw``: ``message`` is the guard's configured rejection body,
    answered as written; otherwise it is put in the client's API error shape."""

    def __init__(self, status: int, message: str, headers=None, raw: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.raw = raw


# -- text fields per API ----------------------------------------------------------------------
def map_texts(body, api: str, fn, direction: str) -> bool:
    """Apply ``fn(text) -> text`` to every text field; return True if anything changed."""
    changed = False

    def sub(s):
        nonlocal changed
        if not isinstance(s, str) or not s:
            return s
        r = fn(s)
        if r != s:
            changed = True
        return r

    def content(c):
        if isinstance(c, str):
            return sub(c)
        if isinstance(c, list):
            for p in c:
                if isinstance(p, dict):
                    if isinstance(p.get("text"), str):
                        p["text"] = sub(p["text"])
                    if p.get("type") == "tool_result":
                        p["content"] = content(p.get("content"))
        return c

    if not isinstance(body, dict):
        return False
    if direction == "request":
        if api == "embeddings":
            inp = body.get("input")
            if isinstance(inp, str):
                body["input"] = sub(inp)
            elif isinstance(inp, list):
                body["input"] = [sub(x) if isinstance(x, str) else x for x in inp]
            return changed
        if api == "messages" and body.get("system") is not None:
            body["system"] = content(body["system"])
        if api == "responses":
            if body.get("instructions"):
                body["instructions"] = sub(body["instructions"])
            inp = body.get("input")
            if isinstance(inp, str):
                body["input"] = sub(inp)
            elif isinstance(inp, list):
                for it in inp:
                    if isinstance(it, dict):
                        if "content" in it:
                            it["content"] = content(it["content"])
                        if isinstance(it.get("output"), str):
                            it["output"] = sub(it["output"])
            return changed
        for m in body.get("messages") or []:
            if isinstance(m, dict) and "content" in m:
                m["content"] = content(m["content"])
        return changed
    # responses from the model
    if api == "completions":
        for ch in body.get("choices") or []:
            for k in ("message", "delta"):
                m = ch.get(k)
                if isinstance(m, dict) and "content" in m:
                    m["content"] = content(m["content"])
    elif api == "messages":
        body["content"] = content(body.get("content"))
    elif api == "responses":
        for it in body.get("output") or []:
            if isinstance(it, dict) and "content" in it:
                it["content"] = content(it["content"])
    return changed


def collect_texts(body, api: str, direction: str) -> list[str]:
    out: list[str] = []

    def grab(s):
        out.append(s)
        return s

    map_texts(body, api, grab, direction)
    return out


# -- guards -------------------------------------------------------------------------------------
class RegexGuard:
    def __init__(self, rules: list[tuple[str, re.Pattern, object]], action: str, rejection):
        self.rules = rules
        self.action = action
        self.rejection = rejection  # (status, body, headers)

    def scan(self, text: str) -> tuple[str, str | None]:
        """(masked text, name of first rule that matched or None)."""
        hit = None
        for label, rx, check in self.rules:

            def repl(m, label=label, check=check):
                nonlocal hit
                if check is not None and not check(m.group(0)):
                    return m.group(0)
                hit = hit or label
                return f"<{label}>"

            text = rx.sub(repl, text)
        return text, hit

    async def apply(self, ctx, body, api: str, direction: str, backend) -> bool:
        hits = []

        def fn(s):
            masked, hit = self.scan(s)
            if hit:
                hits.append(hit)
                return masked if self.action == "mask" else s
            return s

        changed = map_texts(body, api, fn, direction)
        if hits and self.action != "mask":
            st, msg, hdrs = self.rejection
            raise Rejected(st, msg or f"{direction} rejected by prompt guard ({hits[0]})", hdrs, raw=msg is not None)
        return changed

    def stream_text(self, text: str, seen: str) -> str:
        masked, hit = self.scan(text)
        if hit:
            if self.action != "mask":
                st, msg, hdrs = self.rejection
                raise Rejected(st, msg or f"response rejected by prompt guard ({hit})", hdrs)
            return masked
        return text


class WebhookGuard:
    """POST the texts to ``{target}/request`` or ``/response`` (guardrail webhook API)."""

    def __init__(self, target, host: str, forward: list, timeout: float = 10.0):
        self.target = target
        self.host = host
        self.forward = forward  # [(name, exact, regex)]
        self.timeout = timeout

    async def _call(self, ctx, path: str, payload: dict, backend) -> dict:
        from ...engine.http import encode_headers

        body = orjson.dumps(payload)
        hdrs = [("content-type", "application/json"), ("content-length", str(len(body)))]
        for k, v in ctx.req.headers:
            for name, exact, rx in self.forward:
                if k == name and (exact is None or v == exact) and (rx is None or rx.fullmatch(v)):
                    hdrs.append((k, v))
        head = f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\n".encode() + encode_headers(hdrs) + b"\r\n"
        conn = await backend.pool.acquire(self.target)
        try:
            conn.send_head(head, body)
            await conn.wait_head(self.timeout)
            data = await conn.read_body(1 << 22)
        except GatewayError as exc:
            conn.close()
            raise GatewayError(502, "guardrail_webhook_failed", f"prompt guard webhook failed: {exc.message}") from None
        finally:
            conn.release()
        if conn.status != 200:
            raise GatewayError(502, "guardrail_webhook_failed", f"prompt guard webhook answered {conn.status}")
        try:
            return orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            raise GatewayError(502, "guardrail_webhook_failed", "prompt guard webhook answered invalid JSON") from None

    async def apply(self, ctx, body, api: str, direction: str, backend) -> bool:
        texts = collect_texts(body, api, direction)
        if not texts:
            return False
        payload: dict[str, Any]
        if direction == "request":
            payload = {"body": {"messages": [{"role": "user", "content": t} for t in texts]}}
        else:
            payload = {"body": {"choices": [{"message": {"role": "assistant", "content": t}} for t in texts]}}
        ans = await self._call(ctx, "/request" if direction == "request" else "/response", payload, backend)
        action = ans.get("action") if isinstance(ans, dict) else None
        if not isinstance(action, dict):
            return False
        if "status_code" in action or ("body" in action and isinstance(action["body"], str)):
            raise Rejected(
                int(action.get("status_code") or 403),
                action.get("body") or action.get("reason") or "rejected by prompt guard webhook",
            )
        nb = action.get("body")
        if isinstance(nb, dict):
            if direction == "request":
                new = [m.get("content", "") for m in nb.get("messages") or []]
            else:
                new = [((c.get("message") or {}).get("content") or "") for c in nb.get("choices") or []]
            if len(new) == len(texts):
                it = iter(new)
                return map_texts(body, api, lambda s: next(it), direction)
        return False

    def stream_text(self, text: str, seen: str) -> str:
        return text


def parse_guard_list(items, path: str, errors, make_webhook, make_managed=None) -> list:
    """Compile ``promptGuard.request``/``.response`` (a list, or one object);
    ``make_managed(kind, spec, path, rejection)`` builds the managed guards
    (`managed_guards`)."""
    if items is None:
        return []
    if isinstance(items, dict):
        items = [items]
    out = []
    for i, g in enumerate(items):
        gp = f"{path}[{i}]"
        if not isinstance(g, dict):
            errors.add(gp, "expected an object")
            continue
        if "scope" in g and sorted(g["scope"] or []) != ["messages", "systemPrompt"]:
            errors.add(f"{gp}.scope", "not supported yet: guards read the system prompt and the messages")
        rej = g.get("rejection") or {}
        status = int(rej.get("status") or 403)
        body = rej.get("body")
        hdrs: list[tuple[str, str | None]] = []
        for k, v in ((rej.get("headers") or {}).get("set") or {}).items():
            hdrs.append((k.lower(), str(v)))
        for k, v in ((rej.get("headers") or {}).get("add") or {}).items():
            hdrs.append((k.lower(), str(v)))
        for k in (rej.get("headers") or {}).get("remove") or []:
            hdrs.append((str(k).lower(), None))  # (a removal: see errors.answer_exception)
        if "regex" in g:
            rx = g["regex"] or {}
            action = rx.get("action", "reject")
            if isinstance(action, dict):  # older {reject: {response: {body, status}}} / {mask: {}}
                if "reject" in action:
                    resp = (action["reject"] or {}).get("response") or {}
                    body = resp.get("body", body)
                    status = int(resp.get("status") or status)
                    action = "reject"
                else:
                    action = "mask"
            action = str(action).lower()
            if action not in ("reject", "mask"):
                errors.add(f"{gp}.regex.action", f"expected reject or mask, got {action!r}")
                continue
            rules: list[tuple[str, re.Pattern[str], object]] = []
            rlist = list(rx.get("rules") or rx.get("matches") or [])
            for b in rx.get("builtins") or []:
                rlist.append({"builtin": b})
            for j, r in enumerate(rlist):
                if isinstance(r, str):
                    r = {"pattern": r}
                if "builtin" in r:
                    b = BUILTINS.get(str(r["builtin"]).lower().replace("-", "_")) or BUILTINS.get(
                        str(r["builtin"]).lower()
                    )
                    if b is None:
                        errors.add(
                            f"{gp}.regex.rules[{j}].builtin",
                            f"unknown builtin {r['builtin']!r}; expected email, creditCard, ssn, phoneNumber or caSin",
                        )
                        continue
                    rules.append(b)
                elif "pattern" in r:
                    try:
                        rules.append(
                            (str(r.get("name") or "masked").upper().replace(" ", "_"), re.compile(r["pattern"]), None)
                        )
                    except re.error as exc:
                        errors.add(f"{gp}.regex.rules[{j}].pattern", f"invalid regex: {exc}")
                else:
                    errors.add(f"{gp}.regex.rules[{j}]", "expected builtin or pattern")
            out.append(RegexGuard(rules, action, (status, body, hdrs)))
        elif "webhook" in g:
            w = make_webhook(g["webhook"] or {}, f"{gp}.webhook")
            if w is not None:
                out.append(w)
        elif make_managed is not None and (
            kind := next((k for k in ("bedrockGuardrails", "googleModelArmor", "azureContentSafety") if k in g), None)
        ):
            guard = make_managed(kind, g[kind], gp, (status, body, hdrs))
            if guard is not None:
                out.append(guard)
        elif "openAIModeration" in g:
            errors.add(f"{gp}.openAIModeration", "not supported by this agentgw build yet")
        else:
            errors.add(gp, "expected regex or webhook")
    return out


def check_guard_options(pg, path: str, errors, response_guards: list) -> None:
    """The keys of a ``promptGuard`` / ``guardrails`` object besides ``request`` and
    ``response``: ``streaming: Enabled`` asks for streamed answers to be checked, which
    only regex guards do (delta by delta); webhook and managed guards see whole answers."""
    if not isinstance(pg, dict):
        return
    for k, v in pg.items():
        if k in ("request", "response"):
            continue
        if k != "streaming":
            errors.add(f"{path}.{k}", "unknown field (request, response or streaming)")
        elif v not in ("Enabled", "Disabled"):
            errors.add(f"{path}.streaming", f"expected Enabled or Disabled, got {v!r}")
        elif v == "Enabled" and any(not isinstance(g, RegexGuard) for g in response_guards):
            errors.add(
                f"{path}.streaming",
                "is only used with regex response guards: webhook and managed guards are not "
                "supported on streamed answers yet",
            )
