"""The access log: one line per request, JSON or text, written in batches.

A write syscall per request would cost more than the request: lines are collected and
flushed to stdout every 50 ms (and at shutdown), so logging costs about one syscall per
batch. The log never contains credentials: it records the request line and routing
facts, not headers or bodies.

Formatting is on every request's path too (the log is on by default), so ``record`` keeps
it short: the time's ``YYYY-MM-DDTHH:MM:SS`` is formatted once per second (``_Clock``),
and in the common case a line is one f-string over the built-in fields instead of a dict
of them that is then serialised or joined (see ``AccessLog``). The lines are the same
bytes either way; tests/observability/test_accesslog_format.py pins them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from ..cel import register_variable

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope

try:
    if os.environ.get("AGENTGW_NO_SPEEDUPS"):
        raise ImportError("AGENTGW_NO_SPEEDUPS is set")
    from ..engine._speedups import access_line as _access_line
except ImportError:  # built without a compiler: the Python path below, same bytes
    _access_line = None  # type: ignore[assignment]


#: ``f"{ms:03d}"`` for 0 <= ms <= 1000 (1000 in case ``(t % 1) * 1000`` rounds up): a
#: tuple's item costs less than the formatting
_MILLIS = tuple(f"{ms:03d}" for ms in range(1001))


class _Clock:
    """The log's ``time``: UTC with milliseconds, ``2026-11-23T19:30:48.123Z``.

    ``time.strftime`` costs more than the rest of a text line; its part (the whole
    seconds) is formatted once per second and cached here.
    """

    __slots__ = ("sec", "prefix")

    def __init__(self) -> None:
        self.sec = -1
        self.prefix = ""

    def now(self) -> str:
        t = time.time()
        sec = int(t)
        if sec != self.sec:
            # gmtime(t) drops t's fraction, as int(t) does (t > 0)
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
            self.sec = sec
        return f"{self.prefix}.{_MILLIS[int((t % 1) * 1000)]}Z"


_clock = _Clock()
_now_iso = _clock.now


def _response(ctx) -> dict:
    ex = ctx.ex
    return {"code": ex.status if ex.started else 0}


register_variable("response", _response)

#: a backend's ``kind`` -> (CEL ``backend.type``, ``backend.protocol``)
_BACKEND_KINDS = {
    "http": ("static", "http"),
    "ai": ("ai", "llm"),
    "mcp": ("mcp", "mcp"),
    "agentcore": ("unknown", "a2a"),
}


def _backend(ctx) -> dict:
    """CEL ``backend``: ``name`` (as in the log's backend field), ``type``, ``protocol``."""
    route = ctx.route
    b = route.backend if route is not None else None
    if b is None:
        return {}
    btype, proto = _BACKEND_KINDS.get(getattr(b, "kind", ""), ("unknown", "http"))
    if "a2a" in ctx.attrs:
        proto = "a2a"
    return {"name": ctx.backend_name, "type": btype, "protocol": proto}


register_variable("backend", _backend)


class LogFields:
    """``frontendPolicies.accessLog`` / ``config.logging``: filter, add and remove fields.

    ``add`` maps a field name to a CEL expression (over ``request``, ``response.code``,
    ``jwt``, ``apiKey``, ``source``, ``mcp``, ``a2a``, ``llm``...); a field whose
    expression has no value for a request is left out. ``remove`` drops built-in fields.
    ``filter`` is a CEL condition: only requests for which it is true are logged.
    """

    __slots__ = ("add", "remove", "filter", "otlp", "store", "attributes")

    def __init__(self, add: list, remove: frozenset, filter_, otlp=None, store=None):
        self.add = add
        self.remove = remove
        self.filter = filter_
        self.otlp = otlp  # telemetry.otlp_logs.OtlpAccessLog (accessLog.otlp), or None
        # telemetry.request_store: the RequestStore and StandardAttributes of config.database
        self.store: Any = None
        self.attributes: Any = None
        if store is not None:
            self.store, self.attributes = store

    def apply(self, ctx, fields: dict) -> bool:
        f = self.filter
        if f is not None:
            v = f.evaluate(ctx)
            if v is None or v[0] is not True:
                return False
        for name, vals in self.add:
            v = vals.evaluate(ctx)
            if v is not None:
                fields[name] = v[0]
        for name in self.remove:
            fields.pop(name, None)
        return True


def compile_access_log(compiler: CompileScope, cfg) -> LogFields | None:
    from ..cel import CelError
    from ..policies.descriptors import DescriptorValues

    add: dict = {}
    remove: list = []
    filt = []
    lg = cfg.config.logging
    if lg is not None:
        if lg.fields is not None:
            add.update({k: ("config.logging.fields.add", v) for k, v in lg.fields.add.items()})
            remove.extend(lg.fields.remove)
        if lg.filter:
            filt.append(("config.logging.filter", lg.filter))
    al = cfg.frontend_policies.access_log
    if al is not None:
        add.update({k: ("frontendPolicies.accessLog.add", v) for k, v in al.add.items()})
        remove.extend(al.remove)
        if al.filter:
            filt.append(("frontendPolicies.accessLog.filter", al.filter))
    otlp = None
    if al is not None and al.otlp is not None:
        from .otlp_logs import compile_otlp_log

        otlp = compile_otlp_log(compiler, al.otlp, "frontendPolicies.accessLog.otlp")
    from .request_store import compile_request_store

    store = compile_request_store(compiler, cfg)
    if not add and not remove and not filt and otlp is None and store is None:
        return None
    compiled = []
    for name, (path, expr) in add.items():
        try:
            compiled.append((name, DescriptorValues([(name, str(expr))], stringify=False, structured=True)))
        except CelError as exc:
            compiler.errors.add(f"{path}.{name}", str(exc))
    f = None
    if filt:
        src = " && ".join(f"({e})" for _, e in filt)
        try:
            f = DescriptorValues([("filter", src)], stringify=False)
        except CelError as exc:
            compiler.errors.add(filt[-1][0], str(exc))
    return LogFields(compiled, frozenset(remove), f, otlp, store)


class AccessLog:
    """The access log's lines, their buffer and its flush timer.

    ``record`` has three ways to a line, which give the same bytes:

    * the C helper ``engine._speedups.access_line`` (built by ``pip install`` where a
      compiler is present): the common line, built-in fields only, in one call that
      also writes the time; it declines (None) any value needing quoting, escaping or
      not ASCII, for the ways below. (Under callgrind the log's cost on the plain route
      fell from ~22 k to ~8 k instructions per request.)

    * the fields' dict (``_fields``), written with ``orjson`` (JSON) or joined as
      ``key=value`` pairs (``_text_line``): the general case. It is taken when
      ``LogFields`` (``logging.fields``, a filter, an OTLP export, the request store) must
      see or change the dict, and when a policy added fields (``ctx.attrs["log"]``: they
      may replace built-in ones, in place);
    * otherwise one f-string over the built-in fields. (Under callgrind the text log's
      cost per request fell from ~81 k to ~22 k instructions, JSON's from ~32 k to
      ~23 k: the dict, the generic join with a ``_text`` call per field and
      ``strftime`` were most of it.) The string values are checked together, in one
      scan of their concatenation, for what would make their written form differ from
      the value itself:

      - text: ``_text`` quotes a value that is empty or holds a space or a double
        quote; such values are then quoted one by one, as ``_text`` does;
      - JSON: ``orjson`` escapes ``"``, ``\\`` and control characters (and refuses lone
        surrogates); a value with any of these or another non-printable character
        takes the dict's way.

      Numbers are written as ``str()`` writes them (``!r`` for the float: the same
      string, without ``format()``'s spec parsing), which is also what ``orjson``
      writes for ints and for floats (the shortest repr). The fields a request may add
      after the built-in ones (``upstream_error``, ``mcp_target``/``mcp_tool``,
      ``trace_id``/``span_id``) follow in ``_fields``' order, quoted by ``_text`` or
      ``orjson``.
    """

    def __init__(self, fmt: str = "text", stream=None, enabled: bool = True):
        self.json = fmt == "json"
        self.enabled = enabled  # record() is called (stdout, or an OTLP export, wants it)
        self.stdout = enabled  # the line is written to stdout (the log level allows it)
        self.fields: LogFields | None = None
        self.stream = stream if stream is not None else sys.stdout.buffer
        self._buf: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    def record(self, ctx, duration: float) -> None:
        attrs = ctx.attrs
        if self.fields is not None or not self.stdout or (attrs and attrs.get("log")):
            self._record_fields(ctx, duration)
            return
        req = ctx.req
        ex = ctx.ex
        b = ctx.bind
        bind = b.name if b is not None else ""
        b = ctx.listener
        listener = b.name if b is not None else ""
        b = ctx.route
        route = b.name if b is not None else ""
        backend = ctx.backend_name
        client = req.client_addr
        method = req.method
        path = req.target
        host = req.headers.get("host", "")
        err = ctx.upstream_error
        if _access_line is not None and not err and not attrs:
            # the whole line in one C call, when no value needs quoting or escaping
            data = _access_line(
                self.json,
                None,  # (the time now, formatted in C as _Clock does)
                bind,
                listener,
                route,
                backend,
                client,
                method,
                path,
                host,
                ex.status,
                duration,
                ex.bytes_sent,
                req.body.size,
            )
            if data is not None:
                self._buf.append(data)
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(0.05, self.flush)
                return
        joined = f"{bind}{listener}{route}{backend}{client}{method}{path}{host}"
        if self.json:
            if '"' in joined or "\\" in joined or not joined.isprintable():
                self._record_fields(ctx, duration)
                return
            line = (
                f'{{"time":"{_now_iso()}","level":"info","msg":"request","bind":"{bind}","listener":"{listener}"'
                f',"route":"{route}","backend":"{backend}","client":"{client}","method":"{method}","path":"{path}"'
                f',"host":"{host}","status":{ex.status},"duration_ms":{round(duration * 1000, 3)!r}'
                f',"bytes_sent":{ex.bytes_sent},"bytes_received":{req.body.size}'
            )
            if err or attrs:
                line += "".join(f',"{k}":{_json(v)}' for k, v in _trailing(err, attrs))
            line += "}\n"
        else:
            if (
                " " in joined
                or '"' in joined
                or not (bind and listener and route and backend and client and method and path and host)
            ):
                bind, listener, route, backend, client, method, path, host = map(
                    _text, (bind, listener, route, backend, client, method, path, host)
                )
            line = (
                f"{_now_iso()} info request bind={bind} listener={listener} route={route} backend={backend}"
                f" client={client} method={method} path={path} host={host} status={ex.status}"
                f" duration_ms={round(duration * 1000, 3)!r} bytes_sent={ex.bytes_sent}"
                f" bytes_received={req.body.size}"
            )
            if err or attrs:
                line += "".join(f" {k}={_text(v)}" for k, v in _trailing(err, attrs))
            line += "\n"
        self._buf.append(line.encode("utf-8", "replace"))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(0.05, self.flush)

    def _record_fields(self, ctx, duration: float) -> None:
        """``record`` through the fields' dict (the general case)."""
        fields = _fields(ctx, duration)
        lf = self.fields
        if lf is not None:
            if lf.otlp is not None:
                lf.otlp.emit(ctx, fields, lf)
            if lf.store is not None:
                if not lf.apply(ctx, fields):
                    return
                lf.store.emit(ctx, fields, duration, lf.attributes)
            elif not self.stdout or not lf.apply(ctx, fields):
                return
        if not self.stdout:
            return
        self._buf.append(orjson.dumps(fields) + b"\n" if self.json else _text_line(fields))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(0.05, self.flush)

    def flush(self) -> None:
        self._timer = None
        if self._buf:
            data, self._buf = b"".join(self._buf), []
            try:
                self.stream.write(data)
                self.stream.flush()
            except (OSError, ValueError):
                pass


def _trailing(err, attrs: dict) -> list[tuple[str, Any]]:
    """The fields a request may add after the built-in ones, in ``_fields``' order:
    ``upstream_error``, ``mcp_target`` / ``mcp_tool``, ``trace_id`` / ``span_id``."""
    out: list[tuple[str, Any]] = []
    if err:
        out.append(("upstream_error", err))
    mcp = attrs.get("mcp.call")
    if mcp is not None:
        out += (("mcp_target", mcp[0]), ("mcp_tool", mcp[1]))
    trace = attrs.get("trace")
    if trace is not None:
        sc = trace[1].get_span_context()
        out += (("trace_id", f"{sc.trace_id:032x}"), ("span_id", f"{sc.span_id:016x}"))
    return out


def _json(v) -> str:
    """``v`` as ``orjson`` writes it in a line."""
    return orjson.dumps(v).decode()


def _text(v) -> str:
    if isinstance(v, (dict, list)):
        return orjson.dumps(v).decode()
    s = str(v)
    if not s or " " in s or '"' in s:
        return orjson.dumps(s).decode()
    return s


def _fields(ctx, duration: float) -> dict:
    """A request's log fields, in the order they are written."""
    req = ctx.req
    ex = ctx.ex
    route = ctx.route
    fields = {
        "time": _now_iso(),
        "level": "info",
        "msg": "request",
        "bind": ctx.bind.name if ctx.bind is not None else "",
        "listener": ctx.listener.name if ctx.listener is not None else "",
        "route": route.name if route is not None else "",
        "backend": ctx.backend_name,
        "client": req.client_addr,
        "method": req.method,
        "path": req.target,
        "host": req.headers.get("host", ""),
        "status": ex.status,
        "duration_ms": round(duration * 1000, 3),
        "bytes_sent": ex.bytes_sent,
        "bytes_received": req.body.size,
    }
    if ctx.upstream_error:
        fields["upstream_error"] = ctx.upstream_error
    extra = ctx.attrs.get("log")
    if extra:
        fields.update(extra)
    fields.update(_trailing(None, ctx.attrs))
    return fields


def _text_line(fields: dict) -> bytes:
    """The text format's line of ``fields``: ``time info request k=v k=v...``."""
    return (
        " ".join(f"{k}={_text(v)}" for k, v in fields.items() if k not in ("time", "level", "msg")).join(
            (f"{fields['time']} info request ", "\n")
        )
    ).encode("utf-8", "replace")
