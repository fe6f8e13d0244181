"""Print service-account style tokens for the EKS example (examples/a2a/eks.yaml).

    python examples/a2a/make_tokens.py            # PLANNING_AGENT_SA=... ORCHESTRATOR_AGENT_SA=...
    export $(python examples/a2a/make_tokens.py)  # into the shell, for the curl commands

The demo signing key (Ed25519) is derived from a fixed string, so the public key inlined
in eks.yaml always matches and there is nothing to generate or keep. Local trial only:
anyone with this file can mint these tokens. In a cluster the tokens come from
`kubectl create token` and eks.yaml's jwks from the cluster's issuer instead.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SEED = b"agentgw a2a eks example - demo only"
SA = "system:serviceaccount:agent-core-infra:"
ACCOUNTS = ("planning-agent-sa", "orchestrator-agent-sa")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sa: str, ttl: int = 3600) -> str:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(SEED).digest())
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": "a2a-eks-demo"}
    claims = {
        "iss": "https://kubernetes.default.svc",
        "aud": "agent-gateway",
        "sub": SA + sa,
        "iat": now,
        "exp": now + ttl,
    }
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ttl", type=int, default=3600, help="token lifetime in seconds (default 3600)")
    a = ap.parse_args()
    for sa in ACCOUNTS:
        print(f"{sa.upper().replace('-', '_')}={token(sa, a.ttl)}")
