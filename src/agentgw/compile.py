"""Compile a validated config into the runtime structures the pipeline walks.

Validation (``config/``) checks the shape of the file; compiling checks what only makes
sense with everything in view — a route naming a backend that doesn't exist, a TLS file
that can't be loaded, a policy agentgw doesn't implement yet — and reports each problem
with the path of the field at fault, like validation does. Nothing here runs per
request: the output is plain objects (route tables with precompiled regexes, policy
chains as tuples of bound methods, backends holding their upstream targets).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from .backends.a2a import static_targets
from .backends.http import HttpBackend, HttpBackendSet, RetryPolicy, compile_http_backend, parse_http_version
from .cel import CelError, Expression
from .config import ConfigError, LocalConfig, effective_limits
from .config import models as m
from .engine.http import GatewayError
from .gateways import expand as expand_gateways
from .policies.a2a import compile_a2a
from .policies.backend_auth import BackendAuth as BackendAuthPolicy
from .policies.backend_auth import Slot, compile_backend_auth
from .policies.cors import Cors
from .policies.csrf import Csrf
from .policies.delay import Delay
from .policies.direct_response import ConditionalDirectResponse, DirectResponse
from .policies.global_ratelimit import compile_rate_limits
from .policies.header_modifier import RequestHeaderModifier, ResponseHeaderModifier
from .policies.identity import compile_identity
from .policies.local_ratelimit import LocalRateLimit, TokenBucket
from .policies.mcp_authentication import compile_mcp_authentication
from .policies.oidc import compile_oidc
from .policies.request_mirror import compile_request_mirror
from .policies.request_redirect import RequestRedirect
from .policies.transformation import compile_transformations
from .policies.url_rewrite import UrlRewrite
from .proxy.runtime import BindRuntime, ListenerRuntime, Route
from .proxy.scope import CompileScope
from .routing.paths import DEFAULT_RULES, PathRules, canonical_path
from .routing.table import EXACT, PREFIX, REGEX, Match, RouteTable, listener_specificity
from .telemetry.accesslog import compile_access_log
from .unsupported import SPIFFE_REFUSAL, UNSUPPORTED_ROUTE_POLICIES, refuse_except, refuse_unsupported

T = TypeVar("T")


@dataclass
class Runtime:
    """One compiled config: what the servers serve until the next reload."""

    cfg: LocalConfig
    binds: dict[int, BindRuntime]
    bind_tls: dict[int, ssl.SSLContext | None]
    limits: Any
    warnings: list[str] = field(default_factory=list)
    access_log: Any = None  # telemetry.accesslog.LogFields (accessLog / logging.fields)
    # TCP keepalive (idle s, interval s, probes) on upstream / client connections, or None
    backend_keepalive: tuple[int, int, int] | None = None
    frontend_keepalive: tuple[int, int, int] | None = None
    tls_handshake_timeout: float = 15.0  # seconds, HTTPS listeners
    metrics_remove: frozenset = frozenset()  # metric families not exposed (see telemetry.metrics)
    connect_timeout: float = 10.0  # seconds, upstream connections of TCP routes (config.backend.connectTimeout)
    admin_auth: Any = None  # admin.auth.AdminAuth: who may write through the admin API (config.admin)


#: ``ui.policies`` the UI's route runs (see Compiler._refuse_ui_policies)
_UI_POLICIES = frozenset(
    {
        "oidc",
        "jwt_auth",
        "basic_auth",
        "api_key",
        "ext_authz",
        "service_account_auth",
        "authorization",
        "cors",
        "csrf",
        "local_rate_limit",
        "remote_rate_limit",
        "global_rate_limit",
        "request_header_modifier",
        "response_header_modifier",
    }
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


#: rule sets a more specific route cannot replace without dropping the other's deny and
#: require rules (config/targeted.py refuses combining them for the same reason)
_COMPOSED_RULES = ("authorization", "mcp_authorization")


def _merge_policies(parent, child):
    """A route group's route's policies over its delegating route's: each policy the
    child sets replaces the parent's of the same kind; the rest are inherited. Both
    setting a rule set (``authorization``, ``mcpAuthorization``) is refused by the caller
    (``_composed_conflicts``): replacing one would fail open."""
    if parent is None:
        return child
    if child is None:
        return parent
    update = {k: getattr(child, k) for k in child.model_fields_set if getattr(child, k) is not None}
    return parent.model_copy(update=update) if update else parent


def _composed_conflicts(parent, child) -> list[str]:
    """The rule-set kinds both the delegating route and a group's route set."""
    if parent is None or child is None:
        return []
    return [k for k in _COMPOSED_RULES if getattr(parent, k) is not None and getattr(child, k) is not None]


class _Errors:
    def __init__(self):
        self.items: list[str] = []

    def add(self, path: str, msg: str) -> None:
        self.items.append(f"{path}: {msg}")


#: What a host (or a2a) backend reads from its policies; the rest are refused.
_HTTP_BACKEND_POLICIES = {"backend_tls", "http", "a2a", "backend_auth", "inference_routing"}
#: What an aws (AgentCore) backend reads from its policies.
_AWS_BACKEND_POLICIES = {"a2a", "request_header_modifier", "response_header_modifier", "backend_auth"}


class Compiler(CompileScope):
    """One config load: walks the models, builds the runtime, collects every problem.

    Feature compilers receive it as their :class:`~agentgw.proxy.scope.CompileScope`."""

    def __init__(self, cfg: LocalConfig, services, base_dir: str = "."):
        self.cfg = cfg
        self.services = services
        self.base_dir = base_dir
        self.errors = _Errors()
        self.warnings: list[str] = []
        self._tls_cache: dict[tuple, ssl.SSLContext] = {}
        self._services_by_name: dict | None = None
        bd = cfg.config.backend
        self.connect_timeout = float(bd.connect_timeout) if bd and bd.connect_timeout is not None else 10.0
        self.named = _named_backends(cfg)
        self._shared: dict[str, Any] = {}

    # -- the compile scope (proxy/scope.py) --------------------------------------------
    @overload
    def path(self, p: str) -> str: ...
    @overload
    def path(self, p: None) -> None: ...
    def path(self, p: str | None) -> str | None:
        """A relative path is read from the config file's directory; when nothing is
        there but the file exists relative to the working directory, from there
        (agentgateway's reading, which its examples rely on)."""
        if p is None:
            return None
        if os.path.isabs(p):
            return p
        beside = os.path.join(self.base_dir, p)
        if not os.path.exists(beside) and os.path.exists(p):
            return os.path.abspath(p)
        return beside

    def refuse_fields(self, obj: object, fields: Mapping[str, str], path: str) -> None:
        if obj is None:
            return
        for attr, key in fields.items():
            if getattr(obj, attr, None) is not None:
                self.errors.add(f"{path}.{key}", "not supported by this agentgw build yet")

    def shared(self, key: str, make: Callable[[], T]) -> T:
        try:
            return self._shared[key]
        except KeyError:
            obj = self._shared[key] = make()
            return obj

    # -- entry ----------------------------------------------------------------------------
    def compile(self) -> Runtime:
        from .config.targeted import apply_targeted_policies

        refuse_unsupported(self.cfg, self.errors.add)
        cfg = apply_targeted_policies(self.cfg, self.errors.add)
        if cfg is not self.cfg:  # targeted policies went into a copy: index its backends
            self.cfg, self.named = cfg, _named_backends(cfg)
        shape = self._shape = expand_gateways(cfg)
        for where, problem in shape.errors:
            self.errors.add(where, problem)
        bind_cfgs = [(b, f"binds[{i}]") for i, b in enumerate(cfg.binds)] + shape.binds
        if cfg.mcp is not None and not shape.mcp_attached:
            bind_cfgs.append((self._mcp_shorthand(cfg.mcp), "mcp"))
        llm_bind = None
        if cfg.llm is not None:
            from .backends.llm.compile import compile_llm

            llm_bind = compile_llm(self, cfg.llm)
        self._attached: dict[str, list[Match]] = {}
        if llm_bind is not None and shape.llm_attached:
            for lpath in shape.llm_listeners:
                self._attached.setdefault(lpath, []).extend(_attachable(llm_bind))
        self._group_stack: list[int] = []  # the route groups being compiled (cycles)
        self._groups_used: set[int] = set()
        for i, nb in enumerate(cfg.backends):
            if nb.host is None and nb.a2a is None and nb.mcp is None and nb.ai is None and nb.aws is None:
                self.errors.add(
                    f"backends[{i}]", "only host, a2a, mcp, ai and aws backends are supported by this agentgw build yet"
                )
        binds: dict[int, BindRuntime] = {}
        bind_tls: dict[int, ssl.SSLContext | None] = {}
        seen_ports: dict[int, int] = {}
        for bi, (b, bpath) in enumerate(bind_cfgs):
            if b.port in seen_ports:
                self.errors.add(f"{bpath}.port", f"port {b.port} is already used by binds[{seen_ports[b.port]}]")
                continue
            seen_ports[b.port] = bi
            listeners = []
            tcp_listeners = []
            minted = False
            tls_by_host: list[tuple[str | None, ssl.SSLContext]] = []
            protocols = set()
            for li, lst in enumerate(b.listeners):
                lpath = f"{bpath}.listeners[{li}]"
                protocols.add(lst.protocol)
                if lst.protocol in ("TCP", "TLS"):
                    tcp_listeners.append(self._tcp_listener(lst, lpath, lst.name or f"listener{li}"))
                    continue
                if lst.protocol not in ("HTTP", "HTTPS"):
                    self.errors.add(
                        f"{lpath}.protocol", f"{lst.protocol} listeners are not supported by this agentgw build yet"
                    )
                    continue
                self.refuse_fields(lst.policies, UNSUPPORTED_ROUTE_POLICIES, f"{lpath}.policies")
                if lst.tls is not None and lst.protocol != "HTTPS":
                    self.errors.add(f"{lpath}.tls", "is only used with protocol HTTPS")
                if lst.tcp_routes is not None:
                    self.errors.add(f"{lpath}.tcpRoutes", "are only used with protocol TCP or TLS")
                tls_ctx = None
                if lst.protocol == "HTTPS" and lst.tls is not None:  # (the model requires tls with HTTPS)
                    tls_ctx = self._listener_tls(lst.tls, f"{lpath}.tls")
                    if tls_ctx is not None and lst.tls.mode == "dynamicCa":
                        # a certificate minted per SNI name: the bind reads the SNI first
                        tls_ctx = self._dynamic_ca(lst.tls, tls_ctx, lst.hostname, f"{lpath}.tls")
                        minted = True
                    elif tls_ctx is not None:
                        # (read by gateway.client_cert_refusal)
                        tls_ctx.listener_hostname = lst.hostname  # type: ignore[attr-defined]  # an attribute of our own
                        tls_by_host.append((lst.hostname, tls_ctx))
                lname = lst.name or f"listener{li}"
                pn = lst.path_normalization
                rules = PathRules(pn.encoded_slashes, pn.path_parameters) if pn is not None else DEFAULT_RULES
                table = self._routes(lst.routes or [], lpath, lname, rules, self._attached.get(lpath, ()))
                lpolicies = compile_identity(self, lst.policies, f"{lpath}.policies")
                gw_cors = getattr(lst.policies, "cors", None)  # (a named gateway's listener)
                if gw_cors is not None:
                    lpolicies.append(Cors.from_config(gw_cors))
                client_certs = tls_ctx is not None and tls_ctx.verify_mode != ssl.CERT_NONE
                listeners.append(
                    ListenerRuntime(
                        lname, lst.hostname, lst.protocol, table, tls_ctx, lpolicies, rules, client_certs=client_certs
                    )
                )
            if len(protocols) > 1 and not protocols <= {"HTTPS", "TLS"}:
                self.errors.add(
                    bpath,
                    "all listeners of one bind must use the same protocol (HTTPS and TLS listeners may share a port)",
                )
            listeners.sort(key=lambda L: listener_specificity(L.hostname))
            internal = getattr(b, "mode", "standard") == "internal"
            connect = (b.tunnel_protocol or "").lower() == "connect"
            if connect and internal:
                self.errors.add(
                    f"{bpath}.tunnelProtocol", "connect is not used on an internal bind (nothing connects to it)"
                )
            # TCP and TLS listeners, and HTTPS ones reached through CONNECT, are picked by SNI
            # (proxy/tcp.py); HTTPS listeners there are terminated per connection
            tcp = tcp_listeners or (internal and "HTTPS" in protocols) or minted
            every = sorted(listeners + tcp_listeners, key=lambda L: listener_specificity(L.hostname)) if tcp else None
            binds[b.port] = BindRuntime(
                b.port, listeners, self.services, tcp_listeners=every, internal=internal, connect=connect
            )
            bind_tls[b.port] = self._sni_context(tls_by_host) if tls_by_host and not tcp else None
        if llm_bind is not None and shape.llm_attached:
            llm_bind = None  # its routes are in the gateways' listeners
        if llm_bind is not None:
            if llm_bind.port in binds:
                self.errors.add("llm.port", f"port {llm_bind.port} is already used by a bind")
            else:
                binds[llm_bind.port] = llm_bind
                bind_tls[llm_bind.port] = None
        self._unused_groups()
        from .telemetry.tracing import compile_tracing

        tracer = compile_tracing(self, cfg)
        access_log = compile_access_log(self, cfg)
        process = self._process_settings()
        process["connect_timeout"] = self.connect_timeout
        from .admin.auth import compile_admin_auth

        process["admin_auth"] = compile_admin_auth(cfg, self.errors)
        if self.errors.items:
            raise ConfigError(list(dict.fromkeys(_shorthand_path(shape.real_path(e)) for e in self.errors.items)))
        trusted = tuple(ipaddress.ip_network(n, strict=False) for n in cfg.config.trusted_proxies)
        for br in binds.values():
            br.peers = binds  # (CONNECT tunnels go to the bind of their port)
            br.tracer = tracer
            br.trusted_proxies = trusted
        return Runtime(cfg, binds, bind_tls, effective_limits(cfg), self.warnings, access_log, **process)

    # -- connection and process settings --------------------------------------------------
    def _process_settings(self) -> dict:
        """What the gateway process applies to its sockets and metrics (``Runtime`` fields)."""
        c = self.cfg.config
        fp = self.cfg.frontend_policies
        ft = fp.tls or m.FrontendTLS()
        out: dict = {
            "backend_keepalive": self._keepalive(
                c.backend.keepalives if c.backend else None, "config.backend.keepalives"
            ),
            "frontend_keepalive": self._keepalive(
                fp.tcp.keepalives if fp.tcp else None, "frontendPolicies.tcp.keepalives"
            ),
        }
        if ft.handshake_timeout is not None:
            if float(ft.handshake_timeout) <= 0:
                self.errors.add("frontendPolicies.tls.handshakeTimeout", "must be more than 0s")
            out["tls_handshake_timeout"] = float(ft.handshake_timeout)
        if ft.alpn:
            names = [_alpn_name(p) for p in ft.alpn]
            other = [n for n in names if n not in FRONTEND_ALPN]
            if other:
                self.errors.add(
                    "frontendPolicies.tls.alpn",
                    f"{', '.join(map(repr, other))} not supported (HTTPS listeners speak h2 and http/1.1 only)",
                )
        mt = c.metrics
        if mt is not None and mt.remove:
            out["metrics_remove"] = frozenset(mt.remove)
        return out

    def _keepalive(self, k: m.Keepalives | None, path: str) -> tuple[int, int, int] | None:
        """``keepalives {enabled, time, interval, retries}`` as the kernel takes them
        (whole seconds, a probe count), with agentgateway's defaults (on, 180s, 180s, 9);
        ``None`` when absent or ``enabled: false``."""
        if k is None or k.enabled is False:
            return None
        out = []
        for name, value, default in (("time", k.time, 180), ("interval", k.interval, 180)):
            secs = default if value is None else math.ceil(float(value))
            if not 1 <= secs <= 32767:
                self.errors.add(f"{path}.{name}", "must be from 1s to 32767s (the kernel's range; fractions round up)")
            out.append(secs)
        count = 9 if k.retries is None else k.retries
        if not 1 <= count <= 127:
            self.errors.add(f"{path}.retries", "must be from 1 to 127 (the kernel's range)")
        out.append(count)
        return (out[0], out[1], out[2])

    # -- routes ---------------------------------------------------------------------------
    def _routes(
        self, routes: list, lpath: str, lname: str, rules: PathRules = DEFAULT_RULES, attached: Sequence[Match] = ()
    ) -> RouteTable:
        entries: list[tuple[list[str], list[Match]]] = []
        order = 0
        for ri, r in enumerate(routes):
            rpath = f"{lpath}.routes[{ri}]"
            name = r.name or f"{lname}/route{ri}"
            order = self._route(r, rpath, name, lname, rules, order, entries)
        for mt in attached:  # routes a feature attached to this listener (llm.gateways)
            mt.order = order
            order += 1
            entries.append(([], [mt]))
        return RouteTable(entries)

    def _route(self, r: m.Route, rpath: str, name: str, lname: str, rules: PathRules, order: int, entries) -> int:
        """Compile one route into ``entries`` (its hostnames and matches); the next match order."""
        group = self._group_ref(r, rpath)
        if r is self._shape.ui_route:  # ui: attached to this listener
            from .admin.attached import UiBackend

            self._refuse_ui_policies(r.policies, f"{rpath}.policies")
            policies, _ = self._route_policies(r.policies, f"{rpath}.policies", ai=False, route_id=name)
            self._check_ui_guard(r, rpath)
            route = Route(name, policies, UiBackend(self.services), lname)
        elif group is not None:
            backend: Any = self._route_group(group, r, rpath, lname, rules)
            route = Route(name, [], backend, lname)  # its policies run in the group's routes
        else:
            policies, traffic = self._route_policies(r.policies, f"{rpath}.policies", ai=self._has_ai(r), route_id=name)
            backend = self._backends(r.backends, f"{rpath}.backends", r.policies, traffic)
            for key in ("transformations", "ext_proc"):
                if key in traffic and backend is not None and getattr(backend, "kind", "") != "http":
                    self.errors.add(traffic[key], "not supported on routes to this backend kind yet")
            if traffic.get("backend_auth_own") is not None:  # the backend's backendAuth replaces the route's
                policies = [p for p in policies if not isinstance(p, BackendAuthPolicy)]
                policies.append(traffic["backend_auth_own"])
            a2a = self._a2a_agent(r, backend, rpath)
            if a2a is not None:
                agent, a2a_cfg, a2a_path = a2a
                metrics = getattr(getattr(self.services, "metrics", None), "m", None)
                policies.extend(compile_a2a(self, agent, a2a_cfg, a2a_path, metrics))
            route = Route(name, policies, backend, lname)
        matches = []
        for mi, mm in enumerate(r.effective_matches()):
            matches.append(self._match(route, mm, f"{rpath}.matches[{mi}]", order, rules))
            order += 1
        entries.append((list(r.hostnames), matches))
        return order

    def _refuse_ui_policies(self, p: m.RoutePolicies | None, path: str) -> None:
        """``ui.policies``: what runs before the UI answers -- authentication,
        authorization, rate limits, CORS / CSRF, header edits. What would act on an
        upstream or rewrite the UI's paths has nothing to act on there: refused."""
        if p is None:
            return
        for attr in sorted(p.model_fields_set):
            if attr in _UI_POLICIES or getattr(p, attr) is None:
                continue
            key = type(p).model_fields[attr].alias or _camel(attr)
            self.errors.add(f"{path}.{key}", "not supported on the UI's route (it serves the UI itself: no upstream)")

    def _check_ui_guard(self, r: m.Route, rpath: str) -> None:
        """The UI on a traffic listener shows the config, the requests and the admin API:
        something must authenticate who reaches it -- a policy of ``ui.policies``, or
        ``config.admin``'s credential (then every API call needs it)."""
        p = r.policies
        # a policy that lets a request without a credential through (mode: optional, the
        # default of jwtAuth, apiKey and basicAuth) guards nothing here
        guarded = p is not None and (
            p.oidc is not None
            or p.ext_authz is not None
            or any(getattr(getattr(p, k), "mode", None) == "strict" for k in ("jwt_auth", "basic_auth", "api_key"))
        )
        admin = self.cfg.config.admin
        if not guarded and not (admin is not None and (admin.token or admin.basic_auth)):
            self.errors.add(
                f"{rpath}.policies",
                "the UI and its admin API on a traffic listener need authentication: set ui.policies with oidc, "
                "extAuthz, or jwtAuth / basicAuth / apiKey in mode strict, or config.admin.token / basicAuth",
            )

    # -- route groups (delegation) ---------------------------------------------------------
    def _group_ref(self, r: m.Route, rpath: str) -> tuple[int, str] | None:
        """``(group index, its backend's path)`` when the route delegates to a route group."""
        refs = [(bi, rb) for bi, rb in enumerate(r.backends) if rb.route_group is not None]
        if not refs:
            return None
        bi, rb = refs[0]
        bpath = f"{rpath}.backends[{bi}].routeGroup"
        if len(r.backends) > 1:
            self.errors.add(bpath, "a routeGroup backend must be the only backend of its route")
            return None
        if rb.policies is not None:
            self.errors.add(f"{rpath}.backends[{bi}].policies", "not supported on a routeGroup backend")
        gi = next((i for i, g in enumerate(self.cfg.route_groups) if g.name == rb.route_group), None)
        if gi is None:
            known = ", ".join(g.name for g in self.cfg.route_groups) or "none defined"
            self.errors.add(bpath, f"no route group named {rb.route_group!r} (routeGroups: {known})")
            return None
        return gi, bpath

    def _route_group(self, ref: tuple[int, str], parent: m.Route, rpath: str, lname: str, rules: PathRules):
        """The group's routes compiled for this delegating route: each with the parent's
        policies, its own replacing those of the same kind (the more specific route wins,
        as agentgateway merges a route chain's policies)."""
        from .proxy.delegation import RouteGroupBackend

        gi, bpath = ref
        group = self.cfg.route_groups[gi]
        stack = self._group_stack
        if gi in stack:
            self.errors.add(bpath, f"route group {group.name!r} delegates back to itself (a cycle)")
            return None
        stack.append(gi)
        self._groups_used.add(gi)
        try:
            entries: list = []
            order = 0
            for ci, child in enumerate(group.routes):
                cpath = f"routeGroups[{gi}].routes[{ci}]"
                for kind in _composed_conflicts(parent.policies, child.policies):
                    key = m.RoutePolicies.model_fields[kind].alias or kind
                    self.errors.add(
                        f"{cpath}.policies.{key}",
                        f"the delegating route ({rpath or 'routegroup'}) sets {key} too: a group's route would "
                        "replace its rules (deny and require rules lost); keep the rules on one of them",
                    )
                merged = _merge_policies(parent.policies, child.policies)
                eff = child.model_copy(update={"policies": merged}) if merged is not child.policies else child
                order = self._route(eff, cpath, child.name or f"{group.name}/route{ci}", lname, rules, order, entries)
            return RouteGroupBackend(group.name, RouteTable(entries))
        finally:
            stack.pop()

    def _unused_groups(self) -> None:
        """A group no route delegates to is still checked, as it would serve."""
        for gi, group in enumerate(self.cfg.route_groups):
            if gi not in self._groups_used:
                parent = m.Route(name=f"routegroup/{group.name}", backends=[])
                self._route_group((gi, f"routeGroups[{gi}]"), parent, "", "routegroup", DEFAULT_RULES)

    def _a2a_agent(self, r: m.Route, backend, rpath: str):
        """``(agent name, a2a policy, its path)`` when the route carries A2A traffic
        (``a2a`` policy, ``a2a`` backend, or a backend with the ``a2a`` backend policy),
        else ``None``."""
        cfg = r.policies.a2a if r.policies is not None else None
        where = f"{rpath}.policies.a2a"
        on = cfg is not None
        for bi, rb in enumerate(r.backends):
            nb = self.named.get(rb.backend, (0, None))[1] if rb.backend is not None else None
            if rb.a2a is not None or (nb is not None and nb.a2a is not None):
                on = True
            if rb.aws is not None or (nb is not None and nb.aws is not None):
                on = True  # AgentCore: A2A in
            for bp, bpath in (
                (rb.policies, f"{rpath}.backends[{bi}].policies.a2a"),
                (nb.policies if nb is not None else None, f"backends[{rb.backend}].policies.a2a"),
            ):
                if bp is not None and bp.a2a is not None:
                    on = True
                    if cfg is None:
                        cfg, where = bp.a2a, bpath
        if not on:
            return None
        agent = cfg.agent if cfg is not None and cfg.agent else r.name or (backend.label if backend is not None else "")
        return agent or "", cfg, where

    def _match(self, route: Route, mm: m.RouteMatch, path: str, order: int, rules: PathRules = DEFAULT_RULES) -> Match:
        kind, value = PREFIX, "/"
        if mm.path is not None:
            if mm.path.exact is not None:
                kind, value = EXACT, mm.path.exact
            elif mm.path.path_prefix is not None:
                kind, value = PREFIX, mm.path.path_prefix
            elif mm.path.regex is not None:
                kind, value = REGEX, mm.path.regex
            if kind != REGEX:
                # compared with canonical request paths: written in the same form
                try:
                    value = canonical_path(value, rules)
                except GatewayError as e:
                    self.errors.add(f"{path}.path", f"no request path can match {value!r}: {e.message}")

        def pairs(items):
            out = []
            for it in items:
                v = it.value
                out.append((it.name.lower(), v.exact, re.compile(v.regex) if v.regex is not None else None))
            return out

        return Match(
            route,
            kind=kind,
            value=value,
            method=mm.method,
            headers=pairs(mm.headers),
            query=[
                (q.name, q.value.exact, re.compile(q.value.regex) if q.value.regex is not None else None)
                for q in mm.query
            ],
            order=order,
        )

    def _has_ai(self, r: m.Route) -> bool:
        """Whether the route has an ``ai`` backend (its ``ai``/``backendAuth`` policies are read by it)."""
        for rb in r.backends:
            nb = self.named[rb.backend][1] if rb.backend is not None and rb.backend in self.named else None
            if rb.ai is not None or (nb is not None and nb.ai is not None):
                return True
        return False

    def _route_policies(
        self, p: m.RoutePolicies | None, path: str, ai: bool = False, route_id: str = ""
    ) -> tuple[list, dict]:
        out: list = []
        traffic: dict = {}
        if p is None:
            return out, traffic
        # (listener and llm policies still refuse oidc through UNSUPPORTED_ROUTE_POLICIES)
        unsupported = {
            k: v for k, v in UNSUPPORTED_ROUTE_POLICIES.items() if k not in ("transformations", "oidc", "ext_proc")
        }
        if ai:  # read by the ai backend
            unsupported = {k: v for k, v in unsupported.items() if k not in ("ai", "backend_auth")}
        self.refuse_fields(p, unsupported, path)
        if p.oidc is not None:
            oidc = compile_oidc(self, p.oidc, f"{path}.oidc", route_id or path)
            if oidc is not None:
                out.append(oidc)
        out.extend(compile_identity(self, p, path))
        if p.transformations is not None:  # (HTTP backends only: checked with the backend)
            tr = compile_transformations(self, p.transformations, f"{path}.transformations")
            if tr is not None:
                out.append(tr)
            traffic["transformations"] = f"{path}.transformations"
        if p.ext_proc is not None:  # (HTTP backends only: checked with the backend)
            from .policies.ext_proc import compile_ext_proc

            xp = compile_ext_proc(self, p.ext_proc, f"{path}.extProc")
            if xp is not None:
                out.append(xp)
            traffic["ext_proc"] = f"{path}.extProc"
        if p.backend_auth is not None and not ai:  # (an ai backend reads its own)
            ba = compile_backend_auth(self, p.backend_auth, f"{path}.backendAuth")
            if ba is not None:
                out.append(ba)
                traffic["backend_auth"] = ba
        elif p.backend_auth is not None and p.backend_auth.passthrough is not None:
            # the ai backend moves the client's Bearer token to the provider's header; after
            # jwtAuth (which removes it) that is the token jwtAuth validated, as agentgateway
            out.append(BackendAuthPolicy(passthrough=Slot("header", "authorization", "Bearer ")))
        ma = getattr(p, "mcp_authentication", None)
        if ma is not None:
            if getattr(p, "jwt_auth", None) is not None:
                self.errors.add(
                    f"{path}.mcpAuthentication",
                    "cannot be combined with jwtAuth on the same route: both read the bearer token",
                )
            else:
                mauth = compile_mcp_authentication(self, ma, f"{path}.mcpAuthentication")
                if mauth is not None:
                    out.append(mauth)
        if p.request_header_modifier is not None:
            h = p.request_header_modifier
            out.append(RequestHeaderModifier(h.add, h.set, h.remove))
        if p.response_header_modifier is not None:
            h = p.response_header_modifier
            out.append(ResponseHeaderModifier(h.add, h.set, h.remove))
        if p.url_rewrite is not None:
            u = p.url_rewrite
            out.append(
                UrlRewrite(
                    path_full=u.path.full if u.path else None,
                    path_prefix=u.path.prefix if u.path else None,
                    authority=self._authority(u.authority, f"{path}.urlRewrite.authority"),
                )
            )
        if p.request_redirect is not None:
            rr = p.request_redirect
            a = rr.authority
            kw: dict = {}
            if a == "auto":
                self.errors.add(
                    f"{path}.requestRedirect.authority",
                    "auto is not supported yet; use none (keep the host) or {full|host|port}",
                )
            if isinstance(a, m.HostRewrite):
                kw = {"authority": a.full, "host": a.host, "port": a.port}
            out.append(
                RequestRedirect(
                    scheme=rr.scheme,
                    path_full=rr.path.full if rr.path else None,
                    path_prefix=rr.path.prefix if rr.path else None,
                    status=rr.status or 302,
                    **kw,
                )
            )
        if p.direct_response is not None:
            d = p.direct_response
            if not isinstance(d, m.DirectResponse):
                self._conditional_direct_response(d, f"{path}.directResponse.conditional", out)
            elif d.body_expression is not None:
                self.errors.add(f"{path}.directResponse.bodyExpression", "not supported by this agentgw build yet")
            else:
                out.append(DirectResponse(d.status, (d.body or "").encode("utf-8"), d.headers))
        if p.cors is not None:
            out.append(Cors.from_config(p.cors))
        if p.local_rate_limit is not None:
            lrl = p.local_rate_limit
            if not isinstance(lrl, list):
                self.errors.add(f"{path}.localRateLimit.conditional", "conditional rate limits are not supported yet")
            elif lrl:
                out.append(
                    LocalRateLimit(
                        [TokenBucket(b.max_tokens, b.tokens_per_fill, float(b.fill_interval), b.type) for b in lrl]
                    )
                )
        out.extend(compile_rate_limits(self, p, path, route_id or path))
        if p.timeout is not None:
            t = p.timeout
            traffic["request_timeout"] = float(t.request_timeout) if t.request_timeout is not None else None
            traffic["backend_timeout"] = (
                float(t.backend_request_timeout) if t.backend_request_timeout is not None else None
            )
        if p.retry is not None:
            r = p.retry
            traffic["retry"] = RetryPolicy(r.attempts, float(r.backoff) if r.backoff is not None else 0.0, r.codes)
        if p.request_mirror is not None:
            mirror = compile_request_mirror(self, p.request_mirror, f"{path}.requestMirror")
            if mirror is not None:
                out.append(mirror)
        if p.csrf is not None:
            out.append(Csrf(p.csrf.additional_origins))
        if p.delay is not None:
            try:
                out.append(Delay(p.delay.duration, traffic.get("request_timeout")))
            except CelError as exc:
                self.errors.add(f"{path}.delay.duration", f"neither a duration nor a valid CEL expression: {exc}")
        return out, traffic

    def _conditional_direct_response(self, d: m.ConditionalDirectResponses, path: str, out: list) -> None:
        entries = []
        for i, e in enumerate(d.conditional):
            if e.body_expression is not None:
                self.errors.add(f"{path}[{i}].bodyExpression", "not supported by this agentgw build yet")
                continue
            try:
                cond = Expression(e.condition) if e.condition is not None else None
            except CelError as exc:
                self.errors.add(f"{path}[{i}].condition", str(exc))
                continue
            entries.append((cond, DirectResponse(e.status, (e.body or "").encode("utf-8"), e.headers)))
        out.append(ConditionalDirectResponse(entries))

    def _authority(self, a, path: str) -> str | None:
        """``urlRewrite.authority``: ``none`` (keep the client's Host, as when unset) or
        ``{full}``."""
        if a is None or a == "none":
            return None
        if a == "auto":
            self.errors.add(path, "auto (the backend's host) is not supported yet; use {full: host}")
            return None
        if isinstance(a, m.HostRewrite):
            if a.full is not None:
                return a.full
            key = "host" if a.host is not None else "port"
            self.errors.add(f"{path}.{key}", "not supported yet in urlRewrite (only full)")
        return None

    # -- backends -------------------------------------------------------------------------
    def _backends(self, backends: list, path: str, route_policies, traffic: dict):
        route_tls = route_policies.backend_tls if route_policies is not None else None
        if route_policies is not None and route_policies.mcp_authorization is not None:
            named = [self.named.get(rb.backend, (0, None))[1] for rb in backends if rb.backend is not None]
            if not any(rb.mcp is not None for rb in backends) and not any(
                nb is not None and nb.mcp is not None for nb in named
            ):
                self.errors.add(
                    f"{path.rsplit('.', 1)[0]}.policies.mcpAuthorization", "needs an mcp backend on the route"
                )
        http: list[tuple[int, HttpBackend]] = []
        own_auth: list[tuple[str, m.BackendAuth]] = []  # backends' own backendAuth
        for i, rb in enumerate(backends):
            bpath = f"{path}[{i}]"
            if rb.route_group is not None:
                continue  # refused by _group_ref: not beside other backends
            bp = rb.policies
            if bp is not None and (rb.mcp is not None or rb.ai is not None):
                bp = None  # checked by the MCP / LLM compilers
            nb = self.named.get(rb.backend, (0, None))[1] if rb.backend is not None else None
            only = next(
                (k for k in ("mcp", "ai", "aws") if getattr(rb, k) is not None or getattr(nb, k, None) is not None),
                None,
            )
            if only is not None and rb.weight != 1:
                self.errors.add(f"{bpath}.weight", f"has no effect: an {only} backend is the only backend of its route")
            if bp is not None and nb is not None and only in ("mcp", "ai"):
                self.errors.add(
                    f"{bpath}.policies", f"are not used with a named {only} backend; set them on backends[] instead"
                )
                bp = None
            if bp is not None and bp.inference_routing is not None and rb.service is None:
                self.errors.add(f"{bpath}.policies.inferenceRouting", "is only supported on service backends")
            if bp is not None:
                allowed = _AWS_BACKEND_POLICIES if only == "aws" else _HTTP_BACKEND_POLICIES
                refuse_except(
                    self.errors.add,
                    bp,
                    f"{bpath}.policies",
                    allowed,
                    f"not supported for {only or 'host'} backends yet",
                )
            tls_cfg = (bp.backend_tls if bp is not None else None) or route_tls
            tls_path = (
                f"{bpath}.policies.backendTLS"
                if bp is not None and bp.backend_tls is not None
                else f"{path.rsplit('.', 1)[0]}.policies.backendTLS"
            )
            bhttp = bp.http if bp is not None and only is None else None
            timeout = self.backend_http(bhttp, f"{bpath}.policies.http", http2_ok=True)
            version = self.backend_version(bhttp)
            if only is None:
                if bp is not None and bp.backend_auth is not None:
                    own_auth.append((f"{bpath}.policies.backendAuth", bp.backend_auth))
                elif nb is not None and nb.policies is not None and nb.policies.backend_auth is not None:
                    ni_ = self.named[rb.backend][0]
                    own_auth.append((f"backends[{ni_}].policies.backendAuth", nb.policies.backend_auth))
            if rb.host is not None:
                http.append(
                    (
                        rb.weight,
                        compile_http_backend(
                            self, rb.host, rb.host, tls_cfg, bpath, timeout, tls_path, version=version
                        ),
                    )
                )
            elif rb.service is not None:
                http.extend(self._service_backends(rb, bp, bpath, tls_cfg, timeout, tls_path, version))
            elif rb.a2a is not None:
                for w, tname, addr in static_targets(rb.a2a):
                    http.append(
                        (
                            rb.weight * w,
                            compile_http_backend(
                                self, tname, addr, tls_cfg, f"{bpath}.a2a", timeout, tls_path, version=version
                            ),
                        )
                    )
            elif rb.backend is not None:
                ref = self.named.get(rb.backend)
                if ref is None:
                    self.errors.add(f"{bpath}.backend", f"no top-level backend named {rb.backend!r}")
                    continue
                ni, nb = ref
                if nb.ai is not None:
                    if len(backends) > 1:
                        self.errors.add(
                            f"{bpath}.backend",
                            "an ai backend must be the only backend of its route (use ai.groups for several providers)",
                        )
                        continue
                    from .backends.llm.compile import compile_ai_backend

                    return compile_ai_backend(
                        self,
                        nb.ai,
                        f"backends[{ni}].ai",
                        route_policies,
                        nb.policies,
                        traffic,
                        name=nb.name,
                        route_path=path.rsplit(".", 1)[0],
                    )
                if nb.mcp is not None:
                    if len(backends) > 1:
                        self.errors.add(f"{bpath}.backend", "an mcp backend must be the only backend of its route")
                        continue
                    return self._mcp(
                        nb.mcp,
                        f"backends[{ni}].mcp",
                        route_policies,
                        nb.policies,
                        traffic,
                        name=nb.name,
                        route_path=path.rsplit(".", 1)[0],
                    )
                if nb.aws is not None:
                    refuse_except(
                        self.errors.add,
                        nb.policies,
                        f"backends[{ni}].policies",
                        _AWS_BACKEND_POLICIES,
                        "not supported for aws backends yet",
                    )
                    return self._aws(
                        nb.aws,
                        f"backends[{ni}].aws",
                        len(backends),
                        bpath,
                        traffic,
                        name=nb.name,
                        route_policies=route_policies,
                        backend_policies=nb.policies,
                    )
                refuse_except(
                    self.errors.add,
                    nb.policies,
                    f"backends[{ni}].policies",
                    _HTTP_BACKEND_POLICIES - {"inference_routing"},
                    "not supported for host backends yet",
                )
                if nb.policies is not None and nb.policies.inference_routing is not None:
                    self.errors.add(
                        f"backends[{ni}].policies.inferenceRouting", "is only supported on service backends"
                    )
                ntls = (nb.policies.backend_tls if nb.policies is not None else None) or tls_cfg
                if nb.policies is not None and nb.policies.backend_tls is not None:
                    tls_path = f"backends[{ni}].policies.backendTLS"
                nh = nb.policies.http if nb.policies is not None else None
                if nh is not None:
                    ntimeout = self.backend_http(nh, f"backends[{ni}].policies.http", http2_ok=True)
                    nversion = self.backend_version(nh)
                else:
                    ntimeout, nversion = timeout, version
                if nb.a2a is not None:
                    for w, _tname, addr in static_targets(nb.a2a):
                        http.append(
                            (
                                rb.weight * w,
                                compile_http_backend(
                                    self,
                                    nb.name,
                                    addr,
                                    ntls,
                                    f"backends[{ni}].a2a",
                                    ntimeout,
                                    tls_path,
                                    version=nversion,
                                ),
                            )
                        )
                    continue
                if nb.host is None:
                    continue  # reported at backends[ni]
                http.append(
                    (
                        rb.weight,
                        compile_http_backend(
                            self, nb.name, nb.host, ntls, f"backends[{ni}]", ntimeout, tls_path, version=nversion
                        ),
                    )
                )
            elif rb.ai is not None:
                if len(backends) > 1:
                    self.errors.add(
                        f"{bpath}.ai",
                        "an ai backend must be the only backend of its route (use ai.groups for several providers)",
                    )
                    continue
                from .backends.llm.compile import compile_ai_backend

                return compile_ai_backend(
                    self, rb.ai, f"{bpath}.ai", route_policies, rb.policies, traffic, route_path=path.rsplit(".", 1)[0]
                )
            elif rb.mcp is not None:
                if len(backends) > 1:
                    self.errors.add(f"{bpath}.mcp", "an mcp backend must be the only backend of its route")
                    continue
                return self._mcp(
                    rb.mcp, f"{bpath}.mcp", route_policies, rb.policies, traffic, route_path=path.rsplit(".", 1)[0]
                )
            elif rb.aws is not None:
                return self._aws(
                    rb.aws,
                    f"{bpath}.aws",
                    len(backends),
                    bpath,
                    traffic,
                    route_policies=route_policies,
                    backend_policies=rb.policies,
                )
            elif rb.dynamic is not None:  # the request's own authority (backends/dynamic.py)
                if len(backends) > 1:
                    self.errors.add(f"{bpath}.dynamic", "a dynamic backend must be the only backend of its route")
                    continue
                if rb.dynamic:
                    key = next(iter(rb.dynamic))
                    self.errors.add(f"{bpath}.dynamic.{key}", "not supported on HTTP routes yet")
                    continue
                if bp is not None and bp.backend_auth is not None:
                    self.errors.add(f"{bpath}.policies.backendAuth", "not supported on dynamic backends yet")
                    continue
                return self._dynamic(tls_cfg, tls_path, timeout, traffic)
            else:
                kind = next(k for k in ("mcp", "ai", "aws", "dynamic") if getattr(rb, k) is not None)
                self.errors.add(f"{bpath}.{kind}", f"{kind} backends are not supported by this agentgw build yet")
        if own_auth:
            if len(backends) > 1:
                for apath, _ in own_auth:
                    self.errors.add(
                        apath, "not supported on one of several backends of a route yet; set it in the route's policies"
                    )
            else:
                own = compile_backend_auth(self, own_auth[0][1], own_auth[0][0])
                if own is not None:
                    traffic["backend_auth_own"] = own
        if not http:
            return None
        svc = self.services
        return HttpBackendSet(
            http,
            svc.pool,
            retry=traffic.get("retry"),
            request_timeout=traffic.get("request_timeout"),
            backend_timeout=traffic.get("backend_timeout"),
            on_upstream_error=svc.on_upstream_error,
        )

    def _dynamic(self, tls_cfg: m.BackendTLS | None, tls_path: str, timeout: float | None, traffic: dict):
        from .backends.dynamic import DynamicHttpBackend

        tls_ctx, key = self.backend_tls(tls_cfg, tls_path) if tls_cfg is not None else (None, "")
        return DynamicHttpBackend(
            self.services.pool,
            tls=tls_ctx,
            tls_key=key,
            sni=tls_cfg.hostname if tls_cfg is not None else None,
            connect_timeout=self.connect_timeout,
            timeout=timeout,
            traffic=traffic,
            on_upstream_error=self.services.on_upstream_error,
        )

    def backend_http(self, h: m.BackendHTTP | None, path: str, *, http2_ok: bool = False) -> float | None:
        """A backend's ``http`` policy: its request timeout; its ``version`` is checked
        (HTTP/2 only where the backends can speak it, see backend_version)."""
        if h is None:
            return None
        if h.version is not None:
            v = parse_http_version(h.version)
            if v is None:
                self.errors.add(f"{path}.version", f"{h.version!r} is not a version agentgw speaks: use HTTP1 or HTTP2")
            elif v == "2" and not http2_ok:
                self.errors.add(
                    f"{path}.version",
                    "HTTP/2 to this kind of backend is not supported yet (host, service and a2a backends speak it)",
                )
        return float(h.request_timeout) if h.request_timeout is not None else None

    def backend_version(self, h: m.BackendHTTP | None) -> str | None:
        return parse_http_version(h.version) if h is not None and h.version is not None else None

    def _service_backends(self, rb, bp, bpath: str, tls_cfg, timeout, tls_path, version=None) -> list:
        """(weight, HttpBackend) for a ``service`` backend: the addresses of the service
        in top-level ``services`` (its vips at the target port; none if it has none), else
        the service's hostname (DNS); with ``inferenceRouting``, one backend whose
        address an endpoint picker names per request."""
        from .backends.inference import compile_inference_routing

        s = rb.service
        name = f"{s.name.namespace}/{s.name.hostname}:{s.port}"
        svc = self._static_services().get((s.name.namespace, s.name.hostname))
        if svc is not None:
            if svc.ports and s.port not in svc.ports:
                self.errors.add(
                    f"{bpath}.service.port", f"service {s.name.namespace}/{s.name.hostname} has no port {s.port}"
                )
                return []
            tport = svc.ports.get(s.port, s.port)
            addrs = [f"{vip.rsplit('/', 1)[-1]}:{tport}" for vip in svc.vips]
            addrs = [f"[{a.rsplit(':', 1)[0]}]:{tport}" if a.count(":") > 1 else a for a in addrs]
        else:
            addrs = [f"{s.name.hostname}:{s.port}"]
        ir = bp.inference_routing if bp is not None else None
        if ir is not None:
            router = compile_inference_routing(
                self, ir, f"{bpath}.policies.inferenceRouting", frozenset(addrs) if svc is not None else None
            )
            # (the address is the picker's; this one stands for the service until then)
            b = compile_http_backend(
                self, name, addrs[0] if addrs else "127.0.0.1:1", tls_cfg, bpath, timeout, tls_path, version=version
            )
            b.router = router
            return [(rb.weight, b)]
        out = []
        for addr in addrs:
            out.append(
                (rb.weight, compile_http_backend(self, name, addr, tls_cfg, bpath, timeout, tls_path, version=version))
            )
        return out  # (empty for a service without addresses: its requests get 503)

    def _static_services(self) -> dict:
        """Top-level ``services`` by (namespace, hostname)."""
        if self._services_by_name is None:
            self._services_by_name = {(sv.namespace, sv.hostname): sv for sv in self.cfg.services}
        return self._services_by_name

    def _aws(
        self,
        aws: m.AwsBackend,
        path: str,
        n: int,
        bpath: str,
        traffic: dict,
        name: str | None = None,
        route_policies=None,
        backend_policies=None,
    ):
        """``aws: {agentCore: …}``: an AWS Bedrock AgentCore runtime (backends/aws/agentcore.py)."""
        if route_policies is not None:
            rpath = bpath.rsplit(".backends", 1)[0] + ".policies"
            for attr, key in (("retry", "retry"), ("backend_tls", "backendTLS"), ("backend_auth", "backendAuth")):
                if getattr(route_policies, attr) is not None:
                    self.errors.add(f"{rpath}.{key}", "not supported for aws backends yet")
        if n > 1:
            self.errors.add(bpath, "an aws backend must be the only backend of its route")
            return None
        from .backends.aws.agentcore import compile_agentcore

        return compile_agentcore(
            self,
            aws,
            path,
            name=name,
            traffic=traffic,
            route_policies=route_policies,
            backend_policies=backend_policies,
        )

    # -- TCP and TLS listeners --------------------------------------------------------------
    def _tcp_listener(self, lst: m.Listener, lpath: str, lname: str) -> ListenerRuntime:
        """A TCP listener (every connection to its route's backend) or a TLS listener
        (routed by the ClientHello's SNI name, passed through encrypted): proxy/tcp.py."""
        from .proxy.tcp import TcpRoute, TcpTarget

        if lst.routes is not None:
            self.errors.add(f"{lpath}.routes", "are only used with protocol HTTP or HTTPS (use tcpRoutes)")
        tls_ctx = None
        if lst.tls is not None:
            if lst.protocol == "TCP":
                self.errors.add(f"{lpath}.tls", "is only used with protocol HTTPS or TLS")
            elif lst.tls.mode == "dynamicCa":
                self.errors.add(f"{lpath}.tls.mode", "dynamicCa is only supported on HTTPS listeners yet")
            else:  # TLS terminated here, the plain bytes to the route's backend
                tls_ctx = self._listener_tls(lst.tls, f"{lpath}.tls")
                if tls_ctx is not None:
                    tls_ctx.set_alpn_protocols([])  # (a byte stream: no application protocol to offer)
        if lst.policies is not None and any(
            getattr(lst.policies, f) is not None for f in type(lst.policies).model_fields
        ):
            self.errors.add(f"{lpath}.policies", "have no effect on a TCP or TLS listener (they are HTTP policies)")
        if lst.path_normalization is not None:
            self.errors.add(f"{lpath}.pathNormalization", "has no effect on a TCP or TLS listener")
        routes = []
        for ri, tr in enumerate(lst.tcp_routes or []):
            rpath = f"{lpath}.tcpRoutes[{ri}]"
            route_tls = tr.policies.backend_tls if tr.policies is not None else None
            if lst.protocol == "TCP" and tr.hostnames:
                self.errors.add(f"{rpath}.hostnames", "are only used on TLS listeners (a TCP connection names no host)")
            targets: list[tuple[int, TcpTarget]] = []
            for bi, be in enumerate(tr.backends):
                bp = f"{rpath}.backends[{bi}]"
                own_tls = be.policies.backend_tls if be.policies is not None else None
                tls_cfg = own_tls or route_tls
                tls_path = f"{bp}.policies.backendTLS" if own_tls is not None else f"{rpath}.policies.backendTLS"
                target = None
                if be.host is not None:
                    target = self._tcp_address(be.host, f"{bp}.host")
                elif be.service is not None:
                    sv = be.service
                    target = TcpTarget(sv.name.hostname, sv.port, f"{sv.name.namespace}/{sv.name.hostname}:{sv.port}")
                elif be.backend is not None:
                    ref = self.named.get(be.backend)
                    if ref is None:
                        self.errors.add(f"{bp}.backend", f"no top-level backend named {be.backend!r}")
                    elif ref[1].host is None:
                        self.errors.add(f"{bp}.backend", "only host backends are supported for TCP routes yet")
                    else:
                        target = self._tcp_address(ref[1].host, f"backends[{ref[0]}].host")
                elif be.dynamic is not None:
                    if be.dynamic.target is not None:  # a CEL expression giving host:port
                        from .backends.tcp import compile_dial_target

                        target = TcpTarget(None, None, "dynamic")
                        target.target = compile_dial_target(self, be.dynamic.target, f"{bp}.dynamic.target")
                    elif lst.protocol == "TCP":
                        self.errors.add(
                            f"{bp}.dynamic", "needs a TLS listener, or a target (it dials the ClientHello's SNI name)"
                        )
                    else:
                        target = TcpTarget(None, None, "dynamic")
                if target is not None:
                    if tls_cfg is not None:  # TLS to the backend
                        target.tls, _ = self.backend_tls(tls_cfg, tls_path)
                        target.tls_name = tls_cfg.hostname
                    targets.append((be.weight, target))
            routes.append(TcpRoute(tr.name or f"{lname}/tcproute{ri}", tr.hostnames, targets))
        return ListenerRuntime(lname, lst.hostname, lst.protocol, RouteTable([]), tls_ctx, tcp_routes=routes)

    def _tcp_address(self, host: str, path: str):
        from .proxy.tcp import TcpTarget

        if "://" in host:
            self.errors.add(path, "a TCP backend is 'host:port', not a URL")
            return None
        name, _, port = host.rpartition(":")
        return TcpTarget(name.strip("[]"), int(port), host)

    # -- MCP ------------------------------------------------------------------------------
    def _mcp_shorthand(self, sh: m.McpShorthand) -> m.Bind:
        """``mcp: {port, targets, ...}`` → one bind, one listener, one route to the backend."""
        backend = sh.model_dump(by_alias=True, exclude_none=True, exclude={"port", "policies", "gateways"})
        route: dict = {"name": "mcp", "backends": [{"mcp": backend}]}
        if sh.policies is not None:
            route["policies"] = sh.policies.model_dump(by_alias=True, exclude_none=True)
        return m.Bind.model_validate({"port": sh.port, "listeners": [{"name": "mcp", "routes": [route]}]})

    def _mcp(
        self,
        mb: m.McpBackend,
        path: str,
        route_policies,
        backend_policies,
        traffic: dict,
        name: str = "",
        route_path: str | None = None,
    ):
        from .backends.mcp.compile import compile_mcp_backend

        return compile_mcp_backend(
            self, mb, path, route_policies, backend_policies, traffic, name, route_path=route_path
        )

    # -- TLS ------------------------------------------------------------------------------
    def backend_tls(self, t: m.BackendTLS, path: str, *, http2: bool = False) -> tuple[ssl.SSLContext | None, str]:
        if t.alpn and any(p not in ("http/1.1", "h2") for p in t.alpn):
            self.errors.add(
                f"{path}.alpn", "agentgw offers backends http/1.1, and h2 for HTTP/2 (policies.http.version)"
            )
        # what is offered follows the protocol the connection will speak: h2 on HTTP/2
        # connections, http/1.1 (when alpn is set) on the others, so a backend can never
        # pick a protocol the connection then does not speak
        alpn = ("h2",) if http2 else (("http/1.1",) if t.alpn else ())
        key = (t.root, t.cert, t.key, t.insecure, t.insecure_host, alpn)
        keystr = repr(key)
        ctx = self._tls_cache.get(key)
        if ctx is not None:
            return ctx, keystr
        try:
            ctx = ssl.create_default_context(cafile=self.path(t.root)) if t.root else ssl.create_default_context()
            if t.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif t.insecure_host:
                ctx.check_hostname = False
            if t.cert and t.key:
                ctx.load_cert_chain(self.path(t.cert), self.path(t.key))
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
        except (OSError, ssl.SSLError) as exc:
            self.errors.add(path, f"cannot load TLS material: {exc}")
            return None, keystr
        self._tls_cache[key] = ctx
        return ctx, keystr

    def _listener_tls(self, t: m.ListenerTLS, path: str) -> ssl.SSLContext | None:
        """The listener's TLS settings; ``frontendPolicies.tls`` gives the defaults for
        versions and cipher suites."""
        if t.cert is None or t.key is None:  # (the model allows that only with spiffe)
            self.errors.add(f"{path}.spiffe", SPIFFE_REFUSAL)
            return None
        ft = self.cfg.frontend_policies.tls or m.FrontendTLS()
        min_version = t.min_tls_version or ft.min_version
        max_version = t.max_tls_version or ft.max_version
        cipher_suites = t.cipher_suites or ft.cipher_suites
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.path(t.cert), self.path(t.key))
            versions = {
                "TLS_V1_0": ssl.TLSVersion.TLSv1,
                "TLS_V1_1": ssl.TLSVersion.TLSv1_1,
                "TLS_V1_2": ssl.TLSVersion.TLSv1_2,
                "TLS_V1_3": ssl.TLSVersion.TLSv1_3,
            }
            ctx.minimum_version = versions[min_version] if min_version else ssl.TLSVersion.TLSv1_2
            if max_version:
                ctx.maximum_version = versions[max_version]
            if t.root:
                ctx.load_verify_locations(self.path(t.root))
                ctx.verify_mode = ssl.CERT_REQUIRED
            if cipher_suites:
                ctx.set_ciphers(":".join(cipher_suites))
            ctx.set_alpn_protocols(self._frontend_alpn())
            return ctx
        except (OSError, ssl.SSLError) as exc:
            self.errors.add(path, f"cannot load TLS certificate/key: {exc}")
            return None

    def _dynamic_ca(self, t: m.ListenerTLS, template: ssl.SSLContext, hostname: str | None, path: str) -> Any:
        """``tls.mode: dynamicCa``: ``cert`` / ``key`` are a CA minting a certificate per
        SNI name (engine/certmint.py); each minted context gets the settings ``template``
        (the listener's context, from ``_listener_tls``) has."""
        from .engine.certmint import DynamicCerts

        root = self.path(t.root) if t.root else None
        ciphers = ":".join(c["name"] for c in template.get_ciphers()) if t.cipher_suites else None
        alpn = self._frontend_alpn()

        def configure(ctx: ssl.SSLContext) -> None:
            ctx.minimum_version = template.minimum_version
            ctx.maximum_version = template.maximum_version
            if root:
                ctx.load_verify_locations(root)
                ctx.verify_mode = ssl.CERT_REQUIRED
            if ciphers:
                ctx.set_ciphers(ciphers)
            ctx.set_alpn_protocols(alpn)
            ctx.listener_hostname = hostname  # type: ignore[attr-defined]  # (read by client_cert_refusal)

        if t.cert is None or t.key is None:
            self.errors.add(f"{path}.spiffe", SPIFFE_REFUSAL)
            return None
        try:
            certs = DynamicCerts(self.path(t.cert), self.path(t.key), configure)
        except (OSError, ValueError) as exc:
            self.errors.add(path, f"dynamicCa: cannot use cert/key as a CA: {exc}")
            return None
        certs.verify_mode = template.verify_mode  # (a listener that verifies client certificates)
        return certs

    def _frontend_alpn(self) -> list[str]:
        """What HTTPS listeners offer in ALPN: ``frontendPolicies.tls.alpn`` (checked in
        ``_process_settings``), by default h2 then http/1.1 (engine/h2server.py)."""
        ft = self.cfg.frontend_policies.tls
        names = [_alpn_name(p) for p in ft.alpn] if ft is not None and ft.alpn else []
        return [n for n in names if n in FRONTEND_ALPN] or list(FRONTEND_ALPN)

    @staticmethod
    def _sni_context(by_host: list[tuple[str | None, ssl.SSLContext]]) -> ssl.SSLContext:
        """One server context for the bind; SNI switches to the matching listener's cert."""
        from .routing.table import hostname_matches

        ordered = sorted(by_host, key=lambda hc: listener_specificity(hc[0]))
        default = ordered[-1][1]
        if len(ordered) == 1:
            return default
        if any(c.verify_mode != ssl.CERT_NONE for _, c in ordered):
            # OpenSSL keeps the first context's verify mode when SNI switches contexts (it
            # does switch the CA store a sent certificate is checked against): every
            # handshake asks for a certificate, and a listener that requires one checks
            # at request time (gateway.client_cert_refusal)
            default.verify_mode = ssl.CERT_OPTIONAL

        def pick(sslobj, server_name, _ctx):
            if server_name:
                for host, c in ordered:
                    if host and hostname_matches(host, server_name):
                        sslobj.context = c
                        return None
            sslobj.context = default
            return None

        default.sni_callback = pick
        return default


#: The ``mcp:`` shorthand is compiled as a bind with one route to one backend; errors are
#: reported with the paths of the shorthand's own keys.
_SHORTHAND_PATHS = (
    ("mcp.listeners[0].routes[0].backends[0].mcp.", "mcp."),
    ("mcp.listeners[0].routes[0].backends[0].mcp:", "mcp:"),
    ("mcp.listeners[0].routes[0].policies", "mcp.policies"),
)


def _named_backends(cfg: m.LocalConfig) -> dict[str, tuple[int, m.NamedBackend]]:
    """``backends[]`` by name. agentgateway keys a file's backends ``<namespace>/<name>``
    with no namespace, so a reference may also be written ``/name``."""
    named = {b.name: (i, b) for i, b in enumerate(cfg.backends)}
    named.update({f"/{name}": ref for name, ref in list(named.items()) if not name.startswith("/")})
    return named


def _attachable(bind: BindRuntime) -> list[Match]:
    """The matches of a feature's own bind (the ``llm:`` section), as new matches to put
    in a gateway listener's table; its listener carries no policies of its own."""
    out = []
    for lst in bind.listeners:
        for mt in lst.routes.anyhost:  # (the llm section's routes serve any host)
            out.append(
                Match(mt.route, kind=mt.kind, value=mt.value, method=mt.method, headers=mt.headers, query=mt.query)
            )
    return out


#: The ALPN protocols HTTPS listeners speak, in the order offered by default.
FRONTEND_ALPN = ("h2", "http/1.1")


def _alpn_name(p: Any) -> str:
    """An ALPN protocol as written: a string, or bytes as a list of integers."""
    if isinstance(p, list) and all(isinstance(b, int) and 0 <= b < 256 for b in p):
        return bytes(p).decode("latin-1")
    return str(p)


def _shorthand_path(err: str) -> str:
    for old, new in _SHORTHAND_PATHS:
        if err.startswith(old):
            return new + err[len(old) :]
    return err


def compile_config(cfg: LocalConfig, services, base_dir: str = ".") -> Runtime:
    return Compiler(cfg, services, base_dir).compile()


class _NothingServed:
    """Services for a compile that serves nothing: ``agentgw validate``, and the check
    ``agentgw run --workers`` makes before it starts any worker."""

    pool = None
    on_upstream_error = None


def compile_config_file(path: str, services, *, source: str | None = None) -> Runtime:
    """Load ``path`` and compile it (relative file references resolve next to it); raises
    `ConfigError` naming every invalid or refused field, each placed in the file
    (``source``, default ``path``, is the file's name in those messages)."""
    from .config import read_config_file

    cfg, where = read_config_file(path, source=source)
    try:
        return compile_config(cfg, services, os.path.dirname(os.path.abspath(path)))
    except ConfigError as exc:
        raise exc.locate(where) from None


def check_config_text(text: str, *, base_dir: str, source: str, fmt: str | None = None) -> LocalConfig:
    """Load and compile a config document as ``agentgw run`` would a file in ``base_dir``
    (named ``source`` in messages), serving nothing; raises `ConfigError` naming every
    invalid or refused field, each placed in the text."""
    from .config import SourceMap, load_config_text

    where = SourceMap(source, text)
    try:
        cfg = load_config_text(text, source=source, fmt=fmt)
        compile_config(cfg, _NothingServed(), base_dir)
    except ConfigError as exc:
        raise exc.locate(where) from None
    return cfg


def check_config_file(path: str) -> LocalConfig:
    """Load and compile ``path`` as ``agentgw run`` would, serving nothing; raises
    `ConfigError` naming every invalid or refused field."""
    return compile_config_file(path, _NothingServed()).cfg
