"""A local stand-in for AWS Bedrock AgentCore's InvokeAgentRuntime, checking SigV4.

    python -m agentgw_demo.agentcore_standin --port 9000 [--credentials AKID:SECRET ...]
                                             [--arn ARN] [--sts-port 9100]

It answers ``POST /runtimes/<percent-encoded runtime ARN>/invocations[?qualifier=…]``
(and ``GET …/invocations/.well-known/agent-card.json``) like a runtime hosting a small
HTTP-protocol agent, after checking what AWS would check:

* the SigV4 signature, recomputed independently (``agentgw_demo.sigv4_verify``) from
  the request as received — credential scope service ``bedrock-agentcore`` and the
  ARN's region, ``x-amz-date`` within 5 minutes, ``host`` and the session header signed,
  the secret of the access key, and for temporary credentials the session token and
  its expiry;
* the ARN in the path (one percent-encoded segment; ``--arn`` to require one);
* ``X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`` present, 33–256 characters.

Failures are answered as AWS does (``403 InvalidSignatureException`` /
``ExpiredTokenException``, ``400 ValidationException``, ``404
ResourceNotFoundException``) with ``x-amzn-ErrorType``.

The agent: ``{"prompt": "..."}`` gets ``{"result": {"role": "assistant", "content":
[{"text": ...}]}}`` (what a Strands agent returns), or, with ``Accept:
text/event-stream``, the answer word by word as ``data: "<text>"`` events. Other
payloads are echoed as ``{"echo": payload}``. Turns are counted per runtime session.

Known access keys: ``--credentials AKID:SECRET`` (repeatable; by default
``$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY`` when set). ``--sts-port`` also runs a local
STS (moto: ``pip install 'agentgw[demo]'``) in this process, whose temporary credentials
(e.g. from ``AssumeRoleWithWebIdentity``) are accepted too; ``--sts-duration`` caps their
lifetime in seconds and ``--sts-delay`` slows STS answers (to show refresh never blocks).

``--mcp URL`` makes the runtime an MCP-protocol one, as AgentCore hosts MCP servers: each
verified invocation is relayed to the MCP server at ``URL`` (streamable HTTP) with its
``Mcp-Session-Id`` and ``Mcp-Protocol-Version``, and the server's answer (JSON or
``text/event-stream``, with its ``Mcp-Session-Id``) comes back as it streams. The runtime
session header is optional there: AgentCore keeps an MCP session on one runtime by its
``Mcp-Session-Id``.

``GET /_standin/requests`` lists what was received and verified (JSON), for tests and
curious humans. Prints ``READY <port>`` (and ``STS <port>``) when listening.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from .sigv4_verify import SignatureError, expected_signature, parse_authorization

SERVICE = "bedrock-agentcore"
SESSION_HEADER = "x-amzn-bedrock-agentcore-runtime-session-id"
_PATH = re.compile(r"^/runtimes/(?P<arn>[^/]+)/invocations(?P<card>/\.well-known/agent-card\.json)?$")
_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:(?P<region>[a-z0-9-]+):\d{12}:runtime/[A-Za-z0-9_.-]+$")


class Keys:
    """Access key → secret (and session token / expiry for temporary credentials)."""

    def __init__(self, static: dict[str, str]):
        self.static = dict(static)
        self.sts = False

    def lookup(self, akid: str):
        if akid in self.static:
            return self.static[akid], None, None
        if self.sts:
            from moto.sts.models import sts_backends

            for _account, regions in list(sts_backends.items()):
                for _region, backend in list(regions.items()):
                    for role in list(getattr(backend, "assumed_roles", [])):
                        if role.access_key_id == akid:
                            exp = role.expiration
                            if exp.tzinfo is None:
                                exp = exp.replace(tzinfo=dt.UTC)
                            return role.secret_access_key, role.session_token, exp.timestamp()
        return None


class State:
    def __init__(self, keys: Keys, arn: str | None, delay: float, mcp: str | None = None):
        self.keys = keys
        self.arn = arn
        self.delay = delay
        self.mcp = mcp  # the MCP server an MCP-protocol runtime relays to
        self.lock = threading.Lock()
        self.log: list[dict] = []
        self.turns: dict[str, int] = {}


def verify(
    state: State, method: str, target: str, headers: list[tuple[str, str]], body: bytes, arn_region: str
) -> dict:
    """Check the request like AWS would; returns facts, raises (status, type, message) tuples."""
    h = {k.lower(): v for k, v in headers}
    try:
        auth = parse_authorization(h.get("authorization", ""))
    except SignatureError as exc:
        raise _Reject(403, exc.kind, exc.message) from None
    if auth["service"] != SERVICE:
        raise _Reject(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SERVICE}', not '{auth['service']}'",
        )
    if auth["region"] != arn_region:
        raise _Reject(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region: '{arn_region}', not '{auth['region']}'",
        )
    amz_date = h.get("x-amz-date", "")
    try:
        t = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise _Reject(403, "IncompleteSignatureException", "missing or malformed X-Amz-Date") from None
    if abs(time.time() - t) > 300:
        raise _Reject(403, "InvalidSignatureException", "Signature expired: X-Amz-Date is more than 5 minutes off")
    if amz_date[:8] != auth["date"]:
        raise _Reject(403, "InvalidSignatureException", "credential scope date does not match X-Amz-Date")
    session_signed = method == "POST" and (state.mcp is None or SESSION_HEADER in h)
    for must in ("host", "x-amz-date") + ((SESSION_HEADER,) if session_signed else ()):
        if must not in auth["signed"]:
            raise _Reject(403, "InvalidSignatureException", f"header {must!r} must be signed")
    found = state.keys.lookup(auth["access_key"])
    if found is None:
        raise _Reject(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    secret, token, expires = found
    if token is not None:
        if h.get("x-amz-security-token") != token:
            raise _Reject(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if "x-amz-security-token" not in auth["signed"]:
            raise _Reject(403, "InvalidSignatureException", "x-amz-security-token must be signed")
        if expires is not None and time.time() >= expires:
            raise _Reject(403, "ExpiredTokenException", "The security token included in the request is expired")
    sig, creq, _ = expected_signature(secret, method, target, headers, body, auth, amz_date)
    if sig != auth["signature"]:
        raise _Reject(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            f"The Canonical String for this request should have been\n'{creq}'",
        )
    return {
        "access_key": auth["access_key"],
        "temporary": token is not None,
        "expires": expires,
        "signed_headers": sorted(auth["signed"]),
    }


class _Reject(Exception):
    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentcore-standin"
    state: State

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def _json(self, status: int, doc, extra: dict | None = None, kind: str | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if kind:
            self.send_header(
                "x-amzn-ErrorType", f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock.agentcore/"
            )
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _record(self, entry: dict) -> None:
        with self.state.lock:
            self.state.log.append(entry)

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self):
        if self.path == "/_standin/requests":
            with self.state.lock:
                self._json(200, self.state.log)
            return
        if self.path == "/_standin/health":
            self._json(200, {"ok": True})
            return
        self._invoke("GET")

    def do_POST(self):
        self._invoke("POST")

    def _invoke(self, method: str) -> None:
        st = self.state
        body = self._body()
        raw_target = self.path
        path, _, query = raw_target.partition("?")
        entry = {"method": method, "path": path, "query": query, "time": time.time()}
        headers = list(self.headers.items())
        # the runtime's own request headers (user id, custom headers), as received
        entry["runtime_headers"] = {
            k.lower(): v for k, v in headers if k.lower().startswith("x-amzn-bedrock-agentcore-runtime-")
        }
        try:
            m = _PATH.match(path)
            if m is None or (method == "GET") != bool(m["card"]):
                raise _Reject(404, "UnknownOperationException", f"no such operation: {method} {path}")
            arn = unquote(m["arn"])
            entry["arn"] = arn
            am = _ARN.match(arn)
            if am is None:
                raise _Reject(400, "ValidationException", f"invalid agentRuntimeArn {arn!r}")
            if st.arn is not None and arn != st.arn:
                raise _Reject(404, "ResourceNotFoundException", f"no agent runtime {arn!r}")
            sid = self.headers.get(SESSION_HEADER) or ""
            entry["session_id"] = sid
            if method == "POST" and not (33 <= len(sid) <= 256) and (st.mcp is None or sid):
                raise _Reject(400, "ValidationException", "runtimeSessionId must be 33 to 256 characters long")
            facts = verify(st, method, raw_target, headers, body, am["region"])
            entry.update(
                facts, verified=True, content_type=self.headers.get("content-type"), accept=self.headers.get("accept")
            )
        except _Reject as rej:
            entry.update(verified=False, error=rej.kind, message=rej.message[:500])
            self._record(entry)
            self._json(rej.status, {"message": rej.message}, kind=rej.kind)
            return
        if method == "GET":
            self._record(entry)
            self._json(
                200,
                {
                    "name": "agentcore-standin",
                    "description": "local AgentCore stand-in agent",
                    "url": f"http://{self.headers.get('host')}/",
                    "version": "1.0.0",
                    "capabilities": {"streaming": True},
                    "skills": [],
                },
            )
            return
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = body.decode("utf-8", "replace")
        entry["payload"] = payload
        if st.mcp is not None:
            entry["mcp_session_id"] = self.headers.get("mcp-session-id")
            self._record(entry)
            self._relay_mcp(body)
            return
        with st.lock:
            turn = st.turns[sid] = st.turns.get(sid, 0) + 1
        entry["turn"] = turn
        self._record(entry)
        prompt = None
        if isinstance(payload, dict):
            prompt = payload.get("prompt")
            if prompt is None and isinstance(payload.get("input"), dict):
                prompt = payload["input"].get("prompt")
        out_headers = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": sid}
        if not isinstance(prompt, str):
            self._json(200, {"echo": payload}, out_headers)
            return
        answer = f"Hello! I'm the local AgentCore stand-in (turn {turn} of this session). You said: {prompt}"
        if "text/event-stream" in (self.headers.get("accept") or ""):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.end_headers()
            words = answer.split(" ")
            for i, w in enumerate(words):
                data = f"data: {json.dumps(w if i == len(words) - 1 else w + ' ')}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(st.delay)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        self._json(200, {"result": {"role": "assistant", "content": [{"text": answer}]}}, out_headers)

    def _relay_mcp(self, body: bytes) -> None:
        """Relay one invocation to the runtime's MCP server and its answer back, streaming."""
        u = urlsplit(str(self.state.mcp))
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=60)
        headers = {"content-type": "application/json", "content-length": str(len(body))}
        for k in ("accept", "mcp-session-id", "mcp-protocol-version", SESSION_HEADER):
            v = self.headers.get(k)
            if v:
                headers[k] = v
        try:
            conn.request("POST", u.path or "/mcp", body, headers)
            resp = conn.getresponse()
            self.send_response(resp.status)
            for k in ("content-type", "mcp-session-id"):
                v = resp.getheader(k)
                if v:
                    self.send_header(k, v)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            while chunk := resp.read1(65536):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            conn.close()


def start_sts(port: int, duration: float | None, delay: float) -> int:
    """A moto STS on 127.0.0.1 in this process; returns its port."""
    try:
        from moto.server import ThreadedMotoServer
        from moto.sts import models as sts_models
    except ImportError:
        sys.exit("--sts-port needs moto: pip install 'agentgw[demo]' (or 'moto[server]')")
    orig = sts_models.STSBackend.assume_role

    def assume_role(self, *a, **kw):
        if duration is not None:
            kw["duration"] = min(int(kw.get("duration") or 3600), int(duration))
        if delay:
            time.sleep(delay)
        return orig(self, *a, **kw)

    sts_models.STSBackend.assume_role = assume_role  # type: ignore[method-assign]  # wraps moto's own
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server.get_host_and_port()[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--arn", help="accept only this runtime ARN (404 for others)")
    ap.add_argument("--credentials", action="append", default=[], metavar="AKID:SECRET")
    ap.add_argument("--sts-port", type=int, help="also run a local STS (moto) on this port (0: any)")
    ap.add_argument("--sts-duration", type=float, help="cap temporary credential lifetime (seconds)")
    ap.add_argument("--sts-delay", type=float, default=0.0, help="seconds each STS credential call takes")
    ap.add_argument("--delay", type=float, default=0.05, help="seconds between streamed words")
    ap.add_argument("--mcp", metavar="URL", help="an MCP-protocol runtime: relay invocations to this MCP server")
    args = ap.parse_args(argv)
    static = {}
    for c in args.credentials:
        akid, _, secret = c.partition(":")
        static[akid] = secret
    if not static and os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        static[os.environ["AWS_ACCESS_KEY_ID"]] = os.environ["AWS_SECRET_ACCESS_KEY"]
    keys = Keys(static)
    sts_port = None
    if args.sts_port is not None:
        sts_port = start_sts(args.sts_port, args.sts_duration, args.sts_delay)
        keys.sts = True
    Handler.state = State(keys, args.arn, args.delay, args.mcp)
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    line = f"READY {httpd.server_address[1]}"
    if sts_port is not None:
        line += f" STS {sts_port}"
    print(line, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
