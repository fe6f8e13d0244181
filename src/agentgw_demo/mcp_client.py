"""A tiny dependency-free MCP client: initialize, list the tools, optionally call one.

python -m agentgw_demo.mcp_client                        # http://localhost:3000/mcp
python -m agentgw_demo.mcp_client --call math_add '{"a": 2, "b": 3}'

Problems (the gateway not reachable, an HTTP error, a JSON-RPC error, an answer that is
not MCP) are printed as one line on stderr, with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://localhost:3000/mcp"  # the quickstart's


class ClientError(Exception):
    """A problem to report as one line, not a traceback."""


def _http_error(url: str, exc: urllib.error.HTTPError) -> ClientError:
    """``url`` answered with an HTTP error: its status, and the gateway's or server's reason."""
    try:
        body = exc.read().decode("utf-8", "replace")
    except OSError:
        body = ""
    reason = ""
    try:
        doc = json.loads(body)
    except ValueError:
        reason = body.strip().splitlines()[0][:200] if body.strip() else ""
    else:
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            reason = str(err.get("message") or err.get("type") or "")
        elif isinstance(err, str):
            reason = err
    return ClientError(f"{url}: HTTP {exc.code} {exc.reason}" + (f": {reason}" if reason else ""))


def post(url: str, msg: dict, sid: str | None) -> tuple[dict | None, str | None]:
    """Send one JSON-RPC message; the answer (None for a notification) and the session id."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if sid:
        headers["mcp-session-id"] = sid
    req = urllib.request.Request(url, data=json.dumps(msg).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read().decode("utf-8", "replace")
            sid = resp.headers.get("mcp-session-id") or sid
            ctype = resp.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        raise _http_error(url, exc) from None
    except urllib.error.URLError as exc:
        hint = " (is `make run` running?)" if url == DEFAULT_URL else ""
        raise ClientError(f"cannot reach {url}: {exc.reason}{hint}") from None
    except OSError as exc:  # timeouts, resets
        raise ClientError(f"{url}: {exc}") from None
    if not body:
        return None, sid
    if ctype.startswith("text/event-stream"):
        datas = [line[5:].lstrip() for line in body.splitlines() if line.startswith("data:")]
        body = datas[-1] if datas else ""
    try:
        doc = json.loads(body)
    except ValueError:
        kind = ctype.split(";")[0] or "no content type"
        raise ClientError(f"{url}: the answer is not JSON-RPC ({kind}): is this an MCP endpoint?") from None
    if not isinstance(doc, dict) or doc.get("jsonrpc") != "2.0":
        raise ClientError(f"{url}: the answer is not JSON-RPC: is this an MCP endpoint?")
    return doc, sid


def result(doc: dict | None, method: str) -> dict:
    """The ``result`` of a JSON-RPC answer, or its error as a `ClientError`."""
    if doc is None:
        raise ClientError(f"{method}: no answer")
    err = doc.get("error")
    if err is not None:
        if isinstance(err, dict):
            line = f"{method}: error {err.get('code')}: {err.get('message', '')}"
            if err.get("data") is not None:
                line += f" ({json.dumps(err['data'])})"
        else:
            line = f"{method}: error: {err}"
        raise ClientError(line)
    res = doc.get("result")
    if not isinstance(res, dict):
        raise ClientError(f"{method}: the answer has no result")
    return res


def run(url: str, call: list[str] | None) -> None:
    args = None
    if call:
        try:
            args = json.loads(call[1])
        except ValueError as exc:
            raise ClientError(f"--call {call[0]}: the arguments are not JSON: {exc}") from None
        if not isinstance(args, dict):
            raise ClientError(f"--call {call[0]}: the arguments must be a JSON object, like '{{\"a\": 2}}'")
    params = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "agentgw-demo", "version": "1"},
    }
    init, sid = post(url, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}, None)
    res = result(init, "initialize")
    info = res.get("serverInfo") or {}
    print(f"connected to {info.get('name', '?')} {info.get('version', '')} (protocol {res.get('protocolVersion')})")
    try:
        post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        tools, _ = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
        for t in result(tools, "tools/list").get("tools", []):
            print(f"  {t['name']:<28} {t.get('description', '')}")
        if call:
            msg = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": call[0], "arguments": args}}
            out, _ = post(url, msg, sid)
            print(json.dumps(result(out, f"tools/call {call[0]}"), indent=2))
    finally:
        if sid:
            req = urllib.request.Request(url, headers={"mcp-session-id": sid}, method="DELETE")
            try:
                urllib.request.urlopen(req, timeout=10).close()
            except OSError:
                pass  # the session ends with its idle timeout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--call", nargs=2, metavar=("TOOL", "JSON_ARGS"))
    a = p.parse_args()
    try:
        run(a.url, a.call)
    except ClientError as exc:
        print(f"mcp_client: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
