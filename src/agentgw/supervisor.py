"""``--workers N``: N gateway processes sharing the traffic ports through SO_REUSEPORT.

The supervisor validates the config, starts the workers (each a plain ``agentgw run``
with a private control socket, each watching and hot-reloading the file on its own),
restarts a worker that dies, and serves the admin, stats and readiness ports itself:

* ``/metrics`` merges every worker's snapshot, so counters are totals for the gateway
  and a scrape doesn't land on one random worker;
* ``/healthz/ready`` is ready when every worker is;
* ``/config_dump`` comes from the first worker.

SIGTERM/SIGINT are passed to the workers, which drain; the supervisor exits when they
have (0 when all exited cleanly).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile

import orjson
import uvloop

from .admin.server import AdminHandler, fetch_unix, serve_admin
from .config import ConfigError, load_config_file
from .telemetry.metrics import merge_snapshots, render

log = logging.getLogger("agentgw.supervisor")


class Supervisor:
    def __init__(self, config_path: str, workers: int):
        self.config_path = os.path.abspath(config_path)
        self.n = workers
        self.dir = tempfile.mkdtemp(prefix="agentgw-")
        self.procs: list[subprocess.Popen | None] = [None] * workers
        self.stopping = False

    def sock(self, i: int) -> str:
        return os.path.join(self.dir, f"w{i}.sock")

    def spawn(self, i: int) -> None:
        cmd = [sys.executable, "-m", "agentgw", "run", "-f", self.config_path, "--control-socket", self.sock(i)]
        self.procs[i] = subprocess.Popen(cmd)
        log.info("started worker %d (pid %d)", i, self.procs[i].pid)

    async def ready(self) -> bool:
        for i in range(self.n):
            try:
                status, _ = await fetch_unix(self.sock(i), "/healthz/ready")
            except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                return False
            if status != 200:
                return False
        return True

    async def metrics_text(self) -> bytes:
        snaps = []
        for i in range(self.n):
            try:
                status, body = await fetch_unix(self.sock(i), "/metrics.json")
                if status == 200:
                    snaps.append(orjson.loads(body))
            except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                continue
        return render(merge_snapshots(snaps))

    async def config_dump(self):
        for i in range(self.n):
            try:
                status, body = await fetch_unix(self.sock(i), "/config_dump")
                if status == 200:
                    return orjson.loads(body)
            except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                continue
        return {}

    async def run(self) -> int:
        cfg = load_config_file(self.config_path)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal():
            self.stopping = True
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        for i in range(self.n):
            self.spawn(i)
        handler = AdminHandler(config_dump=self.config_dump, ready=self.ready, metrics_text=self.metrics_text)
        servers = []
        c = cfg.config
        for addr in {c.admin_addr, c.stats_addr, c.readiness_addr}:
            srv = await serve_admin(loop, addr, handler)
            if srv is not None:
                servers.append(srv)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            for i, p in enumerate(self.procs):
                if p is not None and p.poll() is not None and not self.stopping:
                    log.warning("worker %d exited with %s; restarting", i, p.returncode)
                    self.spawn(i)
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in self.procs:
            if p is None:
                continue
            while p.poll() is None:
                await asyncio.sleep(0.05)
            codes.append(p.returncode)
        for s in servers:
            s.close()
        return 0 if all(c == 0 for c in codes) else 1


def run_supervisor(config_path: str, workers: int) -> int:
    try:
        load_config_file(config_path)
    except ConfigError as exc:
        log.error("invalid config %s:\n%s", config_path, exc)
        return 1
    return uvloop.run(Supervisor(config_path, workers).run())
