"""SigV4 signing with botocore's signer, for any AWS service name."""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials


def sign_headers(
    snap,
    *,
    service: str,
    region: str,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> list[tuple[str, str]]:
    """Return the headers to add (``authorization``, ``x-amz-date``, token, content hash).

    ``url`` is the full URL as sent (path already percent-encoded); ``headers`` are the
    headers that will be sent and that should be signed (``host`` must be among them).
    """
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    creds = ReadOnlyCredentials(snap.access_key, snap.secret_key, snap.token)
    SigV4Auth(creds, service, region).add_auth(req)
    out = [
        ("authorization", req.headers["Authorization"]),
        ("x-amz-date", req.headers["X-Amz-Date"]),
    ]
    tok = req.headers.get("X-Amz-Security-Token")
    if tok:
        out.append(("x-amz-security-token", tok))
    return out
