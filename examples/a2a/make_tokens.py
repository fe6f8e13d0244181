"""Write a demo signing key's JWKS (examples/a2a/jwks.json) and print service-account
style tokens for the EKS example. Needs PyJWT and cryptography.

    python examples/a2a/make_tokens.py
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

SA = "system:serviceaccount:agent-core-infra:"


def b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = key.public_key().public_numbers()
jwks = {"keys": [{"kty": "RSA", "kid": "demo", "alg": "RS256", "use": "sig", "n": b64(pub.n), "e": b64(pub.e)}]}
Path(__file__).with_name("jwks.json").write_text(json.dumps(jwks, indent=2))
now = int(time.time())
for sa in ("planning-agent-sa", "orchestrator-agent-sa"):
    claims = {"iss": "https://kubernetes.default.svc", "aud": "agent-gateway", "sub": SA + sa, "iat": now, "exp": now + 3600}
    print(f"{sa.upper().replace('-', '_')}={jwt.encode(claims, key, algorithm='RS256', headers={'kid': 'demo'})}")
