"""``accessLog.otlp``: the access log exported as OpenTelemetry log records over OTLP.

One log record per logged request: severity INFO, body ``request``, the access-log
fields as attributes (the same fields as the stdout line: ``otlp.fields`` replaces the
access log's own ``add``/``remove`` when set), and the request's trace context when it
was traced. ``otlp.filter`` narrows the access log's ``filter``. Records are batched
and sent by the OpenTelemetry SDK's exporter thread (gRPC, or HTTP/protobuf to
``/v1/logs`` or ``path``), so a slow or absent collector costs the request path one
queue append; the SDK drops records when its queue is full.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

if TYPE_CHECKING:
    from ..config import models as m
    from ..proxy.scope import CompileScope


class _Provider:
    """A LoggerProvider per (endpoint, protocol): survives reloads unchanged."""

    _cache: ClassVar[dict] = {}

    @classmethod
    def get(cls, endpoint: str, protocol: str) -> _Provider:
        key = (endpoint, protocol)
        p = cls._cache.get(key)
        if p is None:
            for other in list(cls._cache.values()):
                other.shutdown()
            cls._cache.clear()
            p = cls._cache[key] = cls(endpoint, protocol)
        return p

    def __init__(self, endpoint: str, protocol: str):
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        from .. import __version__

        if protocol == "http":
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

            exporter: Any = HttpExporter(endpoint=endpoint, timeout=5)
        else:
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

            exporter = GrpcExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"), timeout=5)
        attrs = {"service.version": __version__}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        ):
            attrs["service.name"] = "agentgw"
        self.provider = LoggerProvider(resource=Resource.create(attrs))
        self.provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=500))
        self.logger = self.provider.get_logger("agentgw", __version__)

    def shutdown(self) -> None:
        try:
            self.provider.shutdown()  # exports what is still buffered
        except Exception:
            pass


def _attr(v: Any) -> Any:
    """An attribute value OTLP carries: primitives as they are, maps and lists as JSON."""
    if isinstance(v, (str, bool, int, float)):
        return v
    if v is None:
        return ""
    return orjson.dumps(v, default=str).decode()


class OtlpAccessLog:
    """The OTLP export of one compiled config's access log."""

    __slots__ = ("provider", "target", "filter", "fields", "record_cls", "severity", "span_context")

    def __init__(self, provider: _Provider, filter_, fields, target: str = ""):
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.trace import set_span_in_context

        self.provider = provider
        self.target = target  # the collector as configured (a service with its namespace)
        self.filter = filter_  # DescriptorValues or None
        self.fields = fields  # (add, remove) or None: the access log's own
        self.record_cls = LogRecord
        self.severity = SeverityNumber.INFO
        self.span_context = set_span_in_context

    def emit(self, ctx, base: dict, parent) -> None:
        """``base``: the request's built-in fields (not edited); ``parent``: the access
        log's ``LogFields`` (its filter applies too), or None."""
        if parent is not None and parent.filter is not None:
            v = parent.filter.evaluate(ctx)
            if v is None or v[0] is not True:
                return
        f = self.filter
        if f is not None:
            v = f.evaluate(ctx)
            if v is None or v[0] is not True:
                return
        fields = dict(base)
        if self.fields is not None:
            add, remove = self.fields
        elif parent is not None:
            add, remove = parent.add, parent.remove
        else:
            add, remove = (), ()
        for name, vals in add:
            v = vals.evaluate(ctx)
            if v is not None:
                fields[name] = v[0]
        for name in remove:
            fields.pop(name, None)
        fields.pop("time", None)
        fields.pop("level", None)
        fields.pop("msg", None)
        trace = ctx.attrs.get("trace") if ctx.attrs else None
        context = self.span_context(trace[1]) if trace is not None else None
        self.provider.logger.emit(
            self.record_cls(
                timestamp=time.time_ns(),
                context=context,
                severity_text="INFO",
                severity_number=self.severity,
                body="request",
                attributes={k: _attr(v) for k, v in fields.items()},
            )
        )


def compile_otlp_log(scope: CompileScope, o: m.OtlpLogging, path: str) -> OtlpAccessLog | None:
    from ..cel import CelError
    from ..policies.descriptors import DescriptorValues

    errors = scope.errors
    if o.host is not None:
        addr = target = o.host
    elif o.service is not None:
        addr = f"{o.service.name.hostname}:{o.service.port}"
        target = f"{o.service.name.namespace}/{addr}"
    else:
        ref = scope.named.get(o.backend or "")
        if ref is None or ref[1].host is None:
            errors.add(f"{path}.backend", f"no top-level host backend named {o.backend!r}")
            return None
        if ref[1].policies is not None:
            errors.add(f"backends[{ref[0]}].policies", "not used by the OTLP log exporter (not supported yet)")
        addr, target = ref[1].host, ref[1].name
    base = addr if "://" in addr else f"http://{addr}"
    if o.protocol == "http":
        endpoint = base.rstrip("/") + (o.path or "/v1/logs")
    else:
        endpoint = base.rstrip("/")
        if o.path is not None:
            errors.add(f"{path}.path", "is only used with protocol: http")
    filt = None
    if o.filter:
        try:
            filt = DescriptorValues([("filter", o.filter)], stringify=False)
        except CelError as exc:
            errors.add(f"{path}.filter", str(exc))
    fields = None
    if o.fields is not None:
        add = []
        for name, expr in o.fields.add.items():
            try:
                add.append((name, DescriptorValues([(name, str(expr))], stringify=False, structured=True)))
            except CelError as exc:
                errors.add(f"{path}.fields.add.{name}", str(exc))
        fields = (add, frozenset(o.fields.remove))
    if getattr(scope.services, "pool", None) is None:  # `agentgw validate`: nothing is served
        return None
    return OtlpAccessLog(_Provider.get(endpoint, o.protocol), filt, fields, target)


def shutdown() -> None:
    for p in list(_Provider._cache.values()):
        p.shutdown()
    _Provider._cache.clear()
