"""The LLM metrics and what each call is charged.

The OpenTelemetry GenAI client metrics (token usage, operation duration), the time to the
first streamed token and the failover count, with the accounting done once per provider
call: the histograms, the usage for the access log and tracing, and the charge to the
route's token rate limits. The request paths only report what a call used.
"""

from __future__ import annotations

import time

from .ir import Usage

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
OP_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

#: the client API → gen_ai.operation.name
OPERATION = {"completions": "chat", "messages": "chat", "responses": "chat", "embeddings": "embeddings"}


class LlmMetrics:
    """The LLM metric families (registered with the gateway's metrics) and the
    per-call accounting."""

    __slots__ = ("tokens", "duration", "ttft", "failovers")

    def __init__(self, metrics):
        m = metrics.m
        self.tokens = m.histogram(
            "agentgw_gen_ai_client_token_usage",
            "Tokens used per LLM request (gen_ai.client.token.usage).",
            ("model", "provider", "type"),
            TOKEN_BUCKETS,
        )
        self.duration = m.histogram(
            "agentgw_gen_ai_client_operation_duration_seconds",
            "Duration of LLM requests (gen_ai.client.operation.duration).",
            ("model", "provider", "operation"),
            OP_DURATION_BUCKETS,
        )
        self.ttft = m.histogram(
            "agentgw_gen_ai_time_to_first_token_seconds",
            "Time from request to the first streamed token sent to the client.",
            ("model", "provider"),
            TTFT_BUCKETS,
        )
        self.failovers = m.counter(
            "agentgw_gen_ai_failovers_total",
            "Provider attempts that failed over to the next provider.",
            ("provider", "reason"),
        )

    def account(self, ctx, api, p, model, usage: Usage | None, t0: float, ttft: float | None) -> None:
        """One provider call done (started at ``t0``): its duration, time to first token
        and usage observed, the usage noted on the request and charged to its token
        buckets."""
        system = p.system
        self.duration.observe((model, system, OPERATION.get(api, api)), time.perf_counter() - t0)
        if ttft is not None:
            self.ttft.observe((model, system), ttft)
        if usage is None:
            return
        self.tokens.observe((model, system, "input"), usage.input)
        self.tokens.observe((model, system, "output"), usage.output)
        attrs = ctx.attrs
        attrs["llm_usage"] = usage
        attrs["llm.call"] = (model, system)  # for tracing and the request log database
        attrs["llm.operation"] = OPERATION.get(api, api)
        buckets = attrs.get("token_buckets")
        if buckets:
            for b in buckets:
                b.charge(usage.total)
