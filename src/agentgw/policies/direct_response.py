"""``directResponse``: answer with a fixed status and body, never calling a backend."""

from __future__ import annotations

from ..engine.http import Headers, Reply
from ..proxy.policy import Policy


class DirectResponse(Policy):
    order = 60

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict | None = None):
        self.status = status
        self.body = body
        self.headers = [(k.lower(), str(v)) for k, v in (headers or {}).items()]
        if not any(k == "content-type" for k, _ in self.headers) and body:
            self.headers.append(("content-type", "text/plain"))

    def on_request(self, ctx):
        return Reply(self.status, Headers(self.headers), self.body)
