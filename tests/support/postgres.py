"""A real PostgreSQL server for tests: a fresh cluster in a temporary directory.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user
(``runuser``), which Debian's package creates. The cluster has one password user and
database (``PostgresServer(user=…, password=…, database=…)``) and listens on 127.0.0.1
only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def _bin_dir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return dirs[-1] if dirs else None


class PostgresServer:
    def __init__(self, port: int, user: str = "agentgw", password: str = "agentgw", database: str = "agentgw"):
        bindir = _bin_dir()
        if bindir is None or not os.path.exists(os.path.join(bindir, "postgres")):
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
        self.port, self.user, self.password, self.database = port, user, password, database
        self.dir = tempfile.mkdtemp(prefix="agentgw-pg-")
        self._as: list[str] = []
        if os.getuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        if self._as:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run(
            os.path.join(bindir, "initdb"),
            "-D",
            data,
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [
                *self._as,
                os.path.join(bindir, "postgres"),
                "-D",
                data,
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                self.dir,
                "-c",
                "fsync=off",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"PostgreSQL did not start: {self.logs()}") from None
                time.sleep(0.1)
        if database != "postgres":
            self.sql("postgres", f'CREATE DATABASE "{database}"')

    def _run(self, *cmd: str) -> None:
        r = subprocess.run([*self._as, *cmd], capture_output=True, timeout=120)
        if r.returncode:
            raise AssertionError(f"{cmd[0]} failed: {r.stdout.decode()}{r.stderr.decode()}")

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def sql(self, database: str | None, query: str, *args):
        """Run one statement; the rows (as dicts) of a query."""
        import asyncio

        import asyncpg

        async def go():
            c = await asyncpg.connect(
                host="127.0.0.1",
                port=self.port,
                user=self.user,
                password=self.password,
                database=database or self.database,
            )
            try:
                return [dict(r) for r in await c.fetch(query, *args)]
            finally:
                await c.close()

        return asyncio.run(go())

    def logs(self) -> str:
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log", None) is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
