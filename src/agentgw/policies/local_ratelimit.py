"""``localRateLimit``: token buckets held in this process.

Each entry is a bucket of ``maxTokens`` that regains ``tokensPerFill`` every
``fillInterval``. A request takes one token (``type: requests``); LLM routes take tokens
by the response's token usage (``type: tokens``, charged after the fact by the LLM
backend through :meth:`TokenBucket.charge`). An empty bucket answers 429 with
``Retry-After`` and ``x-ratelimit-limit/-remaining/-reset``.

With ``--workers N`` every worker process holds its own buckets, so the effective limit
is up to N times the configured one; use the Redis-backed global limiter for one limit
across processes and replicas.
"""

from __future__ import annotations

import math
import time

from ..engine.http import Headers, Reply
from ..proxy.policy import Policy


class TokenBucket:
    __slots__ = ("max_tokens", "per_fill", "interval", "tokens", "last", "kind")

    def __init__(self, max_tokens: int, tokens_per_fill: int, fill_interval: float, kind: str = "requests"):
        self.max_tokens = float(max_tokens)
        self.per_fill = float(tokens_per_fill)
        self.interval = float(fill_interval)
        self.tokens = float(max_tokens)
        self.last = time.monotonic()
        self.kind = kind

    def _refill(self, now: float) -> None:
        elapsed = now - self.last
        if elapsed >= self.interval:
            fills = math.floor(elapsed / self.interval)
            self.tokens = min(self.max_tokens, self.tokens + fills * self.per_fill)
            self.last += fills * self.interval

    def try_take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def available(self) -> bool:
        self._refill(time.monotonic())
        return self.tokens > 0

    def charge(self, n: float) -> None:
        """Take ``n`` tokens after the fact (may go negative: the debt delays later calls)."""
        self._refill(time.monotonic())
        self.tokens -= n

    def reset_in(self) -> float:
        """Seconds until at least one token is back."""
        return max(0.0, self.last + self.interval - time.monotonic())


class LocalRateLimit(Policy):
    order = 50

    def __init__(self, buckets: list[TokenBucket]):
        self.buckets = buckets
        self.request_buckets = [b for b in buckets if b.kind == "requests"]
        self.token_buckets = [b for b in buckets if b.kind == "tokens"]

    def on_request(self, ctx):
        for b in self.request_buckets:
            if not b.try_take():
                return self._deny(b)
        for b in self.token_buckets:
            if not b.available():
                return self._deny(b)
        if self.token_buckets:
            ctx.attrs["token_buckets"] = self.token_buckets
        return None

    @staticmethod
    def _deny(b: TokenBucket) -> Reply:
        reset = b.reset_in()
        h = Headers(
            [
                ("retry-after", str(max(1, math.ceil(reset)))),
                ("x-ratelimit-limit", str(int(b.max_tokens))),
                ("x-ratelimit-remaining", str(max(0, int(b.tokens)))),
                ("x-ratelimit-reset", str(max(1, math.ceil(reset)))),
            ]
        )
        return Reply.error(429, "rate_limited", "rate limit exceeded", h)
