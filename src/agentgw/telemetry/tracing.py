"""OpenTelemetry tracing: W3C ``traceparent`` in and out, spans exported over OTLP.

Configured by ``config.tracing`` (``otlpEndpoint``, ``otlpProtocol``, ``headers``,
``randomSampling``, ``clientSampling``, ``fields.add``) or ``frontendPolicies.tracing``
(``host``, ``protocol``, ``path``, ``headers``, ``randomSampling``, ``clientSampling``,
``attributes.add``). Sampling follows agentgateway: a request that carries a
``traceparent`` is traced when its sampled flag is set and ``clientSampling`` allows it
(default true); one without is traced with probability ``randomSampling`` (default
false; ``true`` or a ratio such as ``0.1``).

Per traced request the gateway records two spans: a SERVER span for the request
(``http.request.method``, ``url.path``, ``http.route``, ``http.response.status_code``,
the backend) and a CLIENT span for the backend phase, whose context is what the upstream
receives in ``traceparent`` -- so an MCP target's, A2A agent's or LLM server's own spans
hang under the gateway's. The CLIENT span is named and annotated after the protocol:
``tools/call <tool>`` with ``mcp.method.name``, ``gen_ai.tool.name``,
``mcp.tool.target``; ``a2a <method>`` with ``a2a.method`` and ``a2a.task.id``;
``chat <model>`` with the GenAI semantic-convention attributes (``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.provider.name``, ``gen_ai.usage.input_tokens``,
``gen_ai.usage.output_tokens``).

Cost: a bind without tracing pays one attribute test per request; the fast path is
left for the general one only when tracing is configured; requests not sampled create
no span objects and touch no context variables (spans are passed explicitly, never
through the OpenTelemetry context API). Spans are exported in batches from a
background thread.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.tracing")


def _ratio(expr: str | None, default: float, path: str, errors) -> float:
    if expr is None:
        return default
    e = expr.strip().lower()
    if e == "true":
        return 1.0
    if e == "false":
        return 0.0
    try:
        v = float(e)
    except ValueError:
        errors.add(path, f"sampling must be true, false or a number between 0.0 and 1.0 (got {expr!r})")
        return default
    if not 0.0 <= v <= 1.0:
        errors.add(path, f"sampling must be between 0.0 and 1.0 (got {v})")
    return min(1.0, max(0.0, v))


class _Exporter:
    """A TracerProvider per (endpoint, protocol, headers): survives reloads unchanged."""

    _cache: ClassVar[dict] = {}

    @classmethod
    def get(cls, endpoint: str, protocol: str, headers: dict):
        key = (endpoint, protocol, tuple(sorted(headers.items())))
        t = cls._cache.get(key)
        if t is None:
            for other in list(cls._cache.values()):
                other.shutdown()
            cls._cache.clear()
            t = cls._cache[key] = cls(endpoint, protocol, headers)
        return t

    def __init__(self, endpoint: str, protocol: str, headers: dict):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        from .. import __version__

        exporter: SpanExporter
        if protocol == "http":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

            exporter = HttpExporter(endpoint=endpoint, headers=headers or None, timeout=5)
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

            insecure = not endpoint.startswith("https://")
            exporter = GrpcExporter(endpoint=endpoint, insecure=insecure, headers=headers or None, timeout=5)
        import os

        attrs = {"service.version": __version__}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attrs["service.name"] = "agentgw"
        res = Resource.create(attrs)
        self.provider = TracerProvider(resource=res, sampler=ALWAYS_ON)
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        self.tracer = self.provider.get_tracer("agentgw", __version__)

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()
        except Exception:
            pass


class SpanAttribute:
    """One ``fields.add`` entry: a CEL expression whose value becomes span attributes.

    A scalar is one attribute; a list of scalars of one type an array attribute; another
    map or list its JSON. A value marked by ``flatten`` / ``flattenRecursive``
    (`cel.functions.FLATTEN_MARKERS`) becomes one attribute per element,
    ``<name>.<index or key>``, recursively for ``flattenRecursive``. ``span.name``
    names the span. An expression that has no value (a missing key) sets nothing."""

    __slots__ = ("name", "expr", "binder")

    def __init__(self, name: str, source: str):
        from ..cel import Expression, _Binder

        self.name = name
        self.expr = Expression(source)
        self.binder = _Binder([self.expr])

    def values(self, ctx) -> list[tuple[str, Any]]:
        from ..cel import activation, is_no_value

        b = self.binder
        try:
            r = self.expr.program.eval(activation(b.data(b.values(ctx))))
            if is_no_value(r):
                return []
            v = r.plain_value()
        except Exception:
            return []
        out: list[tuple[str, Any]] = []
        _expand(self.name, v, out, False)
        return out


def _expand(key: str, v: Any, out: list, recursive: bool) -> None:
    from ..cel.functions import FLATTEN_MARKERS

    if isinstance(v, dict) and len(v) == 1:
        ((mk, inner),) = v.items()
        if mk in FLATTEN_MARKERS:
            deep = FLATTEN_MARKERS[mk]
            items = inner.items() if isinstance(inner, dict) else enumerate(inner or [])
            for k, x in items:
                _expand(f"{key}.{k}", x, out, deep)
            return
    if recursive and isinstance(v, (dict, list)):
        for k, x in v.items() if isinstance(v, dict) else enumerate(v):
            _expand(f"{key}.{k}", x, out, True)
        return
    if v is None:
        return
    if isinstance(v, (bool, int, float, str)):
        out.append((key, v))
    elif isinstance(v, list) and v and len({type(x) for x in v}) == 1 and isinstance(v[0], (bool, int, float, str)):
        out.append((key, v))
    else:
        out.append((key, orjson.dumps(v, default=str).decode()))


class RequestTracer:
    """The tracing settings of one compiled config."""

    def __init__(self, exporter: _Exporter, random_ratio: float, client_ratio: float, attrs: list):
        self.exporter = exporter
        self.tracer = exporter.tracer
        self.random_ratio = random_ratio
        self.client_ratio = client_ratio
        self.attrs = attrs  # [SpanAttribute]
        self.uses_llm = any("llm" in a.expr.refs for a in attrs)

    def start(self, ctx) -> None:
        """Decide sampling; when sampled, open the spans and rewrite ``traceparent``."""
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            TraceFlags,
            set_span_in_context,
        )

        req = ctx.req
        headers = req.headers
        tp = headers.get("traceparent")
        parent = None
        if tp:
            parts = tp.strip().split("-")
            if len(parts) >= 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
                try:
                    tid, sid, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
                except ValueError:
                    tid = 0
                if tid and sid:
                    if not (flags & 1) or random.random() >= self.client_ratio:
                        return
                    parent = set_span_in_context(
                        NonRecordingSpan(SpanContext(tid, sid, is_remote=True, trace_flags=TraceFlags(1)))
                    )
        if parent is None and random.random() >= self.random_ratio:
            return
        start_ns = time.time_ns() - int((time.perf_counter() - ctx.start) * 1e9)
        route = ctx.route
        rname = route.name if route is not None else ""
        span = self.tracer.start_span(
            f"{req.method} {rname}".strip(),
            context=parent,
            kind=SpanKind.SERVER,
            start_time=start_ns,
            attributes={
                "http.request.method": req.method,
                "url.path": ctx.path,
                "url.scheme": req.scheme,
                "server.address": req.host,
                "client.address": req.client_addr,
                "http.route": rname,
                "agentgw.listener": ctx.listener.name if ctx.listener is not None else "",
            },
        )
        child = self.tracer.start_span("upstream", context=set_span_in_context(span), kind=SpanKind.CLIENT)
        c = child.get_span_context()
        value = f"00-{c.trace_id:032x}-{c.span_id:016x}-01"
        headers.set("traceparent", value)
        ctx.attrs["trace"] = (self, span, child)
        th = [("traceparent", value)]
        ts = headers.get("tracestate")
        if ts:
            th.append(("tracestate", ts))
        ctx.attrs["trace_headers"] = th

    def finish(self, ctx, status: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        _, span, child = ctx.attrs["trace"]
        attrs = ctx.attrs
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("agentgw.backend", ctx.backend_name)
        if ctx.upstream_error:
            span.set_attribute("error.type", ctx.upstream_error)
        a2a = attrs.get("a2a")
        mcp = attrs.get("mcp.call")
        llm = attrs.get("llm.call")
        if mcp is not None:
            target, tool = mcp
            child.update_name(f"tools/call {tool}")
            child.set_attribute("mcp.method.name", "tools/call")
            child.set_attribute("gen_ai.tool.name", tool)
            child.set_attribute("mcp.tool.name", tool)
            child.set_attribute("mcp.tool.target", target)
            span.set_attribute("mcp.tool.name", tool)
            span.set_attribute("mcp.tool.target", target)
        elif isinstance(a2a, dict) and a2a.get("method"):
            child.update_name(f"a2a {a2a['method']}")
            child.set_attribute("a2a.method", a2a["method"])
            child.set_attribute("a2a.agent", a2a.get("agent", ""))
            tid = a2a.get("taskId")
            if tid:
                child.set_attribute("a2a.task.id", tid)
            span.set_attribute("a2a.method", a2a["method"])
        elif llm is not None:
            model, provider = llm
            child.update_name(f"chat {model}")
            child.set_attribute("gen_ai.operation.name", "chat")
            child.set_attribute("gen_ai.request.model", model)
            usage = attrs.get("llm_usage")
            answered = getattr(usage, "response_model", None)
            if answered:
                child.set_attribute("gen_ai.response.model", answered)
            child.set_attribute("gen_ai.provider.name", provider)
            child.set_attribute("gen_ai.system", provider)
            if usage is not None:
                child.set_attribute("gen_ai.usage.input_tokens", int(usage.input))
                child.set_attribute("gen_ai.usage.output_tokens", int(usage.output))
        if ctx.backend_name:
            child.set_attribute("agentgw.backend", ctx.backend_name)
        if self.uses_llm:
            t = attrs.get("llm_trace")  # backends/llm/trace.py: the call's prompt, answer, tokens
            if t is not None:
                attrs["llm"] = {**(attrs.get("llm") or {}), **t.cel(attrs)}
        for attr in self.attrs:
            for k, v in attr.values(ctx):
                if k == "span.name" and isinstance(v, str):
                    span.update_name(v)
                else:
                    span.set_attribute(k, v)
        if status >= 500 or status == 0:
            span.set_status(Status(StatusCode.ERROR))
            child.set_status(Status(StatusCode.ERROR))
        child.end()
        span.end()


def compile_tracing(compiler: CompileScope, cfg) -> RequestTracer | None:
    """``config.tracing`` / ``frontendPolicies.tracing`` → a RequestTracer (or None)."""
    ct = cfg.config.tracing
    ft = cfg.frontend_policies.tracing
    errors = compiler.errors
    if ct is None and ft is None:
        return None
    if ct is not None and ft is not None:
        errors.add("frontendPolicies.tracing", "set either config.tracing or frontendPolicies.tracing, not both")
        return None
    attrs_src: dict = {}
    if ct is not None:
        path = "config.tracing"
        endpoint, protocol, headers = ct.otlp_endpoint, ct.otlp_protocol, dict(ct.headers or {})
        if protocol == "http":
            endpoint = endpoint.rstrip("/") + (ct.path or "/v1/traces")
        elif ct.path is not None:
            errors.add(f"{path}.path", "is only used with otlpProtocol: http")
        rs, cs = ct.random_sampling, ct.client_sampling
        if ct.fields is not None:
            attrs_src = dict(ct.fields.add)
            if ct.fields.remove:
                errors.add(f"{path}.fields.remove", "removing span attributes is not supported yet")
    else:
        path = "frontendPolicies.tracing"
        host = ft.host if "://" in ft.host else f"http://{ft.host}"
        protocol, headers = ft.protocol, dict(ft.headers or {})
        endpoint = host.rstrip("/") + ((ft.path or "/v1/traces") if protocol == "http" else "")
        if protocol != "http" and ft.path is not None:
            errors.add(f"{path}.path", "is only used with protocol: http")
        rs, cs = ft.random_sampling, ft.client_sampling
        for k in ft.attributes or {}:
            if k != "add":
                errors.add(f"{path}.attributes.{k}", "not supported yet (only add)")
        add = (ft.attributes or {}).get("add") if isinstance(ft.attributes, dict) else None
        if isinstance(add, list):
            attrs_src = {a.get("name"): a.get("expression") for a in add if isinstance(a, dict)}
        elif isinstance(add, dict):
            attrs_src = dict(add)
    rr = _ratio(rs, 0.0, f"{path}.randomSampling", errors)
    cr = _ratio(cs, 1.0, f"{path}.clientSampling", errors)
    from ..cel import CelError

    attrs = []
    for name, expr in attrs_src.items():
        try:
            attrs.append(SpanAttribute(str(name), str(expr)))
        except CelError as exc:
            errors.add(f"{path}.attributes.{name}", str(exc))
    if getattr(compiler.services, "pool", None) is None:  # `agentgw validate`: nothing is served
        return None
    return RequestTracer(_Exporter.get(endpoint, protocol, headers), rr, cr, attrs)


def shutdown() -> None:
    for t in list(_Exporter._cache.values()):
        t.shutdown()
    _Exporter._cache.clear()
