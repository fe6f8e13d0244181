"""``--workers N``: N gateway processes sharing the traffic ports through SO_REUSEPORT.

The supervisor validates the config, makes sure no other process listens on its ports
(see ``ports``: it holds the port locks, probes each traffic port and binds the admin
ports before any worker starts), starts the workers (each a plain ``agentgw run`` with a
private control socket, each watching and hot-reloading the file on its own, asking the
supervisor before it binds a port), restarts a worker that dies (a worker that exits
before the gateway was first ready stops the gateway instead), and serves the admin,
stats and readiness ports itself:

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

from .admin.server import AdminHandler, AdminServer, fetch_unix, serve_admin
from .config import ConfigError, load_config_file
from .ports import (
    PortInUse,
    PortLock,
    admin_addrs,
    admin_error,
    admin_port_owner,
    own_conflicts,
    port_keys,
    probe,
    serve_claims,
)
from .telemetry.metrics import merge_snapshots, render

log = logging.getLogger("agentgw.supervisor")


class Supervisor:
    def __init__(self, config_path: str, workers: int):
        self.config_path = os.path.abspath(config_path)
        self.n = workers
        self.dir = tempfile.mkdtemp(prefix="agentgw-")
        self.procs: list[subprocess.Popen | None] = [None] * workers
        self.stopping = False
        self.claim_path = os.path.join(self.dir, "ports.sock")
        self.locks: dict[int, PortLock] = {}
        self.admin: list[tuple[str, str, str]] = []
        self.host = "0.0.0.0"
        self.last_metrics: dict[int, dict] = {}  # worker index -> its last /metrics.json

    def sock(self, i: int) -> str:
        return os.path.join(self.dir, f"w{i}.sock")

    def spawn(self, i: int) -> None:
        cmd = [sys.executable, "-m", "agentgw", "run", "-f", self.config_path]
        cmd += ["--control-socket", self.sock(i), "--claim-socket", self.claim_path]
        proc = self.procs[i] = subprocess.Popen(cmd)
        log.info("started worker %d (pid %d)", i, proc.pid)

    async def ready(self) -> bool:
        for i in range(self.n):
            try:
                status, _ = await fetch_unix(self.sock(i), "/healthz/ready")
            except (TimeoutError, OSError, ValueError, IndexError):
                return False
            if status != 200:
                return False
        return True

    async def metrics_text(self) -> bytes:
        """Every worker's metrics, merged. A worker that does not answer this time (busy
        compiling a reload, say) counts with its last snapshot: leaving it out would make
        the gateway's counters go backwards, which Prometheus reads as a reset."""
        for i in range(self.n):
            try:
                status, body = await fetch_unix(self.sock(i), "/metrics.json")
                if status == 200:
                    self.last_metrics[i] = orjson.loads(body)
            except (TimeoutError, OSError, ValueError, IndexError):
                continue
        return render(merge_snapshots([self.last_metrics[i] for i in range(self.n) if i in self.last_metrics]))

    async def config_dump(self):
        for i in range(self.n):
            try:
                status, body = await fetch_unix(self.sock(i), "/config_dump")
                if status == 200:
                    return orjson.loads(body)
            except (TimeoutError, OSError, ValueError, IndexError):
                continue
        return {}

    def decide(self, port: int, host: str, key: str) -> None:
        """May this gateway serve traffic ``port``? Yes if it already does (a sibling
        claimed it), else take the port lock and probe; ``PortInUse`` otherwise."""
        if port in self.locks:
            return
        owner = admin_port_owner(port, self.admin)
        if owner is not None:
            raise PortInUse(f"{key}: port {port} is already used by {owner}")
        lock = PortLock.acquire(port, key, asyncio.get_running_loop())
        try:
            probe(host or self.host, port, key)
        except PortInUse:
            lock.release()
            raise
        self.locks[port] = lock

    def release_ports(self) -> None:
        for lock in self.locks.values():
            lock.release()
        self.locks.clear()

    async def run(self) -> int:
        cfg = load_config_file(self.config_path)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal():
            self.stopping = True
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        if cfg.config.enable_ipv6:
            self.host = "::"
        self.admin = admin_addrs(cfg)
        handler = AdminHandler(config_dump=self.config_dump, ready=self.ready, metrics_text=self.metrics_text)
        servers: list[AdminServer | asyncio.AbstractServer] = []
        try:  # every port is ours before any worker starts
            keys = port_keys(cfg)
            own_conflicts(keys, self.admin)
            for port, key in keys.items():
                self.decide(port, self.host, key)
            for key, addr, what in self.admin:
                try:
                    srv = await serve_admin(loop, addr, handler)
                except OSError as exc:
                    raise admin_error(key, addr, what, exc) from None
                if srv is not None:
                    servers.append(srv)
        except PortInUse as exc:
            for s in servers:
                s.close()
            self.release_ports()
            log.error("cannot start: %s", exc)
            return 1
        servers.append(await serve_claims(self.claim_path, self.decide))
        for i in range(self.n):
            self.spawn(i)
        started = failed = False
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
            if not started and not stop.is_set():
                started = await self.ready()
            for i, p in enumerate(self.procs):
                if p is not None and p.poll() is not None and not self.stopping:
                    if not started:  # e.g. a port taken in the meantime: fail, don't loop
                        log.error("worker %d exited with %s while starting; stopping", i, p.returncode)
                        failed = self.stopping = True
                        stop.set()
                        break
                    log.warning("worker %d exited with %s; restarting", i, p.returncode)
                    self.spawn(i)
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        # the workers stop listening at once (after connectionMinTerminationDeadline, if
        # set: a port lock taken meanwhile still finds the port in use); they drain on
        # their own
        self.release_ports()
        codes = []
        for p in self.procs:
            if p is None:
                continue
            while p.poll() is None:
                await asyncio.sleep(0.05)
            codes.append(p.returncode)
        for s in servers:
            s.close()
        return 0 if not failed and all(c == 0 for c in codes) else 1


def run_supervisor(config_path: str, workers: int) -> int:
    from .compile import check_config_file

    try:
        check_config_file(config_path)  # compiled too: refused fields stop it before any worker starts
    except ConfigError as exc:
        log.error("invalid config %s:\n%s", config_path, exc)
        return 1
    return uvloop.run(Supervisor(config_path, workers).run())
