"""Session ids that carry their own state: AES-256-GCM over a compact JSON document.

The ``Mcp-Session-Id`` the gateway hands out is ``base64url(nonce ‖ ciphertext ‖ tag)``
of::

    {"v": client protocol version,
     "c": client capabilities, "i": client info,
     "t": {target name: [upstream session id or null, negotiated version]},
     "n": random session nonce}

Any replica holding the same ``config.session.key`` can open it and resume: HTTP
targets are addressed with the upstream session ids inside; stdio and legacy-SSE
targets have no id that outlives their process/connection, so they are re-created and
re-initialised with the client's original capabilities and info. Without a configured
key each process draws a random one, and its session ids mean nothing to another
process (a client that moves gets 404 and re-initialises, as the spec prescribes).
"""

from __future__ import annotations

import base64
import os

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_AAD = b"agentgw-mcp-session-v1"


class SessionCodec:
    __slots__ = ("aead", "shared")

    def __init__(self, key_hex: str | None):
        self.shared = key_hex is not None
        key = bytes.fromhex(key_hex) if key_hex else os.urandom(32)
        self.aead = AESGCM(key)

    def seal(self, state: dict) -> str:
        nonce = os.urandom(12)
        ct = self.aead.encrypt(nonce, orjson.dumps(state), _AAD)
        return base64.urlsafe_b64encode(nonce + ct).rstrip(b"=").decode("ascii")

    def open(self, token: str) -> dict | None:
        """The state inside ``token``, or None when it was not sealed with our key."""
        if not token or len(token) > 16384:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            if len(raw) < 12 + 16:
                return None
            state = orjson.loads(self.aead.decrypt(raw[:12], raw[12:], _AAD))
        except (InvalidTag, ValueError, orjson.JSONDecodeError):
            return None
        return state if isinstance(state, dict) else None
