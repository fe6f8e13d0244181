"""Metric families: counted with plain dict updates, exposed through prometheus-client.

Why not ``prometheus_client.Counter`` on the hot path: ``.labels(...).inc()`` takes a
lock and walks a label dict on every call (about 1.5 µs), and a request updates several
series. Here a request costs a few dict operations; at scrape time the families are
turned into prometheus-client metric families and rendered by its exposition code, so
the text format stays the library's.

Every family can be snapshotted into plain JSON-able data and snapshots merge by
addition, which is how ``--workers N`` exposes one coherent ``/metrics``: the
supervisor asks each worker for its snapshot and sums them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest

_STATUS_LABELS = {s: str(s) for s in range(600)}


def status_label(status: int) -> str:
    """An HTTP status as a label value, without a new string per request."""
    label = _STATUS_LABELS.get(status)
    return label if label is not None else str(status)


DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Counter:
    __slots__ = ("name", "help", "labels", "series")
    kind = "counter"

    def __init__(self, name: str, help: str, labels: tuple[str, ...]):
        self.name, self.help, self.labels = name, help, labels
        self.series: dict[tuple, float] = {}

    def inc(self, key: tuple = (), n: float = 1) -> None:
        s = self.series
        s[key] = s.get(key, 0) + n


class Gauge(Counter):
    __slots__ = ()
    kind = "gauge"

    def set(self, key: tuple, v: float) -> None:
        self.series[key] = v


class Histogram:
    __slots__ = ("name", "help", "labels", "buckets", "series")
    kind = "histogram"

    def __init__(self, name: str, help: str, labels: tuple[str, ...], buckets=DURATION_BUCKETS):
        self.name, self.help, self.labels = name, help, labels
        self.buckets = tuple(buckets)
        # key -> [count per bucket (len(buckets)+1, last is +Inf), sum]
        self.series: dict[tuple, list] = {}

    def observe(self, key: tuple, v: float) -> None:
        st = self.series.get(key)
        if st is None:
            st = self.series[key] = [[0] * (len(self.buckets) + 1), 0.0]
        st[0][bisect.bisect_left(self.buckets, v)] += 1
        st[1] += v


def removed_families(families: Iterable[str], remove: Iterable[str]) -> set[str]:
    """The families ``config.metrics.remove`` names, as agentgateway reads its names: a
    family's full name (``agentgw_requests_total``), or without ``_total``, or the short
    name of a family as agentgateway writes it (``requests``, ``agentgateway_requests_total``),
    with ``_total`` or a ``_seconds`` unit left off, which names both the ``agentgw_`` and
    the ``agentgateway_`` family of that name. A name that is a family's own
    (``mcp_errors_total``) names that family only."""
    fams = set(families)
    out: set[str] = set()
    for r in remove:
        exact = {f for f in (r, r + "_total", r + "_seconds") if f in fams}
        out |= exact
        if exact and not r.startswith("agentgateway_"):
            continue
        base = r[len("agentgateway_") :] if r.startswith("agentgateway_") else r
        for prefix in ("agentgw_", "agentgateway_"):
            out |= {f for f in (prefix + base, f"{prefix}{base}_total", f"{prefix}{base}_seconds") if f in fams}
    return out


class Metrics:
    """The process's metric families, by name."""

    def __init__(self):
        self.families: dict[str, Counter | Gauge | Histogram] = {}
        self.before_snapshot: list = []  # callables that refresh derived families
        # ``config.metrics.remove``: the families it names (`removed_families`) are left
        # out of snapshots -- still counted, never exposed
        self.remove: frozenset[str] = frozenset()

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        return self._get(name, lambda: Counter(name, help, tuple(labels)))

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
        return self._get(name, lambda: Gauge(name, help, tuple(labels)))

    def histogram(self, name: str, help: str, labels: Iterable[str] = (), buckets=DURATION_BUCKETS) -> Histogram:
        return self._get(name, lambda: Histogram(name, help, tuple(labels), buckets))

    def _get(self, name, make):
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = make()
        return fam

    # -- snapshots (for --workers) --------------------------------------------------------
    def snapshot(self) -> dict:
        for hook in self.before_snapshot:
            hook()
        out = {}
        removed = removed_families(self.families, self.remove) if self.remove else ()
        for name, fam in self.families.items():
            if name in removed:
                continue
            d: dict[str, Any] = {"kind": fam.kind, "help": fam.help, "labels": list(fam.labels), "series": []}
            if isinstance(fam, Histogram):
                d["buckets"] = list(fam.buckets)
                d["series"] = [[list(k), [list(v[0]), v[1]]] for k, v in fam.series.items()]
            else:
                d["series"] = [[list(k), v] for k, v in fam.series.items()]
            out[name] = d
        return out


def merge_snapshots(snaps: list[dict]) -> dict:
    """Sum snapshots from several processes (gauges are summed too: they count things;
    ``*_info`` gauges, which are 1 in every process, are not)."""
    out: dict = {}
    for snap in snaps:
        for name, fam in snap.items():
            tgt = out.get(name)
            if tgt is None:
                tgt = out[name] = {k: v for k, v in fam.items() if k != "series"}
                tgt["_series"] = {}
            ser = tgt["_series"]
            for key, val in fam["series"]:
                k = tuple(key)
                if fam["kind"] == "histogram":
                    cur = ser.get(k)
                    if cur is None:
                        ser[k] = [list(val[0]), val[1]]
                    else:
                        cur[0] = [a + b for a, b in zip(cur[0], val[0])]
                        cur[1] += val[1]
                elif name.endswith("_info"):
                    ser[k] = max(ser.get(k, 0), val)
                else:
                    ser[k] = ser.get(k, 0) + val
    for fam in out.values():
        fam["series"] = [[list(k), v] for k, v in fam.pop("_series").items()]
    return out


class _SnapshotCollector:
    def __init__(self, snap: dict):
        self.snap = snap

    def collect(self):
        for name, fam in self.snap.items():
            kind, labels = fam["kind"], fam["labels"]
            if kind == "counter":
                base = name[:-6] if name.endswith("_total") else name
                counter = CounterMetricFamily(base, fam["help"], labels=labels)
                for key, v in fam["series"]:
                    counter.add_metric(key, v)
                yield counter
            elif kind == "gauge":
                gauge = GaugeMetricFamily(name, fam["help"], labels=labels)
                for key, v in fam["series"]:
                    gauge.add_metric(key, v)
                yield gauge
            else:
                hist = HistogramMetricFamily(name, fam["help"], labels=labels)
                bounds = fam["buckets"]
                for key, (counts, total) in fam["series"]:
                    cum: list[tuple[str, float]] = []
                    acc = 0
                    for b, c in zip([*map(_fmt, bounds), "+Inf"], counts):
                        acc += c
                        cum.append((b, acc))
                    hist.add_metric(key, cum, total)
                yield hist


def _fmt(b: float) -> str:
    return repr(float(b))


def render(snap: dict, extra_collectors=()) -> bytes:
    """Prometheus text exposition of a (merged) snapshot."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_SnapshotCollector(snap))
    for c in extra_collectors:
        reg.register(c)
    return generate_latest(reg)


class GatewayMetrics:
    """The families the data plane updates on every request.

    A request costs one histogram update, in ``raw`` (keyed by bind, route, backend,
    method, status and the caller's identity). Everything else is derived when metrics
    are read (``sync_derived``): ``agentgw_request_duration_seconds`` and
    ``agentgw_requests_total`` (identity summed out), and the names dashboards written
    for agent gateways query -- ``agent_requests_total{agent_identity}``,
    ``agent_request_duration_seconds``, ``tool_invocations_total{tool_name}``,
    ``tool_invocation_duration_seconds``, ``mcp_errors_total{error_type}`` and
    ``a2a_calls_total`` -- from the MCP and A2A families. Derived families are plain
    families, so ``--workers`` snapshots merge them like the rest.
    """

    def __init__(self, m: Metrics | None = None):
        m = m or Metrics()
        self.m = m
        labels = ("bind", "route", "backend", "method", "status")
        self.raw: dict[tuple, list] = {}
        self.requests = m.counter("agentgw_requests_total", "Requests handled by the gateway.", labels)
        self.duration = m.histogram(
            "agentgw_request_duration_seconds", "Time from request head to response end.", labels
        )
        self.upstream_connects = m.counter(
            "agentgw_upstream_connections_total", "Connections opened to upstreams.", ("backend",)
        )
        self.upstream_connect_errors = m.counter(
            "agentgw_upstream_connect_errors_total", "Failed attempts to connect to an upstream.", ("backend",)
        )
        self.upstream_errors = m.counter(
            "agentgw_upstream_errors_total", "Upstream request failures by type.", ("backend", "type")
        )
        self.active_connections = m.gauge("agentgw_active_connections", "Client connections currently open.", ("bind",))
        self.reloads = m.counter("agentgw_config_reloads_total", "Configuration loads by result.", ("result",))
        alabels = ("agent_identity", "route", "status")
        self.agent_requests = m.counter(
            "agent_requests_total",
            "Requests by calling agent identity (JWT sub / service account; empty if anonymous).",
            alabels,
        )
        self.agent_duration = m.histogram(
            "agent_request_duration_seconds", "Request duration by calling agent identity.", alabels
        )
        self.tool_calls = m.counter(
            "tool_invocations_total",
            "MCP tools/call requests by tool, target and outcome.",
            ("tool_name", "target", "status"),
        )
        self.tool_duration = m.histogram(
            "tool_invocation_duration_seconds",
            "Duration of MCP tools/call requests by tool and target.",
            ("tool_name", "target"),
        )
        self.mcp_errors = m.counter(
            "mcp_errors_total",
            "Failed MCP requests by error type (error, denied, rate_limited) and target.",
            ("error_type", "target"),
        )
        self.a2a_calls = m.counter(
            "a2a_calls_total", "A2A calls by agent, method and HTTP status.", ("agent", "method", "status")
        )
        m.before_snapshot.append(self.sync_derived)
        from .agentgateway_metrics import AgentgatewayNames

        self.agentgateway = AgentgatewayNames(m, self.duration)  # (refreshed after sync_derived)

    def observe(self, key: tuple, seconds: float) -> None:
        """``key``: (bind, route, backend, method, status, identity)."""
        st = self.raw.get(key)
        if st is None:
            st = self.raw[key] = [[0] * (len(self.duration.buckets) + 1), 0.0]
        st[0][bisect.bisect_left(self.duration.buckets, seconds)] += 1
        st[1] += seconds

    def sync_derived(self) -> None:
        dur: dict = {}
        agent: dict = {}
        for k, (counts, total) in self.raw.items():
            for tgt, kk in ((dur, k[:5]), (agent, (k[5], k[1], k[4]))):
                cur = tgt.get(kk)
                if cur is None:
                    tgt[kk] = [list(counts), total]
                else:
                    c = cur[0]
                    for i, n in enumerate(counts):
                        c[i] += n
                    cur[1] += total
        self.duration.series = dur
        self.requests.series = {k: sum(v[0]) for k, v in dur.items()}
        self.agent_duration.series = agent
        self.agent_requests.series = {k: sum(v[0]) for k, v in agent.items()}
        fams = self.m.families
        mreq = fams.get("agentgw_mcp_requests_total")
        if mreq is not None:
            calls: dict = {}
            errs: dict = {}
            for (method, target, tool, status), n in mreq.series.items():
                if method == "tools/call":
                    k = (tool, target, status)
                    calls[k] = calls.get(k, 0) + n
                if status != "ok":
                    k = (status, target)
                    errs[k] = errs.get(k, 0) + n
            self.tool_calls.series = calls
            self.mcp_errors.series = errs
        mdur = fams.get("agentgw_mcp_tool_call_duration_seconds")
        if isinstance(mdur, Histogram):
            self.tool_duration.buckets = mdur.buckets
            self.tool_duration.series = {(tool, target): v for (target, tool), v in mdur.series.items()}
        a2a = fams.get("agentgw_a2a_requests_total")
        if a2a is not None:
            self.a2a_calls.series = dict(a2a.series)
