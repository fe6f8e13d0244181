"""A real gRPC server (grpcio) for the gateway's gRPC tests, run as its own process.

Run it with::

    python -m tests.support.grpc_servers [--tls-cert CERT --tls-key KEY]

It prints ``READY <plain port> [<tls port>]`` once it listens on 127.0.0.1 (h2c, and
TLS with ALPN h2 when a certificate is given). No protoc: the service ``test.Echo`` is a
generic handler on raw bytes, next to grpcio's standard health service
(``grpc.health.v1.Health``, with ``test.Echo`` and ``""`` SERVING).

``test.Echo`` methods (request and response are raw bytes):

* ``Unary``         the request back. Initial metadata ``x-initial: yes``; trailing
                    metadata ``x-trailer: t-value``, ``x-trailer-bin: 00 01 fe ff``,
                    ``x-echo`` (the request's ``x-echo`` value), ``x-echo-bin`` (the
                    request's ``x-data-bin`` value, binary), ``x-peer`` (the client's
                    address as the server saw it: one per connection). Request metadata
                    ``x-sleep: S`` makes it sleep S seconds first, ``x-sleep-after-head:
                    S`` after sending the initial metadata.
* ``Fail``          aborts: the request is ``CODE_NAME\\nmessage`` (UTF-8), the status
                    is ``grpc.StatusCode[CODE_NAME]`` with that message.
* ``ServerStream``  the request is a count N: ``item-0`` ... ``item-(N-1)``.
* ``ClientStream``  the requests joined by ``,``.
* ``Bidi``          each request upper-cased, as it comes.
* ``Slow``          sleeps the request's seconds (while the call is active), ``done``;
                    a call cancelled meanwhile is counted under its ``x-tag`` metadata.
* ``Cancelled``     how many ``Slow`` calls with the ``x-tag`` of the request were
                    cancelled (the server saw the call end before it answered).
* ``Big``           ``big_body(N)`` for a request N (bytes).
* ``Digest``        ``<len> <sha256 hex>`` of the request.
* ``Deadline``      ``context.time_remaining()`` as text, ``none`` without a deadline.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.support.harness import ReadyProcess
from tests.support.upstream import big_body

SERVICE = "test.Echo"
TRAILER_BIN = b"\x00\x01\xfe\xff"


def _md(context) -> dict:
    return {k: v for k, v in context.invocation_metadata()}


def unary(request: bytes, context) -> bytes:
    md = _md(context)
    if "x-sleep" in md:
        time.sleep(float(md["x-sleep"]))
    context.send_initial_metadata((("x-initial", "yes"),))
    if "x-sleep-after-head" in md:
        time.sleep(float(md["x-sleep-after-head"]))
    trailing = [
        ("x-trailer", "t-value"),
        ("x-trailer-bin", TRAILER_BIN),
        ("x-echo", md.get("x-echo", "")),
        ("x-peer", context.peer()),
    ]
    if "x-data-bin" in md:
        trailing.append(("x-echo-bin", md["x-data-bin"]))
    context.set_trailing_metadata(tuple(trailing))
    return request


def fail(request: bytes, context) -> bytes:
    code, _, message = request.partition(b"\n")
    context.abort(grpc.StatusCode[code.decode()], message.decode("utf-8"))


def server_stream(request: bytes, context):
    for i in range(int(request)):
        yield b"item-%d" % i


def client_stream(request_iterator, context) -> bytes:
    return b",".join(request_iterator)


def bidi(request_iterator, context):
    for r in request_iterator:
        yield r.upper()


_cancelled: dict[str, int] = {}
_cancelled_lock = threading.Lock()


def slow(request: bytes, context) -> bytes:
    end = time.monotonic() + float(request)
    while time.monotonic() < end:
        if not context.is_active():
            tag = _md(context).get("x-tag", "")
            with _cancelled_lock:
                _cancelled[tag] = _cancelled.get(tag, 0) + 1
            return b""
        time.sleep(0.02)
    return b"done"


def cancelled(request: bytes, context) -> bytes:
    with _cancelled_lock:
        return b"%d" % _cancelled.get(request.decode(), 0)


def big(request: bytes, context) -> bytes:
    return big_body(int(request))


def digest(request: bytes, context) -> bytes:
    return b"%d %s" % (len(request), hashlib.sha256(request).hexdigest().encode())


def deadline(request: bytes, context) -> bytes:
    left = context.time_remaining()
    # (grpcio reports a call without a deadline as one about 292 years away)
    return b"none" if left is None or left > 1e8 else repr(left).encode()


HANDLERS = {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
    "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
    "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
    "Cancelled": grpc.unary_unary_rpc_method_handler(cancelled),
    "Big": grpc.unary_unary_rpc_method_handler(big),
    "Digest": grpc.unary_unary_rpc_method_handler(digest),
    "Deadline": grpc.unary_unary_rpc_method_handler(deadline),
}


def build_server(tls_cert: str | None, tls_key: str | None) -> tuple[grpc.Server, list[int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=128), maximum_concurrent_rpcs=None)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, HANDLERS),))
    hs = health.HealthServicer()
    hs.set("", health_pb2.HealthCheckResponse.SERVING)
    hs.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    ports = [server.add_insecure_port("127.0.0.1:0")]
    if tls_cert:
        with open(tls_cert, "rb") as f:
            chain = f.read()
        with open(tls_key, "rb") as f:
            key = f.read()
        ports.append(server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, chain)])))
    return server, ports


class GrpcServer:
    """The server above in its own process (stopped by :meth:`stop`)."""

    def __init__(self, workdir, tls=None, label: str = "grpc"):
        cmd = [sys.executable, "-m", "tests.support.grpc_servers"]
        if tls is not None:
            cmd += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        self._proc = ReadyProcess(workdir, label, cmd, r"READY (\d+)(?: (\d+))?\n")
        self.port = int(self._proc.ready_match.group(1))
        tls_port = self._proc.ready_match.group(2)
        self.tls_port = int(tls_port) if tls_port else None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls_host(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def alive(self) -> bool:
        return self._proc.proc.poll() is None

    def stop(self) -> None:
        self._proc.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args(argv)
    server, ports = build_server(args.tls_cert, args.tls_key)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY " + " ".join(map(str, ports)), flush=True)
    while not stop.wait(0.2):
        pass
    server.stop(0).wait(5)
    sys.exit(0)


if __name__ == "__main__":
    main()
