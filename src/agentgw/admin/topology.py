"""What the admin API shows of the running gateway's shape and of its upstreams' health.

``topology`` walks the compiled runtime (so the newer ``gateways``/``routes`` shape, the
``llm:`` and ``mcp:`` shorthands and the classic ``binds`` read the same): binds →
listeners → routes, each route with the name requests and metrics carry, its kind, its
paths, its policies and its backends. Nothing secret is in it: names, paths, addresses.

``targets`` is each upstream's health as the gateway has seen it (passive: no probes):
from the recent requests, per route and MCP target, and for LLM model entries with
``health`` their eviction state.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..routing.table import EXACT, PREFIX

__all__ = ["targets", "topology"]

_KIND = {"mcp": "mcp", "ai": "llm", "agentcore": "agentcore", "http": "http"}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
#: policies the compiler adds on its own to a route it found to carry A2A
_A2A_SHAPE = "a2aErrorShape"


#: compiled policies whose config key is not their class's name
_KEYS = {"ApiKeyAuth": "apiKey", "ConditionalDirectResponse": "directResponse"}


def _policy_name(p: Any) -> str:
    """The policy's key in the config (``jwtAuth``, ``localRateLimit``, ...)."""
    name = type(p).__name__
    if name in _KEYS:
        return _KEYS[name]
    for suffix in ("Policy", "Filter", "Step"):
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
    return name[:1].lower() + name[1:]


def _routes(listener) -> list[tuple[Any, list]]:
    """The listener's routes in config order, each with its matches."""
    table = listener.routes
    seen: dict[int, tuple[Any, list]] = {}
    groups = [table.anyhost, *table.exact.values(), *(m for _, m in table.wild)]
    for matches in groups:
        for mt in matches:
            entry = seen.setdefault(id(mt.route), (mt.route, []))
            if mt not in entry[1]:
                entry[1].append(mt)
    return sorted(seen.values(), key=lambda e: min(m.order for m in e[1]))


def _path(mt) -> str:
    if mt.kind == EXACT:
        return mt.value
    if mt.kind == PREFIX:
        return mt.value
    return f"~{mt.value}"


def _backend(b) -> dict:
    kind = getattr(b, "kind", "") or "http"
    out: dict[str, Any] = {"kind": _KIND.get(kind, kind)}
    label = getattr(b, "label", "") or getattr(b, "name", "")
    if label:
        out["name"] = label
    if kind == "mcp":
        out["targets"] = [_mcp_target(t) for t in getattr(b, "targets", ())]
    elif kind == "ai":
        out["models"] = _models(b)
    else:
        target = getattr(b, "target", None)
        if target is not None and getattr(target, "host", None):
            out["address"] = f"{target.host}:{target.port}"
        elif label and kind == "http":
            out["address"] = label
    return out


def _mcp_target(t) -> dict:
    spec = getattr(t, "spec", t)
    d: dict[str, Any] = {"name": spec.name, "kind": spec.kind}
    target = getattr(spec, "target", None)
    if target is not None and getattr(target, "host", None):
        d["address"] = f"{target.host}:{target.port}{getattr(spec, 'path', '')}"
    cmd = getattr(spec, "cmd", None)
    if cmd:
        d["address"] = " ".join([cmd, *getattr(spec, "args", [])])
    return d


def _models(b) -> list[str]:
    table = getattr(b, "table", None)
    names: list[str] = []
    for e in getattr(table, "entries", None) or ():
        if not getattr(e, "internal", False) and e.name not in names:
            names.append(e.name)
    for name in getattr(table, "virtual", None) or ():
        if name not in names:
            names.append(name)
    return names


def _route(route, matches: list) -> dict:
    names = [_policy_name(p) for p in route.policies]
    is_a2a = any(n.startswith("a2a") for n in names)
    matches = sorted(matches, key=lambda m: m.order)
    b = route.backend
    kind = "a2a" if is_a2a else ("direct" if b is None else _KIND.get(getattr(b, "kind", ""), "http"))
    out: dict[str, Any] = {
        "name": route.name,
        "key": route.name,
        "kind": kind,
        "paths": list(dict.fromkeys(_path(m) for m in matches)),
        "methods": sorted({m.method for m in matches if m.method}),
        "policies": [n for n in dict.fromkeys(names) if n != _A2A_SHAPE],
        "backends": [_backend(b)] if b is not None else [],
    }
    if b is not None and getattr(b, "kind", "") == "ai":
        out["models"] = out["backends"][0].get("models", [])
    return out


def topology(rt) -> dict:
    binds = []
    for port, bind in sorted(rt.binds.items()):
        if getattr(bind, "internal", False):
            continue
        listeners = []
        for lst in bind.tcp or bind.listeners:
            listeners.append(
                {
                    "name": lst.name,
                    "protocol": lst.protocol,
                    "hostname": lst.hostname,
                    "tls": lst.tls is not None,
                    "routes": [_route(r, ms) for r, ms in _routes(lst)],
                    "tcpRoutes": [{"name": t.name} for t in getattr(lst, "tcp_routes", ())],
                }
            )
        binds.append(
            {
                "port": port,
                "tls": any(lst["tls"] for lst in listeners) or rt.bind_tls.get(port) is not None,
                "listeners": listeners,
            }
        )
    return {"binds": binds}


def targets(rt, recent_entries: list[tuple]) -> dict:
    """Per (route, backend, MCP target): recent requests and errors, the last status,
    and a state: ``failing`` (the last 3 answers all errors), ``healthy``, ``idle``."""
    seen: dict[tuple, dict] = {}
    topo = topology(rt)
    for b in topo["binds"]:
        for lst in b["listeners"]:
            for r in lst["routes"]:
                for be in r["backends"]:
                    if be["kind"] == "mcp":
                        for t in be.get("targets", []):
                            seen[(r["key"], t["name"])] = {
                                "route": r["key"],
                                "backend": be.get("name", ""),
                                "target": t["name"],
                                "kind": t["kind"],
                                "address": t.get("address"),
                            }
                    else:
                        seen[(r["key"], None)] = {
                            "route": r["key"],
                            "backend": be.get("name", ""),
                            "target": None,
                            "kind": be["kind"],
                            "address": be.get("address"),
                        }
    stats: dict[tuple, list] = {}
    offset = time.time() - time.perf_counter()
    for entry in recent_entries:  # oldest first
        start, _method, _path, route, _backend, status, duration, extra = entry
        target = (extra or {}).get("mcp_target")
        key = (route, target) if (route, target) in seen else (route, None)
        if key not in seen:
            continue
        stats.setdefault(key, []).append((status, start + duration + offset))
    out = []
    for key, d in seen.items():
        hist = stats.get(key, [])
        errors = sum(1 for s, _ in hist if s == 0 or s >= 500)
        last = hist[-3:]
        d.update(
            {
                "requests": len(hist),
                "errors": errors,
                "last_status": hist[-1][0] if hist else None,
                "last_seen": round(hist[-1][1], 3) if hist else None,
                "state": "idle" if not hist else ("failing" if all(s == 0 or s >= 500 for s, _ in last) else "healthy"),
            }
        )
        out.append(d)
    out.extend(_llm_health(rt))
    return {"targets": out, "note": "passive: from the last requests the gateway kept (no probes)"}


def _llm_health(rt) -> list[dict]:
    out = []
    now = time.monotonic()
    for bind in rt.binds.values():
        for lst in bind.listeners:
            for route, _ in _routes(lst):
                b = route.backend
                table = getattr(b, "table", None) if getattr(b, "kind", "") == "ai" else None
                for e in getattr(table, "entries", None) or ():
                    h = e.candidate.health
                    if h is None:
                        continue
                    out.append(
                        {
                            "route": route.name,
                            "backend": getattr(b, "label", ""),
                            "target": e.name,
                            "kind": "llm-model",
                            "address": getattr(e.candidate.provider, "system", None),
                            "state": "evicted" if h.evicted(now) else "healthy",
                            "failures": h.failures,
                            "evicted_for_s": round(max(0.0, h.until - now), 3),
                        }
                    )
    return out
