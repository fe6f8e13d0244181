"""``apiKey``: static API keys.

Keys come from ``keys`` (inline entries), ``keysFile`` (a YAML/JSON list of the same
entries, or a ``name: key`` map) and ``keysDir`` (a directory of files, one key per
file named by its id -- the layout of a mounted Kubernetes Secret; re-read when the
directory changes, checked at most every ``DIR_RECHECK`` seconds). An entry is a plain
``key`` or a ``keyHash`` (``sha256:<hex>`` or bcrypt), with optional ``metadata``.

The presented key is read from ``Authorization: Bearer <key>`` or the header/query/cookie
named by ``location``. It is hashed with SHA-256 and matched against the SHA-256 of the
configured keys with ``hmac.compare_digest`` (constant time; the secret is never
compared byte by byte). bcrypt hashes are checked in a worker thread, and a match is
remembered by the key's SHA-256 so bcrypt runs once per key. ``mode`` is as for
``jwtAuth``. The matched entry's ``metadata`` goes to ``ctx.attrs["apiKey"]`` (with
``key``: the entry's id, never the secret); the key is removed from the forwarded
request.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time

import yaml

from ..proxy.policy import Policy
from .auth_common import CredentialLocation, sha256, unauthorized

DIR_RECHECK = 2.0


class KeyEntry:
    __slots__ = ("id", "digest", "bcrypt_hash", "metadata")

    def __init__(self, id: str, *, key: str | None = None, key_hash: str | None = None, metadata=None):
        self.id = id
        self.digest: bytes | None = None
        self.bcrypt_hash: bytes | None = None
        if key is not None:
            self.digest = sha256(key)
        elif key_hash is not None:
            if key_hash.startswith("sha256:"):
                self.digest = bytes.fromhex(key_hash[7:])
            else:
                self.bcrypt_hash = key_hash.encode()
        md = dict(metadata or {})
        md.setdefault("key", id)
        self.metadata = md


def entries_from_data(data, source: str) -> list[KeyEntry]:
    out = []
    if isinstance(data, dict):
        for i, (name, key) in enumerate(data.items()):
            if not isinstance(key, str) or not key:
                raise ValueError(f"{source}: entry {i}: value must be a non-empty string")
            out.append(KeyEntry(str(name), key=key, metadata={"name": str(name)}))
        return out
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a list of keys or a name: key map")
    from ..config.models import ApiKeyEntry

    for i, item in enumerate(data):
        try:
            e = ApiKeyEntry.model_validate(item)
        except Exception:
            raise ValueError(f"{source}: entry {i} is not a valid key entry") from None
        out.append(KeyEntry(f"{source}#{i}", key=e.key, key_hash=e.key_hash, metadata=e.metadata))
    return out


def load_keys_file(path: str) -> list[KeyEntry]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return entries_from_data(data if data is not None else [], os.path.basename(path))


def load_keys_dir(path: str) -> list[KeyEntry]:
    out = []
    for name in sorted(os.listdir(path)):
        if name.startswith("."):
            continue  # Kubernetes' ..data / ..timestamp entries, editor files
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        with open(full, encoding="utf-8", errors="surrogateescape") as f:
            key = f.read().strip()
        if key:
            out.append(KeyEntry(name, key=key, metadata={"name": name}))
    return out


def _dir_stamp(path: str) -> tuple:
    try:
        st = os.stat(path)
        names = sorted(n for n in os.listdir(path) if not n.startswith("."))
        stamps = []
        for n in names:
            try:
                s = os.stat(os.path.join(path, n))
                stamps.append((n, s.st_mtime_ns, s.st_size, s.st_ino))
            except OSError:
                pass
        return (st.st_mtime_ns, tuple(stamps))
    except OSError:
        return ()


class KeyStore:
    def __init__(self, static: list[KeyEntry], directory: str | None = None):
        self.static = static
        self.directory = directory
        self._dir_entries: list[KeyEntry] = []
        self._stamp: tuple = ()
        self._checked = 0.0
        self.by_digest: dict[bytes, KeyEntry] = {}
        self.bcrypt: list[KeyEntry] = []
        self.bcrypt_ok: dict[bytes, KeyEntry] = {}
        if directory:
            self._reload_dir(directory, force=True)
        self._index()

    def _index(self) -> None:
        by: dict[bytes, KeyEntry] = {}
        bc: list[KeyEntry] = []
        for e in self.static + self._dir_entries:
            if e.digest is not None:
                by.setdefault(e.digest, e)
            elif e.bcrypt_hash is not None:
                bc.append(e)
        self.by_digest = by
        self.bcrypt = bc
        self.bcrypt_ok = {}

    def _reload_dir(self, directory: str, force: bool = False) -> None:
        stamp = _dir_stamp(directory)
        if force or stamp != self._stamp:
            self._stamp = stamp
            try:
                self._dir_entries = load_keys_dir(directory)
            except OSError:
                self._dir_entries = []
            if not force:
                self._index()

    def maybe_refresh(self) -> None:
        if self.directory:
            now = time.monotonic()
            if now - self._checked >= DIR_RECHECK:
                self._checked = now
                self._reload_dir(self.directory)

    def match_digest(self, digest: bytes) -> KeyEntry | None:
        e = self.by_digest.get(digest)
        if e is not None and e.digest is not None and hmac.compare_digest(e.digest, digest):
            return e
        e = self.bcrypt_ok.get(digest)
        return e


def _bcrypt_find(entries: list[KeyEntry], key: bytes) -> KeyEntry | None:
    import bcrypt

    found = None
    for e in entries:
        try:
            if e.bcrypt_hash is not None and bcrypt.checkpw(key, e.bcrypt_hash) and found is None:
                found = e
        except ValueError:
            continue
    return found


class ApiKeyAuth(Policy):
    order = 21
    NAME = "apiKey"

    def __init__(self, store: KeyStore, mode: str = "optional", location: CredentialLocation | None = None):
        self.store = store
        self.mode = mode
        self.location = location or CredentialLocation("header", "authorization", "Bearer ")
        loc = self.location
        if loc.kind == "header" and loc.name == "authorization":
            self.challenge = 'Bearer realm="agentgw"'
        else:
            self.challenge = f'ApiKey realm="agentgw", {loc.kind}="{loc.name}"'

    def on_request(self, ctx):
        key = self.location.read(ctx)
        if key is None:
            if self.mode == "strict":
                return unauthorized(self.NAME, "missing credential", self.challenge)
            return None
        store = self.store
        store.maybe_refresh()
        if key:
            digest = sha256(key)
            e = store.match_digest(digest)
            if e is not None:
                self._accept(ctx, e)
                return None
            if store.bcrypt:
                return self._slow(ctx, key, digest)
        return self._deny()

    def _deny(self):
        if self.mode == "permissive":
            return None
        return unauthorized(self.NAME, "invalid credential", self.challenge)

    async def _slow(self, ctx, key: str, digest: bytes):
        store = self.store
        loop = asyncio.get_running_loop()
        e = await loop.run_in_executor(None, _bcrypt_find, store.bcrypt, key.encode("utf-8", "surrogateescape"))
        if e is None:
            return self._deny()
        if len(store.bcrypt_ok) > 10000:
            store.bcrypt_ok.clear()
        store.bcrypt_ok[digest] = e
        self._accept(ctx, e)
        return None

    def _accept(self, ctx, e: KeyEntry) -> None:
        ctx.attrs["apiKey"] = e.metadata
        name = e.metadata.get("name")
        if isinstance(name, str):
            ctx.attrs.setdefault("principal", name)
        self.location.strip(ctx)
