"""A real ``redis-server`` on 127.0.0.1 (the ``redis_server`` fixture, tests/conftest.py)."""

from __future__ import annotations

import socket
import subprocess
import time

from tests.support.harness import free_port


class RedisServer:
    def __init__(self, workdir, port: int | None = None, extra_args: tuple[str, ...] = ()):
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_args = extra_args  # e.g. a TLS port besides the plain one
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def command(self, *args: str) -> bytes:
        """One raw RESP command (for assertions), the reply's first line."""
        parts = [f"*{len(args)}\r\n".encode()] + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"".join(parts))
            return s.recv(65536)

    def call(self, *commands: tuple) -> list:
        """Commands pipelined on one connection (AUTH, SELECT then a query...): their
        replies, parsed (error replies as ``hiredis.ReplyError`` values)."""
        import hiredis

        reader = hiredis.Reader()
        out: list = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"".join(hiredis.pack_command(tuple(c)) for c in commands))
            while len(out) < len(commands):
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("redis-server closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    out.append(reply)
        return out
