"""``requestHeaderModifier`` / ``responseHeaderModifier``: add, set and remove headers."""

from __future__ import annotations

from ..engine.http import Headers
from ..proxy.policy import Policy


class HeaderEdits:
    __slots__ = ("add", "set", "remove")

    def __init__(self, add: dict | None, set_: dict | None, remove: list | None):
        self.add = [(k.lower(), str(v)) for k, v in (add or {}).items()]
        self.set = [(k.lower(), str(v)) for k, v in (set_ or {}).items()]
        self.remove = frozenset(k.lower() for k in (remove or ()))

    def apply(self, headers: Headers) -> None:
        if self.remove:
            headers[:] = [kv for kv in headers if kv[0] not in self.remove]
        for k, v in self.set:
            headers.set(k, v)
        if self.add:
            headers.extend(self.add)


class RequestHeaderModifier(Policy):
    order = 70

    def __init__(self, add=None, set=None, remove=None):
        self.edits = HeaderEdits(add, set, remove)

    def on_request(self, ctx):
        self.edits.apply(ctx.req.headers)
        return None


class ResponseHeaderModifier(Policy):
    order = 80

    def __init__(self, add=None, set=None, remove=None):
        self.edits = HeaderEdits(add, set, remove)

    def on_response(self, ctx, status, headers):
        self.edits.apply(headers)
