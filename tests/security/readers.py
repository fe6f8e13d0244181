"""Upstreams that say how they read a request, for the differential tests.

* nginx (real, from Debian): ``location`` blocks by path and ``server_name`` by Host,
  answering ``ROUTE|$uri|$host|$request_uri`` -- its own route decision and reading.
* uvicorn (real): a bare ASGI app answering the ``path`` it decoded, its ``raw_path``
  and the Host it saw, as JSON.
* Tomcat's reading is computed from the forwarded raw path (``tomcat_reading``), as
  Tomcat's CoyoteAdapter does it: path parameters removed from every segment, then
  percent-decoding, then backslash and dot-segment normalisation.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote

from tests.support.harness import ReadyProcess, free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def route_of(path: str, host: str) -> str:
    """The route the gateway config of these tests gives (path, host): the admin area
    is Host ``admin.test`` or the path ``/admin`` and below; all else is public."""
    h = host.lower().rstrip(".")
    if h.rsplit(":", 1)[0] == "admin.test":
        return "admin"
    if path == "/admin" or path.startswith("/admin/"):
        return "admin"
    return "public"


def tomcat_reading(raw_path: str) -> str:
    """The path Tomcat would serve for a forwarded raw path."""
    path = raw_path.split("?", 1)[0]
    path = "/".join(seg.split(";", 1)[0] for seg in path.split("/"))
    path = unquote(path, encoding="latin-1").replace("\\", "/")
    if not path.startswith("/"):
        path = "/" + path
    norm = posixpath.normpath(path)
    norm = "/" + norm.lstrip("/")  # normpath keeps a leading '//'
    if path.endswith("/") and norm != "/":
        norm += "/"
    return norm


class Nginx:
    def __init__(self, workdir: Path):
        self.port = free_port()
        d = workdir / "nginx"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(
            textwrap.dedent(
                f"""\
                daemon off;
                worker_processes 1;
                pid {d}/nginx.pid;
                error_log {d}/error.log warn;
                events {{ worker_connections 256; }}
                http {{
                    access_log off;
                    client_body_temp_path {d}/body;
                    proxy_temp_path {d}/proxy;
                    fastcgi_temp_path {d}/fastcgi;
                    uwsgi_temp_path {d}/uwsgi;
                    scgi_temp_path {d}/scgi;
                    default_type text/plain;
                    server {{
                        listen 127.0.0.1:{self.port} default_server;
                        server_name _;
                        location ~ ^/admin(/.*)?$ {{ return 200 "admin|$uri|$host|$request_uri"; }}
                        location / {{ return 200 "public|$uri|$host|$request_uri"; }}
                    }}
                    server {{
                        listen 127.0.0.1:{self.port};
                        server_name admin.test;
                        location / {{ return 200 "admin|$uri|$host|$request_uri"; }}
                    }}
                }}
                """
            )
        )
        self.proc = subprocess.Popen(
            [NGINX, "-e", str(d / "error.log"), "-p", str(d), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        from tests.support.harness import wait_for

        import socket

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read().decode()
                return False

        wait_for(up, timeout=10, message="nginx listening")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        from tests.support.harness import terminate

        terminate(self.proc)


UVICORN_APP = """
import json, sys

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    host = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
    body = json.dumps({"path": scope["path"], "raw_path": scope["raw_path"].decode("latin-1"),
                       "host": host}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})

if __name__ == "__main__":
    import uvicorn
    print("READY", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", http="httptools")
"""


class Uvicorn:
    def __init__(self, workdir: Path):
        self.port = free_port()
        d = workdir / "uvicorn"
        d.mkdir(parents=True, exist_ok=True)
        script = d / "reader.py"
        script.write_text(UVICORN_APP)
        self.proc = ReadyProcess(d, "uvicorn", [sys.executable, str(script), str(self.port)], "READY")
        import socket

        from tests.support.harness import wait_for

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(up, timeout=15, message="uvicorn listening")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.stop()
