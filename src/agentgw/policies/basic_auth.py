"""``basicAuth``: HTTP Basic credentials checked against an htpasswd file.

Supported hash formats (what Apache's ``htpasswd`` writes): bcrypt (``$2y$``/``$2a$``/
``$2b$``, ``htpasswd -B``), Apache MD5 (``$apr1$``, the default) and MD5-crypt (``$1$``),
and ``{SHA}`` (``htpasswd -s``). Plain-text, DES-crypt and SHA-crypt lines are refused at
load (line number only; the file's content never appears in a message).

A request with valid credentials sets ``ctx.attrs["basicAuth"] = {"username": ...}`` and
the principal; missing or wrong credentials get 401 with
``WWW-Authenticate: Basic realm="<realm>"``. bcrypt checks run in a worker thread and a
success is remembered by the SHA-256 of the header value, so the hot path is a dict
lookup. The ``Authorization`` header is not forwarded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

from ..proxy.policy import Policy
from .auth_common import CredentialLocation, sha256, unauthorized

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def md5_crypt(password: bytes, salt: bytes, magic: bytes) -> str:
    """MD5-crypt as in Apache's apr_md5_encode (``magic`` = ``$apr1$`` or ``$1$``)."""
    salt = salt[:8]
    ctx = hashlib.md5(password + magic + salt)
    final = hashlib.md5(password + salt + password).digest()
    pl = len(password)
    while pl > 0:
        ctx.update(final[: min(16, pl)])
        pl -= 16
    i = len(password)
    while i:
        ctx.update(b"\x00" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        c = hashlib.md5()
        c.update(password if i & 1 else final)
        if i % 3:
            c.update(salt)
        if i % 7:
            c.update(password)
        c.update(final if i & 1 else password)
        final = c.digest()

    def to64(v: int, n: int) -> str:
        out = []
        for _ in range(n):
            out.append(_ITOA64[v & 0x3F])
            v >>= 6
        return "".join(out)

    f = final
    parts = (
        to64((f[0] << 16) | (f[6] << 8) | f[12], 4)
        + to64((f[1] << 16) | (f[7] << 8) | f[13], 4)
        + to64((f[2] << 16) | (f[8] << 8) | f[14], 4)
        + to64((f[3] << 16) | (f[9] << 8) | f[15], 4)
        + to64((f[4] << 16) | (f[10] << 8) | f[5], 4)
        + to64(f[11], 2)
    )
    return f"{magic.decode()}{salt.decode('latin-1')}${parts}"


class HtpasswdEntry:
    __slots__ = ("user", "kind", "value")

    def __init__(self, user: str, kind: str, value: str):
        self.user = user
        self.kind = kind
        self.value = value

    def check(self, password: bytes) -> bool:
        v = self.value
        if self.kind == "bcrypt":
            import bcrypt

            try:
                return bcrypt.checkpw(password, v.encode())
            except ValueError:
                return False
        if self.kind == "sha":
            got = base64.b64encode(hashlib.sha1(password).digest()).decode()
            return hmac.compare_digest(got.encode(), v[5:].encode())
        magic = "$apr1$" if self.kind == "apr1" else "$1$"
        salt = v[len(magic) :].split("$", 1)[0]
        got = md5_crypt(password, salt.encode("latin-1"), magic.encode())
        return hmac.compare_digest(got.encode("latin-1"), v.encode("latin-1"))


def parse_htpasswd(text: str) -> dict[str, HtpasswdEntry]:
    users: dict[str, HtpasswdEntry] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, h = line.partition(":")
        if not sep or not user:
            raise ValueError(f"htpasswd line {n}: expected user:hash")
        if h.startswith(("$2y$", "$2a$", "$2b$")):
            kind = "bcrypt"
        elif h.startswith("$apr1$"):
            kind = "apr1"
        elif h.startswith("$1$"):
            kind = "md5"
        elif h.startswith("{SHA}"):
            kind = "sha"
        else:
            raise ValueError(f"htpasswd line {n}: unsupported hash format (use bcrypt, apr1 or SHA)")
        users[user] = HtpasswdEntry(user, kind, h)
    return users


class BasicAuth(Policy):
    order = 22
    NAME = "basicAuth"

    def __init__(
        self,
        users: dict[str, HtpasswdEntry],
        realm: str | None = None,
        mode: str = "optional",
        location: CredentialLocation | None = None,
    ):
        self.users = users
        self.mode = mode
        self.location = location or CredentialLocation("header", "authorization", "Basic ")
        realm = (realm or "agentgw").replace("\\", "\\\\").replace('"', '\\"')
        self.challenge = f'Basic realm="{realm}"'
        self.ok: dict[bytes, str] = {}

    def on_request(self, ctx):
        cred = self.location.read(ctx)
        if cred is None:
            if self.mode == "strict":
                return unauthorized(self.NAME, "missing credential", self.challenge)
            return None
        if not cred:
            return self._deny()
        digest = sha256(cred)
        user = self.ok.get(digest)
        if user is not None:
            self._accept(ctx, user)
            return None
        try:
            raw = base64.b64decode(cred, validate=True)
        except ValueError:
            return self._deny()
        u, sep, pw = raw.partition(b":")
        if not sep:
            return self._deny()
        entry = self.users.get(u.decode("utf-8", "replace"))
        if entry is None:
            return self._deny()
        if entry.kind == "bcrypt":
            return self._slow(ctx, entry, pw, digest)
        if not entry.check(pw):
            return self._deny()
        self._remember(digest, entry.user)
        self._accept(ctx, entry.user)
        return None

    async def _slow(self, ctx, entry: HtpasswdEntry, pw: bytes, digest: bytes):
        ok = await asyncio.get_running_loop().run_in_executor(None, entry.check, pw)
        if not ok:
            return self._deny()
        self._remember(digest, entry.user)
        self._accept(ctx, entry.user)
        return None

    def _remember(self, digest: bytes, user: str) -> None:
        if len(self.ok) > 10000:
            self.ok.clear()
        self.ok[digest] = user

    def _deny(self):
        return unauthorized(self.NAME, "invalid credential", self.challenge)

    def _accept(self, ctx, user: str) -> None:
        ctx.attrs["basicAuth"] = {"username": user}
        ctx.attrs.setdefault("principal", user)
        self.location.strip(ctx)
