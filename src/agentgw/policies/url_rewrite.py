"""``urlRewrite``: change the upstream path (whole, or the matched prefix) and authority."""

from __future__ import annotations

from ..proxy.policy import Policy
from ..routing.table import PREFIX


def replace_prefix(path: str, matched_prefix: str, new_prefix: str) -> str:
    """Gateway API prefix replacement: ``/api`` → ``/v2`` turns ``/api/x`` into ``/v2/x``."""
    rest = path[len(matched_prefix.rstrip("/")) :]
    if not new_prefix.endswith("/") or not rest.startswith("/"):
        out = new_prefix.rstrip("/") + rest if rest.startswith("/") or not rest else new_prefix + rest
    else:
        out = new_prefix + rest[1:]
    return out or "/"


class UrlRewrite(Policy):
    order = 71

    def __init__(self, path_full: str | None = None, path_prefix: str | None = None, authority: str | None = None):
        self.path_full = path_full
        self.path_prefix = path_prefix
        self.authority = authority

    def on_request(self, ctx):
        if self.path_full is not None:
            ctx.path = self.path_full
        elif self.path_prefix is not None:
            m = ctx.match
            prefix = m.value if m is not None and m.kind == PREFIX else "/"
            ctx.path = replace_prefix(ctx.path, prefix, self.path_prefix)
        if self.authority is not None:
            ctx.authority = self.authority
        return None
