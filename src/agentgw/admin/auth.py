"""Who may write through the admin API (``config.admin``), compiled with the config.

Reads (GET / HEAD) are open to whoever reaches the admin address, as ``/config_dump``
always was (it stays on loopback by default), unless a token is configured: then they
need it too. Writes -- any other method -- need
``Authorization: Bearer <config.admin.token>``; without a token they are refused, unless
``config.admin.allowUnauthenticatedLoopbackWrites`` is true and ``config.adminAddr`` is
a loopback address (or a unix socket), which is refused at load otherwise.
"""

from __future__ import annotations

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
    """The compiled ``config.admin``: a digest of the token, never the token itself."""

    __slots__ = ("digest", "loopback_writes")

    def __init__(self, token: str | None, loopback_writes: bool):
        self.digest = hashlib.sha256(token.encode()).digest() if token else None
        self.loopback_writes = loopback_writes

    def check(self, authorization: str | None) -> tuple[int, str] | None:
        """None when a write carrying ``authorization`` may go on, else (status, message)."""
        if self.digest is None:
            if self.loopback_writes:
                return None
            return (
                403,
                "admin API writes are disabled: set config.admin.token (sent as "
                "'Authorization: Bearer <token>'), or config.admin.allowUnauthenticatedLoopbackWrites: "
                "true with a loopback config.adminAddr",
            )
        scheme, _, cred = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not cred.strip():
            return 401, "the admin API needs 'Authorization: Bearer <config.admin.token>'"
        if not hmac.compare_digest(hashlib.sha256(cred.strip().encode()).digest(), self.digest):
            return 401, "invalid admin token"
        return None


#: no ``config.admin``: every write refused
DEFAULT = AdminAuth(None, False)


def compile_admin_auth(cfg, errors) -> AdminAuth:
    """``config.admin`` of ``cfg``; problems go to ``errors.add(path, message)``."""
    a = cfg.config.admin
    if a is None:
        return DEFAULT
    if a.allow_unauthenticated_loopback_writes and a.token:
        errors.add(
            "config.admin.allowUnauthenticatedLoopbackWrites",
            "cannot be combined with config.admin.token (writes need the token; set one or the other)",
        )
    elif a.allow_unauthenticated_loopback_writes and not is_loopback_addr(cfg.config.admin_addr):
        errors.add(
            "config.admin.allowUnauthenticatedLoopbackWrites",
            f"only supported with a loopback config.adminAddr (not {cfg.config.admin_addr}); "
            "writes from other hosts need config.admin.token",
        )
    return AdminAuth(a.token, a.allow_unauthenticated_loopback_writes)
