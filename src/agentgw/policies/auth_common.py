"""Shared pieces of the identity policies: where a credential is read from, the 401/403
replies, and a small HTTP client for side calls (JWKS, TokenReview, ext_authz) on top of
the gateway's own upstream connection pool.

Replies never carry the credential or why a signature check failed: the JSON body names
the policy and the check (``missing credential``, ``invalid token``...), nothing more.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from urllib.parse import unquote, urlsplit

from ..engine.client import StaleConnection, UpstreamTarget
from ..engine.http import GatewayError, Headers, Reply, encode_headers

__all__ = [
    "CredentialLocation",
    "HttpSideClient",
    "SideCallError",
    "forbidden",
    "sha256",
    "unauthorized",
]


class CredentialLocation:
    """Where a credential is read from, and how to remove it before forwarding.

    ``kind`` is ``header`` (``name`` + optional ``prefix``, compared case-insensitively),
    ``query`` or ``cookie``. Several copies of the header are refused (ambiguous).
    """

    __slots__ = ("kind", "name", "prefix")

    def __init__(self, kind: str, name: str, prefix: str | None = None):
        self.kind = kind
        self.name = name.lower() if kind == "header" else name
        self.prefix = prefix

    @classmethod
    def from_model(cls, loc, default_header: str = "authorization", default_prefix: str | None = "Bearer "):
        if loc is None:
            return cls("header", default_header, default_prefix)
        if loc.header is not None:
            prefix = loc.header.prefix
            return cls("header", loc.header.name, prefix)
        if loc.query_parameter is not None:
            return cls("query", loc.query_parameter.name)
        if loc.cookie is not None:
            return cls("cookie", loc.cookie.name)
        raise ValueError("expression locations are not supported by this agentgw build yet")

    def read(self, ctx) -> str | None:
        """The credential, ``None`` if absent; ``""`` if present but malformed/ambiguous."""
        if self.kind == "header":
            values = [v for k, v in ctx.req.headers if k == self.name]
            if not values:
                return None
            if len(values) > 1:
                return ""
            v = values[0].strip()
            p = self.prefix
            if p:
                if len(v) < len(p) or v[: len(p)].lower() != p.lower():
                    # a different scheme in the same header: treat as absent only for
                    # Authorization (another scheme may be meant for another policy)
                    return None if self.name == "authorization" and " " in v else ""
                v = v[len(p) :].strip()
            return v
        if self.kind == "query":
            found = None
            dup = False
            for part in (ctx.query or "").split("&"):
                k, _, v = part.partition("=")
                if unquote(k) == self.name:
                    if found is not None:
                        dup = True
                    found = unquote(v.replace("+", " "))
            if found is not None:
                self._redact_target(ctx.req)
            return "" if dup else found
        # cookie
        found = None
        for k, v in ctx.req.headers:
            if k != "cookie":
                continue
            for part in v.split(";"):
                ck, _, cv = part.strip().partition("=")
                if ck == self.name:
                    if found is not None:
                        return ""
                    found = cv.strip().strip('"')
        return found

    def _redact_target(self, req) -> None:
        """Keep the credential out of the access log, which records the request target."""
        path, sep, q = req.target.partition("?")
        if sep:
            parts = [
                (p.partition("=")[0] + "=<redacted>") if unquote(p.partition("=")[0]) == self.name else p
                for p in q.split("&")
            ]
            req.target = path + "?" + "&".join(parts)

    def strip(self, ctx) -> None:
        """Remove the credential from the request forwarded upstream."""
        if self.kind == "header":
            ctx.req.headers.remove(self.name)
        elif self.kind == "query":
            parts = [p for p in (ctx.query or "").split("&") if unquote(p.partition("=")[0]) != self.name]
            ctx.query = "&".join(p for p in parts if p)
        else:
            h = ctx.req.headers
            out = []
            for k, v in h:
                if k == "cookie":
                    kept = [p for p in v.split(";") if p.strip().partition("=")[0] != self.name]
                    v = ";".join(kept).strip()
                    if not v:
                        continue
                out.append((k, v))
            h[:] = out


def unauthorized(policy: str, message: str, challenge: str) -> Reply:
    return Reply.error(401, "unauthenticated", f"{policy}: {message}", Headers([("www-authenticate", challenge)]))


def forbidden(policy: str, message: str) -> Reply:
    return Reply.error(403, "forbidden", f"{policy}: {message}")


def sha256(data: str | bytes) -> bytes:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).digest()


# -- side calls ---------------------------------------------------------------------------
class SideCallError(Exception):
    """A side call (JWKS, TokenReview, authorizer) failed: connect, timeout, bad answer."""


class HttpSideClient:
    """One HTTP(S) base URL reached through the gateway's connection pool."""

    def __init__(self, url: str, *, ca_file: str | None = None, timeout: float = 5.0, insecure: bool = False):
        if url.startswith("unix:"):  # a local daemon's socket: plain HTTP, Host: localhost
            self.target = UpstreamTarget("localhost", 0, connect_timeout=timeout, unix=url[5:])
            self.base_path, self.path, self.timeout = "", "/", timeout
            return
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid URL {url!r}")
        tls = None
        if parts.scheme == "https":
            tls = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
            if insecure:
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
        port = parts.port or (443 if tls else 80)
        host = parts.hostname
        self.target = UpstreamTarget(
            host,
            port,
            ssl=tls,
            server_hostname=host if tls else None,
            connect_timeout=timeout,
            tls_key=f"side:{ca_file}:{insecure}",
        )
        self.base_path = parts.path.rstrip("/")
        self.path = parts.path or "/"
        if parts.query:
            self.path += "?" + parts.query
        self.timeout = timeout

    async def request(
        self,
        pool,
        method: str,
        path: str | None = None,
        headers=(),
        body: bytes = b"",
        limit: int = 1 << 20,
        authority: str | None = None,
    ) -> tuple[int, Headers, bytes]:
        target = self.target
        path = path if path is not None else self.path
        hs = [("host", authority or target.authority)]
        hs += [(k, v) for k, v in headers if k.lower() not in ("host", "content-length")]
        if body or method in ("POST", "PUT", "PATCH"):
            hs.append(("content-length", str(len(body))))
        head = f"{method} {path} HTTP/1.1\r\n".encode("latin-1") + encode_headers(hs) + b"\r\n"
        try:
            return await asyncio.wait_for(self._send(pool, head, body, limit, method == "HEAD"), self.timeout)
        except TimeoutError:
            raise SideCallError(f"no answer from {target.authority} within {self.timeout:g}s") from None
        except GatewayError as exc:
            raise SideCallError(exc.message) from None
        except OSError as exc:
            raise SideCallError(str(exc)) from None

    async def _send(self, pool, head: bytes, body: bytes, limit: int, head_only: bool):
        for attempt in (0, 1):
            conn = await pool.acquire(self.target)
            try:
                conn.send_head(head, body or None, head_only=head_only)
                await conn.wait_head(None)
                data = b"" if head_only else await conn.read_body(limit)
            except StaleConnection:
                conn.close()
                if attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            status, headers = conn.status, conn.headers
            conn.release()
            return status, headers, data
        raise SideCallError("unreachable")  # pragma: no cover
