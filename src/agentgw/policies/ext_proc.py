"""``extProc``: an Envoy external processor sees, and may change or answer, each request
and its response (``envoy.service.ext_proc.v3.ExternalProcessor/Process``, one gRPC
stream per request).

What is sent follows ``processingOptions``, as Envoy and agentgateway send it:

* the request headers (``requestHeaderMode: send``, the default) with the pseudo-headers
  ``:method``, ``:scheme``, ``:authority`` and ``:path``, each value in ``value`` and
  ``raw_value``; the first message carries ``protocol_config`` (the body modes),
  ``metadata_context`` (``metadataContext``: namespace → key → CEL) and
  ``attributes["envoy.filters.http.ext_proc"]`` (``requestAttributes``: name → CEL);
* the request body (``requestBodyMode``): ``buffered`` sends it whole after the answer
  to the headers; ``bufferedPartial`` the same, cut to the body limit; and
  ``fullDuplexStreamed`` (the default) sends it right after the headers without waiting
  (an endpoint picker reads the body before it answers the headers) and takes the body
  back from the processor's ``streamed_response`` chunks; ``none`` sends none;
* the response headers (``responseHeaderMode``, with ``:status``) and body
  (``responseBodyMode``), the same way, with ``responseAttributes``.

A body is sent whole, as one message, and a response the processor is to see is
buffered (up to the route's body limit) before it goes to the client: a streamed
response (SSE) reaches the client when it is complete. Trailers are never sent (agentgw
passes none). The processor's answers are applied as Envoy applies them: header
mutations (``set_headers`` with ``append_action``, ``remove_headers``; ``:path`` and
``:authority`` rewrite the request's path and host; other pseudo-headers, hop-by-hop
headers and ``content-length`` are not changed), body mutations (``body``,
``clear_body``, ``streamed_response``), and an ``immediate_response`` is sent to the
client instead. ``mode_override`` is honoured when ``allowModeOverride`` is set.

A processor that cannot be reached, fails the stream or does not answer a message within
``MESSAGE_TIMEOUT`` fails the request (``failureMode: failClosed``, the default: 503
``ext_proc_error``) or lets it go on unprocessed (``failOpen``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..cel import VARIABLES, activation, is_no_value
from ..engine.http import HOP_BY_HOP, GatewayError, Headers, Reply
from ..proxy.policy import Policy

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.ext_proc")

MESSAGE_TIMEOUT = 10.0  # seconds the processor has to answer one message
STREAM_TIMEOUT = 600.0  # the whole stream (a request and its response)
ATTRIBUTES_NS = "envoy.filters.http.ext_proc"

_MODES = {"none": 0, "buffered": 2, "bufferedPartial": 3, "fullDuplexStreamed": 4}
_NONE, _BUFFERED, _PARTIAL, _DUPLEX = 0, 2, 3, 4
_UNCHANGEABLE = HOP_BY_HOP | {"content-length"}


class ExtProcError(Exception):
    """The processor failed: unreachable, the stream broke, a timeout, a bad answer."""


class Modes:
    """The processing modes of one request (``mode_override`` may change them)."""

    __slots__ = ("req_headers", "req_body", "resp_headers", "resp_body")

    def __init__(self, req_headers: bool, req_body: int, resp_headers: bool, resp_body: int):
        self.req_headers = req_headers
        self.req_body = req_body
        self.resp_headers = resp_headers
        self.resp_body = resp_body

    def copy(self) -> Modes:
        return Modes(self.req_headers, self.req_body, self.resp_headers, self.resp_body)

    def override(self, m) -> None:
        """Apply a ``ProcessingMode`` from the processor for the rest of the request, as
        Envoy does: header modes DEFAULT (0) and SEND send, SKIP skips; body modes as
        given, STREAMED (1; one message here) as BUFFERED."""
        self.req_headers = m.request_header_mode != 2
        self.resp_headers = m.response_header_mode != 2
        self.req_body = _BUFFERED if m.request_body_mode == 1 else m.request_body_mode
        self.resp_body = _BUFFERED if m.response_body_mode == 1 else m.response_body_mode

    @property
    def response(self) -> bool:
        return self.resp_headers or self.resp_body != _NONE


# -- the gRPC side ------------------------------------------------------------------------------
_CHANNELS: dict[tuple, Any] = {}


def _channel(target: str, tls: bool, root: bytes | None):
    """One grpc.aio channel per processor address and event loop (kept across reloads)."""
    import grpc

    loop = asyncio.get_running_loop()
    key = (id(loop), target, tls, root)
    ch = _CHANNELS.get(key)
    if ch is None:
        if tls:
            ch = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root))
        else:
            ch = grpc.aio.insecure_channel(target)
        _CHANNELS[key] = ch
    return ch


class Processor:
    """Where the processor is and how to talk to it (compiled once)."""

    def __init__(self, target: str, tls: bool = False, root: bytes | None = None):
        self.target = target
        self.tls = tls
        self.root = root

    def open(self):
        from . import ext_proc_proto as pb

        ch = _channel(self.target, self.tls, self.root)
        return ch.stream_stream(
            pb.METHOD,
            request_serializer=pb.ProcessingRequest.SerializeToString,
            response_deserializer=pb.ProcessingResponse.FromString,
        )(timeout=STREAM_TIMEOUT)


class Stream:
    """One request's stream to the processor."""

    __slots__ = ("call", "first", "protocol", "metadata", "attributes", "broken")

    def __init__(self, call, protocol: tuple[int, int], metadata: dict | None, attributes: dict | None):
        self.call = call
        self.first = True
        # why a write failed: the processor may have answered (an immediate response)
        # and ended the stream before reading all that was sent; its answer is read
        # first, and this is the error if there is none
        self.broken: str | None = None
        self.protocol = protocol
        self.metadata = metadata
        self.attributes = attributes

    async def send(self, msg) -> None:
        if self.first:
            self.first = False
            pc = msg.protocol_config
            pc.request_body_mode, pc.response_body_mode = self.protocol
            pc.send_body_without_waiting_for_header_response = _DUPLEX in self.protocol
            if self.metadata:
                for ns, kv in self.metadata.items():
                    msg.metadata_context.filter_metadata[ns].update(kv)
        if self.attributes:
            msg.attributes[ATTRIBUTES_NS].update(self.attributes)
            self.attributes = None
        if self.broken is not None:
            return
        try:
            await asyncio.wait_for(self.call.write(msg), MESSAGE_TIMEOUT)
        except TimeoutError:
            raise ExtProcError(f"could not send within {MESSAGE_TIMEOUT:g}s") from None
        except Exception as exc:
            self.broken = _why(exc)

    async def recv(self):
        import grpc

        try:
            m = await asyncio.wait_for(self.call.read(), MESSAGE_TIMEOUT)
        except TimeoutError:
            raise ExtProcError(f"no answer within {MESSAGE_TIMEOUT:g}s") from None
        except Exception as exc:
            raise ExtProcError(self.broken or _why(exc)) from None
        if m is grpc.aio.EOF:
            raise ExtProcError(self.broken or "the processor closed the stream")
        return m

    def close(self) -> None:
        self.call.cancel()


def _why(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            details = exc.details()  # type: ignore[attr-defined]
            return f"{code().name}: {details}" if details else code().name
        except Exception:
            pass
    return str(exc) or type(exc).__name__


# -- messages -------------------------------------------------------------------------------
def _header_map(hm, pairs) -> None:
    for k, v in pairs:
        hv = hm.headers.add()
        hv.key = k
        hv.value = v
        hv.raw_value = v.encode("latin-1", "replace")


def _value(hv) -> str:
    return hv.value if hv.value or not hv.raw_value else hv.raw_value.decode("latin-1")


def _request_pairs(ctx) -> list[tuple[str, str]]:
    req = ctx.req
    pairs = [
        (":method", req.method),
        (":scheme", req.scheme),
        (":authority", ctx.authority or req.host),
        (":path", ctx.target),
    ]
    pairs.extend((k, v) for k, v in req.headers if k != "host")
    return pairs


class _Mutable:
    """What a header mutation may change: the request's headers (and its path and host)
    or a response's."""

    __slots__ = ("headers", "ctx")

    def __init__(self, headers: Headers, ctx=None):
        self.headers = headers
        self.ctx = ctx  # the request's context when these are request headers

    def apply(self, mutation) -> None:
        h = self.headers
        for name in mutation.remove_headers:
            n = name.lower()
            if n.startswith(":") or n == "host" or n in _UNCHANGEABLE:
                continue
            h.remove(n)
        for opt in mutation.set_headers:
            k = opt.header.key.lower()
            v = _value(opt.header)
            if not k or any(c in v for c in "\r\n\x00"):
                continue
            if k.startswith(":") or k == "host":
                self._pseudo(k, v)
                continue
            if k in _UNCHANGEABLE:
                continue
            if not v and not opt.keep_empty_value:
                h.remove(k)
                continue
            action = opt.append_action
            if opt.HasField("append"):  # the deprecated form: append or overwrite
                action = 0 if opt.append.value else 2
            if action == 0:  # APPEND_IF_EXISTS_OR_ADD
                h.append((k, v))
            elif action == 1:  # ADD_IF_ABSENT
                if not h.has(k):
                    h.append((k, v))
            elif action == 3:  # OVERWRITE_IF_EXISTS
                if h.has(k):
                    h.set(k, v)
            else:  # OVERWRITE_IF_EXISTS_OR_ADD
                h.set(k, v)

    def _pseudo(self, k: str, v: str) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        if k == ":path" and v.startswith("/"):
            path, _, query = v.partition("?")
            ctx.path, ctx.query = path, query
        elif k in (":authority", "host") and v:
            ctx.authority = v
            ctx.req.headers.set("host", v)


def _immediate(ir) -> Reply:
    status = ir.status.code if ir.HasField("status") and 200 <= ir.status.code <= 599 else 200
    h = Headers()
    _Mutable(h).apply(ir.headers)
    return Reply(status, h, bytes(ir.body))


class Immediate(Exception):
    """The processor answered the client itself."""

    def __init__(self, reply: Reply):
        self.reply = reply


class _Phase:
    """The request phase or the response phase of one stream: send the headers and the
    body as the modes say, apply the answers, return the body as it goes on."""

    def __init__(self, stream: Stream, modes: Modes, allow_override: bool, phase: str, mutable: _Mutable, limit: int):
        self.stream = stream
        self.modes = modes
        self.allow_override = allow_override
        self.phase = phase
        self.hkey, self.bkey = f"{phase}_headers", f"{phase}_body"
        self.mutable = mutable
        self.limit = limit

    def _body_mode(self, has_body: bool) -> int:
        if not has_body:
            return _NONE
        return self.modes.req_body if self.phase == "request" else self.modes.resp_body

    async def _send_body(self, data: bytes, mode: int) -> None:
        from . import ext_proc_proto as pb

        msg = pb.ProcessingRequest()
        hb = getattr(msg, self.bkey)
        hb.body = data[: self.limit] if mode == _PARTIAL else data
        hb.end_of_stream = mode != _PARTIAL or len(data) <= self.limit
        await self.stream.send(msg)

    async def run(self, pairs, has_body: bool, get_body) -> bytes | None:
        """``pairs()``: the headers to send; ``get_body()``: the body (awaited when it is
        to be sent). Returns the body to go on, or None when it was not read."""
        from . import ext_proc_proto as pb

        modes, hkey, bkey = self.modes, self.hkey, self.bkey
        headers_on = modes.req_headers if self.phase == "request" else modes.resp_headers
        mode = self._body_mode(has_body)
        waiting = False
        if headers_on:
            msg = pb.ProcessingRequest()
            hh = getattr(msg, hkey)
            _header_map(hh.headers, pairs())
            hh.end_of_stream = not has_body
            await self.stream.send(msg)
            waiting = True
        body: bytes | None = None
        sent = False
        if mode == _DUPLEX:  # the body follows the headers without waiting for their answer
            body = await get_body()
            await self._send_body(body, mode)
            sent = True
        streamed: list[bytes] = []
        done = mode == _NONE
        while waiting or not done:
            if not waiting and not sent:
                if body is None:
                    body = await get_body()
                await self._send_body(body, mode)
                sent = True
            m = await self.stream.recv()
            which = m.WhichOneof("response")
            if which == "immediate_response":
                raise Immediate(_immediate(m.immediate_response))
            if which == hkey and waiting:
                waiting = False
                common = getattr(m, hkey).response
                self.mutable.apply(common.header_mutation)
                if self.allow_override and m.HasField("mode_override"):
                    modes.override(m.mode_override)
                    if not sent:  # the body is not sent yet: the new mode decides
                        mode = self._body_mode(has_body)
                        done = mode == _NONE
                if common.status == 1:  # CONTINUE_AND_REPLACE: the answer is the body
                    if not sent:
                        if body is None:
                            body = await get_body()
                        body = _replaced(common, body)
                        done = True
            elif which == bkey and sent:
                common = getattr(m, bkey).response
                self.mutable.apply(common.header_mutation)
                bm = common.body_mutation
                kind = bm.WhichOneof("mutation") if common.HasField("body_mutation") else None
                if kind == "streamed_response":
                    streamed.append(bm.streamed_response.body)
                    if bm.streamed_response.end_of_stream:
                        body, done = b"".join(streamed), True
                elif streamed:
                    raise ExtProcError(f"a {kind or 'plain'} body answer inside a streamed body")
                else:
                    body, done = _replaced(common, body or b""), True
            else:
                raise ExtProcError(f"an unexpected {which or 'empty'} answer in the {self.phase} phase")
        return body


def _replaced(common, body: bytes) -> bytes:
    """The body after a CommonResponse's (non-streamed) body mutation."""
    if not common.HasField("body_mutation"):
        return body
    bm = common.body_mutation
    kind = bm.WhichOneof("mutation")
    if kind == "body":
        return bytes(bm.body)
    if kind == "clear_body":
        return b""
    return body


class ExtProcRun:
    """One request's processing: the request phase now, the response phase later."""

    __slots__ = ("owner", "stream", "modes")

    def __init__(self, owner: ExtProc, stream: Stream, modes: Modes):
        self.owner = owner
        self.stream = stream
        self.modes = modes

    async def request(self, ctx) -> Reply | None:
        req = ctx.req
        body = req.body
        h = req.headers
        has_body = body.size > 0 or h.has("transfer-encoding") or h.get("content-length", "0") != "0"
        phase = _Phase(self.stream, self.modes, self.owner.allow_override, "request", _Mutable(h, ctx), body.limit)
        read: list[bytes] = []

        async def get_body() -> bytes:
            read.append(await body.read_all())
            return read[0]

        try:
            out = await phase.run(lambda: _request_pairs(ctx), has_body, get_body)
        except Immediate as imm:
            self.stream.close()
            return imm.reply
        if out is not None and (not read or out is not read[0]):
            body.replace(out)
            h.remove("transfer-encoding")
            h.set("content-length", str(len(out)))
        return None

    async def response(self, ctx, status: int, headers: Headers, body: bytes) -> tuple[int, bytes]:
        """``ctx.body_filter``: the whole response through the processor."""
        stream = self.stream
        try:
            if self.owner.response_attrs:
                stream.attributes = self.owner.evaluate(ctx, self.owner.response_attrs, {"response": {"code": status}})
            phase = _Phase(stream, self.modes, self.owner.allow_override, "response", _Mutable(headers), len(body))

            async def whole() -> bytes:
                return body

            pairs = [(":status", str(status)), *((k, v) for k, v in headers)]
            out = await phase.run(lambda: pairs, bool(body), whole)
        except Immediate as imm:
            r = imm.reply
            for k in {k for k, _ in headers}:
                headers.remove(k)
            for k, v in r.headers:
                headers.append((k, v))
            return r.status, r.body
        except ExtProcError as exc:
            if not self.owner.fail_open:
                raise GatewayError(502, "ext_proc_error", f"extProc: {exc}") from None
            log.warning("extProc: processor failed on the response, passing it on: %s", exc)
            return status, body
        finally:
            stream.close()
        return status, body if out is None else out


class ExtProc(Policy):
    order = 72
    NAME = "extProc"

    def __init__(
        self,
        processor: Processor,
        modes: Modes,
        *,
        fail_open: bool = False,
        allow_override: bool = False,
        metadata: dict | None = None,  # ns -> [(key, Expression)]
        request_attrs: list | None = None,  # [(name, Expression)]
        response_attrs: list | None = None,
    ):
        self.processor = processor
        self.modes = modes
        self.fail_open = fail_open
        self.allow_override = allow_override
        self.metadata = metadata or {}
        self.request_attrs = request_attrs or []
        self.response_attrs = response_attrs or []

    @staticmethod
    def evaluate(ctx, exprs: list, extra: dict | None = None) -> dict:
        """``exprs`` evaluated for the request (``extra`` variables replace its own)."""
        out = {}
        for name, expr in exprs:
            data = {n: VARIABLES[n](ctx) for n in expr.refs if not extra or n not in extra}
            if extra:
                data.update(extra)
            res = expr.program.eval(activation(data))
            if not is_no_value(res):
                out[name] = _jsonable(res.value())
        return out

    def on_request(self, ctx):
        return self._run(ctx)

    async def _run(self, ctx) -> Reply | None:
        modes = self.modes.copy()
        try:
            metadata = {ns: self.evaluate(ctx, kv) for ns, kv in self.metadata.items()} if self.metadata else None
            attrs = self.evaluate(ctx, self.request_attrs) if self.request_attrs else None
            stream = Stream(self.processor.open(), (modes.req_body, modes.resp_body), metadata, attrs)
        except Exception as exc:
            return self._failed(ExtProcError(_why(exc)))
        run = ExtProcRun(self, stream, modes)
        try:
            reply = await run.request(ctx)
        except ExtProcError as exc:
            stream.close()
            return self._failed(exc)
        except BaseException:
            stream.close()
            raise
        if reply is not None:
            return reply
        if modes.response:
            ctx.body_filter = _response_filter(run, ctx.body_filter)
        else:
            stream.close()
        return None

    def _failed(self, exc: ExtProcError) -> Reply | None:
        if self.fail_open:
            log.warning("extProc: processor %s failed, request goes on unprocessed: %s", self.processor.target, exc)
            return None
        log.warning("extProc: processor %s failed: %s", self.processor.target, exc)
        return Reply.error(503, "ext_proc_error", f"extProc: external processor unavailable ({exc})")


def _response_filter(run: ExtProcRun, before):
    """``ctx.body_filter``: the processor's response phase, after any filter set before
    (an A2A card's rewriting: the processor sees what the client would)."""

    async def body_filter(ctx, status, headers, body):
        if before is not None:
            r = before(ctx, status, headers, body)
            status, body = r if isinstance(r, tuple) else await r
        return await run.response(ctx, status, headers, body)

    return body_filter


def _jsonable(v: Any) -> Any:
    """A CEL value as a Struct field takes it (JSON types)."""
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


# -- compile --------------------------------------------------------------------------------
def compile_processor(scope: CompileScope, ref, path: str) -> Processor | None:
    """The processor a ``{host | service | backend, policies}`` block names (a gRPC
    server; ``policies.backendTLS`` with a ``root`` for TLS, the only policy it takes)."""
    err = scope.errors.add
    if ref.host is not None:
        addr = ref.host
    elif ref.service is not None:
        addr = f"{ref.service.name.hostname}:{ref.service.port}"
    else:
        named = scope.named.get(ref.backend) if ref.backend is not None else None
        if named is None or named[1].host is None:
            err(f"{path}.backend", f"no top-level host backend named {ref.backend!r}")
            return None
        addr = named[1].host
    pol = getattr(ref, "policies", None)
    bt = None
    if pol is not None:
        for attr, field in type(pol).model_fields.items():
            if attr != "backend_tls" and getattr(pol, attr) is not None:
                err(f"{path}.policies.{field.alias or attr}", "not supported for extProc yet (only backendTLS)")
        bt = pol.backend_tls
    root = None
    if bt is not None:
        for attr, key in (("cert", "cert"), ("key", "key"), ("hostname", "hostname"), ("alpn", "alpn")):
            if getattr(bt, attr) is not None:
                err(f"{path}.policies.backendTLS.{key}", "not supported for extProc yet (only root)")
        for attr, key in (("insecure", "insecure"), ("insecure_host", "insecureHost")):
            if getattr(bt, attr):
                err(f"{path}.policies.backendTLS.{key}", "not supported for extProc (gRPC verifies the server)")
        if bt.root:
            try:
                with open(scope.path(bt.root), "rb") as f:
                    root = f.read()
            except OSError as exc:
                err(f"{path}.policies.backendTLS.root", f"cannot read: {exc.strerror}")
                return None
    target = addr.split("://", 1)[-1].rstrip("/")
    return Processor(target, tls=addr.startswith("https://") or bt is not None, root=root)


def _exprs(scope: CompileScope, src: dict, path: str) -> list:
    from ..cel import CelError, Expression

    out = []
    for name, text in src.items():
        try:
            out.append((str(name), Expression(str(text))))
        except CelError as exc:
            scope.errors.add(f"{path}.{name}", f"invalid CEL expression: {exc}")
    return out


def modes_of(opts) -> Modes:
    return Modes(
        opts.request_header_mode == "send",
        _MODES[opts.request_body_mode],
        opts.response_header_mode == "send",
        _MODES[opts.response_body_mode],
    )


def compile_ext_proc(scope: CompileScope, e, path: str) -> ExtProc | None:
    """The policy for an ``extProc`` block (errors go to ``scope.errors``)."""
    from ..config import models as m

    if not isinstance(e, m.ExtProc):
        scope.errors.add(f"{path}.conditional", "conditional extProc is not supported by this agentgw build yet")
        return None
    processor = compile_processor(scope, e, path)
    opts = e.processing_options or m.ProcessingOptions()
    metadata = {
        str(ns): _exprs(scope, kv, f"{path}.metadataContext.{ns}") for ns, kv in (e.metadata_context or {}).items()
    }
    req_attrs = _exprs(scope, e.request_attributes or {}, f"{path}.requestAttributes")
    resp_attrs = _exprs(scope, e.response_attributes or {}, f"{path}.responseAttributes")
    if processor is None:
        return None
    return ExtProc(
        processor,
        modes_of(opts),
        fail_open=e.failure_mode == "failOpen",
        allow_override=opts.allow_mode_override,
        metadata=metadata,
        request_attrs=req_attrs,
        response_attrs=resp_attrs,
    )
