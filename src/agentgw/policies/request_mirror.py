"""``requestMirror``: send a copy of a share of a route's requests to another backend.

The copy is the request as the backend would get it (after header edits and URL
rewrites), sent in the background on the upstream pool; its response is read and thrown
away, and nothing about it (a failure, a slow answer) reaches the client or delays the
original. A body that is wholly in by the time the route's policies have run (the
usual case: small bodies are read before the request starts) is mirrored with it;
a body still streaming is not: the copy carries none. At most ``MAX_IN_FLIGHT`` copies
are outstanding per route; past that, copies are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from ..backends.http import HttpBackend, compile_http_backend, upstream_head, whole_request
from ..proxy.policy import Policy
from ..unsupported import refuse_except

if TYPE_CHECKING:
    from ..config import models as m
    from ..proxy.scope import CompileScope

log = logging.getLogger("agentgw.mirror")

MAX_IN_FLIGHT = 256
#: how long a mirror backend may take to answer before its copy is abandoned (s)
TIMEOUT = 30.0


class RequestMirror(Policy):
    order = 75  # after the request edits: the copy is what the backend gets
    edits_response_headers = False

    def __init__(self, backend: HttpBackend, percentage: float):
        self.backend = backend
        self.percentage = percentage
        self.tasks: set[asyncio.Task] = set()

    def on_request(self, ctx):
        if self.percentage < 1.0 and random.random() >= self.percentage:
            return None
        if len(self.tasks) >= MAX_IN_FLIGHT:
            return None
        req = ctx.req
        body = req.body
        if body.complete and body.error is None:
            head, data = whole_request(ctx, self.backend)
        else:
            head, data = upstream_head(ctx, self.backend, None, False), b""
        pool = ctx.bind.services.pool
        task = asyncio.ensure_future(self._send(pool, head, data, req.method == "HEAD"))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return None

    async def _send(self, pool, head: bytes, data: bytes, head_only: bool) -> None:
        target = self.backend.target
        conn = None
        try:
            conn = pool.take_idle(target) or await pool.connect(target)
            conn.send_head(head, data, head_only=head_only)
            await conn.wait_head(TIMEOUT)
            await conn.read_body(deadline=pool.loop.time() + TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a mirror never fails the request it copies
            log.debug("request mirror to %s failed: %s", self.backend.name, exc)
            if conn is not None:
                conn.close()
            return
        conn.release()


def compile_request_mirror(scope: CompileScope, rm: m.RequestMirror, path: str) -> RequestMirror | None:
    """The mirror of ``rm`` (``path``: its place in the file): a host, a service, or a
    named host backend (with its ``backendTLS``)."""
    ref = rm.backend
    bpath = f"{path}.backend"
    tls = None
    tls_path = None
    if ref.host is not None:
        addr = name = ref.host
    elif ref.service is not None:
        s = ref.service
        addr, name = f"{s.name.hostname}:{s.port}", f"{s.name.namespace}/{s.name.hostname}:{s.port}"
    else:
        named = scope.named.get(ref.backend or "")
        nb = named[1] if named is not None else None
        if nb is None or nb.host is None:
            scope.errors.add(f"{bpath}.backend", f"no top-level host backend named {ref.backend!r}")
            return None
        refuse_except(
            scope.errors.add,
            nb.policies,
            f"backends[{named[0]}].policies",  # type: ignore[index]
            {"backend_tls"},
            "not supported for a requestMirror backend yet (only backendTLS)",
        )
        if nb.policies is not None and nb.policies.backend_tls is not None:
            tls, tls_path = nb.policies.backend_tls, f"backends[{named[0]}].policies.backendTLS"  # type: ignore[index]
        addr, name = nb.host, nb.name
    backend = compile_http_backend(scope, f"mirror/{name}", addr, tls, bpath, None, tls_path)
    return RequestMirror(backend, rm.percentage)
