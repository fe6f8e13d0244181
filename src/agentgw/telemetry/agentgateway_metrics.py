"""agentgateway's metric names, beside agentgw's own, so its dashboards and alerts work.

agentgateway's Grafana dashboard, its Helm chart's dashboard and its examples query
``agentgateway_requests_total``, ``agentgateway_request_duration_seconds``,
``agentgateway_mcp_requests_total``, the ``agentgateway_gen_ai_*`` histograms,
``agentgateway_build_info``, and the older ``tool_calls_total`` / ``list_calls_total``.
These families are derived from agentgw's families when metrics are read, like the
other dashboard names (``telemetry/metrics.py``), so a request costs nothing more and the
two sets always agree.

Labels are agentgateway's where agentgw knows the value: ``gateway`` is ``bind/<port>``
as in agentgateway's standalone mode; ``server`` and ``resource`` are the MCP target and
tool; ``gen_ai_*`` are the LLM call's. Labels agentgateway has and agentgw does not track
(``listener``, ``route_rule``, ``reason``, ``protocol`` on requests; cost) are left out
rather than filled with guesses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    from .metrics import Histogram, Metrics

#: an MCP method's family -> agentgateway's ``resource_type``
_RESOURCE_TYPE = {"tools": "tool", "prompts": "prompt", "resources": "resource"}


def _gateway(bind: str) -> str:
    return f"bind/{bind}" if bind.isdigit() else bind


class AgentgatewayNames:
    """The families; :meth:`sync` refreshes them from agentgw's (a ``before_snapshot`` hook)."""

    def __init__(self, m: Metrics, duration: Histogram):
        self.m = m
        self.source_duration = duration
        labels = ("gateway", "bind", "route", "backend", "method", "status")
        self.requests = m.counter("agentgateway_requests_total", "The total number of HTTP requests sent.", labels)
        self.duration = m.histogram(
            "agentgateway_request_duration_seconds", "Duration of HTTP requests (seconds).", labels, duration.buckets
        )
        self.build = m.gauge("agentgateway_build_info", "Build information.", ("tag",))
        self.build.set((__version__,), 1)
        m.before_snapshot.append(self.sync)

    def sync(self) -> None:
        m = self.m
        fams = m.families
        dur: dict = {}
        for (bind, route, backend, method, status), v in self.source_duration.series.items():
            dur[(_gateway(bind), bind, route, backend, method, status)] = v
        self.duration.buckets = self.source_duration.buckets
        self.duration.series = dur
        self.requests.series = {k: sum(v[0]) for k, v in dur.items()}

        mreq = fams.get("agentgw_mcp_requests_total")
        if mreq is not None:
            mcp = m.counter(
                "agentgateway_mcp_requests_total",
                "Total number of MCP calls.",
                ("method", "resource_type", "server", "resource", "status"),
            )
            tools = m.counter("tool_calls_total", "MCP tool calls by server and tool.", ("server", "name"))
            lists = m.counter("list_calls_total", "MCP list calls by resource type.", ("resource_type",))
            ms: dict = {}
            ts: dict = {}
            ls: dict = {}
            for (method, target, tool, status), n in mreq.series.items():
                rtype = _RESOURCE_TYPE.get(method.split("/", 1)[0], "")
                k = (method, rtype, target, tool, status)
                ms[k] = ms.get(k, 0) + n
                if method == "tools/call":
                    kt = (target, tool)
                    ts[kt] = ts.get(kt, 0) + n
                elif method.endswith("/list") and rtype:
                    ls[(rtype,)] = ls.get((rtype,), 0) + n
            mcp.series, tools.series, lists.series = ms, ts, ls

        self._gen_ai(
            fams.get("agentgw_gen_ai_client_token_usage"),
            "agentgateway_gen_ai_client_token_usage",
            "Number of tokens used per request.",
            ("gen_ai_request_model", "gen_ai_system", "gen_ai_token_type"),
        )
        self._gen_ai(
            fams.get("agentgw_gen_ai_client_operation_duration_seconds"),
            "agentgateway_gen_ai_server_request_duration",
            "Duration of generative AI request.",
            ("gen_ai_request_model", "gen_ai_system", "gen_ai_operation_name"),
        )
        self._gen_ai(
            fams.get("agentgw_gen_ai_time_to_first_token_seconds"),
            "agentgateway_gen_ai_server_time_to_first_token",
            "Time to generate the first token for a given request.",
            ("gen_ai_request_model", "gen_ai_system"),
        )

    def _gen_ai(self, source, name: str, help: str, labels: tuple[str, ...]) -> None:
        """A histogram copied from an agentgw family whose labels map one to one."""
        if source is None:
            return
        h = self.m.histogram(name, help, labels, source.buckets)
        h.buckets = source.buckets
        h.series = {k: [list(v[0]), v[1]] for k, v in source.series.items()}
