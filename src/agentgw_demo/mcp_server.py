"""A tiny dependency-free MCP server on stdio, for the quickstart and the tests.

    python -m agentgw_demo.mcp_server --name weather    # or: math, notes

Newline-delimited JSON-RPC on stdin/stdout, protocol revisions 2024-11-05 to 2025-11-25.
Each flavour has a few tools; ``notes`` also has a resource and a prompt. Every flavour
has ``slow_count`` (sends progress notifications when the caller gives a progress token)
and ``whoami`` (returns this process's pid, to see which process answered).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")

FORECASTS = {"paris": "light rain, 14°C", "tokyo": "sunny, 22°C", "lima": "overcast, 18°C"}


def _text(s: str) -> dict:
    return {"content": [{"type": "text", "text": s}], "isError": False}


def _schema(**props) -> dict:
    return {"type": "object", "properties": {k: {"type": v} for k, v in props.items()}, "required": list(props)}


class Server:
    def __init__(self, name: str):
        self.name = name
        self.notes: list[str] = []
        # name -> (description, input schema, handler; slow_count is answered in place)
        self.tools: dict[str, tuple[str, dict, Callable[[dict], dict] | None]] = {
            "whoami": ("Which process answers", _schema(), lambda a: _text(f"{self.name} pid {os.getpid()}")),
            "slow_count": ("Count to n, reporting progress", _schema(n="integer"), None),
        }
        if name == "weather":
            self.tools["get_forecast"] = (
                "Weather forecast for a city",
                _schema(city="string"),
                lambda a: _text(f"{a['city']}: {FORECASTS.get(str(a['city']).lower(), 'clear, 20°C')}"),
            )
            self.tools["get_alerts"] = (
                "Weather alerts for a region",
                _schema(region="string"),
                lambda a: _text(f"no alerts for {a['region']}"),
            )
        elif name == "math":
            self.tools["add"] = (
                "Add two numbers",
                _schema(a="number", b="number"),
                lambda a: _text(str(a["a"] + a["b"])),
            )
            self.tools["multiply"] = (
                "Multiply two numbers",
                _schema(a="number", b="number"),
                lambda a: _text(str(a["a"] * a["b"])),
            )
        else:
            self.tools["add_note"] = ("Remember a note", _schema(text="string"), self._add_note)
            self.tools["list_notes"] = (
                "All notes so far",
                _schema(),
                lambda a: _text("\n".join(self.notes) or "(no notes)"),
            )

    def _add_note(self, a):
        self.notes.append(str(a["text"]))
        return _text(f"{len(self.notes)} note(s)")

    def send(self, msg: dict) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    def handle(self, msg: dict):
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "initialize":
            v = params.get("protocolVersion")
            caps = {"tools": {"listChanged": True}}
            if self.name == "notes":
                caps["resources"] = {"subscribe": False, "listChanged": False}
                caps["prompts"] = {"listChanged": False}
            return {
                "protocolVersion": v if v in VERSIONS else VERSIONS[-1],
                "capabilities": caps,
                "serverInfo": {"name": f"demo-{self.name}", "version": "1.0"},
            }
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": [{"name": n, "description": d, "inputSchema": s} for n, (d, s, _) in self.tools.items()]}
        if method == "tools/call":
            name, args = params.get("name"), params.get("arguments") or {}
            if name not in self.tools:
                raise KeyError(f"unknown tool {name!r}")
            if name == "slow_count":
                token = (params.get("_meta") or {}).get("progressToken")
                n = int(args.get("n", 3))
                for i in range(1, n + 1):
                    time.sleep(0.01)
                    if token is not None:
                        self.send(
                            {
                                "jsonrpc": "2.0",
                                "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": i, "total": n},
                            }
                        )
                return _text(f"counted to {n}")
            handler = self.tools[name][2]
            assert handler is not None  # (only slow_count has none, answered above)
            return handler(args)
        if self.name == "notes":
            if method == "resources/list":
                return {"resources": [{"uri": "notes://all", "name": "all notes", "mimeType": "text/plain"}]}
            if method == "resources/templates/list":
                return {"resourceTemplates": [{"uriTemplate": "notes://{index}", "name": "one note"}]}
            if method == "resources/read":
                return {
                    "contents": [{"uri": params.get("uri"), "mimeType": "text/plain", "text": "\n".join(self.notes)}]
                }
            if method == "prompts/list":
                return {"prompts": [{"name": "summarize", "description": "Summarize the notes", "arguments": []}]}
            if method == "prompts/get":
                return {
                    "messages": [
                        {"role": "user", "content": {"type": "text", "text": "Summarize: " + "; ".join(self.notes)}}
                    ]
                }
        raise LookupError(method)

    def run(self) -> None:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "id" not in msg or "method" not in msg:
                continue  # notifications and answers: nothing to do
            try:
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": self.handle(msg)})
            except LookupError as exc:
                code = -32602 if isinstance(exc, KeyError) else -32601
                self.send({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": code, "message": str(exc)}})
            except Exception as exc:
                self.send(
                    {
                        "jsonrpc": "2.0",
                        "id": msg["id"],
                        "result": {"content": [{"type": "text", "text": str(exc)}], "isError": True},
                    }
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="weather", choices=["weather", "math", "notes"])
    Server(p.parse_args().name).run()


if __name__ == "__main__":
    main()
