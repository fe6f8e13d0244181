"""What every provider module implements, and the authentication schemes they use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from ...engine.http import GatewayError
from .ir import TranslationError, Usage

if TYPE_CHECKING:
    import asyncio


class Upstream:
    """One request to send to a provider."""

    __slots__ = ("method", "path", "body", "headers", "stream_kind")

    def __init__(
        self, path: str, body: bytes, headers: list | None = None, method: str = "POST", stream_kind: str = "sse"
    ):
        self.method = method
        self.path = path
        self.body = body
        self.headers = headers or []
        self.stream_kind = stream_kind


# -- authentication -----------------------------------------------------------------------
class Auth:
    """Adds credentials to an upstream request (may await: token refresh, signing).

    One whose headers are at hand without waiting (``at_hand``) gives them from
    ``headers_now``, which the task-free request path calls; ``headers`` then needs no
    override. One that awaits overrides ``headers`` instead."""

    at_hand = False  # headers_now() gives the headers without waiting
    constant = False  # and they are the same for every request (a static key, or none)

    async def headers(self, provider, up: Upstream, base_headers: list, client_headers) -> list:
        return self.headers_now(provider, up, base_headers, client_headers)

    def headers_now(self, provider, up: Upstream, base_headers: list, client_headers) -> list:
        return []


class NoAuth(Auth):
    at_hand = constant = True


class StaticKey(Auth):
    """A key sent in the header the provider expects (``authorization: Bearer``, ``x-api-key``...)."""

    at_hand = constant = True

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = list(pairs)

    def headers_now(self, provider, up, base_headers, client_headers) -> list:
        return self.pairs


class Passthrough(Auth):
    """``backendAuth.passthrough``: the client's own key, moved to the provider's header."""

    at_hand = True

    def headers_now(self, provider, up, base_headers, client_headers) -> list:
        key = None
        auth = client_headers.get("authorization")
        if auth and auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
        if key is None:
            key = (
                client_headers.get("x-api-key") or client_headers.get("api-key") or client_headers.get("x-goog-api-key")
            )
        if not key:
            return []
        return provider.key_headers(key)


class AwsSigV4(Auth):
    def __init__(self, source, region: str, service: str = "bedrock"):
        self.source = source
        self.region = region
        self.service = service

    async def headers(self, provider, up, base_headers, client_headers) -> list:
        from ..aws import sign_headers

        snap = await self.source.get()
        t = provider.target
        scheme = "https" if t.ssl is not None else "http"
        url = f"{scheme}://{provider.host}{up.path}"
        signed = [kv for kv in base_headers if kv[0] in ("host", "content-type", "accept")]
        return sign_headers(
            snap, service=self.service, region=self.region, method=up.method, url=url, headers=signed, body=up.body
        )


class GcpToken(Auth):
    """An OAuth access token from google-auth credentials (ADC or a service-account file),
    refreshed in a worker thread ahead of expiry."""

    def __init__(self, credential_file: str | None = None):
        self.file = credential_file
        self._creds: Any = None  # google-auth credentials
        self._token: str | None = None
        self._expiry = 0.0
        self._inflight: asyncio.Future[tuple[str, float]] | None = None
        self._error: str | None = None

    def _refresh_blocking(self):
        import datetime as dt

        import google.auth
        import google.auth.transport.requests
        from google.oauth2 import service_account

        scopes = ["https://www.googleapis.com/auth/cloud-platform"]
        if self._creds is None:
            if self.file:
                self._creds = service_account.Credentials.from_service_account_file(self.file, scopes=scopes)
            else:
                self._creds, _ = google.auth.default(scopes=scopes)
        self._creds.refresh(google.auth.transport.requests.Request())
        exp = self._creds.expiry
        ts = exp.replace(tzinfo=dt.UTC).timestamp() if exp else __import__("time").time() + 3000
        return self._creds.token, ts

    async def headers(self, provider, up, base_headers, client_headers) -> list:
        import asyncio
        import logging
        import time

        now = time.time()
        if self._token is None or now > self._expiry - 300:
            if self._inflight is None or self._inflight.done():
                loop = asyncio.get_running_loop()
                self._inflight = loop.run_in_executor(None, self._refresh_blocking)
            if self._token is None or now > self._expiry - 5:
                try:
                    self._token, self._expiry = await asyncio.shield(self._inflight)
                except Exception as exc:
                    logging.getLogger("agentgw.gcp").error("GCP token refresh failed: %s", exc)
                    raise GatewayError(
                        503, "gcp_credentials_unavailable", f"GCP credentials unavailable: {exc}"
                    ) from None
            elif self._inflight.done() and not self._inflight.cancelled() and self._inflight.exception() is None:
                self._token, self._expiry = self._inflight.result()
        return [("authorization", f"Bearer {self._token}")]


# -- providers ----------------------------------------------------------------------------
class Provider:
    """A configured provider endpoint. Subclasses translate to and from the IR."""

    #: ``gen_ai.provider.name`` (OpenTelemetry GenAI semantic conventions)
    system = "openai"
    #: client-facing APIs this provider speaks natively (sent through unchanged)
    native: frozenset = frozenset()
    default_base = ""

    def __init__(
        self,
        name: str,
        target,
        host: str,
        *,
        model: str | None,
        auth: Auth,
        prefix: str = "",
        path_override: str | None = None,
        extra: dict | None = None,
    ):
        self.name = name
        self.target = target
        self.host = host
        self.model = model
        self.auth = auth
        self.prefix = prefix
        self.path_override = path_override
        self.extra = extra or {}

    # helpers
    def key_headers(self, key: str) -> list:
        return [("authorization", f"Bearer {key}")]

    def forward_headers(self, client_headers) -> list:
        """Client headers worth forwarding to this provider (never credentials)."""
        return []

    # chat
    def chat(self, ir: dict, stream: bool) -> Upstream:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse_chat(self, obj: dict, model: str) -> dict:  # pragma: no cover
        raise NotImplementedError

    def stream_decoder(self, model: str):  # pragma: no cover
        raise NotImplementedError

    # embeddings
    def embeddings(self, req: dict) -> Upstream:
        raise TranslationError(f"{self.system} does not offer embeddings through this gateway")

    def parse_embeddings(self, obj: dict, req: dict) -> dict:  # pragma: no cover
        raise NotImplementedError

    def native_path(self, api: str, stream: bool, model: str) -> str:  # pragma: no cover
        raise NotImplementedError

    def error_message(self, status: int, body: bytes) -> str:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body[:300].decode("utf-8", "replace") or f"provider answered {status}"
        if isinstance(obj, list) and obj:
            obj = obj[0]
        if isinstance(obj, dict):
            err = obj.get("error", obj)
            if isinstance(err, dict):
                msg = err.get("message") or err.get("Message")
                if msg:
                    return str(msg)
            elif isinstance(err, str):
                return err
            for k in ("message", "Message"):
                if obj.get(k):
                    return str(obj[k])
        return f"provider answered {status}"

    @staticmethod
    def usage_from(obj) -> Usage | None:
        return Usage.from_openai(obj.get("usage")) if isinstance(obj, dict) else None


def split_base_url(url: str, default_path: str) -> tuple[str, str]:
    """``https://host[:port]/path`` → (``https://host[:port]``, ``/path`` without trailing /)."""
    p = urlsplit(url)
    origin = f"{p.scheme}://{p.netloc}" if p.scheme in ("http", "https") else f"http://{p.netloc}"
    path = p.path.rstrip("/")
    return origin, (path if path else default_path)
