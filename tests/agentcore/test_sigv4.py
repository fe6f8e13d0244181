"""SigV4: the gateway's signer against AWS's SigV4 test suite and against botocore's own
client for InvokeAgentRuntime; the stand-in's independent verifier against the same
vectors; the AgentCore URL and session-id rules."""

from __future__ import annotations

import datetime
import os
import re
from urllib.parse import quote

import botocore
import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

from agentgw.backends.aws import sign_headers
from agentgw.backends.aws.agentcore import (
    SESSION_HEADER,
    RuntimeArn,
    invocation_path,
    session_id_for,
    valid_session_id,
)
from agentgw.backends.aws.credentials import Snapshot
from agentgw_demo.sigv4_verify import expected_signature, parse_authorization
from tests.support.harness import REPO_ROOT, run_cli

SUITE = REPO_ROOT / ".cache" / "aws4_testsuite" / f"botocore-{botocore.__version__}"
DATE = datetime.datetime(2015, 8, 30, 12, 36, 0, tzinfo=datetime.timezone.utc)
AKID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
# Not expressible as a request (bad request line), or repeated query keys, which the
# SDKs (botocore included) don't sign the way the suite does: botocore skips the same.
IGNORED = {
    "normalize-path/get-space",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-key",
    "get-vanilla-query-order-value",
}


def _cases() -> list[str]:
    if not SUITE.is_dir():
        return []
    out = []
    for dirpath, _dirs, files in os.walk(SUITE):
        if any(f.endswith(".req") for f in files):
            case = os.path.relpath(dirpath, SUITE).replace(os.sep, "/")
            if case not in IGNORED:
                out.append(case)
    return sorted(out)


CASES = _cases()
needs_suite = pytest.mark.skipif(
    not CASES, reason=f"AWS SigV4 test suite not found at {SUITE} (scripts/install-test-deps.sh fetches it)"
)


def _read(case: str, ext: str) -> str:
    base = SUITE / case / (case.rsplit("/", 1)[-1] + ext)
    return base.read_text(encoding="utf-8").replace("\r", "")


def _parse_raw(raw: str):
    """``(method, target, [(name, value)], body)`` from a suite .req/.sreq file."""
    head, _, body = raw.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (" ", "\t") and headers:  # obsolete line folding
            k, v = headers[-1]
            headers[-1] = (k, f"{v} {line.strip()}")
            continue
        k, _, v = line.partition(":")
        headers.append((k, v))
    return method, target, headers, body.encode("utf-8")


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: DATE.replace(tzinfo=None))


@needs_suite
def test_the_suite_is_there():
    assert len(CASES) >= 25, CASES  # the download worked and has the usual ~30 cases


@needs_suite
@pytest.mark.parametrize("case", CASES)
def test_gateway_signer_matches_aws_test_suite(case, frozen):
    method, target, headers, body = _parse_raw(_read(case, ".req"))
    creq = _read(case, ".creq")
    token = re.search(r"^x-amz-security-token:(.*)$", creq, re.M)
    snap = Snapshot(AKID, SECRET, token.group(1) if token else None, None)
    # repeated header names travel as one comma-joined value (RFC 9110 5.3)
    merged: dict[str, str] = {}
    for k, v in headers:
        lk = k.lower()
        if lk in ("x-amz-date",):
            continue  # the signer sets it
        if lk == "x-amz-security-token":
            continue  # from the credentials
        merged[lk] = f"{merged[lk]},{v.strip()}" if lk in merged else v.strip()
    host = merged["host"]
    # the suite's paths are given decoded (the signer encodes them once), its query
    # strings as text: a client sends those percent-encoded
    path, sep, query = target.partition("?")
    target = path + sep + quote(query, safe="&=%~-._")
    out = dict(
        sign_headers(
            snap,
            service="service",
            region="us-east-1",
            method=method,
            url=f"https://{host}{target}",
            headers=list(merged.items()),
            body=body,
        )
    )
    assert out["x-amz-date"] == "20150830T123600Z"
    assert out["authorization"] == _read(case, ".authz").strip()


@needs_suite
@pytest.mark.parametrize("case", CASES)
def test_standin_verifier_matches_aws_test_suite(case):
    method, target, headers, body = _parse_raw(_read(case, ".sreq"))
    auth_value = dict((k.lower(), v) for k, v in headers)["authorization"]
    auth = parse_authorization(auth_value)
    assert auth["service"] == "service" and auth["region"] == "us-east-1"
    sig, creq, sts = expected_signature(SECRET, method, target, headers, body, auth, "20150830T123600Z")
    assert creq == _read(case, ".creq")
    assert sts == _read(case, ".sts")
    # .authz is the reference (one .sreq of the suite carries a stale signature)
    assert sig == parse_authorization(_read(case, ".authz"))["signature"]
    # one flipped bit anywhere is caught
    assert expected_signature(SECRET, method, target, headers, body + b"x", auth, "20150830T123600Z")[0] != sig


# -- against botocore's own bedrock-agentcore client --------------------------------------------
ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/my_agent-Ab12Cd34Ef"
SID = "a2a-" + "0" * 64


def _botocore_request(qualifier, token):
    """What botocore's client sends for InvokeAgentRuntime (captured, not sent)."""
    session = botocore.session.Session()
    client = session.create_client(
        "bedrock-agentcore",
        region_name="us-west-2",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )
    seen = {}

    def capture(request, **_):
        seen["req"] = request
        return AWSResponse(request.url, 200, {"content-type": "application/json"}, _Raw(b"{}"))

    client.meta.events.register("before-send.bedrock-agentcore.InvokeAgentRuntime", capture)
    kw = dict(
        agentRuntimeArn=ARN,
        runtimeSessionId=SID,
        payload=b'{"prompt":"hi"}',
        contentType="application/json",
        accept="application/json",
    )
    if qualifier:
        kw["qualifier"] = qualifier
    client.invoke_agent_runtime(**kw)
    return seen["req"]


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


class _Raw:
    def __init__(self, data):
        self.data = data

    def stream(self, **_):
        yield self.data


@pytest.mark.parametrize(
    "qualifier,token", [(None, None), ("DEFAULT", "FQoGZXIvYXdzEXAMPLE//token+/="), ("v2 beta", None)]
)
def test_url_and_signature_match_botocore_client(frozen, qualifier, token):
    req = _botocore_request(qualifier, token)
    scheme, _, rest = req.url.partition("://")
    host, _, target = rest.partition("/")
    target = "/" + target
    # same endpoint host, same ARN encoding in the path, same query
    rt = RuntimeArn(ARN)
    assert scheme == "https" and host == rt.default_host == "bedrock-agentcore.us-west-2.amazonaws.com"
    assert target == invocation_path(ARN, qualifier)
    assert target.startswith(
        "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012%3Aruntime%2Fmy_agent-Ab12Cd34Ef/invocations"
    )
    # the gateway's signer over the headers botocore signed gives botocore's signature
    theirs = _s(req.headers["Authorization"])
    signed = parse_authorization(theirs)["signed"]
    assert "bedrock-agentcore/aws4_request" in theirs
    assert SESSION_HEADER in signed
    hdrs = [("host", host)] + [
        (k.lower(), v)
        for k, v in req.headers.items()
        if k.lower() in signed and k.lower() not in ("host", "x-amz-date", "x-amz-security-token")
    ]
    hdrs = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in hdrs]
    ours = dict(
        sign_headers(
            Snapshot(AKID, SECRET, token, None),
            service="bedrock-agentcore",
            region="us-west-2",
            method="POST",
            url=req.url,
            headers=hdrs,
            body=req.body,
        )
    )
    assert ours["authorization"] == theirs
    assert ours.get("x-amz-security-token") == token
    # and the stand-in's verifier accepts botocore's request as sent
    wire = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()] + [("host", host)]
    auth = parse_authorization(theirs)
    assert (
        expected_signature(
            SECRET,
            "POST",
            target,
            wire,
            req.body,
            auth,
            req.headers["X-Amz-Date"].decode()
            if isinstance(req.headers["X-Amz-Date"], bytes)
            else req.headers["X-Amz-Date"],
        )[0]
        == auth["signature"]
    )


# -- ARNs and sessions ---------------------------------------------------------------------------
def test_region_and_partition_come_from_the_arn():
    rt = RuntimeArn("arn:aws-cn:bedrock-agentcore:cn-north-1:123456789012:runtime/a-1")
    assert (rt.region, rt.default_host) == ("cn-north-1", "bedrock-agentcore.cn-north-1.amazonaws.com.cn")
    with pytest.raises(ValueError):
        RuntimeArn("arn:aws:bedrock:us-east-1:123456789012:agent/x")


def test_session_ids_follow_agentcore_rules():
    a = session_id_for("ctx-1", "alice")
    assert valid_session_id(a) and 33 <= len(a) <= 256
    assert a == session_id_for("ctx-1", "alice")  # a conversation stays on its session
    assert a != session_id_for("ctx-2", "alice")
    assert a != session_id_for("ctx-1", "mallory")  # a guessed context id joins nothing
    assert not valid_session_id("short") and not valid_session_id("x" * 257)


def test_bad_agentcore_config_is_refused_with_its_path(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "binds:\n- port: 3999\n  listeners:\n  - routes:\n    - backends:\n"
        "      - aws: {agentCore: {agentRuntimeArn: 'arn:aws:bedrock:us-east-1:1:agent/x', endpoint: 'ftp://x'}}\n"
    )
    r = run_cli("validate", "-f", str(cfg))
    assert r.returncode == 1
    assert "agentCore.agentRuntimeArn" in r.stdout + r.stderr
    assert "agentCore.endpoint" in r.stdout + r.stderr
