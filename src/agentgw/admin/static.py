"""The web UI's assets (``admin/ui/``, built from ``ui/`` by ``make ui``), served at
``/ui/`` by the admin listener.

The files are read once and kept in memory; each answer carries a strict Content
Security Policy (everything from this origin, nothing inline, no framing), so the page
can load nothing from elsewhere and no other site can frame it.
"""

from __future__ import annotations

import hashlib
import os

from ..engine.http import Headers

__all__ = ["UiAssets"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_DIR = os.path.join(os.path.dirname(__file__), "ui")


class UiAssets:
    """``/ui`` → ``/ui/``; ``/ui/`` → ``index.html``; ``/ui/<name>`` → that asset."""

    def __init__(self, directory: str = _DIR):
        self.directory = directory
        self._files: dict[str, tuple[bytes, str, str]] | None = None

    def _load(self) -> dict[str, tuple[bytes, str, str]]:
        if self._files is None:
            files = {}
            try:
                names = os.listdir(self.directory)
            except OSError:
                names = []
            for name in names:
                ctype = _TYPES.get(os.path.splitext(name)[1])
                if ctype is None or name.startswith("."):
                    continue
                with open(os.path.join(self.directory, name), "rb") as f:
                    data = f.read()
                files[name] = (data, ctype, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
            self._files = files
        return self._files

    def serve(self, req, ex) -> None:
        path = req.path
        if path == "/ui":
            ex.send(308, Headers([("location", "/ui/"), ("content-length", "0")]), b"")
            return
        name = path[len("/ui/") :] or "index.html"
        files = self._load()
        hit = files.get(name)
        if hit is None:
            if not files:
                ex.send_error(404, "not_found", "the web UI's assets are not installed (build them with: make ui)")
            else:
                ex.send_error(404, "not_found", "no such UI asset")
            return
        data, ctype, etag = hit
        headers = Headers(
            [
                ("content-type", ctype),
                ("etag", etag),
                ("cache-control", "no-cache"),
                ("content-security-policy", CSP),
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "no-referrer"),
                ("cross-origin-opener-policy", "same-origin"),
            ]
        )
        if req.headers.get("if-none-match") == etag:
            ex.send(304, headers, b"")
            return
        ex.send(200, headers, data)
