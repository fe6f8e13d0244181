"""Print a JWT accepted by the :8082 listener of examples/agentcore/gateway.yaml.

    python examples/agentcore/make_token.py [--sub alice] [--ttl 3600]

The demo issuer's Ed25519 key is derived from a fixed string, so the public key in
gateway.yaml always matches. Demo only: anyone can mint these tokens.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SEED = b"agentgw agentcore example - demo only"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub: str = "alice", ttl: int = 3600) -> str:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(SEED).digest())
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": "agentcore-demo"}
    claims = {"iss": "https://your-idp.example.com", "aud": "agentcore", "sub": sub, "iat": now, "exp": now + ttl}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sub", default="alice")
    ap.add_argument("--ttl", type=int, default=3600)
    a = ap.parse_args()
    print(token(a.sub, a.ttl))
