"""Write a demo signing key's JWKS (examples/a2a/jwks.json) and print service-account
style tokens for the EKS example. Uses joserfc, which agentgw already depends on.

    python examples/a2a/make_tokens.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

SA = "system:serviceaccount:agent-core-infra:"

key = RSAKey.generate_key(2048, parameters={"kid": "demo", "alg": "RS256", "use": "sig"})
Path(__file__).with_name("jwks.json").write_text(json.dumps(KeySet([key]).as_dict(private=False), indent=2))
now = int(time.time())
for sa in ("planning-agent-sa", "orchestrator-agent-sa"):
    claims = {"iss": "https://kubernetes.default.svc", "aud": "agent-gateway", "sub": SA + sa, "iat": now, "exp": now + 3600}
    token = jwt.encode({"alg": "RS256", "kid": "demo"}, claims, key)
    print(f"{sa.upper().replace('-', '_')}={token}")
