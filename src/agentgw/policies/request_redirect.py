"""``requestRedirect``: answer with a redirect built from the request and the config."""

from __future__ import annotations

from ..engine.http import Headers, Reply
from ..proxy.policy import Policy
from ..routing.table import PREFIX
from .url_rewrite import replace_prefix


class RequestRedirect(Policy):
    order = 61

    def __init__(
        self,
        *,
        scheme: str | None = None,
        host: str | None = None,
        port: int | None = None,
        authority: str | None = None,
        path_full: str | None = None,
        path_prefix: str | None = None,
        status: int = 302,
    ):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.authority = authority
        self.path_full = path_full
        self.path_prefix = path_prefix
        self.status = status

    def on_request(self, ctx):
        req = ctx.req
        scheme = self.scheme or req.scheme
        if self.authority:
            authority = self.authority
        else:
            orig = req.host
            host, _, port = orig.rpartition(":") if orig.count(":") == 1 else (orig, "", "")
            if self.host:
                host = self.host
            if self.port is not None:
                port = str(self.port)
            elif self.scheme and self.scheme != req.scheme:
                port = ""  # switching scheme: drop the old default port
            if port and not ((scheme == "http" and port == "80") or (scheme == "https" and port == "443")):
                authority = f"{host}:{port}"
            else:
                authority = host
        path = req.path
        if self.path_full is not None:
            path = self.path_full
        elif self.path_prefix is not None:
            m = ctx.match
            path = replace_prefix(path, m.value if m is not None and m.kind == PREFIX else "/", self.path_prefix)
        location = f"{scheme}://{authority}{path}"
        if req.query:
            location += "?" + req.query
        return Reply(self.status, Headers([("location", location)]))
