"""agentgw's schema of the Gateway API: the kinds, fields and values it implements.

The translator validates every GatewayClass, Gateway, HTTPRoute, GRPCRoute and ReferenceGrant against
these schemas (`agentgw.kube.schema`) before reading it. They are written by hand from the
Gateway API specification and list exactly what agentgw reads and acts on, so that
``Accepted=True`` means every field of the object is enforced. Anything else is refused:

* a Gateway API field agentgw does not implement is named, with the reason, under
  ``x-agentgw-unsupported`` at the node that would hold it, and refused as "not supported
  by agentgw (...)". An API server with the Gateway API's CRDs installed stores such a field
  (the validator's ``server`` mode accepts it without looking into it, and pruning keeps
  it), so it reaches the translator and is refused there rather than silently dropped;
* a value the API defines and agentgw does not implement (``x-agentgw-unsupported-values``)
  and a bound tighter than the API's (``x-agentgw-limits``) are refused the same way;
* any other field is an unknown field: a misspelling gets a "did you mean" hint, anything
  else is "not supported by agentgw" too.

The constraints kept are those of the specification that bear on what agentgw reads: types,
enums, required fields, bounds, the syntax of names, hostnames, header names and values and
Gateway API durations, and the specification's rules on combinations (a filter's type and
its settings, a redirect and backendRefs, ``replacePrefixMatch`` and the rule's path match,
repeated filters, duplicate parentRefs and rule names, ...) as CEL rules
(``x-kubernetes-validations``), which the validator evaluates as the API server would.
"""

from __future__ import annotations

from typing import Any

from .crds import B, S, arr, enum, obj, rules

GROUP = "gateway.networking.k8s.io"
VERSIONS = ["v1", "v1beta1"]
STATUS = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


# -- building blocks ----------------------------------------------------------------------------
def string(pattern: str | None = None, min_len: int | None = None, max_len: int | None = None, **extra: Any) -> dict:
    s: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        s["pattern"] = pattern
    if min_len is not None:
        s["minLength"] = min_len
    if max_len is not None:
        s["maxLength"] = max_len
    s.update(extra)
    return s


def integer(lo: int | None = None, hi: int | None = None, **extra: Any) -> dict:
    i: dict[str, Any] = {"type": "integer"}
    if lo is not None:
        i["minimum"] = lo
    if hi is not None:
        i["maximum"] = hi
    i.update(extra)
    return i


def unsupported(**why: str) -> dict:
    """Gateway API fields of a node that agentgw does not implement, with the reason."""
    return {"x-agentgw-unsupported": why}


def keyed(*keys: str) -> dict:
    """A list whose items are unique by ``keys``."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


SET = {"x-kubernetes-list-type": "set"}


def rule(expr: str, message: str) -> dict:
    return {"rule": expr, "message": message}


# an RFC 1123 label, and a dot-separated sequence of them (a DNS subdomain)
_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS = f"{_LABEL}([.]{_LABEL})*"

GROUP_NAME = string(f"^$|^{_DNS}$", max_len=253)
KIND = string("^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$", 1, 63)
OBJECT_NAME = string(min_len=1, max_len=253)
NAMESPACE = string(f"^{_LABEL}$", 1, 63)
SECTION_NAME = string(f"^{_DNS}$", 1, 253)
#: a listener's or a route's hostname: a DNS name, or one with a leading ``*.`` label
HOSTNAME = string(f"^([*][.])?{_DNS}$", 1, 253)
PRECISE_HOSTNAME = string(f"^{_DNS}$", 1, 253)
PORT = integer(1, 65535)
#: Gateway API durations: one to four <number><unit> parts, numbers of up to five digits
DURATION = string("^([0-9]{1,5}(ms|h|m|s)){1,4}$")
#: an HTTP field name (an RFC 9110 token)
HEADER_NAME = string("^[-A-Za-z0-9!#$%&'*+.^_`|~]+$", 1, 256)
#: an HTTP field value: visible characters, single words separated by spaces or tabs
HEADER_VALUE = string("^[!-~]+([ \\t]+[!-~]+)*$", 1, 4096)
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
CONTROLLER_NAME = string(f"^{_DNS}/[-A-Za-z0-9/._~%!$&'()*+,;=:]+$", 1, 253)
PROTOCOL = string(f"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$|^{_DNS}/[A-Za-z0-9]+$", 1, 255)

_QUALIFIED_KEY = f"^({_DNS}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"


def key_map(values: dict, max_props: int, what: str) -> dict:
    """Kubernetes labels or annotations: qualified names as keys."""
    return {
        "type": "object",
        "additionalProperties": values,
        "maxProperties": max_props,
        **rules(
            rule(
                f'self.all(k, k.matches("{_QUALIFIED_KEY}"))',
                f"{what} keys must be qualified names ([prefix/]name, the name at most 63 characters)",
            )
        ),
    }


LABEL_SELECTOR = obj(
    {
        "matchLabels": {"type": "object", "additionalProperties": string(max_len=63)},
        "matchExpressions": arr(
            obj(
                {
                    "key": string(min_len=1),
                    "operator": enum("In", "NotIn", "Exists", "DoesNotExist"),
                    "values": arr(S),
                },
                ["key", "operator"],
                **rules(
                    rule(
                        "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                        "values are required for In and NotIn, and not allowed for Exists and DoesNotExist",
                    )
                ),
            )
        ),
    }
)


# -- GatewayClass -------------------------------------------------------------------------------
GATEWAY_CLASS_SPEC = obj(
    {
        "controllerName": CONTROLLER_NAME,
        "parametersRef": obj(
            {"group": GROUP_NAME, "kind": KIND, "name": OBJECT_NAME, "namespace": NAMESPACE}, ["group", "kind", "name"]
        ),
        # informational only: there is nothing to enforce
        "description": string(max_len=64),
    },
    ["controllerName"],
)


# -- Gateway ------------------------------------------------------------------------------------
CERTIFICATE_REF = obj(
    {
        "group": {**GROUP_NAME, "default": ""},
        "kind": {**KIND, "default": "Secret"},
        "name": OBJECT_NAME,
        "namespace": NAMESPACE,
    },
    ["name"],
)

LISTENER = obj(
    {
        "name": SECTION_NAME,
        "hostname": HOSTNAME,
        "port": PORT,
        "protocol": PROTOCOL,
        "tls": obj(
            {
                "mode": {**enum("Terminate", "Passthrough"), "default": "Terminate"},
                "certificateRefs": arr(
                    CERTIFICATE_REF,
                    maxItems=64,
                    **{"x-agentgw-limits": {"maxItems": 1, "why": "agentgw serves one certificate per listener"}},
                ),
            },
            **rules(
                rule(
                    "self.mode != 'Terminate' || (has(self.certificateRefs) && size(self.certificateRefs) > 0)",
                    "certificateRefs is required when mode is Terminate",
                )
            ),
            **unsupported(options="no implementation-specific TLS options are defined"),
        ),
        "allowedRoutes": obj(
            {
                "namespaces": obj(
                    {
                        "from": {**enum("All", "Selector", "Same"), "default": "Same"},
                        "selector": LABEL_SELECTOR,
                    },
                    **rules(
                        rule(
                            "has(self.selector) == (self.from == 'Selector')",
                            "selector is set when from is Selector, and only then",
                        )
                    ),
                ),
                "kinds": arr(obj({"group": {**GROUP_NAME, "default": GROUP}, "kind": KIND}, ["kind"]), maxItems=8),
            }
        ),
    },
    ["name", "port", "protocol"],
    **rules(
        rule(
            "!(self.protocol in ['HTTP', 'TCP', 'UDP']) || !has(self.tls)",
            "tls is not allowed for HTTP, TCP and UDP listeners",
        ),
        rule(
            "self.protocol != 'HTTPS' || !has(self.tls) || self.tls.mode == 'Terminate'",
            "an HTTPS listener terminates TLS: tls.mode must be Terminate",
        ),
    ),
)

GATEWAY_SPEC = obj(
    {
        "gatewayClassName": string(min_len=1, max_len=253),
        "listeners": arr(LISTENER, minItems=1, maxItems=64, **keyed("name")),
        "infrastructure": obj(
            {
                "labels": key_map(string("^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", max_len=63), 8, "label"),
                "annotations": key_map(string(max_len=4096), 16, "annotation"),
                "parametersRef": obj(
                    {"group": GROUP_NAME, "kind": KIND, "name": OBJECT_NAME}, ["group", "kind", "name"]
                ),
            }
        ),
    },
    ["gatewayClassName", "listeners"],
    **unsupported(
        addresses="the proxy's Service gets its address from the cluster; requested addresses are not supported",
        allowedListeners="ListenerSets are not supported",
        tls="Gateway-level TLS settings (backend client certificates, client certificate validation) are not supported",
        defaultScope="default Gateways are not supported",
    ),
)


# -- HTTPRoute ----------------------------------------------------------------------------------
HEADERS = arr(obj({"name": HEADER_NAME, "value": HEADER_VALUE}, ["name", "value"]), maxItems=16, **keyed("name"))
HEADER_MODIFIER = obj({"set": HEADERS, "add": HEADERS, "remove": arr(HEADER_NAME, maxItems=16, **SET)})


def _only_with_type(field: str, type_value: str, what: str = "type") -> dict:
    return rule(
        f"has(self.{field}) == (self.{what} == '{type_value}')",
        f"{field} is set when {what} is {type_value}, and only then",
    )


PATH_MODIFIER = obj(
    {
        "type": enum("ReplaceFullPath", "ReplacePrefixMatch"),
        "replaceFullPath": string(max_len=1024),
        "replacePrefixMatch": string(max_len=1024),
    },
    ["type"],
    **rules(
        _only_with_type("replaceFullPath", "ReplaceFullPath"),
        _only_with_type("replacePrefixMatch", "ReplacePrefixMatch"),
    ),
)

REQUEST_REDIRECT = obj(
    {
        "scheme": enum("http", "https"),
        "hostname": PRECISE_HOSTNAME,
        "port": PORT,
        "path": PATH_MODIFIER,
        "statusCode": {"type": "integer", "enum": [301, 302, 303, 307, 308], "default": 302},
    }
)
URL_REWRITE = obj({"hostname": PRECISE_HOSTNAME, "path": PATH_MODIFIER})


def _star_alone(what: str) -> dict:
    return rule("!('*' in self) || size(self) == 1", f"'*' (any {what}) cannot be listed with other values")


ORIGIN = string("^([*]|https?://([*]|([*][.])?[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*)(:[0-9]{1,5})?)$", 1, 253)
CORS = obj(
    {
        "allowOrigins": arr(ORIGIN, maxItems=64, **SET, **rules(_star_alone("origin"))),
        "allowMethods": arr(enum(*METHODS, "*"), maxItems=9, **SET, **rules(_star_alone("method"))),
        "allowHeaders": arr(HEADER_NAME, maxItems=64, **SET, **rules(_star_alone("header"))),
        "exposeHeaders": arr(HEADER_NAME, maxItems=64, **SET),
        "allowCredentials": B,
        "maxAge": integer(1),
    }
)

#: filter type -> the field holding its settings
FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "CORS": "cors",
    "RequestMirror": "requestMirror",
    "ExtensionRef": "extensionRef",
    "ExternalAuth": "externalAuth",
}
_NOT_IMPLEMENTED_FILTERS = {
    "requestMirror": "the RequestMirror filter is not supported",
    "extensionRef": "ExtensionRef filters are not supported",
    "externalAuth": "the ExternalAuth filter is not supported",
}


def _filter(implemented: dict[str, dict], why_not: dict[str, str], fields: dict[str, str] = FILTER_FIELDS) -> dict:
    """One filter: its type and the settings of that type (``implemented``: field -> schema;
    ``fields``: the filter types of the route kind -> the field holding their settings)."""
    types = {f: t for t, f in fields.items()}
    return obj(
        {
            "type": {**enum(*fields), "x-agentgw-unsupported-values": sorted(types[f] for f in why_not)},
            **implemented,
        },
        ["type"],
        **rules(*(_only_with_type(f, t) for t, f in fields.items())),
        **unsupported(**why_not),
    )


def _not_repeated(*types: str) -> list[dict]:
    return [rule(f"self.filter(f, f.type == '{t}').size() <= 1", f"{t} filter cannot be repeated") for t in types]


FILTERS = arr(
    _filter(
        {
            "requestHeaderModifier": HEADER_MODIFIER,
            "responseHeaderModifier": HEADER_MODIFIER,
            "requestRedirect": REQUEST_REDIRECT,
            "urlRewrite": URL_REWRITE,
            "cors": CORS,
        },
        _NOT_IMPLEMENTED_FILTERS,
    ),
    maxItems=16,
    **rules(
        *_not_repeated("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "CORS"),
        rule(
            "!(self.exists(f, f.type == 'RequestRedirect') && self.exists(f, f.type == 'URLRewrite'))",
            "RequestRedirect and URLRewrite filters cannot be used together",
        ),
    ),
)
_BACKEND_ONLY_HEADERS = "only header modifiers are supported on a backendRef"
BACKEND_FILTERS = arr(
    _filter(
        {"requestHeaderModifier": HEADER_MODIFIER, "responseHeaderModifier": HEADER_MODIFIER},
        {
            f: _BACKEND_ONLY_HEADERS
            for f in ("requestRedirect", "urlRewrite", "cors", "requestMirror", "extensionRef", "externalAuth")
        },
    ),
    maxItems=16,
    **rules(*_not_repeated("RequestHeaderModifier", "ResponseHeaderModifier")),
)

BACKEND_REF = obj(
    {
        "group": {**GROUP_NAME, "default": ""},
        "kind": {**KIND, "default": "Service"},
        "name": OBJECT_NAME,
        "namespace": NAMESPACE,
        "port": PORT,
        "weight": integer(0, 1000000, default=1),
        "filters": BACKEND_FILTERS,
    },
    ["name"],
    **rules(rule("!(self.group == '' && self.kind == 'Service') || has(self.port)", "port is required for a Service")),
)

# paths as the proxy compares them: normalized, so that a match can never miss its request
_PCHARS = "^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*$"
_NOT_NORMAL = (
    "self.value.contains('//') || self.value.contains('/./') || self.value.contains('/../') || self.value.lowerAscii().contains('%2f') "
    "|| self.value.contains('#') || self.value.endsWith('/.') || self.value.endsWith('/..')"
)
PATH_MATCH = obj(
    {
        "type": {**enum("Exact", "PathPrefix", "RegularExpression"), "default": "PathPrefix"},
        "value": string(max_len=1024, default="/"),
    },
    default={"type": "PathPrefix", "value": "/"},
    **rules(
        rule(
            "self.type == 'RegularExpression' || self.value.startsWith('/')",
            "an Exact or PathPrefix path must start with '/'",
        ),
        rule(
            f"self.type == 'RegularExpression' || !({_NOT_NORMAL})",
            "an Exact or PathPrefix path must be normalized: no '//', '/./', '/../', '%2F' or '#', and no trailing '/.' or '/..'",
        ),
        rule(
            f"self.type == 'RegularExpression' || self.value.matches(\"{_PCHARS}\")",
            "an Exact or PathPrefix path may hold only URI path characters and %-escapes",
        ),
    ),
)
_MATCH_TYPE = {**enum("Exact", "RegularExpression"), "default": "Exact"}
HEADER_MATCHES = arr(
    obj({"type": _MATCH_TYPE, "name": HEADER_NAME, "value": string(min_len=1, max_len=4096)}, ["name", "value"]),
    maxItems=16,
    **keyed("name"),
)
MATCH = obj(
    {
        "path": PATH_MATCH,
        "headers": HEADER_MATCHES,
        "queryParams": arr(
            obj(
                {"type": _MATCH_TYPE, "name": HEADER_NAME, "value": string(min_len=1, max_len=1024)}, ["name", "value"]
            ),
            maxItems=16,
            **keyed("name"),
        ),
        "method": enum(*METHODS),
    }
)

TIMEOUTS = obj(
    {"request": DURATION, "backendRequest": DURATION},
    **rules(
        rule(
            "!(has(self.request) && has(self.backendRequest)) || duration(self.request) == duration('0s') || duration(self.backendRequest) <= duration(self.request)",
            "backendRequest cannot be longer than request",
        )
    ),
)
RETRY = obj({"attempts": integer(1), "backoff": DURATION, "codes": arr(integer(400, 599), **SET)})

_PREFIX_REWRITE = (
    "has(self.filters) && self.filters.exists(f, (has(f.requestRedirect) && has(f.requestRedirect.path) && f.requestRedirect.path.type == 'ReplacePrefixMatch') "
    "|| (has(f.urlRewrite) && has(f.urlRewrite.path) && f.urlRewrite.path.type == 'ReplacePrefixMatch'))"
)
ROUTE_RULE = obj(
    {
        "name": SECTION_NAME,
        "matches": arr(MATCH, maxItems=64, default=[{"path": {"type": "PathPrefix", "value": "/"}}]),
        "filters": FILTERS,
        "backendRefs": arr(BACKEND_REF, maxItems=16),
        "timeouts": TIMEOUTS,
        "retry": RETRY,
    },
    **rules(
        rule(
            "!(has(self.filters) && self.filters.exists(f, f.type == 'RequestRedirect') && has(self.backendRefs) && size(self.backendRefs) > 0)",
            "a rule with a RequestRedirect filter cannot have backendRefs (the redirect is its answer)",
        ),
        rule(
            f"!({_PREFIX_REWRITE}) || (size(self.matches) == 1 && self.matches[0].path.type == 'PathPrefix')",
            "replacePrefixMatch needs exactly one match, with a PathPrefix path (the prefix it replaces)",
        ),
    ),
    **unsupported(sessionPersistence="session persistence is not supported"),
)

PARENT_REF = obj(
    {
        "group": {**GROUP_NAME, "default": GROUP},
        "kind": {**KIND, "default": "Gateway"},
        "namespace": NAMESPACE,
        "name": OBJECT_NAME,
        "sectionName": SECTION_NAME,
        "port": PORT,
    },
    ["name"],
)
# (``namespace`` is a CEL keyword: rules see the field as ``__namespace__``, as in the API server)
_SAME_PARENT = (
    "b.group == a.group && b.kind == a.kind && b.name == a.name "
    "&& (has(b.__namespace__) ? b.__namespace__ : '') == (has(a.__namespace__) ? a.__namespace__ : '')"
)
_SAME_SECTION = "(has(b.sectionName) ? b.sectionName : '') == (has(a.sectionName) ? a.sectionName : '') && (has(b.port) ? b.port : 0) == (has(a.port) ? a.port : 0)"

HTTPROUTE_SPEC = obj(
    {
        "parentRefs": arr(
            PARENT_REF,
            maxItems=32,
            **rules(
                rule(
                    f"self.all(a, has(a.sectionName) || has(a.port) || self.filter(b, {_SAME_PARENT}).size() == 1)",
                    "parentRefs naming the same parent must each set sectionName or port",
                ),
                rule(
                    f"self.all(a, self.filter(b, {_SAME_PARENT} && {_SAME_SECTION}).size() == 1)",
                    "parentRefs must not name the same parent with the same sectionName and port twice",
                ),
            ),
        ),
        "hostnames": arr(HOSTNAME, maxItems=16),
        "rules": arr(
            ROUTE_RULE,
            minItems=1,
            maxItems=16,
            default=[{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
            **rules(
                rule(
                    "self.all(a, !has(a.name) || self.filter(b, has(b.name) && b.name == a.name).size() == 1)",
                    "rule names must be unique within the route",
                )
            ),
        ),
    },
    **unsupported(useDefaultGateways="default Gateways are not supported"),
)


# -- GRPCRoute ----------------------------------------------------------------------------------
#: GRPCRoute filter type -> the field holding its settings
GRPC_FILTER_FIELDS = {
    t: FILTER_FIELDS[t] for t in ("ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef")
}
GRPC_FILTERS = arr(
    _filter(
        {"requestHeaderModifier": HEADER_MODIFIER, "responseHeaderModifier": HEADER_MODIFIER},
        {k: v for k, v in _NOT_IMPLEMENTED_FILTERS.items() if k in ("requestMirror", "extensionRef")},
        GRPC_FILTER_FIELDS,
    ),
    maxItems=16,
    **rules(*_not_repeated("RequestHeaderModifier", "ResponseHeaderModifier")),
)
GRPC_BACKEND_FILTERS = arr(
    _filter(
        {"requestHeaderModifier": HEADER_MODIFIER, "responseHeaderModifier": HEADER_MODIFIER},
        {f: _BACKEND_ONLY_HEADERS for f in ("requestMirror", "extensionRef")},
        GRPC_FILTER_FIELDS,
    ),
    maxItems=16,
    **rules(*_not_repeated("RequestHeaderModifier", "ResponseHeaderModifier")),
)
GRPC_BACKEND_REF = {**BACKEND_REF, "properties": {**BACKEND_REF["properties"], "filters": GRPC_BACKEND_FILTERS}}

# the service and method syntax of an Exact match (protobuf's full names; a method is one name)
_GRPC_SERVICE = "^(?i)\\\\.?[a-z_][a-z_0-9]*(\\\\.[a-z_][a-z_0-9]*)*$"
_GRPC_METHOD = "^[A-Za-z_][A-Za-z_0-9]*$"
GRPC_METHOD_MATCH = obj(
    {
        "type": {**enum("Exact", "RegularExpression"), "default": "Exact"},
        "service": string(max_len=1024),
        "method": string(max_len=1024),
    },
    **rules(
        rule(
            "(has(self.service) && size(self.service) > 0) || (has(self.method) && size(self.method) > 0)",
            "one or both of service and method must be set",
        ),
        rule(
            f"self.type != 'Exact' || !has(self.service) || self.service.matches('{_GRPC_SERVICE}')",
            "an Exact service must be a protobuf service name (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)",
        ),
        rule(
            f"self.type != 'Exact' || !has(self.method) || self.method.matches('{_GRPC_METHOD}')",
            f"an Exact method must be a protobuf method name (matching {_GRPC_METHOD})",
        ),
    ),
)
GRPC_MATCH = obj({"method": GRPC_METHOD_MATCH, "headers": HEADER_MATCHES})
GRPC_ROUTE_RULE = obj(
    {
        "name": SECTION_NAME,
        "matches": arr(GRPC_MATCH, maxItems=64),
        "filters": GRPC_FILTERS,
        "backendRefs": arr(GRPC_BACKEND_REF, maxItems=16),
    },
    **unsupported(sessionPersistence="session persistence is not supported"),
)
_TOTAL_MATCHES = " + ".join(
    f"(self.size() > {i} ? (has(self[{i}].matches) ? self[{i}].matches.size() : 0) : 0)" for i in range(16)
)
GRPCROUTE_SPEC = obj(
    {
        "parentRefs": HTTPROUTE_SPEC["properties"]["parentRefs"],
        "hostnames": arr(HOSTNAME, maxItems=16),
        "rules": arr(
            GRPC_ROUTE_RULE,
            maxItems=16,
            **rules(
                rule(
                    "self.all(a, !has(a.name) || self.filter(b, has(b.name) && b.name == a.name).size() == 1)",
                    "rule names must be unique within the route",
                ),
                rule(f"{_TOTAL_MATCHES} <= 128", "a route has at most 128 matches across all its rules"),
            ),
        ),
    },
    **unsupported(useDefaultGateways="default Gateways are not supported"),
)


# -- ReferenceGrant -----------------------------------------------------------------------------
REFERENCE_GRANT_SPEC = obj(
    {
        "from": arr(
            obj({"group": GROUP_NAME, "kind": KIND, "namespace": NAMESPACE}, ["group", "kind", "namespace"]),
            minItems=1,
            maxItems=16,
        ),
        "to": arr(
            obj({"group": GROUP_NAME, "kind": KIND, "name": OBJECT_NAME}, ["group", "kind"]), minItems=1, maxItems=16
        ),
    },
    ["from", "to"],
)


def _root(spec: dict) -> dict:
    return obj({"apiVersion": S, "kind": S, "metadata": {"type": "object"}, "spec": spec, "status": STATUS}, ["spec"])


#: kind -> served versions and the object's schema
SCHEMAS: dict[str, dict] = {
    "GatewayClass": {"versions": VERSIONS, "schema": _root(GATEWAY_CLASS_SPEC)},
    "Gateway": {"versions": VERSIONS, "schema": _root(GATEWAY_SPEC)},
    "HTTPRoute": {"versions": VERSIONS, "schema": _root(HTTPROUTE_SPEC)},
    # (GRPCRoute is served as v1 only: its v1alpha2 left the standard channel)
    "GRPCRoute": {"versions": ["v1"], "schema": _root(GRPCROUTE_SPEC)},
    "ReferenceGrant": {"versions": VERSIONS, "schema": _root(REFERENCE_GRANT_SPEC)},
}
