"""A stand-in for ``python -m agentgw`` used only by the harness self-tests.

It implements just enough of the process contract (readiness, /metrics with
the reload counter, /config_dump, polling the config file, SIGTERM) to check
the harness itself; it is not a proxy.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

STATE = {"ok": 0, "failed": 0, "config": None}


def _addr(a: str) -> tuple[str, int]:
    h, _, p = a.rpartition(":")
    return h, int(p)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path == "/healthz/ready":
            self._send(200, b"ready")
        elif self.path == "/metrics":
            text = (
                "# TYPE agentgw_config_reloads_total counter\n"
                f'agentgw_config_reloads_total{{result="ok"}} {STATE["ok"]}\n'
                f'agentgw_config_reloads_total{{result="failed"}} {STATE["failed"]}\n'
            )
            self._send(200, text.encode())
        elif self.path == "/config_dump":
            self._send(200, json.dumps(STATE["config"]).encode(), "application/json")
        else:
            self._send(200, b"fake")


def serve(addr: tuple[str, int]) -> None:
    srv = ThreadingHTTPServer(addr, Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def main() -> None:
    args = sys.argv[1:]
    path = args[args.index("-f") + 1]
    cfg = yaml.safe_load(open(path))
    STATE["config"] = cfg
    c = cfg["config"]
    for key in ("adminAddr", "statsAddr", "readinessAddr"):
        serve(_addr(c[key]))
    for b in cfg["binds"]:
        serve(("127.0.0.1", int(b["port"])))
    if os.environ.get("FAKE_TRACEBACK") == "1":
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            traceback.print_exc()
    print("fake gateway started", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    mtime = os.stat(path).st_mtime_ns
    while not stop.wait(0.2):
        m = os.stat(path).st_mtime_ns
        if m == mtime:
            continue
        mtime = m
        try:
            new = yaml.safe_load(open(path))
            if not isinstance(new, dict) or "binds" not in new:
                raise ValueError("binds: field required")
            STATE["config"] = new
            STATE["ok"] += 1
        except Exception as exc:  # noqa: BLE001
            print(f"reload failed: {exc}", file=sys.stderr, flush=True)
            STATE["failed"] += 1
    sys.exit(0)


if __name__ == "__main__":
    main()
