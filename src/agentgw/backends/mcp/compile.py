"""Config → runtime for ``mcp`` backends (route backends, named backends, the shorthand)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...config import models as m
from ...policies.backend_auth import written_locations
from ...policies.local_ratelimit import TokenBucket
from ..http import compile_http_backend
from .authz import CelError, McpAuthz, RuleSet
from .backend import LOCAL_HOSTS, McpBackend
from .openapi import OpenApiTools
from .session import Registry
from .upstream import TargetSpec

if TYPE_CHECKING:
    from ...proxy.scope import CompileScope

_UNSUPPORTED_TARGET_POLICIES = {"transformations": "transformations", "ext_mcp": "extMcp"}


def registry_for(services) -> Registry:
    reg = getattr(services, "mcp", None)
    if reg is None:
        reg = Registry(getattr(services, "loop", None))
        services.mcp = reg
    return reg


def _rules(compiler: CompileScope, authz: m.Authorization | None, path: str) -> RuleSet | None:
    """An ``mcpAuthorization`` block: ``rules`` and ``allow`` (any must match), ``deny``
    (none may match), ``require`` (all must hold) -- as the HTTP ``authorization`` policy."""
    if authz is None:
        return None
    ok = True
    from ...policies.identity import rule_sources

    for where, src in rule_sources(authz, path):
        try:
            RuleSet(allow=[src])
        except CelError as exc:
            compiler.errors.add(where, f"invalid CEL expression: {exc}")
            ok = False
    if not ok:
        return None
    allow, deny, require = authz.rule_lists()
    return RuleSet(allow=allow, deny=deny, require=require)


def compile_mcp_backend(
    compiler,
    mb: m.McpBackend,
    path: str,
    route_policies,
    backend_policies,
    traffic: dict,
    name: str = "",
    route_path: str | None = None,
):
    cfg = compiler.cfg
    services = compiler.services
    reg = registry_for(services)
    c = cfg.config
    if c.mcp is not None and c.mcp.session_ttl is not None:
        reg.ttl = max(0.05, float(c.mcp.session_ttl))
    codec = reg.codec(c.session.key if c.session is not None else None)
    passthrough = [h.lower() for h in mb.passthrough_headers]
    targets = []
    own: dict[str, set[str]] = {}  # target -> client headers only it is sent (backendAuth.passthrough)
    for ti, t in enumerate(mb.targets):
        tpath = f"{path}.targets[{ti}]"
        spec = _target(compiler, t, tpath, own.setdefault(t.name, set()))
        if spec is not None:
            if t.stdio is not None:  # (spec.kind == "stdio")
                _process_caps(compiler, mb, t.stdio, spec, reg, path, f"{tpath}.stdio")
            targets.append(spec)
    route_auth = traffic.get("backend_auth")  # the route's backendAuth: what it writes is passed on
    if route_auth is not None:
        rpath_ = (route_path or path.rsplit(".backends", 1)[0]) + ".policies.backendAuth"
        for lpath, loc in written_locations(route_policies.backend_auth, rpath_):
            if loc.query_parameter is not None:
                compiler.errors.add(f"{lpath}.queryParameter", "not supported for mcp backends yet")
        for h in sorted(route_auth.header_names()):
            if h not in passthrough:
                passthrough.append(h)
    _passthrough(targets, passthrough, own)
    if mb.stdio_limits is not None:
        if not any(t.stdio is not None for t in mb.targets):
            compiler.errors.add(f"{path}.stdioLimits", "has no effect: the backend has no stdio targets")
        elif mb.stateful_mode == "stateless":
            compiler.errors.add(f"{path}.stdioLimits", _STATELESS_CAPS)
    rulesets = []
    rpath = (route_path or path.rsplit(".backends", 1)[0]) + ".policies"
    bpath = path.rsplit(".", 1)[0] + ".policies"
    _refuse_policies(compiler, route_policies, rpath, _ROUTE_POLICIES_NOT_FOR_MCP)
    if route_policies is not None and route_policies.retry is not None:
        _retry(compiler, mb, route_policies.retry, traffic.get("retry"), targets, f"{rpath}.retry")
    _refuse_policies(compiler, backend_policies, bpath, _BACKEND_POLICIES_NOT_FOR_MCP)
    for pol, p in ((route_policies, rpath), (backend_policies, bpath)):
        if pol is not None and getattr(pol, "mcp_authorization", None) is not None:
            rs = _rules(compiler, pol.mcp_authorization, f"{p}.mcpAuthorization")
            if rs is not None:
                rulesets.append(rs)
    has_target_rules = any(s.authz is not None for s in targets)
    authz = McpAuthz(rulesets) if rulesets or has_target_rules else None
    limits = []
    for li, rl in enumerate(mb.tool_rate_limits):
        if rl.target is not None and rl.target not in {t.name for t in mb.targets}:
            compiler.errors.add(f"{path}.toolRateLimits[{li}].target", f"no target named {rl.target!r}")
        limits.append(
            (
                frozenset(rl.tools) if rl.tools else None,
                rl.target,
                TokenBucket(rl.max_tokens, rl.tokens_per_fill, float(rl.fill_interval)),
            )
        )
    rebinding: tuple[frozenset[str] | None, frozenset[str]] | None = None
    d = mb.dns_rebinding_protection
    if d is None:  # the default: Origin checked on loopback connections (backend.py)
        rebinding = (None, frozenset())
    elif d is True:
        rebinding = (LOCAL_HOSTS, frozenset())
    elif isinstance(d, m.DnsRebindingProtection):
        rebinding = (
            frozenset(h.lower() for h in d.allowed_hosts),
            frozenset(o.lower().rstrip("/") for o in d.allowed_origins),
        )
    timeout = traffic.get("backend_timeout") or traffic.get("request_timeout")
    own_timeout = compiler.backend_http(
        backend_policies.http if backend_policies is not None else None, f"{bpath}.http"
    )
    if own_timeout is not None:  # the backend's own request timeout; the shorter wins
        timeout = own_timeout if timeout is None else min(timeout, own_timeout)
    return McpBackend(
        name or "mcp",
        targets,
        registry=reg,
        codec=codec,
        pool=getattr(services, "pool", None),
        metrics=getattr(services, "metrics", None),
        stateless=mb.stateful_mode == "stateless",
        prefix_mode=mb.prefix_mode or "conditional",
        fail_open=mb.failure_mode == "failOpen",
        authz=authz,
        rate_limits=limits,
        passthrough_headers=passthrough,
        rebinding=rebinding,
        request_timeout=timeout,
    )


#: Route policies that act on the backend and that an MCP backend does not use.
_ROUTE_POLICIES_NOT_FOR_MCP = {
    "backend_tls": "is not used by mcp backends; set backendTLS in the policies of each target",
}


def _retry(
    compiler: CompileScope, mb: m.McpBackend, cfg: m.Retry, policy, targets: list[TargetSpec], path: str
) -> None:
    """The route's ``retry`` on the backend's HTTP targets (``upstream.exchange``).

    ``codes`` must be error statuses: a target that answers 2xx has taken the request (a
    tool call may have run), so resending it would run it twice. A stdio target is never
    retried (a message written to its stdin has been received; its process is the
    session), so on a backend whose targets are all stdio the policy has no effect."""
    ok = True
    for i, c in enumerate(cfg.codes):
        if c < 400:
            compiler.errors.add(
                f"{path}.codes[{i}]",
                f"{c} is not an error status: an mcp target that answers {c} has taken the request, "
                "which is never sent again (only 4xx and 5xx codes are retried)",
            )
            ok = False
    if mb.targets and all(t.stdio is not None for t in mb.targets):
        compiler.errors.add(
            path,
            "has no effect: the mcp backend has only stdio targets, and a message written to a stdio "
            "server is never sent again (retries apply to mcp, sse and openapi targets)",
        )
        return
    if ok and policy is not None:
        for spec in targets:
            if spec.kind != "stdio":
                spec.retry = policy


def _passthrough(targets: list[TargetSpec], backend_wide: list[str], own: dict[str, set[str]]) -> None:
    """Client headers per target: the backend's ``passthroughHeaders`` go to every target,
    the client's ``Authorization`` (``backendAuth.passthrough``) only to the targets that
    ask for it. The session carries the union (``backend_wide`` grows to it); each target
    withholds what is another's alone, and what it sets itself (``backendAuth.key``,
    ``requestHeaderModifier.set``): a static value replaces the client's."""
    extra = set().union(*own.values()) - set(backend_wide) if own else set()
    for h in sorted(extra):
        backend_wide.append(h)
    for spec in targets:
        mine = own.get(spec.name, set())
        spec.withheld = frozenset((extra - mine) | (spec.replaces & set(backend_wide)))


def _backend_policies_not_for_mcp() -> dict:
    """Every backend policy but ``mcpAuthorization``, ``http`` (and ``a2a``, read by the route)."""
    return {
        name: "not supported for mcp backends yet"
        for name in m.BackendPolicies.model_fields
        if name not in ("mcp_authorization", "http", "a2a")
    }


_BACKEND_POLICIES_NOT_FOR_MCP = _backend_policies_not_for_mcp()


def _refuse_policies(compiler: CompileScope, pol, path: str, refused: dict) -> None:
    """An error for each field of ``pol`` set and named in ``refused`` (fields refused
    everywhere are reported once, by ``agentgw.unsupported``)."""
    if pol is None:
        return
    from ...unsupported import refused_everywhere

    for name, msg in refused.items():
        if getattr(pol, name, None) is not None and not refused_everywhere(type(pol), name):
            f = type(pol).model_fields[name]
            compiler.errors.add(f"{path}.{f.alias or name}", msg)


#: Target policies that only act on HTTP requests to the target.
_NOT_FOR_STDIO = {
    name: "has no effect on a stdio target" for name in ("backend_tls", "backend_auth", "request_header_modifier")
}


_STATELESS_CAPS = "has no effect with statefulMode: stateless (one shared process per stdio target serves every client)"


def _process_caps(
    compiler, mb: m.McpBackend, st: m.StdioSpec, spec: TargetSpec, reg: Registry, path: str, spath: str
) -> None:
    """A stdio target's caps (its own, else the backend's ``stdioLimits``, else the
    defaults) and the gate that counts its processes: one per backend path and target
    name, so a reload that keeps the target keeps counting its running processes."""
    lim = mb.stdio_limits
    spec.max_processes = st.max_processes or (lim.max_processes if lim is not None else m.STDIO_MAX_PROCESSES)
    spec.max_processes_per_client = st.max_processes_per_client or (
        lim.max_processes_per_client if lim is not None else m.STDIO_MAX_PROCESSES_PER_CLIENT
    )
    if mb.stateful_mode == "stateless":
        for key, v in (("maxProcesses", st.max_processes), ("maxProcessesPerClient", st.max_processes_per_client)):
            if v is not None:
                compiler.errors.add(f"{spath}.{key}", _STATELESS_CAPS)
    metrics = getattr(compiler.services, "metrics", None)
    gauge = None
    if metrics is not None:
        gauge = metrics.m.gauge(
            "agentgw_mcp_stdio_processes", "Live stdio MCP server processes (see stdioLimits).", ("target",)
        )
    spec.gate = reg.gate((path, spec.name), spec.name, gauge)


def _host_spec(compiler: CompileScope, hs: m.McpHostSpec, tpath: str, default_path: str, tls_cfg):
    """(UpstreamTarget, Host header, path) for an http(s) target."""
    if hs.backend is not None:
        ref = compiler.named.get(hs.backend)
        if ref is not None and ref[1].aws is not None:
            compiler.errors.add(
                f"{tpath}.backend",
                f"{hs.backend!r} is an aws (AgentCore) backend: only mcp targets (streamable HTTP) run on AgentCore",
            )
            return None
        if ref is None or ref[1].host is None:
            compiler.errors.add(f"{tpath}.backend", f"no top-level host backend named {hs.backend!r}")
            return None
        addr, path = ref[1].host, default_path
    elif hs.host is None:  # (the model requires host or backend)
        compiler.errors.add(tpath, "host or backend is required")
        return None
    elif hs.port is not None:
        addr, path = f"{hs.host}:{hs.port}", hs.path or default_path
    else:
        url = hs.host if "://" in hs.host else "http://" + hs.host
        rest = url.split("://", 1)[1]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else default_path
        addr = url.split("://", 1)[0] + "://" + rest.split("/", 1)[0]
    hb = compile_http_backend(
        compiler, addr, addr, tls_cfg, tpath, tls_path=f"{tpath.rsplit('.', 1)[0]}.policies.backendTLS"
    )
    return hb.target, hb.host_override or hb.target.authority, path


def _target(compiler: CompileScope, t: m.McpTarget, tpath: str, passthrough: set[str]) -> TargetSpec | None:
    """One target; ``passthrough`` gets the client headers only this target is sent."""
    kind = next(k for k in ("mcp", "sse", "stdio", "openapi") if getattr(t, k) is not None)
    spec = TargetSpec(t.name, kind)
    pol = t.policies
    tls_cfg = pol.backend_tls if pol is not None else None
    if pol is not None:
        compiler.refuse_fields(pol, _UNSUPPORTED_TARGET_POLICIES, f"{tpath}.policies")
        if kind == "stdio":
            _refuse_policies(compiler, pol, f"{tpath}.policies", _NOT_FOR_STDIO)
        _refuse_policies(compiler, pol, f"{tpath}.policies", {"http": "not supported for MCP targets yet"})
        h = pol.request_header_modifier
        if h is not None and h.remove:
            compiler.errors.add(f"{tpath}.policies.requestHeaderModifier.remove", "not supported for MCP targets yet")
        if h is not None:
            for k, v in (h.add or {}).items():
                spec.headers.append((k.lower(), v))
            for k, v in (h.set or {}).items():
                spec.headers = [kv for kv in spec.headers if kv[0] != k.lower()] + [(k.lower(), v)]
                spec.replaces.add(k.lower())
        ba = pol.backend_auth
        if ba is not None:
            if ba.passthrough is not None:
                passthrough.add("authorization")
                if ba.passthrough.location is not None:
                    compiler.errors.add(
                        f"{tpath}.policies.backendAuth.passthrough.location", "not supported for MCP targets yet"
                    )
            elif ba.key is not None:
                key = ba.key
                if isinstance(key, str):
                    value = key
                elif isinstance(key, m.FileOnlyRef):
                    value = _read(compiler, key.file, f"{tpath}.policies.backendAuth.key.file")
                else:
                    inline = key.value
                    value = (
                        inline
                        if isinstance(inline, str)
                        else _read(compiler, inline.file, f"{tpath}.policies.backendAuth.key.value.file")
                    )
                name, prefix = "authorization", "Bearer "
                loc = key.location if isinstance(key, m.KeyAuth) else None
                if loc is not None and loc.header is not None:
                    name, prefix = loc.header.name.lower(), loc.header.prefix or ""
                elif loc is not None:
                    kind = (
                        "queryParameter"
                        if loc.query_parameter is not None
                        else "cookie"
                        if loc.cookie
                        else "expression"
                    )
                    compiler.errors.add(
                        f"{tpath}.policies.backendAuth.key.location.{kind}", "not supported for MCP targets yet"
                    )
                spec.headers.append((name, f"{prefix}{value.strip()}"))
                spec.replaces.add(name)
            else:
                kind_key = next(
                    f.alias or n for n, f in m.BackendAuth.model_fields.items() if getattr(ba, n) is not None
                )
                compiler.errors.add(
                    f"{tpath}.policies.backendAuth.{kind_key}",
                    "not supported for MCP targets yet (only key and passthrough)",
                )
            if ba.credentials and (ba.passthrough is not None or ba.key is not None):
                compiler.errors.add(
                    f"{tpath}.policies.backendAuth.credentials",
                    "not supported for MCP targets yet (only key and passthrough)",
                )
        spec.authz = _rules(compiler, pol.mcp_authorization, f"{tpath}.policies.mcpAuthorization")
    if t.mcp is not None and t.mcp.backend is not None and _agentcore(compiler, spec, t.mcp.backend, tpath, pol):
        return spec
    if kind in ("mcp", "sse"):
        hs = getattr(t, kind)
        r = _host_spec(compiler, hs, tpath + "." + kind, "/mcp" if kind == "mcp" else "/sse", tls_cfg)
        if r is None:
            return None
        spec.target, spec.host, spec.path = r
    elif (st := t.stdio) is not None:  # (kind == "stdio")
        spec.cmd, spec.args, spec.env, spec.clear_env = st.cmd, list(st.args), dict(st.env or {}), st.clear_env
    elif (oa := t.openapi) is not None:
        sch = oa.schema_
        try:
            if isinstance(sch, str):
                spec.openapi = OpenApiTools(text=sch)
            elif sch.file is not None:
                spec.openapi = OpenApiTools(text=_read(compiler, sch.file, f"{tpath}.openapi.schema.file"))
            else:
                spec.openapi = OpenApiTools(url=sch.url)
        except (ValueError, TypeError) as exc:
            compiler.errors.add(f"{tpath}.openapi.schema", f"invalid OpenAPI schema: {exc}")
            return None
        r = _host_spec(compiler, oa, tpath + ".openapi", "/", tls_cfg)
        if r is None:
            return None
        spec.target, spec.host, spec.path = r
    return spec


#: What a named aws backend's policies may hold when an MCP target runs on it.
_AGENTCORE_TARGET_BACKEND_POLICIES = {"backend_auth"}


def _agentcore(compiler: CompileScope, spec: TargetSpec, name: str, tpath: str, pol) -> bool:
    """``mcp: {backend: <aws backend>}``: the target is an MCP server hosted on an AgentCore
    runtime. Every message is a signed InvokeAgentRuntime POST to the runtime (the
    target's ``path`` is not used: AgentCore relays invocations to the server's ``/mcp``),
    and the server's ``Mcp-Session-Id`` keeps the session on one runtime. False when
    ``name`` is not an aws backend."""
    from ...unsupported import refuse_except
    from ..aws.agentcore import compile_endpoint, invocation_path

    ref = compiler.named.get(name)
    if ref is None or ref[1].aws is None:
        return False
    ni, nb = ref
    if pol is not None and pol.backend_tls is not None:
        compiler.errors.add(f"{tpath}.policies.backendTLS", "has no effect on a target on AgentCore (AWS endpoints)")
    refuse_except(
        compiler.errors.add,
        nb.policies,
        f"backends[{ni}].policies",
        _AGENTCORE_TARGET_BACKEND_POLICIES,
        "not supported for an aws backend that MCP targets run on yet",
    )
    ep = compile_endpoint(compiler, nb.aws, f"backends[{ni}].aws", nb.policies, f"backends[{ni}].policies")
    if ep is None:
        return True
    spec.target, spec.host, spec.signer = ep.target, ep.host, ep
    spec.path = invocation_path(ep.rt.arn, ep.qualifier)
    return True


def _read(compiler: CompileScope, path: str, where: str) -> str:
    try:
        with open(compiler.path(path), encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        compiler.errors.add(where, f"cannot read {path}: {exc.strerror or exc}")
        return ""
