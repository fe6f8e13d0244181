"""Building blocks for agentgw benchmarks (stdlib only).

Everything a scenario needs to stand up loopback targets and load them with wrk:

* tool checks (nginx, wrk, taskset), with an apt-get install fallback;
* free loopback ports;
* a process group that starts CPU-pinned subprocesses and always tears them down
  (normal exit, exceptions, Ctrl-C, SIGTERM, parent death);
* readiness waits (TCP, HTTP status) that fail fast if the process died;
* per-process-tree CPU time and RSS sampling from /proc;
* nginx config writers (fixed-body upstream, keep-alive reverse proxy);
* a wrk runner and output parser;
* median aggregation, a markdown table printer and JSON recording.

A scenario (see run.py) only describes its targets and acceptance bars.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"

LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """A benchmark could not run as specified (target down, tool missing, ...)."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

# binary -> Debian package providing it
APT_PACKAGES = {"nginx": "nginx", "wrk": "wrk", "taskset": "util-linux", "h2load": "nghttp2-client"}


def which(name: str) -> str | None:
    """shutil.which that also looks in the sbin dirs (nginx lives in /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        cand = Path(d) / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def ensure_tools(names: Iterable[str], install: bool = True, timeout: float = 600) -> dict[str, str]:
    """Return {name: path}; install missing tools with apt-get when allowed."""
    names = list(names)
    missing = [n for n in names if which(n) is None]
    if missing:
        pkgs = sorted({APT_PACKAGES.get(n, n) for n in missing})
        if not install:
            raise BenchError(f"missing tools {missing}; install them with: apt-get install -y {' '.join(pkgs)}")
        if os.geteuid() != 0 or which("apt-get") is None:
            raise BenchError(
                f"missing tools {missing} and cannot install them here (needs root + apt-get); "
                f"run: sudo apt-get install -y {' '.join(pkgs)}"
            )
        log(f"missing {', '.join(missing)}: installing Debian packages {', '.join(pkgs)} with apt-get ...")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        deadline = time.monotonic() + timeout
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *pkgs]):
            left = max(1.0, deadline - time.monotonic())
            try:
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=left)
            except subprocess.TimeoutExpired:
                raise BenchError(f"'{' '.join(cmd)}' timed out after {timeout:.0f}s") from None
            if r.returncode != 0:
                raise BenchError(f"'{' '.join(cmd)}' failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
        # Debian's postinst may start a system nginx on :80; it does not interfere (we use our own ports).
        still = [n for n in names if which(n) is None]
        if still:
            raise BenchError(f"tools still missing after apt-get install: {still}")
        log("install done")
    return {n: which(n) for n in names}  # type: ignore[misc]


def tool_version(argv: Sequence[str]) -> str:
    try:
        r = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    out = (r.stdout + r.stderr).strip().splitlines()
    return out[0].strip() if out else "unknown"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """n distinct free loopback TCP ports (all held open while choosing, so distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def parse_port_range(text: str) -> tuple[int, int]:
    """ "LO-HI" -> (LO, HI)."""
    lo, _, hi = text.partition("-")
    a, b = int(lo), int(hi or lo)
    if not 0 < a <= b < 65536:
        raise BenchError(f"bad port range {text!r}")
    return a, b


def ports_in_range(n: int, lo: int, hi: int) -> list[int]:
    """n distinct loopback TCP ports from [lo, hi] that bind right now (held while choosing).

    For scenarios told to stay inside a port range shared with other work on the machine;
    like ``free_ports`` the choice can still race with another process, which then shows
    as a target that does not come up."""
    socks: list[socket.socket] = []
    try:
        for port in range(lo, hi + 1):
            if len(socks) == n:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        if len(socks) < n:
            raise BenchError(f"only {len(socks)} free ports in {lo}-{hi}, need {n}")
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """Runs in the child between fork and exec: die with the parent (SIGTERM)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


@dataclass
class Proc:
    name: str
    argv: list[str]
    popen: subprocess.Popen
    log_path: Path
    cpu: str | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:]) or "(empty log)"

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


class ProcessGroup:
    """Starts pinned subprocesses and guarantees they are stopped.

    Each child runs in its own session (so a terminal Ctrl-C reaches only us and we
    stop children in order), gets PR_SET_PDEATHSIG so it dies if we are killed, and
    is stopped by process-group id: SIGTERM, then SIGKILL after a grace period.
    """

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cpu: str | int | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> Proc:
        argv = [str(a) for a in argv]
        full = argv
        if cpu is not None:
            full = [which("taskset") or "taskset", "-c", str(cpu), *argv]
        log_path = self.workdir / f"{name}.log"
        fh = open(log_path, "ab")
        try:
            popen = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        except OSError as e:
            raise BenchError(f"cannot start {name}: {e}") from None
        finally:
            fh.close()
        p = Proc(name, full, popen, log_path, None if cpu is None else str(cpu))
        self.procs.append(p)
        return p

    def stop(self, p: Proc, grace: float = 5.0) -> None:
        if p.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.popen.wait(timeout=grace)
        else:
            # leader gone; reap any stragglers left in its group (e.g. nginx workers)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in reversed(list(self.procs)):
            self.stop(p)

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()


class Interrupted(BaseException):
    """Raised from SIGTERM/SIGHUP/SIGALRM handlers so `with` blocks clean up."""


@contextlib.contextmanager
def signals_raise(deadline_s: float | None = None):
    """Turn SIGTERM/SIGHUP (and an optional overall deadline via SIGALRM) into exceptions."""

    def handler(signum, _frame):
        if signum == signal.SIGALRM:
            raise Interrupted(f"overall time limit of {deadline_s:.0f}s exceeded")
        raise Interrupted(f"received {signal.Signals(signum).name}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)}
    if deadline_s:
        signal.alarm(max(1, int(deadline_s)))
    try:
        yield
    finally:
        signal.alarm(0)
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def work_dir(keep: bool = False, prefix: str = "agentgw-bench-"):
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    except BenchError:
        keep = True  # keep configs and process logs for the post-mortem
        raise
    finally:
        if keep:
            log(f"kept work dir {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# Readiness
# ---------------------------------------------------------------------------


def _check_alive(proc: Proc | None) -> None:
    if proc is not None and not proc.alive():
        raise BenchError(
            f"{proc.name} exited with code {proc.popen.returncode} before becoming ready\n"
            f"command: {' '.join(proc.argv)}\n--- last log lines ({proc.log_path}) ---\n{proc.log_tail()}"
        )


def _timeout_error(what: str, timeout: float, proc: Proc | None, last: str) -> BenchError:
    msg = f"{what} not ready after {timeout:.0f}s (last: {last})"
    if proc is not None:
        msg += f"\n--- last log lines of {proc.name} ({proc.log_path}) ---\n{proc.log_tail()}"
    return BenchError(msg)


def wait_tcp(port: int, timeout: float = 10.0, proc: Proc | None = None, host: str = LOOPBACK) -> None:
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        _check_alive(proc)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise _timeout_error(f"{host}:{port}", timeout, proc, last)


def http_request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    # never use environment proxies for loopback benchmarking
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url: str, status: int = 200, timeout: float = 30.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        _check_alive(proc)
        try:
            code, _ = http_request(url, timeout=1.0)
            if code == status:
                return
            last = f"HTTP {code}"
        except (OSError, urllib.error.URLError) as e:
            last = str(getattr(e, "reason", e))
        time.sleep(0.1)
    raise _timeout_error(url, timeout, proc, last)


def smoke_post(url: str, body: bytes, expect_len: int | None = None, proc: Proc | None = None, what: str = "") -> None:
    """One POST like wrk's; fail clearly unless it is a 2xx (with the expected body size)."""
    try:
        code, data = http_request(
            url, method="POST", body=body, headers={"Content-Type": "application/json"}, timeout=5.0
        )
    except (OSError, urllib.error.URLError) as e:
        _check_alive(proc)
        raise BenchError(f"{what or url}: smoke POST failed: {getattr(e, 'reason', e)}") from None
    if not 200 <= code < 300:
        raise BenchError(f"{what or url}: smoke POST returned HTTP {code}: {data[:300]!r}")
    if expect_len is not None and len(data) != expect_len:
        raise BenchError(f"{what or url}: smoke POST body is {len(data)} bytes, expected {expect_len}")


# ---------------------------------------------------------------------------
# /proc sampling
# ---------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids += [int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        pass
    return kids


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo += _children(p)
    return out


def cpu_times(pid: int, tree: bool = True) -> tuple[float, float]:
    """(utime, stime) in seconds of pid (and its live descendants) from /proc/<pid>/stat."""
    user = system = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # fields after "(comm)", starting at field 3
        user += int(fields[11])  # utime (field 14)
        system += int(fields[12])  # stime (field 15)
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """utime+stime in seconds of pid (and its live descendants)."""
    return sum(cpu_times(pid, tree))


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine spent busy (all CPUs; /proc/stat, excluding idle+iowait).

    Steal (time the hypervisor ran other guests on our vCPUs) counts as busy: no process
    of ours used it, so it shows up as foreign load, which is what it is for a benchmark."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest* are inside user/nice)
            return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK
    return 0.0


class ForeignLoad:
    """CPU used by processes that are not ours (runner, wrk, started processes) over a window.

    Busy time of the whole machine minus the CPU of our process trees and of our waited-for
    children (wrk). Loopback softirq work can land outside any process, so expect a small
    positive baseline; a large value means something else was running.
    """

    def __init__(self, group: "ProcessGroup | None"):
        self.group = group

    def _ours(self) -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        if self.group is not None:
            for p in self.group.procs:
                if p.alive():
                    total += cpu_seconds(p.pid)
        return total

    def __enter__(self) -> "ForeignLoad":
        self.t0 = time.monotonic()
        self.busy0, self.ours0 = machine_busy_seconds(), self._ours()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.monotonic() - self.t0
        self.foreign_s = (machine_busy_seconds() - self.busy0) - (self._ours() - self.ours0)

    @property
    def cpu_fraction(self) -> float:
        """Foreign CPU as a fraction of one CPU (0.25 = a quarter of a core on average)."""
        return max(0.0, self.foreign_s) / self.wall if self.wall > 0 else 0.0


def wait_quiet(max_wait_s: float, threshold: float = 0.10, window_s: float = 1.0) -> float:
    """Wait (up to max_wait_s) until the machine's busy CPU over window_s is below threshold.

    Call it while none of our load is running (our idle processes count too, and should be ~0).
    Returns the last measured busy level in CPUs.
    """
    deadline = time.monotonic() + max_wait_s
    waited = False
    while True:
        a = machine_busy_seconds()
        time.sleep(window_s)
        busy = (machine_busy_seconds() - a) / window_s
        if busy < threshold or time.monotonic() >= deadline:
            if waited:
                log(f"machine {'quiet' if busy < threshold else 'still busy'} ({busy:.2f} CPU busy)")
            return busy
        if not waited:
            log(f"machine busy ({busy:.2f} CPU); waiting up to {max_wait_s:.0f}s for it to go quiet ...")
            waited = True


def rss_bytes(pid: int, tree: bool = True) -> int:
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_SIZE
    return total


# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------

# Shared by every nginx we start: one worker, no access log, keep-alive that does not
# close client connections every 1000 requests (nginx's default keepalive_requests),
# temp paths inside the prefix dir.
_NGINX_MAIN = """\
worker_processes 1;
pid {prefix}/{name}.pid;
error_log {prefix}/{name}.error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
  access_log off;
  server_tokens off;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_body_temp_path {prefix}/{name}-tmp/client;
  proxy_temp_path {prefix}/{name}-tmp/proxy;
  fastcgi_temp_path {prefix}/{name}-tmp/fastcgi;
  uwsgi_temp_path {prefix}/{name}-tmp/uwsgi;
  scgi_temp_path {prefix}/{name}-tmp/scgi;
{http}
}}
"""


def json_body(size: int = 1024, tag: str = "bench") -> bytes:
    """A JSON object of exactly `size` bytes (no '$', quote or backslash inside strings)."""
    head = '{"kind":"%s","id":"0123456789abcdef","pad":"' % tag
    tail = '"}'
    n = size - len(head) - len(tail)
    if n < 0:
        raise ValueError("size too small")
    body = (head + ("x" * n) + tail).encode()
    assert len(body) == size and b"$" not in body and b"'" not in body
    json.loads(body)
    return body


def _write_nginx(prefix: Path, name: str, http: str) -> Path:
    (prefix / f"{name}-tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / f"{name}.conf"
    conf.write_text(_NGINX_MAIN.format(prefix=prefix, name=name, http=http))
    return conf


def write_nginx_upstream(prefix: Path, name: str, port: int, body: bytes, h2c_port: int | None = None) -> Path:
    """nginx answering every request with 200 and a fixed JSON body; with ``h2c_port`` the
    same server also listens there for HTTP/2 with prior knowledge (cleartext)."""
    text = body.decode()
    if "'" in text or "$" in text or "\\" in text:
        raise ValueError("body must not contain quote, $ or backslash (nginx return text)")
    h2c = f"\n    listen {LOOPBACK}:{h2c_port} http2 reuseport backlog=4096;" if h2c_port else ""
    http = f"""\
  default_type application/json;
  server {{
    listen {LOOPBACK}:{port} reuseport backlog=4096;{h2c}
    location / {{
      return 200 '{text}';
    }}
  }}"""
    return _write_nginx(prefix, name, http)


def write_nginx_proxy(
    prefix: Path,
    name: str,
    port: int,
    upstream_port: int,
    keepalive: int = 64,
    host: str = "$host",
    http2: bool = False,
) -> Path:
    """nginx reverse proxy with a keep-alive upstream pool. ``host`` is the Host header sent
    upstream: ``$http_host`` keeps the client's port, which servers that check Host against
    DNS rebinding (the MCP SDK's) require. ``http2``: the client side is HTTP/2 with prior
    knowledge (h2c; ``listen ... http2``), the upstream side stays HTTP/1.1."""
    h2 = " http2" if http2 else ""
    http = f"""\
  upstream backend {{
    server {LOOPBACK}:{upstream_port};
    keepalive {keepalive};
    keepalive_requests 1000000;
    keepalive_timeout 65s;
  }}
  server {{
    listen {LOOPBACK}:{port}{h2} reuseport backlog=4096;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host {host};
    }}
  }}"""
    return _write_nginx(prefix, name, http)


def write_nginx_grpc_proxy(prefix: Path, name: str, port: int, upstream_port: int, keepalive: int = 64) -> Path:
    """nginx gRPC proxy: h2c with prior knowledge in front, ``grpc_pass`` to a cleartext
    gRPC server behind, keep-alive upstream pool (nginx sends one stream per upstream
    connection and reuses the connections)."""
    http = f"""\
  upstream grpc_backend {{
    server {LOOPBACK}:{upstream_port};
    keepalive {keepalive};
    keepalive_requests 1000000;
    keepalive_timeout 65s;
  }}
  server {{
    listen {LOOPBACK}:{port} http2 reuseport backlog=4096;
    location / {{
      grpc_pass grpc://grpc_backend;
    }}
  }}"""
    return _write_nginx(prefix, name, http)


def start_nginx(
    group: ProcessGroup, name: str, conf: Path, port: int, cpu: str | int | None, timeout: float = 10.0
) -> Proc:
    nginx = which("nginx")
    if not nginx:
        raise BenchError("nginx not found")
    prefix = conf.parent
    check = subprocess.run(
        [nginx, "-t", "-q", "-c", str(conf), "-p", str(prefix), "-e", str(prefix / f"{name}.error.log")],
        capture_output=True,
        text=True,
        timeout=15,
    )
    if check.returncode != 0:
        raise BenchError(f"nginx config {conf} is invalid:\n{check.stderr}")
    p = group.start(
        name, [nginx, "-c", conf, "-p", prefix, "-e", prefix / f"{name}.error.log", "-g", "daemon off;"], cpu=cpu
    )
    wait_tcp(port, timeout=timeout, proc=p)
    return p


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------


def write_post_lua(path: Path, body: bytes, content_type: str = "application/json") -> Path:
    """wrk script that POSTs a fixed body (no per-response Lua hook, so wrk stays fast)."""
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{content_type}"\nwrk.body = [==[{body.decode()}]==]\n'
    )
    return path


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}  # wrk's metric suffixes (k, M, G ...)


def parse_duration_ms(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(us|ms|s|m|h)\s*", text)
    if not m:
        raise ValueError(f"bad wrk duration {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def _metric(text: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgGtT]?)\s*", text)
    if not m:
        raise ValueError(f"bad wrk number {text!r}")
    return float(m.group(1)) * _SIZE[m.group(2).lower()]


@dataclass
class WrkResult:
    requests: int = 0
    duration_s: float = 0.0
    rps: float = 0.0
    latency_avg_ms: float | None = None
    latency_max_ms: float | None = None
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=lambda: {"connect": 0, "read": 0, "write": 0, "timeout": 0})
    non_2xx_3xx: int = 0
    exit_code: int = 0
    raw: str = ""
    #: the target's (utime, stime) over the recorded window, when the load generator sampled
    #: it itself (a client that warms up in-process); None: ``measure`` samples around the run
    cpu_window: tuple[float, float] | None = None

    @property
    def p50_ms(self) -> float | None:
        return self.percentiles_ms.get("50")

    @property
    def p99_ms(self) -> float | None:
        return self.percentiles_ms.get("99")

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx_3xx

    @property
    def clean(self) -> bool:
        return self.exit_code == 0 and self.errors == 0 and self.requests > 0


def parse_wrk(out: str) -> WrkResult:
    r = WrkResult(raw=out)
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        with contextlib.suppress(ValueError):
            r.latency_avg_ms = parse_duration_ms(m.group(1))
            r.latency_max_ms = parse_duration_ms(m.group(3))
    dist = out.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pm in re.finditer(r"^\s*([0-9.]+)%\s+([0-9.]+(?:us|ms|s|m|h))\s*$", dist[1], re.M):
            r.percentiles_ms[f"{float(pm.group(1)):g}"] = parse_duration_ms(pm.group(2))
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+(?:us|ms|s|m|h))", out, re.M)
    if m:
        r.requests = int(m.group(1))
        r.duration_s = parse_duration_ms(m.group(2)) / 1e3
    m = re.search(r"^Requests/sec:\s*([0-9.]+[kKmMgG]?)", out, re.M)
    if m:
        r.rps = _metric(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r.socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        r.non_2xx_3xx = int(m.group(1))
    return r


def run_wrk(
    url: str,
    script: Path | None,
    duration_s: float,
    connections: int,
    threads: int = 1,
    cpu: str | int | None = None,
    timeout_s: float = 2.0,
    extra: Sequence[str] = (),
) -> WrkResult:
    wrk = which("wrk")
    if not wrk:
        raise BenchError("wrk not found")
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        f"--timeout={max(1, round(timeout_s))}s",
    ]
    if script is not None:
        argv += ["-s", str(script)]
    argv += [*extra, url]
    if cpu is not None:
        argv = [which("taskset") or "taskset", "-c", str(cpu), *argv]
    try:
        # own session so a terminal Ctrl-C goes to us only; killed (by this pid) on timeout
        p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
    except OSError as e:
        raise BenchError(f"cannot start wrk: {e}") from None
    try:
        out, _ = p.communicate(timeout=duration_s + 30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise BenchError(f"wrk did not finish within {duration_s + 30:.0f}s") from None
    except BaseException:
        p.kill()
        p.wait()
        raise
    res = parse_wrk(out)
    res.exit_code = p.returncode
    if p.returncode != 0 or res.requests == 0:
        log(f"wrk exit {p.returncode}, {res.requests} requests; output:\n{out}")
    return res


# ---------------------------------------------------------------------------
# h2load (HTTP/2 load: several streams in flight on each connection)
# ---------------------------------------------------------------------------


def parse_h2load(out: str, log_file: Path | None = None) -> WrkResult:
    """h2load's summary as a WrkResult: requests done, req/s, mean/max request time; the
    failed / errored / timed-out streams as ``socket_errors``; 4xx/5xx as non_2xx_3xx.
    h2load prints no percentiles: with ``log_file`` (``--log-file``: start µs, status,
    µs to the end of the response, one line per request) they are computed from it."""
    r = WrkResult(raw=out, socket_errors={"failed": 0, "errored": 0, "timeout": 0})
    m = re.search(r"^finished in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+) req/s", out, re.M)
    if m:
        r.duration_s = parse_duration_ms(m.group(1) + m.group(2)) / 1e3
        r.rps = float(m.group(3))
    m = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
        r"(\d+) timeout",
        out,
        re.M,
    )
    if m:
        _total, _started, done, _ok, failed, errored, timeout = map(int, m.groups())
        r.requests = done
        r.socket_errors = {"failed": failed, "errored": errored, "timeout": timeout}
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    if m:
        r.non_2xx_3xx = int(m.group(3)) + int(m.group(4))
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        with contextlib.suppress(ValueError):
            r.latency_max_ms = parse_duration_ms(m.group(2))
            r.latency_avg_ms = parse_duration_ms(m.group(3))
    if log_file is not None:
        lat: list[float] = []
        with contextlib.suppress(OSError):
            with open(log_file) as fh:
                for line in fh:
                    parts = line.split("\t")
                    if len(parts) >= 3 and parts[1] != "-1":
                        lat.append(int(parts[2]) / 1e3)
        lat.sort()
        for q in (50, 75, 90, 99, 99.9):
            if lat:
                r.percentiles_ms[f"{q:g}"] = lat[min(len(lat) - 1, max(0, round(q / 100 * len(lat)) - 1))]
    return r


def run_h2load(
    url: str,
    duration_s: float | None,
    clients: int,
    streams: int,
    threads: int = 1,
    cpu: str | int | None = None,
    data: Path | None = None,
    headers: Sequence[str] = (),
    log_file: Path | None = None,
    requests: int | None = None,
) -> WrkResult:
    """``h2load -t threads -c clients -m streams`` (h2c with prior knowledge on http://) for
    ``duration_s`` seconds (``-D``), or ``requests`` requests (``-n``); POSTs ``data`` when
    given. Killed 30 s past its duration."""
    h2load = which("h2load")
    if not h2load:
        raise BenchError("h2load not found")
    argv = [h2load, f"-t{threads}", f"-c{clients}", f"-m{streams}"]
    if requests is not None:
        argv.append(f"-n{requests}")
    else:
        argv.append(f"-D{max(1, round(duration_s or 1))}")
    if data is not None:
        argv += ["-d", str(data)]
    for h in headers:
        argv += ["-H", h]
    if log_file is not None:
        with contextlib.suppress(OSError):
            log_file.unlink()
        argv.append(f"--log-file={log_file}")
    argv.append(url)
    if cpu is not None:
        argv = [which("taskset") or "taskset", "-c", str(cpu), *argv]
    limit = (duration_s or 10) + 30
    try:
        p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
    except OSError as e:
        raise BenchError(f"cannot start h2load: {e}") from None
    try:
        out, _ = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise BenchError(f"h2load did not finish within {limit:.0f}s") from None
    except BaseException:
        p.kill()
        p.wait()
        raise
    res = parse_h2load(out, log_file)
    res.exit_code = p.returncode
    if p.returncode != 0 or res.requests == 0 or res.errors:
        log(f"h2load exit {p.returncode}, {res.requests} requests, {res.errors} errors; output:\n{out[-3000:]}")
    return res


def smoke_h2(
    url: str,
    data: Path | None,
    expect_len: int | None,
    headers: Sequence[str] = (),
    proc: Proc | None = None,
    what: str = "",
) -> None:
    """One request over h2c (h2load -n1); fail clearly unless it is a 2xx with the expected
    number of DATA payload bytes."""
    r = run_h2load(url, None, 1, 1, data=data, headers=headers, requests=1)
    _check_alive(proc)
    m = re.search(r"^traffic: .* \((\d+)\) data", r.raw, re.M)  # "... 2.35MB (2463852) data"
    got = int(m.group(1)) if m else None
    if not r.clean or "1 2xx" not in r.raw:
        raise BenchError(f"{what or url}: h2c smoke request failed:\n{r.raw[-1500:]}")
    if expect_len is not None and got is not None and got != expect_len:
        raise BenchError(f"{what or url}: h2c smoke response carried {got} data bytes, expected {expect_len}")


# ---------------------------------------------------------------------------
# Targets, runs, aggregation
# ---------------------------------------------------------------------------


@dataclass
class Target:
    """Something to load: a URL plus (optionally) the process whose CPU/RSS to sample."""

    name: str
    url: str
    proc: Proc | None = None  # measured process (tree); None -> no CPU/RSS column
    notes: dict[str, Any] = field(default_factory=dict)
    also: dict[str, Proc] = field(default_factory=dict)  # other processes whose CPU/request to record


@dataclass
class Run:
    target: str
    round: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    errors: int
    socket_errors: dict[str, int]
    non_2xx_3xx: int
    wrk_exit: int
    clean: bool
    cpu_s: float | None = None
    cpu_user_s: float | None = None
    cpu_sys_s: float | None = None
    foreign_cpu: float | None = None  # other processes' CPU during the run, in CPUs
    cpu_us_per_req: float | None = None
    rss_mib: float | None = None
    log_bytes: int | None = None
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    latency_avg_ms: float | None = None
    latency_max_ms: float | None = None
    also_cpu_us_per_req: dict[str, float] = field(default_factory=dict)  # Target.also, by name

    @property
    def quiet(self) -> bool:
        """Clean, and nothing else loaded the machine while it ran."""
        return self.clean and (self.foreign_cpu or 0.0) <= FOREIGN_CPU_WARN


@dataclass
class LoadSpec:
    duration_s: float = 10.0
    warmup_s: float = 2.0
    connections: int = 32
    threads: int = 1
    script: Path | None = None
    wrk_cpu: str | int | None = "0"
    wait_quiet_s: float = 0.0  # before each warm-up, wait up to this long for an idle machine


FOREIGN_CPU_WARN = 0.10  # warn when other processes used more than 10% of a CPU during a run


#: a load generator other than wrk: runner(target, seconds, warmup) -> WrkResult (h2load, a
#: gRPC client); warmup=True for the unrecorded run before the measured one
Runner = Callable[["Target", float, bool], WrkResult]


def measure(
    target: Target, spec: LoadSpec, rnd: int = 0, group: ProcessGroup | None = None, runner: Runner | None = None
) -> Run:
    """Warm up, then one measured wrk run (or ``runner`` run) with CPU/RSS (and foreign-load)
    sampling around it."""

    def load(seconds: float, warmup: bool) -> WrkResult:
        if runner is not None:
            return runner(target, seconds, warmup)
        return run_wrk(target.url, spec.script, seconds, spec.connections, spec.threads, spec.wrk_cpu)

    if target.proc is not None:
        _check_alive(target.proc)
    if spec.wait_quiet_s > 0:
        wait_quiet(spec.wait_quiet_s)
    if spec.warmup_s > 0:
        load(spec.warmup_s, True)
    cpu0 = log0 = None
    if target.proc is not None:
        _check_alive(target.proc)
        cpu0 = cpu_times(target.proc.pid)
        log0 = target.proc.log_size()
    also0 = {name: cpu_times(p.pid) for name, p in target.also.items()}
    with ForeignLoad(group) as fl:
        w = load(spec.duration_s, False)
    run = Run(
        target=target.name,
        round=rnd,
        rps=w.rps,
        p50_ms=w.p50_ms,
        p99_ms=w.p99_ms,
        requests=w.requests,
        errors=w.errors,
        socket_errors=w.socket_errors,
        non_2xx_3xx=w.non_2xx_3xx,
        wrk_exit=w.exit_code,
        clean=w.clean,
        percentiles_ms=w.percentiles_ms,
        latency_avg_ms=w.latency_avg_ms,
        latency_max_ms=w.latency_max_ms,
        foreign_cpu=round(fl.cpu_fraction, 3),
    )
    if w.requests:
        for name, p in target.also.items():
            t1 = cpu_times(p.pid)
            run.also_cpu_us_per_req[name] = (t1[0] - also0[name][0] + t1[1] - also0[name][1]) * 1e6 / w.requests
    if target.proc is not None:
        if not target.proc.alive():
            run.clean = False
            log(f"{target.proc.name} died during the run:\n{target.proc.log_tail()}")
        else:
            cpu1 = cpu_times(target.proc.pid)
            run.cpu_user_s, run.cpu_sys_s = w.cpu_window or (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
            run.cpu_s = run.cpu_user_s + run.cpu_sys_s
            run.cpu_us_per_req = run.cpu_s * 1e6 / w.requests if w.requests else None
            run.rss_mib = rss_bytes(target.proc.pid) / 2**20
            run.log_bytes = target.proc.log_size() - log0
    flag = "" if run.clean else f"  <-- FLAGGED (errors={run.errors}, wrk exit={run.wrk_exit})"
    cpu = f", cpu {run.cpu_us_per_req:.1f} us/req" if run.cpu_us_per_req is not None else ""
    if run.foreign_cpu > FOREIGN_CPU_WARN:
        flag += f"  <-- NOISY: other processes used {run.foreign_cpu:.2f} CPU"
    log(
        f"round {rnd + 1} {target.name}: {run.rps:,.0f} req/s, p50 {fmt(run.p50_ms, 2)} ms, "
        f"p99 {fmt(run.p99_ms, 2)} ms{cpu}{flag}"
    )
    return run


def interleaved_rounds(
    targets: Sequence[Target],
    spec: LoadSpec,
    repeat: int,
    group: ProcessGroup | None = None,
    runner: Runner | None = None,
) -> list[Run]:
    """repeat rounds over all targets; the start position rotates every round."""
    runs: list[Run] = []
    for rnd in range(repeat):
        k = rnd % len(targets)
        for t in list(targets[k:]) + list(targets[:k]):
            runs.append(measure(t, spec, rnd, group, runner))
    return runs


_MEDIAN_FIELDS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "rss_mib", "foreign_cpu")


def summarize(runs: Sequence[Run], order: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per target: medians over clean runs (over all runs, flagged, if none is clean).

    Clean runs during which other processes loaded the machine ("noisy") are left out of the
    medians when the target has quiet clean runs too.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        mine = [r for r in runs if r.target == name]
        clean = [r for r in mine if r.clean]
        quiet = [r for r in clean if r.quiet]
        noisy = [r for r in mine if (r.foreign_cpu or 0.0) > FOREIGN_CPU_WARN]
        use = quiet or clean or mine
        s: dict[str, Any] = {
            "runs": len(mine),
            "clean_runs": len(clean),
            "flagged": len(clean) < len(mine),
            "noisy_runs": len(noisy),
            "median_of": len(use),
            "errors": sum(r.errors for r in mine),
        }
        for f in _MEDIAN_FIELDS:
            vals = [getattr(r, f) for r in use if getattr(r, f) is not None]
            s[f] = statistics.median(vals) if vals else None
        out[name] = s
    return out


def paired_deltas(
    runs: Sequence[Run], base: str, target: str, field_name: str = "p50_ms", quiet_only: bool = True
) -> list[float]:
    """Per round, target's figure minus base's, over rounds where both runs are clean and quiet
    (``quiet_only=False``: clean, noisy or not).

    Rounds are interleaved, so the two runs of a round are minutes apart at most; pairing
    them takes out the drift of the machine between rounds that a difference of
    medians keeps.
    """
    out = []
    for rnd in sorted({r.round for r in runs}):
        pair = {}
        for r in runs:
            ok = r.quiet if quiet_only else r.clean
            if r.round == rnd and r.target in (base, target) and ok and getattr(r, field_name) is not None:
                pair[r.target] = getattr(r, field_name)
        if len(pair) == 2:
            out.append(pair[target] - pair[base])
    return out


def p50_added_bar(
    label: str, runs: Sequence[Run], summary: dict[str, dict[str, Any]], base: str, target: str, bar_ms: float
) -> dict[str, Any]:
    """The "p50 added <= bar_ms" verdict, printed: the median of per-round paired deltas
    when at least three rounds pair up, else the difference of the medians (both shown)."""
    d, g = summary[base]["p50_ms"], summary[target]["p50_ms"]
    of_medians = g - d if d is not None and g is not None else None
    pairs = paired_deltas(runs, base, target)
    delta = statistics.median(pairs) if len(pairs) >= 3 else of_medians
    ok = delta is not None and delta <= bar_ms and not summary[target]["flagged"]
    result = "PASS" if ok else ("N/A" if delta is None else "FAIL")
    spread = f"; per round {', '.join(fmt(x, 2) for x in pairs)}" if pairs else ""
    how = (
        f"median of {len(pairs)} paired rounds; difference of medians {fmt(of_medians, 3)} ms"
        if len(pairs) >= 3
        else "difference of medians"
    )
    print(f"\n- p50 added ({target} - {base}): {fmt(delta, 3)} ms ({how}{spread}) (bar <= {bar_ms:g} ms): {result}")
    return {
        "label": label,
        "delta_ms": delta,
        "delta_of_medians_ms": of_medians,
        "paired_deltas_ms": pairs,
        "bar_ms": bar_ms,
        "result": result,
    }


@dataclass
class Bar:
    """Acceptance bar: summary[numerator].rps >= factor * summary[denominator].rps."""

    label: str
    numerator: str
    denominator: str
    factor: float

    def evaluate(self, summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
        num = summary.get(self.numerator, {}).get("rps")
        den = summary.get(self.denominator, {}).get("rps")
        ratio = num / den if num and den else None
        flagged = bool(
            summary.get(self.numerator, {}).get("flagged") or summary.get(self.denominator, {}).get("flagged")
        )
        # noisy inputs: a median had to use runs during which other processes loaded the machine
        noisy = any(
            s.get("noisy_runs", 0) and s.get("median_of", 0) > s.get("runs", 0) - s.get("noisy_runs", 0)
            for s in (summary.get(self.numerator, {}), summary.get(self.denominator, {}))
        )
        ok = ratio is not None and ratio >= self.factor and not flagged
        return {
            "label": self.label,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "factor": self.factor,
            "ratio": ratio,
            "flagged_inputs": flagged,
            "noisy_inputs": noisy,
            "result": "PASS" if ok else ("N/A" if ratio is None else "FAIL"),
        }


def fmt(v: float | None, nd: int = 1, thousands: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:,.{nd}f}" if thousands else f"{v:.{nd}f}"


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| target | req/s | p50 ms | p99 ms | CPU µs/req | RSS MiB | errors |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, s in summary.items():
        err = str(s["errors"])
        if s["flagged"]:
            err += f" (FLAGGED: {s['runs'] - s['clean_runs']}/{s['runs']} runs had errors)"
        if s.get("noisy_runs"):
            err += f" ({s['noisy_runs']}/{s['runs']} runs noisy)"
        lines.append(
            f"| {name} | {fmt(s['rps'], 0, True)} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} "
            f"| {fmt(s['cpu_us_per_req'], 1)} | {fmt(s['rss_mib'], 1)} | {err} |"
        )
    return "\n".join(lines)


def bars_report(results: Sequence[dict[str, Any]]) -> str:
    lines = []
    for b in results:
        ratio = "n/a" if b["ratio"] is None else f"{b['ratio']:.2f}×"
        extra = " (inputs flagged: runs had errors)" if b["flagged_inputs"] else ""
        if b.get("noisy_inputs"):
            extra += " (inputs noisy: machine was busy, unreliable)"
        lines.append(
            f"- {b['label']}: {b['numerator']}/{b['denominator']} = {ratio}, "
            f"bar ≥ {b['factor']:.2f}× → **{b['result']}**{extra}"
        )
    return "\n".join(lines)


def git_info() -> dict[str, Any]:
    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO_DIR), *a], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def environment_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": cpu_count(),
        "nginx": tool_version([which("nginx") or "nginx", "-v"]),
        "wrk": tool_version([which("wrk") or "wrk", "-v"]),
        "git": git_info(),
    }


def record_json(scenario: str, payload: dict[str, Any], out_dir: Path = OUT_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    ts = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{scenario}-{ts}.json"
    n = 1
    while path.exists():
        path = out_dir / f"{scenario}-{ts}-{n}.json"
        n += 1

    def default(o: Any) -> Any:
        if hasattr(o, "__dataclass_fields__"):
            return asdict(o)
        if isinstance(o, Path):
            return str(o)
        raise TypeError(type(o).__name__)

    path.write_text(json.dumps(payload, indent=2, default=default) + "\n")
    return path


def python_env_with_repo_src() -> dict[str, str]:
    """Environment for `python -m agentgw`: the working tree's src/ first on sys.path."""
    env = dict(os.environ)
    src = str(REPO_DIR / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def agentgw_available() -> tuple[bool, str]:
    """Can `python -m agentgw run` be started from this tree? (cheap `--help` probe)"""
    try:
        r = subprocess.run(
            [sys.executable, "-m", "agentgw", "run", "--help"],
            env=python_env_with_repo_src(),
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO_DIR,
        )
    except subprocess.TimeoutExpired:
        return False, "`python -m agentgw run --help` timed out"
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return False, " / ".join(tail) or f"exit {r.returncode}"
    return True, ""
