"""Who may write through the admin API (``config.admin``), compiled with the config.

Reads (GET / HEAD) are open to whoever reaches the admin address, as ``/config_dump``
always was (it stays on loopback by default), unless a credential is configured: then
they need it too. Writes -- any other method -- need
``Authorization: Bearer <config.admin.token>`` or the Basic credentials of
``config.admin.basicAuth``; without either they are refused, unless
``config.admin.allowUnauthenticatedLoopbackWrites`` is true and ``config.adminAddr`` is
a loopback address (or a unix socket), which is refused at load otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress

__all__ = ["AdminAuth", "compile_admin_auth", "is_loopback_addr"]


def is_loopback_addr(addr: str) -> bool:
    """Whether an admin address (``ip:port``, ``localhost:port``, ``unix:/path``) can
    only be reached from this host. ``:port`` (every address) cannot."""
    if addr.startswith("unix:"):
        return True
    host = addr.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminAuth:
    """The compiled ``config.admin``: digests of the token and of the Basic credentials,
    never the secrets themselves."""

    __slots__ = ("digest", "basic", "loopback_writes")

    def __init__(self, token: str | None, loopback_writes: bool, basic: tuple[str, str] | None = None):
        self.digest = _digest(token) if token else None
        self.basic = _digest(f"{basic[0]}:{basic[1]}") if basic else None
        self.loopback_writes = loopback_writes

    @property
    def configured(self) -> bool:
        """Whether a credential is configured (then reads need it too)."""
        return self.digest is not None or self.basic is not None

    @property
    def mode(self) -> str:
        return "+".join(n for n, d in (("token", self.digest), ("basic", self.basic)) if d is not None) or "none"

    def check(self, authorization: str | None, remote: bool = False) -> tuple[int, str] | None:
        """None when a write carrying ``authorization`` may go on, else (status, message).
        ``remote``: it came through a traffic listener (``ui.gateways``), where
        ``allowUnauthenticatedLoopbackWrites`` does not apply."""
        if not self.configured:
            if self.loopback_writes and not remote:
                return None
            return (
                403,
                "admin API writes are disabled: set config.admin.token (sent as "
                "'Authorization: Bearer <token>') or config.admin.basicAuth, or "
                "config.admin.allowUnauthenticatedLoopbackWrites: true with a loopback config.adminAddr",
            )
        scheme, _, cred = (authorization or "").strip().partition(" ")
        scheme, cred = scheme.lower(), cred.strip()
        wanted = " or ".join(
            w
            for w, d in (
                ("'Authorization: Bearer <config.admin.token>'", self.digest),
                ("Basic credentials", self.basic),
            )
            if d is not None
        )
        if not cred or scheme not in ("bearer", "basic"):
            return 401, f"the admin API needs {wanted}"
        if scheme == "bearer":
            if self.digest is None or not hmac.compare_digest(_digest(cred), self.digest):
                return 401, "invalid admin token"
            return None
        try:
            pair = base64.b64decode(cred, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return 401, "malformed Basic credentials"
        if self.basic is None or not hmac.compare_digest(_digest(pair), self.basic):
            return 401, "invalid admin user name or password"
        return None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


#: no ``config.admin``: every write refused
DEFAULT = AdminAuth(None, False)


def compile_admin_auth(cfg, errors) -> AdminAuth:
    """``config.admin`` of ``cfg``; problems go to ``errors.add(path, message)``."""
    a = cfg.config.admin
    if a is None:
        return DEFAULT
    if a.allow_unauthenticated_loopback_writes and (a.token or a.basic_auth):
        errors.add(
            "config.admin.allowUnauthenticatedLoopbackWrites",
            "cannot be combined with config.admin.token or basicAuth (writes need the credential; "
            "set one or the other)",
        )
    elif a.allow_unauthenticated_loopback_writes and not is_loopback_addr(cfg.config.admin_addr):
        errors.add(
            "config.admin.allowUnauthenticatedLoopbackWrites",
            f"only supported with a loopback config.adminAddr (not {cfg.config.admin_addr}); "
            "writes from other hosts need config.admin.token",
        )
    basic = (a.basic_auth.username, a.basic_auth.password) if a.basic_auth else None
    return AdminAuth(a.token, a.allow_unauthenticated_loopback_writes, basic)
