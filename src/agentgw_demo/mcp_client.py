"""A tiny dependency-free MCP client: initialize, list the tools, optionally call one.

python -m agentgw_demo.mcp_client                        # http://localhost:3000/mcp
python -m agentgw_demo.mcp_client --call math_add '{"a": 2, "b": 3}'
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request


def post(url: str, msg: dict, sid: str | None) -> tuple[dict | None, str | None]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if sid:
        headers["mcp-session-id"] = sid
    req = urllib.request.Request(url, data=json.dumps(msg).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read().decode()
        sid = resp.headers.get("mcp-session-id") or sid
        if not body:
            return None, sid
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            datas = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
            return json.loads(datas[-1]), sid
        return json.loads(body), sid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://localhost:3000/mcp")
    p.add_argument("--call", nargs=2, metavar=("TOOL", "JSON_ARGS"))
    a = p.parse_args()
    try:
        init, sid = post(
            a.url,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "agentgw-demo", "version": "1"},
                },
            },
            None,
        )
    except urllib.error.URLError as exc:
        raise SystemExit(f"cannot reach {a.url}: {exc.reason} (is `make run` running?)") from None
    info = init["result"]["serverInfo"]
    print(f"connected to {info['name']} {info['version']} (protocol {init['result']['protocolVersion']})")
    post(a.url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
    tools, _ = post(a.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
    for t in tools["result"]["tools"]:
        print(f"  {t['name']:<28} {t.get('description', '')}")
    if a.call:
        res, _ = post(
            a.url,
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": a.call[0], "arguments": json.loads(a.call[1])},
            },
            sid,
        )
        print(json.dumps(res.get("result", res), indent=2))
    req = urllib.request.Request(a.url, headers={"mcp-session-id": sid}, method="DELETE")
    urllib.request.urlopen(req, timeout=10).close()


if __name__ == "__main__":
    main()
