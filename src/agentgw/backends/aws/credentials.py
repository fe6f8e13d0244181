"""AWS credentials for outgoing requests, never resolved on the event loop.

Explicit keys (``backendAuth.aws.accessKeyId``/``secretAccessKey``) are used as given.
Otherwise botocore's provider chain runs: environment, shared config/credentials
profiles, web identity (IRSA, with the regional STS endpoint), SSO, ECS/EKS container
credentials, EC2 instance metadata — and ``assumeRole`` on top when configured.

Nothing is resolved when a config is loaded: a Bedrock model or AgentCore backend nobody
calls needs no credentials, so a gateway without any starts quietly. The first request
that needs them resolves them, in a worker thread (it waits for that one resolution).
Requests then read a cached, frozen snapshot; when the snapshot gets within
``REFRESH_AHEAD`` of its expiry a background refresh starts and requests keep using the
still-valid snapshot meanwhile; only a request after expiry waits again. A failure is
raised as :class:`CredentialError` (a 503 to the client, naming the reason) and logged as
a warning once per distinct reason, not on every request that meets it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import threading
import time
from typing import Any

from ...engine.http import GatewayError

log = logging.getLogger("agentgw.aws")


class _NoTraceback(logging.Filter):
    """botocore logs a failed refresh with its traceback; the reason is logged here
    (``AWS credential refresh failed: …``), once, without one."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


logging.getLogger("botocore.credentials").addFilter(_NoTraceback())

REFRESH_AHEAD = 900.0  # seconds before expiry at which a background refresh starts (botocore's advisory window)
RETRY_AFTER_FAILURE = 5.0  # don't hammer a failing provider: at most one try per this many seconds


class CredentialError(GatewayError):
    def __init__(self, message: str):
        super().__init__(503, "aws_credentials_unavailable", message)


class Snapshot:
    __slots__ = ("access_key", "secret_key", "token", "expires_at", "ahead")

    def __init__(self, access_key: str, secret_key: str, token: str | None, expires_at: float | None):
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token
        self.expires_at = expires_at  # epoch seconds, None = does not expire
        # Background refresh starts this long before expiry: REFRESH_AHEAD, or, for
        # credentials that arrive with less than a minute of use before that window (a
        # 15-minute role session, test credentials), half their remaining lifetime, so
        # they are refreshed once per half-life rather than on every request.
        life = expires_at - time.time() if expires_at is not None else 0.0
        self.ahead = REFRESH_AHEAD if life - REFRESH_AHEAD >= 60.0 else max(life / 2, 0.0)


def _expiry_epoch(creds) -> float | None:
    exp = getattr(creds, "_expiry_time", None)
    if exp is None:
        return None
    if isinstance(exp, _dt.datetime):
        if exp.tzinfo is None:
            exp = exp.replace(tzinfo=_dt.UTC)
        return exp.timestamp()
    return None


class AwsCredentialSource:
    """One credential source (shared by every backend configured the same way)."""

    def __init__(
        self,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
        role_arn: str | None = None,
        profile: str | None = None,
    ):
        self.region = region
        self.role_arn = role_arn
        self.profile = profile
        self._static = None
        if access_key_id and secret_access_key and not role_arn:
            self._static = Snapshot(access_key_id, secret_access_key, session_token, None)
        self._explicit = (access_key_id, secret_access_key, session_token) if access_key_id else None
        self._snap: Snapshot | None = self._static
        self._creds: Any = None  # botocore (refreshable) credentials object
        self._lock = threading.Lock()
        self._inflight: asyncio.Future | None = None
        self._last_error: str | None = None
        self._last_failure = 0.0
        self._warned: str | None = None  # the failure last logged (logged again only when it changes)

    # -- blocking side (worker thread) -----------------------------------------------------
    def _resolve_blocking(self) -> Snapshot:
        with self._lock:
            if self._creds is None:
                import botocore.session

                session = botocore.session.Session(profile=self.profile)
                # IRSA / web identity: use the regional STS endpoint, not the global one.
                session.set_config_variable("sts_regional_endpoints", "regional")
                if self.region:
                    session.set_config_variable("region", self.region)
                if self._explicit is not None:
                    from botocore.credentials import Credentials

                    base = Credentials(*self._explicit)
                else:
                    base = session.get_credentials()
                if base is None:
                    raise RuntimeError(
                        "no AWS credentials found (tried environment, shared config/credentials files, "
                        "web identity, SSO, container and instance metadata)"
                    )
                if self.role_arn:
                    base = self._assume_role(session, base)
                self._creds = base
            frozen = self._creds.get_frozen_credentials()  # refreshes if the object says so
            return Snapshot(frozen.access_key, frozen.secret_key, frozen.token, _expiry_epoch(self._creds))

    def _assume_role(self, session, base):
        from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

        def client_creator(service, **kw):
            kw.setdefault("region_name", self.region)
            return session.create_client(service, **kw)

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=client_creator,
            source_credentials=base,
            role_arn=self.role_arn,
            extra_args={"RoleSessionName": "agentgw"},
        )
        return DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)

    # -- async side -------------------------------------------------------------------------
    def _needs_refresh(self, snap: Snapshot, ahead: float) -> bool:
        return snap.expires_at is not None and snap.expires_at - time.time() < ahead

    async def get(self) -> Snapshot:
        """Credentials valid now; may wait only when nothing valid is cached."""
        snap = self._snap
        if snap is not None:
            if not self._needs_refresh(snap, snap.ahead):
                return snap
            if not self._needs_refresh(snap, 5.0):
                self._start_refresh()  # still valid: refresh in the background
                return snap
        if self._last_error is not None and time.monotonic() - self._last_failure < RETRY_AFTER_FAILURE:
            raise CredentialError(f"AWS credentials unavailable: {self._last_error}")
        fut = self._start_refresh()
        try:
            await asyncio.shield(fut)
        except Exception as exc:
            raise CredentialError(f"AWS credentials unavailable: {self._last_error or exc}") from None
        snap = self._snap
        if snap is None or self._needs_refresh(snap, 0.0):
            raise CredentialError(f"AWS credentials unavailable: {self._last_error or 'expired'}")
        return snap

    def _start_refresh(self) -> asyncio.Future:
        if self._inflight is not None and not self._inflight.done():
            return self._inflight
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, self._resolve_blocking)
        self._inflight = fut

        def done(f: asyncio.Future) -> None:
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None:
                self._last_error = str(exc) or exc.__class__.__name__
                self._last_failure = time.monotonic()
                if self._last_error != self._warned:
                    self._warned = self._last_error
                    log.warning(
                        "AWS credentials unavailable%s: %s; requests signed with them get a 503 until they resolve",
                        f" (region {self.region})" if self.region else "",
                        self._last_error,
                    )
            else:
                self._snap = f.result()
                self._last_error = None
                self._warned = None

        fut.add_done_callback(done)
        return fut


_SHARED: dict[tuple, AwsCredentialSource] = {}


def shared_source(**kw) -> AwsCredentialSource:
    """One source per distinct configuration, kept across config reloads (so refreshed
    credentials and in-flight refreshes are not thrown away on every reload)."""
    key = tuple(sorted(kw.items()))
    src = _SHARED.get(key)
    if src is None:
        src = _SHARED[key] = AwsCredentialSource(**kw)
    return src
