"""The admin API, ``/api/v1/`` on ``config.adminAddr`` (see ``docs/admin.md``).

Reads (GET): ``config`` (the running config, secrets redacted as ``/config_dump``),
``topology`` (binds → listeners → routes → backends), ``targets`` (upstream health, as
seen), ``requests`` (the last requests, filtered) and ``requests/stream`` (a live tail
as Server-Sent Events), ``metrics/summary`` (per route: requests, errors, p50 / p99),
``log-level``, ``whoami``. Writes (any other method): ``PUT config`` (validated, written
atomically to the ``-f`` file and applied), ``POST config/validate``, ``POST
cel/evaluate``, ``PUT log-level``. Checked as writes although read: ``GET config/file``
(the file as written, which may hold literal secrets) and ``relay/<port>/...`` (a
request sent to the gateway's own bind on that port, for the UI's playgrounds).

The admin credential is read from ``x-agentgw-admin-authorization`` when present, else
``Authorization``; the relay reads only the former, and passes ``Authorization`` on to
the route.

Every write is checked, in this order: a browser's cross-site request is refused
(``Sec-Fetch-Site`` other than ``same-origin`` / ``none``, or an ``Origin`` that is not
the admin listener's own: 403); the body must be JSON or YAML (``Content-Type``, else
415, so no HTML form can send one); then ``config.admin`` decides (`auth.AdminAuth`:
401 / 403). On a loopback admin address every request must also name the host by an IP
address or ``localhost`` (``Host``), which keeps a DNS-rebinding page from reading it.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..config import ConfigError
from ..config.loader import parse_path
from ..engine.http import GatewayError, Headers
from ..proxy.origin import cross_site
from ..telemetry import recent as _recent
from . import topology as _topology
from .auth import DEFAULT as _NO_WRITES
from .auth import is_loopback_addr
from .relay import relay as _relay

log = logging.getLogger("agentgw.admin")

PREFIX = "/api/v1/"
UI_PREFIX = "/ui/api/v1/"  # the same API, under the UI's path (where a traffic listener serves it)
#: whether the request being answered came through a traffic listener's ``ui`` route
_ATTACHED: contextvars.ContextVar[bool] = contextvars.ContextVar("admin_attached", default=False)
MAX_BODY = 4 << 20  # a config document, a CEL request
HEARTBEAT = 15.0  # seconds between SSE comments on a quiet tail
_JSON_TYPES = ("application/json",)
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_LEVELS = ("trace", "debug", "info", "warn", "error", "off")
_LINE = re.compile(r"\bline (\d+)(?:, column (\d+))?")
_PLACE = re.compile(r":(\d+):(\d+)$")

#: where the admin credential may come from (the relay leaves Authorization to the route)
CREDENTIAL_HEADER = "x-agentgw-admin-authorization"

ENDPOINTS = [
    "GET /api/v1/config",
    "GET /api/v1/config/file",
    "GET /api/v1/topology",
    "GET /api/v1/targets",
    "GET /api/v1/whoami",
    "PUT /api/v1/config",
    "POST /api/v1/config/validate",
    "POST /api/v1/cel/evaluate",
    "GET /api/v1/requests?limit=&route=&status=&q=",
    "GET /api/v1/requests/stream?route=&status=&q=",
    "GET /api/v1/metrics/summary",
    "GET /api/v1/log-level",
    "PUT /api/v1/log-level",
    "* /api/v1/relay/<port>/<path>",
]


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _json(ex, status: int, doc: Any) -> None:
    ex.send(
        status,
        Headers([("content-type", "application/json"), ("cache-control", "no-store")]),
        orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS, default=str),
    )


class AdminApi:
    """The ``/api/v1/`` endpoints of one gateway process.

    ``proc`` is the process (``runner.GatewayProcess``): its ``runtime``, ``services``,
    ``config_path`` / ``source`` / ``base_dir``, ``reload()`` (and the
    ``last_reload_error`` it leaves), ``config_dump()``, ``log_level`` and
    ``set_log_level()``. ``check(text, base_dir=, source=, fmt=)`` loads and compiles a
    config document as the process would (``compile.check_config_text``)."""

    def __init__(self, proc, check: Callable[..., Any]):
        self.proc = proc
        self.check = check
        self._write_lock = asyncio.Lock()

    # -- dispatch -------------------------------------------------------------------------
    async def __call__(self, req, ex, *, attached: bool = False) -> None:
        """Answer ``req`` (path ``/api/v1/...``, or the UI's ``/ui/api/v1/...``).
        ``attached``: it came through a traffic listener's ``ui`` route, whose policies
        have run (not the admin address: no Host rule, and loopback writes do not apply)."""
        try:
            await self._dispatch(req, ex, attached)
        except ApiError as e:
            if not ex.started:
                _json(ex, e.status, {"error": e.message, **e.extra})
        except GatewayError as e:  # a body too large, a client gone
            if not ex.started:
                _json(ex, e.status, {"error": e.message})

    async def _dispatch(self, req, ex, attached: bool) -> None:
        if not attached and not self.on_admin_listener(ex):
            raise ApiError(404, "the admin API is served on config.adminAddr only")
        rest = req.path[len(UI_PREFIX) :] if req.path.startswith(UI_PREFIX) else req.path[len(PREFIX) :]
        name = rest.rstrip("/")
        method = "GET" if req.method == "HEAD" else req.method
        _ATTACHED.set(attached)
        if not attached:
            self._check_host(req)
        if name.startswith("relay/") or name == "relay":
            self._check_cross_site(req)
            self._check_auth(req, relay=True)
            rt = self.proc.runtime
            await _relay(req, ex, name[len("relay/") :], rest[len("relay/") :], rt)
            return
        routes = {
            ("GET", "config"): self.get_config,
            ("GET", "config/file"): self.get_config_file,
            ("GET", "topology"): self.get_topology,
            ("GET", "targets"): self.get_targets,
            ("GET", "whoami"): self.whoami,
            ("PUT", "config"): self.put_config,
            ("POST", "config/validate"): self.validate,
            ("POST", "cel/evaluate"): self.cel_evaluate,
            ("GET", "requests"): self.requests,
            ("GET", "requests/stream"): self.stream,
            ("GET", "metrics/summary"): self.metrics_summary,
            ("GET", "log-level"): self.get_log_level,
            ("PUT", "log-level"): self.put_log_level,
            ("GET", ""): self.index,
        }
        fn = routes.get((method, name))
        if fn is None:
            allowed = sorted(m for m, n in routes if n == name)
            if allowed:
                raise ApiError(405, f"{req.method} is not allowed here (allowed: {', '.join(allowed)})")
            raise ApiError(404, "unknown admin API endpoint", endpoints=ENDPOINTS)
        if method != "GET":
            self._check_write(req)
        elif fn == self.get_config_file:
            self._check_cross_site(req)
            self._check_auth(req)
        elif fn != self.whoami:
            self._check_read(req)
        await fn(req, ex)

    # -- protection -----------------------------------------------------------------------
    def _loopback(self) -> bool:
        rt = self.proc.runtime
        addr = rt.cfg.config.admin_addr if rt is not None else "127.0.0.1:0"
        return is_loopback_addr(addr) and not addr.startswith("unix:")

    def on_admin_listener(self, ex) -> bool:
        """Whether the request came in on ``config.adminAddr`` (the same handler serves
        the stats and readiness addresses, which are not loopback by default)."""
        rt = self.proc.runtime
        if rt is None:
            return False
        addr = rt.cfg.config.admin_addr
        transport = ex.conn.transport
        sock = transport.get_extra_info("sockname") if transport is not None else None
        if addr.startswith("unix:"):
            return isinstance(sock, str) and sock == addr[5:]
        return isinstance(sock, tuple) and len(sock) >= 2 and str(sock[1]) == addr.rpartition(":")[2]

    def _check_host(self, req) -> None:
        """On a loopback listener the Host must be an IP address or localhost: a page
        whose DNS name was rebound to 127.0.0.1 sends its own name."""
        if not self._loopback():
            return
        host = req.headers.get("host") or ""
        if host.startswith("["):  # [::1]:port
            name = host[1:].partition("]")[0]
        else:
            name = host.partition(":")[0] if host.count(":") == 1 else host
        name = name.lower()
        if name == "localhost" or name.endswith(".localhost"):
            return
        try:
            ipaddress.ip_address(name)
        except ValueError:
            raise ApiError(
                403, f"Host {host!r} refused: a loopback admin address is reached as localhost or by IP address"
            ) from None

    @staticmethod
    def _credential(req, relay: bool = False) -> str | None:
        h = req.headers
        got = h.get(CREDENTIAL_HEADER)
        return got if got is not None or relay else h.get("authorization")

    def _auth(self):
        return getattr(self.proc.runtime, "admin_auth", None) or _NO_WRITES

    def _check_read(self, req) -> None:
        """With a credential configured, reads need it too: recent requests name paths
        and queries, and the config its layout (the open ``/config_dump`` stays as it was)."""
        auth = self._auth()
        if auth.configured:
            refused = auth.check(self._credential(req))
            if refused is not None:
                raise ApiError(*refused)

    def _check_cross_site(self, req) -> None:
        h = req.headers
        own = {f"{s}://{h.get('host') or ''}".lower() for s in ("http", "https")}
        why = cross_site(h, own)
        if why is not None:
            raise ApiError(403, f"cross-site admin API request refused ({why}): only the admin listener's own origin")

    def _check_auth(self, req, relay: bool = False) -> None:
        refused = self._auth().check(self._credential(req, relay), remote=_ATTACHED.get())
        if refused is not None:
            raise ApiError(*refused)

    def _check_write(self, req) -> None:
        self._check_cross_site(req)
        ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype not in _JSON_TYPES + _YAML_TYPES:
            raise ApiError(
                415,
                "admin API writes need Content-Type: application/json (or application/yaml for a config document)",
            )
        self._check_auth(req)

    # -- helpers --------------------------------------------------------------------------
    async def _body(self, req) -> bytes:
        return await req.body.read_all(MAX_BODY)

    async def _json_body(self, req) -> dict:
        raw = await self._body(req)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, f"the body is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "the body must be a JSON object")
        return doc

    @staticmethod
    def _query(req) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(req.query or "", keep_blank_values=True).items()}

    # -- endpoints --------------------------------------------------------------------------
    async def index(self, req, ex) -> None:
        _json(ex, 200, {"endpoints": ENDPOINTS})

    async def get_config(self, req, ex) -> None:
        _json(ex, 200, self.proc.config_dump())

    async def get_config_file(self, req, ex) -> None:
        """The ``-f`` file as written (comments, ``$VAR`` references), for an editor:
        what ``PUT config`` replaces."""
        path = self.proc.config_path
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ApiError(500, f"cannot read {self.proc.source}: {e.strerror or e}") from None
        _json(
            ex,
            200,
            {
                "path": os.path.realpath(path),
                "format": self._file_format() or "yaml",
                "text": raw.decode("utf-8", "replace"),
            },
        )

    async def get_topology(self, req, ex) -> None:
        _json(ex, 200, _topology.topology(self.proc.runtime))

    async def get_targets(self, req, ex) -> None:
        _json(ex, 200, _topology.targets(self.proc.runtime, self.proc.services.recent.entries()))

    async def whoami(self, req, ex) -> None:
        """What the caller's credential is worth: 401 when one is sent and wrong."""
        auth = self._auth()
        cred = self._credential(req)
        if cred and auth.configured:
            refused = auth.check(cred)
            if refused is not None:
                raise ApiError(*refused)
        writes = auth.check(cred, remote=_ATTACHED.get()) is None
        _json(ex, 200, {"auth": auth.mode, "writes": writes, "reads": writes or not auth.configured})

    def _file_format(self) -> str | None:
        ext = os.path.splitext(self.proc.config_path)[1].lower()
        return {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(ext)

    def _validate(self, raw: bytes, fmt: str | None) -> tuple[str, list[dict]]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return "", [{"path": "(root)", "message": f"the document is not valid UTF-8: {e}"}]
        source = "<document>"
        try:
            self.check(text, base_dir=self.proc.base_dir, source=source, fmt=fmt)
        except ConfigError as exc:
            return text, [_error(e, w, source) for e, w in zip(exc.errors, exc.where)]
        except Exception as exc:  # a compile step that failed outright: still an answer
            log.exception("admin API: validating a config document failed")
            return text, [{"path": "(root)", "message": f"the config could not be compiled: {exc}"}]
        return text, []

    async def validate(self, req, ex) -> None:
        ctype = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
        fmt = "json" if ctype in _JSON_TYPES else "yaml"
        _, errors = self._validate(await self._body(req), fmt)
        _json(ex, 200, {"valid": not errors, "errors": errors})

    async def put_config(self, req, ex) -> None:
        raw = await self._body(req)
        proc = self.proc
        async with self._write_lock:
            _, errors = self._validate(raw, self._file_format())
            if errors:
                raise ApiError(422, "invalid config: nothing was written", valid=False, errors=errors)
            target = os.path.realpath(proc.config_path)
            try:
                with open(target, "rb") as f:
                    old = f.read()
            except OSError:
                old = None
            if old == raw:
                _json(ex, 200, {"valid": True, "changed": False, "file": proc.source})
                return
            try:
                _write_atomically(target, raw)
            except OSError as e:
                raise ApiError(500, f"cannot write {proc.source}: {e.strerror or e}") from None
            proc.file_written()  # (the file watcher is not to reload it again)
            if await proc.reload():
                log.info("admin API: config written to %s and applied", proc.source)
                _json(ex, 200, {"valid": True, "changed": True, "applied": True, "file": proc.source})
                return
            why = proc.last_reload_error or "the reload failed"
            if old is not None:  # the running config stayed: so does the file
                try:
                    _write_atomically(target, old)
                    proc.file_written()
                except OSError as e:
                    log.error("admin API: cannot restore %s: %s", proc.source, e)
            raise ApiError(
                409,
                f"the config is valid but could not be applied: {why}",
                valid=True,
                applied=False,
                restored=old is not None,
            )

    async def cel_evaluate(self, req, ex) -> None:
        from ..cel import VARIABLES, CelError, Expression, activation, is_no_value

        doc = await self._json_body(req)
        src = doc.get("expression")
        if not isinstance(src, str) or not src.strip():
            raise ApiError(400, "expression: a CEL expression (a string) is required")
        data: dict[str, Any] = {name: {} for name in VARIABLES}
        for key, value in doc.items():
            if key == "expression":
                continue
            if key not in VARIABLES:
                raise ApiError(400, f"{key}: not a CEL variable (known: {', '.join(sorted(VARIABLES))})")
            if not isinstance(value, dict):
                raise ApiError(400, f"{key}: must be an object")
            data[key] = value
        r = dict(data["request"])
        hdrs = r.get("headers") or {}
        if not isinstance(hdrs, dict):
            raise ApiError(400, "request.headers: must be an object (name -> value)")
        r["headers"] = {
            str(k).lower(): ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in hdrs.items()
        }
        for k, default in (("method", "GET"), ("path", "/"), ("host", ""), ("scheme", "http"), ("query", "")):
            r.setdefault(k, default)
        if not r["host"]:
            r["host"] = r["headers"].get("host", "")
        data["request"] = r
        try:
            expr = Expression(src)
        except CelError as e:
            _json(ex, 200, {"ok": False, "phase": "compile", "error": str(e)})
            return
        try:
            res = expr.program.eval(activation(data))
            if is_no_value(res) and str(res.type()) != "NULL":
                _json(ex, 200, {"ok": False, "phase": "eval", "error": str(res.value())})
                return
            value = res.plain_value()
        except Exception as e:  # the engine's own failures: an answer, not a 500
            _json(ex, 200, {"ok": False, "phase": "eval", "error": str(e)})
            return
        _json(ex, 200, {"ok": True, "result": value, "type": str(res.type())})

    def _filters(self, req) -> tuple[dict[str, str], tuple]:
        q = self._query(req)
        status = q.get("status") or None
        if status is not None and not re.fullmatch(r"\d{3}|[1-5]xx", status.lower()):
            raise ApiError(400, "status: a code (404) or a class (5xx)")
        return q, (q.get("route"), status, q.get("q") or None)

    async def requests(self, req, ex) -> None:
        q, (route, status, text) = self._filters(req)
        try:
            limit = int(q.get("limit") or 100)
        except ValueError:
            raise ApiError(400, "limit: a number") from None
        limit = max(1, min(limit, _recent.SIZE))
        offset = time.time() - time.perf_counter()
        out = []
        for entry in reversed(self.proc.services.recent.entries()):  # newest first
            d = _recent.as_dict(entry, offset)
            if _recent.matches(d, route, status, text):
                out.append(d)
                if len(out) >= limit:
                    break
        _json(ex, 200, {"requests": out, "capacity": _recent.SIZE})

    async def stream(self, req, ex) -> None:
        _, (route, status, text) = self._filters(req)
        rec = self.proc.services.recent
        ex.start(
            200,
            Headers(
                [
                    ("content-type", "text/event-stream"),
                    ("cache-control", "no-store"),
                    ("x-accel-buffering", "no"),
                ]
            ),
        )
        ex.write(b": tailing the gateway's requests\n\n")
        queue = rec.subscribe()
        quiet = 0.0
        try:
            while not ex.disconnected and not ex.draining:
                try:
                    entry = await asyncio.wait_for(queue.get(), 1.0)
                except TimeoutError:
                    quiet += 1.0
                    if quiet >= HEARTBEAT:
                        quiet = 0.0
                        ex.write(b": keep-alive\n\n")
                        await ex.drain()
                    continue
                if entry is None:  # fell too far behind
                    break
                quiet = 0.0
                d = _recent.as_dict(entry)
                if _recent.matches(d, route, status, text):
                    ex.write(b"event: request\ndata: " + orjson.dumps(d, default=str) + b"\n\n")
                    await ex.drain()
        finally:
            rec.unsubscribe(queue)
            if not ex.finished and not ex.disconnected:
                ex.end()

    async def metrics_summary(self, req, ex) -> None:
        metrics = self.proc.services.metrics
        buckets = metrics.duration.buckets
        per: dict[str, dict] = {}
        for (bind, route, _backend, _method, status, _who), (counts, total) in list(metrics.raw.items()):
            s = per.get(route)
            if s is None:
                s = per[route] = {
                    "counts": [0] * len(counts),
                    "sum": 0.0,
                    "errors": 0,
                    "client_errors": 0,
                    "binds": set(),
                }
            c = s["counts"]
            for i, n in enumerate(counts):
                c[i] += n
            s["sum"] += total
            n = sum(counts)
            if status == "0" or status.startswith("5"):
                s["errors"] += n
            elif status.startswith("4"):
                s["client_errors"] += n
            s["binds"].add(bind)
        routes = []
        for route, s in sorted(per.items()):
            n = sum(s["counts"])
            routes.append(
                {
                    "route": route,
                    "binds": sorted(s["binds"]),
                    "requests": n,
                    "errors": s["errors"],
                    "client_errors": s["client_errors"],
                    "mean_ms": round(s["sum"] / n * 1000, 3) if n else None,
                    "p50_ms": _quantile(0.5, s["counts"], buckets),
                    "p99_ms": _quantile(0.99, s["counts"], buckets),
                }
            )
        _json(
            ex,
            200,
            {
                "routes": routes,
                "note": "errors: 5xx answers and requests that got none; "
                "percentiles are estimated from the duration histogram's buckets",
            },
        )

    async def get_log_level(self, req, ex) -> None:
        _json(ex, 200, {"level": self.proc.log_level, "levels": list(_LEVELS)})

    async def put_log_level(self, req, ex) -> None:
        doc = await self._json_body(req)
        level = doc.get("level")
        if not isinstance(level, str) or level.lower() not in _LEVELS:
            raise ApiError(400, f"level: one of {', '.join(_LEVELS)}")
        self.proc.set_log_level(level.lower())
        log.warning("admin API: log level set to %s (until the next config reload)", level.lower())
        _json(ex, 200, {"level": self.proc.log_level})


def _error(error: str, where: str | None, source: str) -> dict:
    """A `ConfigError` message as ``{path, message, line?, column?}``."""
    out: dict[str, Any]
    if error.startswith(source + ": "):
        out = {"path": "(root)", "message": error[len(source) + 2 :]}
        m = _LINE.search(out["message"])
        if m:
            out["line"] = int(m.group(1))
            if m.group(2):
                out["column"] = int(m.group(2))
        return out
    parsed = parse_path(error)
    if parsed is not None:
        message = parsed[1]
        out = {"path": error[: len(error) - len(message) - 2], "message": message}
    else:
        out = {"path": "(root)", "message": error}
    m = _PLACE.search(where or "")
    if m:
        out["line"], out["column"] = int(m.group(1)), int(m.group(2))
    return out


def _quantile(q: float, counts: list[int], bounds) -> float | None:
    """Prometheus' ``histogram_quantile``, in ms: linear within the bucket it falls in;
    the largest finite bound when it falls in +Inf."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    acc = 0
    for i, n in enumerate(counts):
        if acc + n >= rank and n:
            if i >= len(bounds):
                return round(bounds[-1] * 1000, 3)
            lo = bounds[i - 1] if i else 0.0
            hi = bounds[i]
            return round((lo + (hi - lo) * (rank - acc) / n) * 1000, 3)
        acc += n
    return round(bounds[-1] * 1000, 3)


def _write_atomically(target: str, data: bytes) -> None:
    """Replace ``target`` with ``data`` in one rename: a reader sees the old file or the
    new one, never a part. The file keeps its permissions."""
    d = os.path.dirname(target) or "."
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(target) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself, durable
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
