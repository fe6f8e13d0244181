"""The policy interface.

A policy is compiled once per config load from its config model. On each request the
route calls ``on_request(ctx)``; it returns ``None`` to continue, a :class:`Reply` to
answer the client directly (denials, redirects, preflights), or an awaitable of either
when it must wait on I/O (a JWKS fetch, an external authorizer); a :class:`Deferred`
when that wait is a single future, which the fast path resumes without a task.
``on_response`` may edit the response head on its way to the client. A policy never reaches into a
backend: what a backend needs from it, it leaves on the ``Ctx``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..engine.http import Headers, Reply


class Deferred:
    """A request-phase answer that waits on one future (a Redis round trip, say).

    ``decide(fut)`` turns the settled future into the step's result (a ``Reply`` or
    None), reading a failure from the future itself. The fast path resumes the chain
    from the future's done-callback, so a request whose only wait is such a check needs
    no task (``gateway.handle_fast``); everything else simply awaits it.
    """

    __slots__ = ("fut", "decide")

    def __init__(self, fut: asyncio.Future, decide: Callable[[asyncio.Future], Reply | None]):
        self.fut = fut
        self.decide = decide

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self) -> Reply | None:
        try:
            await self.fut
        except asyncio.CancelledError:
            if not self.fut.cancelled():
                raise  # the awaiting task was cancelled, not the check
        except Exception:
            pass
        return self.decide(self.fut)


class Policy:
    #: Where in the chain the policy runs; lower runs first. See ``ORDER``.
    order: int = 50
    #: False when ``on_response`` only reads the response head (status, a header or
    #: two): relays then keep upstream headers as raw bytes and give such hooks a
    #: read-only view (``engine.http.RawHeaderView``) instead of decoded ``Headers``.
    edits_response_headers: bool = True

    def on_request(self, ctx) -> Reply | Awaitable[Reply | None] | None:  # pragma: no cover
        return None

    def on_response(self, ctx, status: int, headers: Headers) -> None:  # pragma: no cover
        return None


# Request-phase order: preflight answers before authentication (browsers send no
# credentials on a preflight), authentication before authorization, rate limits after
# identity is known, terminal responses after all checks, then request mutations.
ORDER = {
    "cors": 10,
    "oidc": 15,
    "jwtAuth": 20,
    "apiKey": 21,
    "basicAuth": 22,
    "extAuthz": 30,
    "authorization": 40,
    "localRateLimit": 50,
    "globalRateLimit": 51,
    "remoteRateLimit": 52,
    "directResponse": 60,
    "requestRedirect": 61,
    "delay": 65,
    "requestHeaderModifier": 70,
    "urlRewrite": 71,
    "extProc": 72,
    "requestMirror": 75,
    "responseHeaderModifier": 80,
    "backendAuth": 90,
}


def overrides(policy: Policy, name: str) -> bool:
    return getattr(type(policy), name) is not getattr(Policy, name)
