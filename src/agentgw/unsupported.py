"""Config fields the schema accepts but agentgw does not implement yet: refused at load.

Accepted means enforced. The schema is agentgateway's, so it has keys for features this
build does not have (xDS, the mesh, HTTP/2 tuning, tunnels...). A gateway that accepted
such a key and carried on without it would be running a different configuration from
the one its operator wrote -- for a security setting, a hole. So every such key is
refused when the config is compiled (``agentgw validate``, ``agentgw run`` and hot
reload alike), with an error naming its path.

``UNSUPPORTED`` lists the fields refused wherever they appear, keyed by the model class
that declares them (subclasses inherit the refusal). Fields refused only in some places
-- ``tls`` on a listener that is not HTTPS, ``backendTLS`` on a route to an MCP backend -- are
checked by the compiler of that part. The list is also the one in
docs/config-reference.md ("Refused as not supported yet"); a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .config import models as m

_MESH = "mesh (HBONE / ztunnel) settings are not supported yet"
_XDS = "xDS configuration is not supported yet; agentgw is configured by this file only"
_H2 = "tuning HTTP/2 (windows, frame size, keepalive) is not supported yet: agentgw uses fixed values (docs/dataplane.md#http2)"
SPIFFE_REFUSAL = "SPIFFE workload certificates (a Workload API agent such as SPIRE) are not supported yet"


def _tunnel(value: str) -> str | None:
    if value.lower() in ("direct", "connect"):  # no tunnel; CONNECT tunnels to the other binds
        return None
    return f"{value} tunnelling is not supported yet"


def _log_level(value: str) -> str | None:
    from .telemetry.setup import _LEVELS

    first, _, rest = value.partition(",")
    if first.strip().lower() not in _LEVELS:
        return f"unknown level {first.strip()!r}; expected one of {', '.join(_LEVELS)}"
    if rest.strip():
        return "per-module levels are not supported yet; use a single level"
    return None


def _gcp_type(value: str) -> str | None:
    if value == "idToken":
        return "ID tokens are not supported yet (only accessToken)"
    return None


#: (declaring class, Python field name) -> message, or a function of the value that
#: returns the message (``None``: this value is fine).
UNSUPPORTED: dict[tuple[type[BaseModel], str], str | Callable[[Any], str | None]] = {
    # -- process settings
    (m.GatewayConfig, "dns"): "custom DNS resolver settings are not supported yet",
    (m.GatewayConfig, "local_xds_path"): _XDS,
    (m.GatewayConfig, "xds_address"): _XDS,
    (m.GatewayConfig, "xds_auth_token"): _XDS,
    (m.GatewayConfig, "ca_address"): "certificates from a mesh CA are not supported yet",
    (m.GatewayConfig, "spiffe"): SPIFFE_REFUSAL,
    (m.ListenerTLS, "spiffe"): SPIFFE_REFUSAL,
    (m.GatewayConfig, "ca_auth_token"): "certificates from a mesh CA are not supported yet",
    (m.GatewayConfig, "auth_token"): _XDS,
    (m.GatewayConfig, "trust_domain"): _MESH,
    (m.GatewayConfig, "additional_trust_domains"): _MESH,
    (m.GatewayConfig, "skip_validate_trust_domain"): _MESH,
    (m.GatewayConfig, "service_account"): _MESH,
    (m.GatewayConfig, "cluster_id"): _MESH,
    (m.GatewayConfig, "network"): _MESH,
    (m.GatewayConfig, "hbone"): _MESH,
    (m.GatewayConfig, "http2"): _H2,
    (m.GatewayConfig, "worker_threads"): "not supported yet; run several processes with `agentgw run --workers N`",
    (m.Logging, "level"): _log_level,
    # a label computed by CEL from every request would put an evaluation per request on
    # the metrics path, which today is one histogram update
    (m.MetricsFields, "add"): "adding metric labels from CEL expressions is not supported yet",
    (m.LocalConfig, "workloads"): _MESH + " (static workloads)",
    # -- frontend
    (m.Bind, "tunnel_protocol"): _tunnel,
    (m.FrontendPolicies, "network_authorization"): "network authorization is not supported yet",
    (m.FrontendPolicies, "proxy_protocol"): "the PROXY protocol is not supported yet",
    (m.FrontendPolicies, "connect"): "CONNECT is not supported yet",
    (m.FrontendHTTP, "http2_window_size"): _H2,
    (m.FrontendHTTP, "http2_connection_window_size"): _H2,
    (m.FrontendHTTP, "http2_frame_size"): _H2,
    (m.FrontendHTTP, "http2_keepalive_interval"): _H2,
    (m.FrontendHTTP, "http2_keepalive_timeout"): _H2,
    (m.ListenerTLS, "key_exchange_groups"): "choosing key exchange groups is not supported yet",
    (m.OtlpLogging, "policies"): "backend policies for the OTLP log exporter are not supported yet",
    (m.AccessLog, "access_log_policy"): "not supported yet",
    (m.FrontendTracing, "resources"): "tracing resource attributes are not supported yet",
    # -- backends
    (
        m.BackendTLS,
        "subject_alt_names",
    ): "checking the server certificate against a list of names is not supported yet; use hostname",
    (m.BackendTLS, "key_exchange_groups"): "choosing key exchange groups is not supported yet",
    (m.BackendTLS, "spiffe"): "SPIFFE verification is not supported yet",
    (m.SimpleBackendPolicies, "tcp"): "TCP settings for backends are not supported yet",
    (m.SimpleBackendPolicies, "backend_tunnel"): "backend tunnels are not supported yet",
    (m.TcpBackendPolicies, "backend_tunnel"): "backend tunnels are not supported yet",
    (m.LlmModel, "backend_tunnel"): "backend tunnels are not supported yet",
    (m.BackendPolicies, "health"): "backend health checks are not supported yet",
    (m.GcpAuth, "type"): _gcp_type,
    (m.GcpAuth, "audience"): "ID tokens are not supported yet (only accessToken)",
    (m.FileRef, "tunnel"): "fetching through a tunnel is not supported yet",
}


def _is_set(model: BaseModel, name: str, value: Any) -> bool:
    if value is None:
        return False
    field = type(model).model_fields[name]
    if not field.is_required() and field.default_factory is None and value == field.default:
        return False  # written out as the default: nothing to enforce
    if isinstance(value, list) and not value:
        return False  # an empty list asks for nothing
    if isinstance(value, dict) and not value and field.default_factory is not None:
        return False  # the default, written out
    # an empty object is a feature switched on with its defaults (``spiffe: {}``)
    return True


def _lookup(cls: type, name: str):
    for klass in cls.__mro__:
        msg = UNSUPPORTED.get((klass, name))
        if msg is not None:
            return msg
    return None


def refuse_unsupported(cfg: m.LocalConfig, add: Callable[[str, str], None]) -> None:
    """``add(path, message)`` for every field of ``UNSUPPORTED`` set in ``cfg``."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, BaseModel):
            cls = type(node)
            for name, field in cls.model_fields.items():
                value = getattr(node, name)
                key = field.alias or name
                p = f"{path}.{key}" if path else key
                msg = _lookup(cls, name)
                if msg is not None and _is_set(node, name, value):
                    text = msg(value) if callable(msg) else msg
                    if text is not None:
                        add(p, text)
                        continue
                walk(value, p)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(cfg, "")


def refused_everywhere(cls: type, name: str) -> bool:
    """Whether ``UNSUPPORTED`` refuses field ``name`` of ``cls`` in every value."""
    msg = _lookup(cls, name)
    return msg is not None and not callable(msg)


def refuse_except(
    add: Callable[[str, str], None], pol: BaseModel | None, path: str, allowed: set[str], msg: str
) -> None:
    """``add(path, msg)`` for each field of ``pol`` that is set and not in ``allowed``
    (Python names) -- the policies a part of the gateway does not act on. Fields refused
    everywhere are left to `refuse_unsupported`, so they are reported once."""
    if pol is None:
        return
    cls = type(pol)
    for name, field in cls.model_fields.items():
        if name in allowed or refused_everywhere(cls, name):
            continue
        if _is_set(pol, name, getattr(pol, name)):
            add(f"{path}.{field.alias or name}", msg)


# Policies that parse but that this build does not enforce. Refusing them is safer than
# serving a route without, say, the authentication its author asked for.
UNSUPPORTED_ROUTE_POLICIES = {
    "ext_mcp": "extMcp",
    "ext_proc": "extProc",
    "oidc": "oidc",
    "transformations": "transformations",
    "ai": "ai",
    "backend_tunnel": "backendTunnel",
}
