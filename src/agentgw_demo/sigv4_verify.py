"""An independent SigV4 verifier (hashlib + hmac only), for the AgentCore stand-in.

It recomputes the signature of a request as AWS does for a non-S3 service — canonical
request, string to sign, derived signing key — from the request exactly as received,
so it checks the gateway's signer without sharing code with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)
_WS = re.compile(r"\s+")


class SignatureError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def _enc(s: str) -> str:
    return quote(s, safe="-_.~")


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/"):
        if seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    res = "/".join(out)
    if not res.startswith("/"):
        res = "/" + res
    if path.endswith("/") and not res.endswith("/"):
        res += "/"
    return res


def canonical_uri(raw_path: str) -> str:
    """Non-S3 services: the normalised path, with each segment URI-encoded again."""
    if not raw_path:
        return "/"
    segs = _remove_dot_segments(re.sub("/+", "/", raw_path)).split("/")
    return "/".join(quote(s, safe="-_.~") for s in segs)


def canonical_query(raw_query: str) -> str:
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        if not item:
            continue
        k, _, v = item.partition("=")
        pairs.append((_enc(unquote(k)), _enc(unquote(v))))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(
    method: str, raw_target: str, headers: list[tuple[str, str]], signed: list[str], body: bytes
) -> str:
    path, _, query = raw_target.partition("?")
    values: dict[str, list[str]] = {}
    for k, v in headers:
        values.setdefault(k.lower(), []).append(_WS.sub(" ", v.strip()))
    lines = []
    for name in signed:
        if name not in values:
            raise SignatureError("IncompleteSignatureException", f"signed header {name!r} is missing")
        lines.append(f"{name}:{','.join(values[name])}\n")
    payload_hash = hashlib.sha256(body).hexdigest()
    return "\n".join(
        [method, canonical_uri(path), canonical_query(query), "".join(lines), ";".join(signed), payload_hash]
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


def string_to_sign(amz_date: str, scope: str, creq: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def parse_authorization(value: str) -> dict:
    m = _AUTH.match((value or "").strip())
    if m is None:
        raise SignatureError("IncompleteSignatureException", "Authorization header is not AWS4-HMAC-SHA256")
    parts = m["cred"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError("IncompleteSignatureException", f"malformed credential scope {m['cred']!r}")
    signed = m["signed"].split(";")
    if signed != sorted(signed) or any(s != s.lower() for s in signed):
        raise SignatureError("IncompleteSignatureException", "SignedHeaders must be lower-case and sorted")
    return {
        "access_key": parts[0],
        "date": parts[1],
        "region": parts[2],
        "service": parts[3],
        "scope": "/".join(parts[1:]),
        "signed": signed,
        "signature": m["sig"],
    }


def expected_signature(
    secret: str, method: str, raw_target: str, headers: list[tuple[str, str]], body: bytes, auth: dict, amz_date: str
) -> tuple[str, str, str]:
    """``(signature, canonical request, string to sign)`` for a parsed Authorization."""
    creq = canonical_request(method, raw_target, headers, auth["signed"], body)
    sts = string_to_sign(amz_date, auth["scope"], creq)
    key = signing_key(secret, auth["date"], auth["region"], auth["service"])
    return hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest(), creq, sts
