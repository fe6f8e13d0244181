"""agentgateway's named-gateway shape, expanded into binds.

``gateways`` names ports and their listeners; ``routes`` and ``tcpRoutes`` attach to
them by reference (``<gateway>`` for all its listeners of the route's kind,
``<gateway>/<listener>`` for one), as do ``llm.gateways`` and ``mcp.gateways``.
``llm.gateways`` may also name a listener of the classic ``binds`` shape by its ``name``
(how the Kubernetes controller serves AgentgatewayModels on a Gateway's listeners): the
name must belong to exactly one bind listener, an HTTP or HTTPS one, and to no named
gateway (or ``<gateway>/<listener>`` reference) — otherwise the reference is refused as
ambiguous. The llm routes then join that listener's routes (``Expansion.llm_listeners``
holds its ``binds[i].listeners[j]`` path). A route
or feature that names no gateway attaches to the gateway called ``default`` when there
is one. This module turns all of that into plain ``binds`` (one per gateway, one
listener per gateway listener, each holding the routes attached to it), which the
compiler then compiles like any other bind: there is one pipeline, whatever shape the
file was written in.

It also keeps the paths: a problem found while compiling a synthetic listener or route
is reported at the path the user wrote (``routes[2].backends[0]``, ``gateways.web.tls``),
through ``Expansion.path_map``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backends import tcp as _tcp  # noqa: F401  (declares the CEL variable ``destination`` before any compile)
from .config import models as m

HTTP, TCP = "HTTP", "TCP"
#: the matches of MCP routes attached to a gateway: agentgateway serves them there beside
#: other routes, so they take only the MCP paths
MCP_PREFIXES = ("/mcp", "/sse", "/.well-known")
_POLICY_FIELDS = tuple(m.GatewayListenerPolicies.model_fields)


@dataclass
class Expansion:
    #: synthetic binds and the path each is reported under
    binds: list[tuple[m.Bind, str]] = field(default_factory=list)
    #: (synthetic path prefix, the path the user wrote), most specific first
    path_map: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: synthetic listener paths the ``llm`` routes attach to
    llm_listeners: list[str] = field(default_factory=list)
    #: whether ``llm`` / ``mcp`` are served through gateways (not a port of their own)
    llm_attached: bool = False
    ui_route: m.Route | None = None  # the route ui: attached to gateways (served by the admin handler)
    mcp_attached: bool = False

    def real_path(self, err: str) -> str:
        for syn, real in self.path_map:
            if err.startswith(syn) and err[len(syn) : len(syn) + 1] in (".", ":", "[", ""):
                return real + err[len(syn) :]
        return err


def _protocol(protocol: m.GatewayProtocol | None, tls: bool) -> tuple[m.GatewayProtocol, str | None]:
    """The effective protocol of a gateway listener, and the error when it contradicts ``tls``."""
    p: m.GatewayProtocol = protocol or ("HTTPS" if tls else "HTTP")
    if p == "HTTP" and tls:
        return p, "protocol HTTP cannot set tls"
    if p == "HTTPS" and not tls:
        return p, "protocol HTTPS requires tls"
    if p == "TCP" and tls:
        return p, "protocol TCP cannot set tls"
    return p, None


def _kind(protocol: str) -> str:
    return HTTP if protocol in ("HTTP", "HTTPS") else TCP


def _has_policies(obj: m.GatewayListenerPolicies) -> bool:
    return any(getattr(obj, f) is not None for f in _POLICY_FIELDS)


@dataclass
class _Listener:
    path: str  # as written
    syn: str  # synthetic: gateways.<name>.listeners[i]
    name: str
    hostname: str | None
    protocol: m.GatewayProtocol
    tls: m.ListenerTLS | None
    policies: m.GatewayListenerPolicies | None
    routes: list = field(default_factory=list)
    tcp_routes: list = field(default_factory=list)


def expand(cfg: m.LocalConfig) -> Expansion:
    out = Expansion()
    err = out.errors.append
    refs: dict[str, list[_Listener]] = {}
    per_gateway: list[tuple[str, m.NamedGateway, list[_Listener]]] = []
    for gname, g in cfg.gateways.items():
        gpath = f"gateways.{gname}"
        listeners: list[_Listener] = []
        if not g.listeners:
            p, problem = _protocol(g.protocol, g.tls is not None)
            if problem:
                err((f"{gpath}.protocol" if g.protocol else gpath, problem))
            lst = _Listener(gpath, f"{gpath}.listeners[0]", gname, None, p, g.tls, g if _has_policies(g) else None)
            listeners.append(lst)
            refs[gname] = [lst]
        else:
            if g.protocol is not None or g.tls is not None or _has_policies(g):
                err(
                    (
                        gpath,
                        "cannot set protocol, tls or policies when listeners are configured (set them per listener)",
                    )
                )
            for li, gl in enumerate(g.listeners):
                lpath = f"{gpath}.listeners[{li}]"
                p, problem = _protocol(gl.protocol, gl.tls is not None)
                if problem:
                    err((f"{lpath}.protocol" if gl.protocol else lpath, problem))
                lname = gl.name or f"listener{li}"
                ref = f"{gname}/{lname}"
                if ref in refs:
                    err((f"{lpath}.name", f"another listener of gateway {gname!r} is named {lname!r}"))
                lst = _Listener(lpath, lpath, ref, gl.hostname, p, gl.tls, gl if _has_policies(gl) else None)
                listeners.append(lst)
                refs[ref] = [lst]
            refs[gname] = list(listeners)
            kinds = {_kind(x.protocol) for x in listeners}
            encrypted = {x.protocol in ("HTTPS", "TLS") for x in listeners}
            if len(encrypted) > 1:
                err((f"{gpath}.listeners", f"listeners on port {g.port} cannot mix TLS and plaintext"))
            elif len(kinds) > 1 and encrypted == {False}:
                err((f"{gpath}.listeners", f"listeners on port {g.port} cannot mix HTTP and TCP protocols"))
        per_gateway.append((gname, g, listeners))

    default = refs.get("default")

    def default_for(kind: str) -> bool:
        return default is not None and any(_kind(x.protocol) == kind for x in refs["default"])

    def resolve(names: list[str], kind: str, path: str) -> list[_Listener]:
        found: list[_Listener] = []
        for name in names:
            targets = refs.get(name)
            if targets is None:
                err((path, f"unknown gateway reference {name!r}"))
                continue
            matched = [x for x in targets if _kind(x.protocol) == kind]
            if not matched:
                err((path, f"gateway reference {name!r} has no {kind} listeners"))
            for x in matched:
                if x not in found:
                    found.append(x)
        return found

    for ri, r in enumerate(cfg.routes):
        names = r.gateways or (["default"] if default_for(HTTP) else [])
        if not names:
            err((f"routes[{ri}].gateways", "must be set (there is no gateway named default with HTTP listeners)"))
        for x in resolve(names, HTTP, f"routes[{ri}].gateways"):
            out.path_map.append((f"{x.syn}.routes[{len(x.routes)}]", f"routes[{ri}]"))
            x.routes.append(r)
    for ri, tr in enumerate(cfg.tcp_routes):
        names = tr.gateways or (["default"] if default_for(TCP) else [])
        if not names:
            err((f"tcpRoutes[{ri}].gateways", "must be set (there is no gateway named default with TCP listeners)"))
        for x in resolve(names, TCP, f"tcpRoutes[{ri}].gateways"):
            out.path_map.append((f"{x.syn}.tcpRoutes[{len(x.tcp_routes)}]", f"tcpRoutes[{ri}]"))
            x.tcp_routes.append(tr)

    llm = cfg.llm
    if llm is not None:
        if llm.gateways and "port" in llm.model_fields_set:
            err(("llm.gateways", "cannot be used with llm.port"))
        names = llm.gateways or (["default"] if "port" not in llm.model_fields_set and default_for(HTTP) else [])
        if names:
            out.llm_attached = True
            bind_refs = _bind_listener_refs(cfg)
            gateway_names = [n for n in names if n not in bind_refs]
            for name in names:
                if name not in bind_refs:
                    continue
                paths = bind_refs[name]
                if name in refs or len(paths) > 1:
                    where = [p for p, _ in paths] + ([f"gateways.{name.split('/')[0]}"] if name in refs else [])
                    err(("llm.gateways", f"reference {name!r} is ambiguous: it names {', '.join(where)}"))
                    continue
                lpath, proto = paths[0]
                if _kind(proto) != HTTP:
                    err(("llm.gateways", f"reference {name!r} names {lpath}, which is not an HTTP listener"))
                elif lpath not in out.llm_listeners:
                    out.llm_listeners.append(lpath)
            for x in resolve(gateway_names, HTTP, "llm.gateways"):
                if x.syn not in out.llm_listeners:
                    out.llm_listeners.append(x.syn)
    mcp = cfg.mcp
    if mcp is not None:
        if mcp.gateways and "port" in mcp.model_fields_set:
            err(("mcp.gateways", "cannot be used with mcp.port"))
        names = mcp.gateways or (["default"] if "port" not in mcp.model_fields_set and default_for(HTTP) else [])
        if names:
            out.mcp_attached = True
            route = mcp_route(mcp)
            for x in resolve(names, HTTP, "mcp.gateways"):
                # (reported at the paths the mcp shorthand's errors are mapped from)
                out.path_map.append((f"{x.syn}.routes[{len(x.routes)}]", "mcp.listeners[0].routes[0]"))
                x.routes.append(route)

    ui = cfg.ui
    if ui is not None:
        names = ui.gateways or (["default"] if default_for(HTTP) else [])
        if names:
            out.ui_route = route = ui_route(ui)
            for x in resolve(names, HTTP, "ui.gateways"):
                out.path_map.append((f"{x.syn}.routes[{len(x.routes)}]", "ui"))
                x.routes.append(route)
        elif ui.policies is not None:
            err(
                (
                    "ui.policies",
                    "apply to the UI on traffic listeners, and ui attaches to none (set ui.gateways, or name a "
                    "gateway default); the UI on config.adminAddr is guarded by config.admin",
                )
            )

    for gname, g, listeners in per_gateway:
        bpath = f"gateways.{gname}"
        built = []
        for x in listeners:
            out.path_map.append((f"{x.syn}.policies", x.path))
            out.path_map.append((x.syn, x.path))
            http = _kind(x.protocol) == HTTP
            built.append(
                m.Listener.model_construct(
                    name=x.name,
                    namespace=None,
                    gateway_name=gname,
                    hostname=x.hostname,
                    protocol=x.protocol,
                    tls=x.tls,
                    routes=x.routes if http else None,
                    tcp_routes=x.tcp_routes if not http else None,
                    policies=x.policies,
                    path_normalization=None,
                )
            )
        out.binds.append(
            (m.Bind.model_construct(port=g.port, listeners=built, tunnel_protocol=None, mode="standard"), bpath)
        )
    # most specific first: a route's path before its listener's
    out.path_map.sort(key=lambda sr: -len(sr[0]))
    return out


def _bind_listener_refs(cfg: m.LocalConfig) -> dict[str, list[tuple[str, str]]]:
    """The ``binds`` listeners ``llm.gateways`` can name: each listener with an explicit
    ``name`` -> [(its path ``binds[i].listeners[j]``, its protocol)] (several when the name
    is not unique, which makes the reference ambiguous)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for bi, b in enumerate(cfg.binds):
        for li, lst in enumerate(b.listeners):
            if lst.name:
                out.setdefault(lst.name, []).append((f"binds[{bi}].listeners[{li}]", lst.protocol or "HTTP"))
    return out


def ui_route(ui: m.UiShorthand) -> m.Route:
    """The route ``ui:`` attaches to a gateway: ``/ui`` (the page and, under
    ``/ui/api/v1/``, its admin API), with ``ui.policies``; served by the process's
    admin handler (``Compiler._route`` knows this route by identity)."""
    route: dict = {"name": "ui", "matches": [{"path": {"pathPrefix": "/ui"}}]}
    if ui.policies is not None:
        route["policies"] = ui.policies.model_dump(by_alias=True, exclude_none=True)
    return m.Route.model_validate(route)


def mcp_route(mcp: m.McpShorthand) -> m.Route:
    """The route ``mcp:`` attaches to a gateway: the MCP paths, to one MCP backend."""
    backend = mcp.model_dump(by_alias=True, exclude_none=True, exclude={"port", "policies", "gateways"})
    route: dict = {
        "name": "mcp",
        "matches": [{"path": {"pathPrefix": p}} for p in MCP_PREFIXES],
        "backends": [{"mcp": backend}],
    }
    if mcp.policies is not None:
        route["policies"] = mcp.policies.model_dump(by_alias=True, exclude_none=True)
    return m.Route.model_validate(route)
