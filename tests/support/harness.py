"""Process harness for black-box tests of the agentgw gateway.

Everything runs as real processes on 127.0.0.1:

* :class:`Upstream`  - ``python -m tests.support.upstream`` (aiohttp based).
* :class:`Gateway`   - ``python -m agentgw run -f CONFIG``.
* :class:`Harness`   - owns the processes of one test (or one module) and stops
  them at teardown, failing the test when a gateway printed a Python traceback.

Config helpers (:func:`route`, :func:`gateway_config`) build the agentgateway
style YAML document with fresh free ports so that tests stay short.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = REPO_ROOT / "src"

TRACEBACK_MARKER = "Traceback (most recent call last)"
READY_TIMEOUT = 15.0


# --------------------------------------------------------------------------- #
# small utilities
# --------------------------------------------------------------------------- #
_HANDED_OUT: collections.deque = collections.deque(maxlen=512)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, and not one this process handed
    out recently: the kernel may offer a just-closed port again at once, and a config
    built from several calls (a bind, the admin, stats and readiness addresses) must not
    get the same port twice."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
            return port
    raise AssertionError("no fresh free port")


def closed_port() -> int:
    """A port where nothing listens (connections are refused)."""
    return free_port()


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes: the in-tree package and tests importable."""
    env = dict(os.environ)
    paths = [str(SRC_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSTARTUP", None)
    if extra:
        env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 30.0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m agentgw ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "agentgw", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(),
        cwd=str(cwd or REPO_ROOT),
    )


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {message}{extra}")
        time.sleep(interval)


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "<no file>"
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _http_get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = str(addr).rpartition(":")
    return host or "127.0.0.1", int(port)


# --------------------------------------------------------------------------- #
# TLS material
# --------------------------------------------------------------------------- #
@dataclasses.dataclass
class TLSFiles:
    ca_cert: Path
    cert: Path
    key: Path
    ca: Any  # trustme.CA

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx


def make_tls_files(directory: Path, *names: str) -> TLSFiles:
    """A fresh CA and a server certificate (chain + key) written as PEM files."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    names = names or ("localhost", "127.0.0.1", "*.example.com")
    server = ca.issue_cert(*names)
    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca.cert_pem.write_to_path(str(ca_path))
    with open(cert_path, "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    server.private_key_pem.write_to_path(str(key_path))
    return TLSFiles(ca_path, cert_path, key_path, ca)


# --------------------------------------------------------------------------- #
# config builders
# --------------------------------------------------------------------------- #
def backend_ref(b: Any) -> dict:
    """``"127.0.0.1:1234"`` | ``("127.0.0.1:1234", weight)`` | dict -> backend dict."""
    if isinstance(b, dict):
        return dict(b)
    if isinstance(b, tuple):
        host, weight = b
        return {"host": host, "weight": weight}
    return {"host": str(b)}


def route(
    name: str,
    backends: Iterable[Any] = (),
    *,
    prefix: str | None = None,
    exact: str | None = None,
    regex: str | None = None,
    method: str | None = None,
    headers: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
    hostnames: list[str] | None = None,
    policies: dict | None = None,
    matches: list[dict] | None = None,
) -> dict:
    """Build one route.  ``headers``/``query`` map a name to an exact value, or to
    ``{"regex": pattern}``.  Without any path argument the route matches prefix ``/``."""
    r: dict[str, Any] = {"name": name}
    if hostnames:
        r["hostnames"] = list(hostnames)
    if matches is None:
        m: dict[str, Any] = {}
        if exact is not None:
            m["path"] = {"exact": exact}
        elif regex is not None:
            m["path"] = {"regex": regex}
        else:
            m["path"] = {"pathPrefix": prefix or "/"}
        if method:
            m["method"] = method

        def _values(d: dict[str, Any]) -> list[dict]:
            out = []
            for k, v in d.items():
                val = v if isinstance(v, dict) else {"exact": str(v)}
                out.append({"name": k, "value": val})
            return out

        if headers:
            m["headers"] = _values(headers)
        if query:
            m["query"] = _values(query)
        matches = [m]
    r["matches"] = matches
    if policies:
        r["policies"] = policies
    r["backends"] = [backend_ref(b) for b in backends]
    return r


def gateway_config(
    routes: list[dict],
    *,
    protocol: str = "HTTP",
    tls: TLSFiles | dict | None = None,
    listener_hostname: str | None = None,
    limits: dict | None = None,
    backends: list[dict] | None = None,
    logging_format: str | None = "json",
    extra_config: dict | None = None,
    extra_binds: list[dict] | None = None,
    port: int | None = None,
) -> dict:
    """A full agentgw config document with free ports for every address."""
    listener: dict[str, Any] = {"name": "main", "protocol": protocol}
    if listener_hostname:
        listener["hostname"] = listener_hostname
    if tls is not None:
        listener["tls"] = {"cert": str(tls.cert), "key": str(tls.key)} if isinstance(tls, TLSFiles) else dict(tls)
    listener["routes"] = routes
    cfg: dict[str, Any] = {
        "config": {
            "adminAddr": f"127.0.0.1:{free_port()}",
            "statsAddr": f"127.0.0.1:{free_port()}",
            "readinessAddr": f"127.0.0.1:{free_port()}",
        },
        "binds": [{"port": port or free_port(), "listeners": [listener]}],
    }
    if logging_format:
        cfg["config"]["logging"] = {"format": logging_format}
    if limits:
        place_limits(cfg, limits)
    if extra_config:
        cfg["config"].update(extra_config)
    if extra_binds:
        cfg["binds"].extend(extra_binds)
    if backends:
        cfg["backends"] = backends
    return cfg


# Where each frontend limit lives in the config file.  ``config.limits`` is the
# agentgw extension; body size and idle timeout use the agentgateway fields.
LIMIT_LOCATIONS: dict[str, tuple[str, ...]] = {
    "maxHeaderBytes": ("config", "limits", "maxHeaderBytes"),
    "headerReadTimeout": ("config", "limits", "headerReadTimeout"),
    "maxConnections": ("config", "limits", "maxConnections"),
    "maxBodyBytes": ("frontendPolicies", "http", "maxBufferSize"),
    "idleTimeout": ("frontendPolicies", "http", "http1IdleTimeout"),
}


def place_limits(cfg: dict, limits: dict[str, Any]) -> dict:
    """Put ``{maxHeaderBytes, maxBodyBytes, headerReadTimeout, idleTimeout,
    maxConnections}`` at their locations in ``cfg`` (in place; returns cfg)."""
    for key, value in limits.items():
        path = LIMIT_LOCATIONS.get(key, ("config", "limits", key))
        node = cfg
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return cfg


def with_routes(cfg: dict, routes: list[dict], bind: int = 0, listener: int = 0) -> dict:
    """A deep copy of ``cfg`` whose listener routes are replaced."""
    new = copy.deepcopy(cfg)
    new["binds"][bind]["listeners"][listener]["routes"] = routes
    return new


def dump_yaml(cfg: dict | str) -> str:
    if isinstance(cfg, str):
        return cfg
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


# --------------------------------------------------------------------------- #
# Prometheus text parsing
# --------------------------------------------------------------------------- #
_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclasses.dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    out: list[Sample] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        labels = {k: v for k, v in _LABEL_RE.findall(m.group(3) or "")}
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        out.append(Sample(m.group(1), labels, value))
    return out


def metric_sum(samples: list[Sample], name: str, **labels: str) -> float | None:
    """Sum of the samples called ``name`` whose labels include ``labels``;
    None when no sample has that name at all."""
    found = [s for s in samples if s.name == name]
    if not found:
        return None
    return sum(s.value for s in found if all(s.labels.get(k) == str(v) for k, v in labels.items()))


# --------------------------------------------------------------------------- #
# raw HTTP over sockets (smuggling, pipelining, 100-continue ...)
# --------------------------------------------------------------------------- #
class ConnectionClosed(Exception):
    """The peer closed the connection before a full response head arrived."""

    def __init__(self, partial: bytes):
        super().__init__(f"connection closed; partial data: {partial[:300]!r}")
        self.partial = partial


@dataclasses.dataclass
class RawResponse:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] | dict[str, str] = (),
    body: bytes = b"",
    host: str | None = "gw.test",
    content_length: bool = True,
) -> bytes:
    """Serialise an HTTP/1.1 request exactly as given (no normalisation)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names = {k.lower() for k, _ in items}
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    lines.extend(f"{k}: {v}" for k, v in items)
    if body and content_length and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawHTTP:
    """A client socket with a tiny HTTP/1.1 response parser."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ):
        sock = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    # -- plumbing -----------------------------------------------------------
    def __enter__(self) -> "RawHTTP":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t: float) -> None:
        self.sock.settimeout(t)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_exact(self, n: int) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self._fill():
                data, self.buf = self.buf, b""
                return data, False
        data, self.buf = self.buf[:n], self.buf[n:]
        return data, True

    def _read_line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    # -- public API ---------------------------------------------------------
    def read_response(self, method: str = "GET") -> RawResponse:
        """Read one response (1xx responses are returned as they come)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionClosed(self.buf)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        resp = RawResponse(status, reason, version, headers, b"", True)
        if method.upper() == "HEAD" or status < 200 or status in (204, 304):
            return resp
        te = (resp.header("transfer-encoding") or "").lower()
        cl = resp.header("content-length")
        if "chunked" in te:
            body = b""
            while True:
                line = self._read_line()
                if line is None:
                    resp.body, resp.complete = body, False
                    return resp
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self._read_line()
                        if t is None:
                            resp.body, resp.complete = body, False
                            return resp
                        if t == b"":
                            break
                    break
                data, ok = self._read_exact(size)
                body += data
                if not ok:
                    resp.body, resp.complete = body, False
                    return resp
                if self._read_line() is None:
                    resp.body, resp.complete = body, False
                    return resp
            resp.body = body
        elif cl is not None:
            data, ok = self._read_exact(int(cl))
            resp.body, resp.complete = data, ok
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def request(self, method: str, target: str, headers=(), body: bytes = b"", **kw) -> RawResponse:
        self.send(build_request(method, target, headers, body, **kw))
        return self.read_response(method)

    def read_until_close(self, timeout: float = 5.0) -> bytes:
        """Everything until EOF; raises TimeoutError if the peer keeps it open."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while self._fill():
            if time.monotonic() > deadline:
                raise TimeoutError("peer did not close the connection")
        data, self.buf = self.buf, b""
        return data

    def closed_by_peer(self, timeout: float = 3.0) -> bool:
        """True when the peer closes (EOF/RST) within ``timeout`` seconds."""
        try:
            self.read_until_close(timeout)
            return True
        except (TimeoutError, socket.timeout):
            return False


# --------------------------------------------------------------------------- #
# processes
# --------------------------------------------------------------------------- #
def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and its process group (helpers run in their own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def terminate(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then the whole group killed if it hasn't exited within ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)


class ReadyProcess:
    """A helper server run as a subprocess that prints a line matching ``ready`` (a regex)
    once it listens; ``ready_match`` holds that match. Output goes to ``<workdir>/<label>.out``."""

    def __init__(self, workdir: Path, label: str, cmd: list[str], ready: str, timeout: float = 30.0):
        workdir.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.out_path = workdir / f"{label}.out"
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(),
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(ready, self.out_path.read_text(errors="replace"))
            if m:
                self.ready_match = m
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{label} did not start:\n{self.out_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        terminate(self.proc)
        self._out.close()


class _Proc:
    proc: subprocess.Popen
    stdout_path: Path
    stderr_path: Path

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def logs(self) -> str:
        return (
            f"--- stdout ({self.stdout_path}) ---\n{_tail(self.stdout_path)}\n"
            f"--- stderr ({self.stderr_path}) ---\n{_tail(self.stderr_path)}"
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _kill_group(self) -> None:
        kill_group(self.proc)


class Upstream(_Proc):
    """The aiohttp test upstream in its own process (one or more ports)."""

    def __init__(self, workdir: Path, name: str = "upstream", nports: int = 1, tls: TLSFiles | None = None):
        self.name = name
        self.tls = tls
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / f"upstream-{name}.stdout"
        self.stderr_path = workdir / f"upstream-{name}.stderr"
        cmd = [sys.executable, "-m", "tests.support.upstream", "--name", name]
        for _ in range(nports):
            cmd += ["--port", "0"]
        if tls:
            cmd += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(),
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while True:
            m = re.search(r"^READY ([\d ]+)$", self.stdout_text(), re.M)
            if m:
                self.ports = [int(p) for p in m.group(1).split()]
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                logs = self.logs()
                self.stop()
                raise RuntimeError(f"upstream {name} did not become ready\n{logs}")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the first port, for a route backend."""
        return f"127.0.0.1:{self.port}"

    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _get(self, path: str) -> Any:
        if self.tls:
            ctx = self.tls.client_context()
            conn = http.client.HTTPSConnection("localhost", self.port, timeout=5, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def counts(self) -> dict[str, int]:
        """Requests served per path (queried directly, not through a gateway)."""
        return self._get("/count")["counts"]

    def count(self, path: str) -> int:
        return self.counts().get(path, 0)

    def request_log(self) -> list[list[str]]:
        """``[method, raw_path]`` of every request served (most recent 2000)."""
        return self._get("/count")["log"]

    def reset_counts(self) -> None:
        self._get("/count?reset=1")

    def stop(self) -> None:
        terminate(self.proc)
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass


class Gateway(_Proc):
    """An ``agentgw run`` process plus helpers to talk to it."""

    def __init__(
        self,
        workdir: Path,
        config: dict | str,
        *,
        workers: int | None = None,
        extra_args: Iterable[str] = (),
        wait_ready: bool = True,
        ready_timeout: float = READY_TIMEOUT,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config_path = workdir / "config.yaml"
        self.stdout_path = workdir / "gateway.stdout"
        self.stderr_path = workdir / "gateway.stderr"
        self.config: dict = yaml.safe_load(config) if isinstance(config, str) else copy.deepcopy(config)
        self.config_path.write_text(dump_yaml(config))
        c = self.config.get("config") or {}
        self.admin_addr = split_addr(c["adminAddr"])
        self.stats_addr = split_addr(c["statsAddr"])
        self.readiness_addr = split_addr(c["readinessAddr"])
        self.ports = [int(b["port"]) for b in self.config.get("binds", [])]
        # ``command`` replaces ``python -m agentgw`` (harness self-tests only)
        base = list(command) if command else [sys.executable, "-m", "agentgw"]
        self.cmd = base + ["run", "-f", str(self.config_path)]
        # with --workers each worker reloads on its own; the merged reload counter
        # rises by one per worker
        self.workers = workers or 1
        if workers:
            self.cmd += ["--workers", str(workers)]
        self.cmd += list(extra_args)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(env),
            cwd=str(workdir),
            start_new_session=True,
        )
        self.returncode: int | None = None
        self.stop_problem: str | None = None
        if wait_ready:
            self.wait_ready(ready_timeout)

    # -- addresses ----------------------------------------------------------
    def _scheme(self, bind: int = 0) -> str:
        listeners = self.config["binds"][bind].get("listeners") or [{}]
        return "https" if str(listeners[0].get("protocol", "HTTP")).upper() == "HTTPS" else "http"

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, bind: int) -> str:
        return f"{self._scheme(bind)}://127.0.0.1:{self.ports[bind]}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_addr[0]}:{self.admin_addr[1]}"

    @property
    def stats_url(self) -> str:
        return f"http://{self.stats_addr[0]}:{self.stats_addr[1]}"

    @property
    def readiness_url(self) -> str:
        return f"http://{self.readiness_addr[0]}:{self.readiness_addr[1]}"

    # -- lifecycle ----------------------------------------------------------
    def is_ready(self) -> bool:
        try:
            status, _ = _http_get(*self.readiness_addr, "/healthz/ready", timeout=1.0)
            return status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"gateway exited with {self.proc.returncode} before becoming ready\n"
                    f"cmd: {' '.join(self.cmd)}\n{self.logs()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"gateway not ready after {timeout}s ({self.readiness_url}/healthz/ready)\n{self.logs()}"
                )
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send ``sig`` (SIGTERM) to the main process, wait; returns the exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.stop_problem = f"gateway did not exit within {timeout}s of signal {sig}"
                self._kill_group()
        else:
            # make sure no orphaned worker of ours survives the main process
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass
        self.returncode = self.proc.returncode
        return self.returncode

    def has_traceback(self) -> bool:
        return TRACEBACK_MARKER in self.stdout_text() or TRACEBACK_MARKER in self.stderr_text()

    # -- observability ------------------------------------------------------
    def metrics_text(self) -> str:
        status, body = _http_get(*self.stats_addr, "/metrics", timeout=3.0)
        assert status == 200, f"/metrics returned {status}"
        return body.decode()

    def metrics(self) -> list[Sample]:
        return parse_metrics(self.metrics_text())

    def metric(self, name: str, **labels: str) -> float | None:
        return metric_sum(self.metrics(), name, **labels)

    def config_dump(self) -> Any:
        status, body = _http_get(*self.admin_addr, "/config_dump", timeout=3.0)
        assert status == 200, f"/config_dump returned {status}: {body[:300]!r}"
        return json.loads(body)

    def access_log(self) -> list[dict]:
        """JSON objects printed on stdout (one per line)."""
        out = []
        for line in self.stdout_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def wait_access_log(self, predicate, timeout: float = 5.0) -> dict:
        """The first access-log entry matching ``predicate`` (waits for it)."""

        def find():
            for e in self.access_log():
                if predicate(e):
                    return e
            return None

        try:
            return wait_for(find, timeout, message="access log entry")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    # -- hot reload ---------------------------------------------------------
    def _reload_counts(self) -> tuple[float, float] | None:
        try:
            samples = self.metrics()
        except (OSError, AssertionError):
            return None
        ok = metric_sum(samples, "agentgw_config_reloads_total", result="ok")
        failed = metric_sum(samples, "agentgw_config_reloads_total", result="failed")
        if ok is None:
            return None
        return ok, failed or 0.0

    def write_config(self, config: dict | str) -> None:
        """Atomically replace the config file (mtime guaranteed to change)."""
        text = dump_yaml(config)
        try:
            old_mtime = self.config_path.stat().st_mtime_ns
        except FileNotFoundError:
            old_mtime = 0
        tmp = self.config_path.with_name(f".{self.config_path.name}.{time.monotonic_ns()}.tmp")
        tmp.write_text(text)
        new_mtime = max(time.time_ns(), old_mtime + 1_100_000_000)
        os.utime(tmp, ns=(new_mtime, new_mtime))
        os.replace(tmp, self.config_path)

    def reload(self, config: dict | str, expect: str | None = "ok", timeout: float = 10.0) -> str:
        """Rewrite the config file and wait until the gateway processed it.

        Returns ``"ok"`` or ``"failed"`` (from ``agentgw_config_reloads_total``,
        or from a change of the admin config_dump when that metric is absent).
        With ``expect`` set, asserts the outcome.
        """
        before = self._reload_counts()
        dump_before = None
        if before is None:
            try:
                dump_before = self.config_dump()
            except (OSError, AssertionError, ValueError):
                dump_before = None
        self.write_config(config)
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway died during reload (rc={self.proc.returncode})\n{self.logs()}")
            if before is not None:
                now = self._reload_counts()
                if now is not None:
                    if now[0] >= before[0] + self.workers:  # every worker has reloaded
                        result = "ok"
                        break
                    if now[1] > before[1]:
                        result = "failed"
                        break
            else:
                try:
                    if self.config_dump() != dump_before:
                        result = "ok"
                        break
                except (OSError, AssertionError, ValueError):
                    pass
                if expect == "failed" and time.monotonic() > deadline - timeout + 3:
                    result = "failed"
                    break
            time.sleep(0.1)
        if result is None:
            raise AssertionError(f"reload not observed within {timeout}s\n{self.logs()}")
        if result == "ok":
            self.config = yaml.safe_load(config) if isinstance(config, str) else copy.deepcopy(config)
        if expect is not None and result != expect:
            raise AssertionError(f"reload result {result!r}, expected {expect!r}\n{self.logs()}")
        return result


class Harness:
    """Owns upstreams and gateways; ``close()`` stops them all.

    ``close()`` returns a list of problems (tracebacks printed by a gateway,
    gateways that ignored SIGTERM); the fixtures turn them into test failures.
    """

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.upstreams: list[Upstream] = []
        self.gateways: list[Gateway] = []
        self._tls: TLSFiles | None = None
        self._n = 0

    def _dir(self, prefix: str) -> Path:
        self._n += 1
        return self.workdir / f"{prefix}{self._n}"

    def upstream(self, name: str | None = None, nports: int = 1, tls: TLSFiles | None = None) -> Upstream:
        u = Upstream(self.workdir / "upstreams", name or f"up{self._n + 1}", nports=nports, tls=tls)
        self._n += 1
        self.upstreams.append(u)
        return u

    def gateway(self, config: dict | str, **kw: Any) -> Gateway:
        g = Gateway(self._dir("gw"), config, **kw)
        self.gateways.append(g)
        return g

    def tls(self) -> TLSFiles:
        if self._tls is None:
            self._tls = make_tls_files(self.workdir / "tls")
        return self._tls

    def close(self) -> list[str]:
        problems: list[str] = []
        for g in self.gateways:
            g.stop()
            if g.stop_problem:
                problems.append(f"{g.stop_problem}\n{g.logs()}")
            if g.has_traceback():
                problems.append(f"gateway printed a Python traceback\n{g.logs()}")
        for u in self.upstreams:
            u.stop()
        return problems


# --------------------------------------------------------------------------- #
# assertions
# --------------------------------------------------------------------------- #
def assert_gateway_error(
    status: int, body: bytes | str, expected_status: int, expected_type: str | None = None
) -> dict:
    """Check a gateway-generated error: ``{"error": {"type": ..., "message": ...}}``."""
    if isinstance(body, str):
        body = body.encode()
    assert status == expected_status, f"status {status} != {expected_status}; body={body[:500]!r}"
    assert b"Traceback" not in body, body[:2000]
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"gateway error body is not JSON: {body[:500]!r}") from None
    assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), doc
    err = doc["error"]
    assert isinstance(err.get("type"), str) and isinstance(err.get("message"), str), doc
    if expected_type is not None:
        assert err["type"] == expected_type, f"error type {err['type']!r} != {expected_type!r}: {doc}"
    return err


def echo_headers(echo: dict) -> list[tuple[str, str]]:
    """``[(lower-name, value), ...]`` from the upstream's /echo JSON."""
    return [(k.lower(), v) for k, v in echo["headers"]]


def echo_header(echo: dict, name: str) -> list[str]:
    name = name.lower()
    return [v for k, v in echo_headers(echo) if k == name]
