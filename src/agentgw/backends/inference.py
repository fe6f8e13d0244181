"""``inferenceRouting``: an endpoint picker chooses where each request to a ``service``
backend goes (the Gateway API inference extension's EPP, standalone).

Per request the picker gets the request over Envoy's ext_proc protocol, as the
extension's EPP expects it: headers and body in full-duplex streamed mode, the body sent
without waiting for the answer to the headers (the picker reads the model from it). Its
answer names the endpoint in the ``x-gateway-destination-endpoint`` header mutation
(``ip:port``; of a comma-separated list, the first), and may change the request as any
external processor may. The request then goes to that endpoint:

* ``destinationMode: passthrough``: to the endpoint as named (the picker owns endpoint
  discovery);
* ``validated`` (the default): only if it is one of the service's own addresses (its
  ``vips`` at the target port, from top-level ``services``); otherwise 503.

The response goes back through the picker too (it reads usage from it), so it is
buffered before it reaches the client. A picker that is unreachable, fails or names no
endpoint fails the request with 503 (``endpoint_picker_error``); an immediate response
from it is sent to the client. A request retried after a failure goes to the same
endpoint: the picker is asked once per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.http import GatewayError, Reply
from ..policies.ext_proc import ExtProc, ExtProcError, ExtProcRun, Modes, Processor, Stream, compile_processor

if TYPE_CHECKING:
    from ..proxy.scope import CompileScope
    from .http import HttpBackend

DESTINATION = "x-gateway-destination-endpoint"
_DUPLEX = 4
_CHOSEN = "inference.backend"  # ctx.attrs: the backend this request was routed to


class PickerReply(GatewayError):
    """The picker answered the client itself (an ``immediate_response``)."""

    def __init__(self, reply: Reply):
        super().__init__(reply.status, "endpoint_picker", "answered by the endpoint picker")
        self._reply = reply

    def reply(self) -> Reply:
        return self._reply


class InferenceRouter:
    def __init__(
        self, processor: Processor, passthrough: bool, endpoints: frozenset[str] | None, connect_timeout: float
    ):
        self.ext = ExtProc(processor, Modes(True, _DUPLEX, True, _DUPLEX))
        self.passthrough = passthrough
        self.endpoints = endpoints  # validated mode: the service's own addresses
        self.connect_timeout = connect_timeout
        self._backends: dict[str, HttpBackend] = {}

    async def route(self, ctx, backend: HttpBackend) -> HttpBackend:
        chosen = ctx.attrs.get(_CHOSEN)
        if chosen is not None:
            return chosen
        ext = self.ext
        stream = Stream(ext.processor.open(), (_DUPLEX, _DUPLEX), None, None)
        run = ExtProcRun(ext, stream, ext.modes.copy())
        try:
            reply = await run.request(ctx)
        except ExtProcError as exc:
            stream.close()
            raise GatewayError(503, "endpoint_picker_error", f"endpoint picker: {exc}") from None
        except BaseException:
            stream.close()
            raise
        if reply is not None:
            raise PickerReply(reply)
        dest = (ctx.req.headers.get(DESTINATION) or "").split(",", 1)[0].strip()
        if not dest:
            stream.close()
            raise GatewayError(503, "endpoint_picker_error", "endpoint picker: no endpoint chosen")
        if not self.passthrough and (self.endpoints is None or dest not in self.endpoints):
            stream.close()
            raise GatewayError(
                503, "endpoint_picker_error", f"endpoint picker chose {dest}, which is not an endpoint of the service"
            )
        target = self._backend(dest, backend)
        before = ctx.body_filter

        async def body_filter(ctx, status, headers, body):
            if before is not None:
                r = before(ctx, status, headers, body)
                status, body = r if isinstance(r, tuple) else await r
            return await run.response(ctx, status, headers, body)

        ctx.body_filter = body_filter
        ctx.attrs[_CHOSEN] = target
        return target

    def _backend(self, dest: str, like: HttpBackend) -> HttpBackend:
        """The backend for endpoint ``dest`` (``ip:port``), kept for the next request."""
        from .http import HttpBackend, make_target

        b = self._backends.get(dest)
        if b is None:
            try:
                target, _ = make_target(dest, tls=like.target.ssl, sni=None, connect_timeout=self.connect_timeout)
            except (ValueError, IndexError):
                raise GatewayError(
                    503, "endpoint_picker_error", f"endpoint picker chose {dest!r}, not an ip:port"
                ) from None
            if len(self._backends) >= 1024:
                self._backends.clear()
            b = self._backends[dest] = HttpBackend(
                like.name, target, host_override=like.host_override, timeout=like.timeout
            )
        return b


def compile_inference_routing(
    scope: CompileScope, ir, path: str, endpoints: frozenset[str] | None
) -> InferenceRouter | None:
    """The router of an ``inferenceRouting`` block; ``endpoints``: the service's own
    addresses (None: the service is not in top-level ``services``)."""
    processor = compile_processor(scope, ir.endpoint_picker, f"{path}.endpointPicker")
    passthrough = ir.destination_mode == "passthrough"
    if not passthrough and endpoints is None:
        scope.errors.add(
            f"{path}.destinationMode",
            "validated needs the service's addresses: list it in top-level services, or use passthrough",
        )
        return None
    if processor is None:
        return None
    return InferenceRouter(processor, passthrough, endpoints, scope.connect_timeout)
