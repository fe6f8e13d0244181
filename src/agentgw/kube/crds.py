"""The CustomResourceDefinitions agentgw's controller serves, as data.

``deploy/crds/*.yaml`` are generated from here (``python -m agentgw.kube.crds deploy/crds``)
and a test checks they are in sync. Schemas are structural (every node typed). They are
also what the translator validates every object against (`agentgw.kube.schema`): a field
that is not here is refused, so every field here must be one the translator acts on, and
"exactly one of" choices are ``x-kubernetes-validations`` rules (the API server and the
translator both evaluate them) rather than a silent precedence. The only free-form parts
(``x-kubernetes-preserve-unknown-fields``) are agentgw config (``rawConfig``, checked by the
proxy's own config validation) and Kubernetes object overlays (checked by the API server,
which the controller asks for strict field validation).
"""

from __future__ import annotations

import os
import sys
from typing import Any

S = {"type": "string"}
B = {"type": "boolean"}
FREE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}


def obj(props: dict, required: list[str] | None = None, **extra: Any) -> dict:
    o: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        o["required"] = required
    o.update(extra)
    return o


def arr(items: dict, **extra: Any) -> dict:
    return {"type": "array", "items": items, **extra}


def enum(*vals: str) -> dict:
    return {"type": "string", "enum": list(vals)}


def one_of(*fields: str, at_most: bool = False) -> dict:
    """A rule: exactly one (or, with ``at_most``, at most one) of ``fields`` is set."""
    has = ", ".join(f"has(self.{f})" for f in fields)
    names = ", ".join(fields[:-1]) + (" or " if at_most else " and ") + fields[-1] if len(fields) > 1 else fields[0]
    if at_most:
        return {"rule": f"[{has}].filter(x, x).size() <= 1", "message": f"at most one of {names} may be set"}
    return {"rule": f"[{has}].filter(x, x).size() == 1", "message": f"exactly one of {', '.join(fields)} must be set"}


def rules(*r: dict) -> dict:
    return {"x-kubernetes-validations": list(r)}


PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
LABEL_SELECTOR = obj(
    {
        "matchLabels": STRMAP,
        "matchExpressions": arr(
            obj(
                {"key": S, "operator": enum("In", "NotIn", "Exists", "DoesNotExist"), "values": arr(S)},
                ["key", "operator"],
            )
        ),
    }
)
TARGET_REF = obj({"group": S, "kind": S, "name": S, "sectionName": S}, ["group", "kind", "name"])
#: the objects of a kind in the policy's namespace whose labels match (``sectionName`` applies to each)
TARGET_SELECTOR = obj(
    {"group": S, "kind": S, "matchLabels": STRMAP, "sectionName": S}, ["group", "kind", "matchLabels"]
)
SECRET_REF = obj({"name": S, "namespace": S, "key": S}, ["name"])
LOCAL_REF = obj({"name": S}, ["name"])
HEADERS = arr(obj({"name": S, "value": S}, ["name", "value"]))
HEADER_FILTER = obj({"add": HEADERS, "set": HEADERS, "remove": arr(S)})
BACKEND_REF = obj({"group": S, "kind": S, "name": S, "namespace": S, "port": PORT}, ["name"])
CONDITION = obj(
    {
        "type": S,
        "status": enum("True", "False", "Unknown"),
        "reason": S,
        "message": S,
        "observedGeneration": {"type": "integer", "format": "int64"},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
    },
    ["type", "status"],
)
CONDITIONS = arr(CONDITION, **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"], "maxItems": 8})
STATUS = obj({"conditions": CONDITIONS})
POLICY_STATUS = obj(
    {
        "conditions": CONDITIONS,
        "ancestors": arr(obj({"ancestorRef": FREE, "controllerName": S, "conditions": CONDITIONS}), maxItems=16),
    }
)
MODE = enum("Strict", "Optional", "Permissive")
DURATION = {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"}
AUTHZ = obj(
    {
        "action": enum("Allow", "Deny", "Require"),
        "policy": obj({"matchExpressions": arr(S, minItems=1)}, ["matchExpressions"]),
    },
    ["policy"],
)

#: a CEL expression (agentgw compiles it; the schema only checks it is there)
CEL = {"type": "string", "minLength": 1, "maxLength": 16384}
CEL_MAP = {"type": "object", "additionalProperties": CEL, "maxProperties": 64}
FAILURE_MODE = enum("FailClosed", "FailOpen")
SHORT = {"type": "string", "minLength": 1, "maxLength": 256}
#: a header name; pseudo-headers only as the ones HTTP defines
HEADER_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": "^:?[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$",
    **rules(
        {
            "rule": "!self.startsWith(':') || self in [':authority', ':method', ':path', ':scheme', ':status']",
            "message": "pseudo-headers must be one of :authority, :method, :path, :scheme, or :status",
        }
    ),
}
PLAIN_HEADER_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": "^[A-Za-z0-9!#$%&'*+\\-.^_\\x60|~]+$",
}
#: Kubernetes resource.Quantity of bytes (``64Ki``, ``1Mi``, ``8192``)
BYTE_SIZE = {"x-kubernetes-int-or-string": True}


def named_cel(name: dict) -> dict:
    """``[{name, value: CEL}]``, keyed by name (agentgateway's HeaderTransformation lists)."""
    return arr(
        obj({"name": name, "value": CEL}, ["name", "value"]),
        minItems=1,
        maxItems=16,
        **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


def at_least_one(*fields: str) -> dict:
    has = ", ".join(f"has(self.{f})" for f in fields)
    return {"rule": f"[{has}].filter(x, x).size() >= 1", "message": f"at least one of {', '.join(fields)} must be set"}


#: agentgateway's PolicyBackendEndpoint: the service a policy calls (``backendRef`` or ``url``)
ENDPOINT = {"backendRef": BACKEND_REF, "url": {"type": "string", "pattern": "^https?://[^/?#@]+(/[^?#]*)?$"}}
URL_WITHOUT_PATH = {
    "rule": "!has(self.url) || self.url.matches('^https?://[^/?#]+$')",
    "message": "url must not include a path",
}


def conditional(policy: dict, others: list[str]) -> dict:
    """``{conditional: [{condition, policy}]}`` beside a policy's own fields ``others``: the
    first entry whose condition holds applies; an entry without one is the last, the fallback."""
    entries = arr(
        obj({"condition": CEL, "policy": policy}, ["policy"]),
        minItems=1,
        maxItems=16,
        **rules(
            {
                "rule": "self.filter(e, !has(e.condition)).size() <= 1 && (!self.exists(e, !has(e.condition)) || !has(self[size(self) - 1].condition))",
                "message": "conditional entries without condition must be last",
            }
        ),
    )
    has = ", ".join(f"has(self.{f})" for f in others)
    rule = {
        "rule": f"has(self.conditional) ? [{has}].filter(x, x).size() == 0 : true",
        "message": "conditional cannot be set with any other field",
    }
    own = [
        {"rule": f"has(self.conditional) || ({r['rule']})", "message": r["message"]}
        for r in policy.get("x-kubernetes-validations", [])
    ]
    return obj({**policy["properties"], "conditional": entries}, **rules(*own, rule))


DIRECT_RESPONSE = obj(
    {
        "status": {"type": "integer", "minimum": 200, "maximum": 599},
        "body": {"type": "string", "minLength": 1, "maxLength": 4096},
        "bodyExpression": CEL,
        "headers": named_cel(PLAIN_HEADER_NAME),
    },
    **rules(
        {"rule": "has(self.status)", "message": "status is required"},
        {
            "rule": "!(has(self.body) && has(self.bodyExpression))",
            "message": "body and bodyExpression may not both be set",
        },
    ),
)
TRANSFORM = obj(
    {
        "set": named_cel(HEADER_NAME),
        "add": named_cel(HEADER_NAME),
        "remove": arr(HEADER_NAME, minItems=1, maxItems=16, **{"x-kubernetes-list-type": "set"}),
        "body": CEL,
        "metadata": {**CEL_MAP, "minProperties": 1, "maxProperties": 16},
    },
    **rules(at_least_one("set", "add", "remove", "body", "metadata")),
)
TRANSFORMATION = obj({"request": TRANSFORM, "response": TRANSFORM}, **rules(at_least_one("request", "response")))
EXT_AUTH = obj(
    {
        **ENDPOINT,
        "failureMode": FAILURE_MODE,
        "grpc": obj({"contextExtensions": {**STRMAP, "maxProperties": 64}, "requestMetadata": CEL_MAP}),
        "http": obj(
            {
                "path": CEL,
                "redirect": CEL,
                "body": CEL,
                "allowedRequestHeaders": arr(SHORT, maxItems=64),
                "addRequestHeaders": CEL_MAP,
                "allowedResponseHeaders": arr(SHORT, maxItems=64),
                "responseMetadata": CEL_MAP,
            }
        ),
        "forwardBody": obj({"maxSize": BYTE_SIZE}, ["maxSize"]),
        "cache": obj(
            {"key": arr(CEL, minItems=1, maxItems=16), "ttl": CEL, "maxEntries": {"type": "integer", "minimum": 1}},
            ["key", "ttl"],
        ),
    },
    **rules(
        one_of("backendRef", "url"),
        one_of("grpc", "http"),
        {
            "rule": "!(has(self.forwardBody) && has(self.http) && has(self.http.body))",
            "message": "forwardBody cannot be used with http.body",
        },
        {
            "rule": "!has(self.url) || !self.url.matches('^https?://[^/?#]+/') || has(self.http)",
            "message": "url path is only valid with http",
        },
        {
            "rule": "!has(self.url) || !self.url.matches('^https?://[^/?#]+/') || !has(self.http) || !has(self.http.path)",
            "message": "http.path may not be set when url includes a path",
        },
    ),
)
BODY_MODE = enum("None", "Buffered", "BufferedPartial", "FullDuplexStreamed")
SEND_MODE = enum("Send", "Skip")
EXT_PROC = obj(
    {
        **ENDPOINT,
        "failureMode": FAILURE_MODE,
        "processingOptions": obj(
            {
                "requestBodyMode": BODY_MODE,
                "responseBodyMode": BODY_MODE,
                "requestHeaderMode": SEND_MODE,
                "responseHeaderMode": SEND_MODE,
                "requestTrailerMode": SEND_MODE,
                "responseTrailerMode": SEND_MODE,
                "allowModeOverride": B,
            }
        ),
        "metadataContext": {"type": "object", "additionalProperties": CEL_MAP, "maxProperties": 64},
        "requestAttributes": CEL_MAP,
        "responseAttributes": CEL_MAP,
    },
    **rules(one_of("backendRef", "url"), URL_WITHOUT_PATH),
)
LOCAL_RATE_LIMIT = arr(
    obj(
        {
            "requests": {"type": "integer", "minimum": 1},
            "tokens": {"type": "integer", "minimum": 1},
            "unit": enum("Seconds", "Minutes", "Hours"),
            "burst": {"type": "integer", "minimum": 0},
        },
        ["unit"],
        **rules(one_of("requests", "tokens")),
    )
)
GLOBAL_RATE_LIMIT = obj(
    {
        **ENDPOINT,
        "failureMode": FAILURE_MODE,
        "domain": SHORT,
        "descriptors": arr(
            obj(
                {
                    "entries": arr(
                        obj(
                            {"name": {"type": "string", "minLength": 1, "maxLength": 64}, "expression": CEL},
                            ["name", "expression"],
                        ),
                        minItems=1,
                        maxItems=16,
                    ),
                    "unit": enum("Requests", "Tokens"),
                    "cost": CEL,
                    "limitOverride": CEL,
                },
                ["entries"],
            ),
            minItems=1,
            maxItems=16,
        ),
    },
    ["domain", "descriptors"],
    **rules(one_of("backendRef", "url"), URL_WITHOUT_PATH),
)
RATE_LIMITS = obj({"local": LOCAL_RATE_LIMIT, "global": GLOBAL_RATE_LIMIT}, **rules(at_least_one("local", "global")))
BUFFER_BODY = obj({"maxBytes": BYTE_SIZE, "failureMode": FAILURE_MODE})
#: the traffic fields agentgateway runs before routing (``phase: PreRouting``)
PRE_ROUTING_FIELDS = (
    "phase",
    "authorization",
    "transformation",
    "extProc",
    "extAuth",
    "jwtAuthentication",
    "basicAuthentication",
    "apiKeyAuthentication",
    "cors",
)


STATIC = obj({"host": S, "port": PORT}, ["host", "port"])
#: agentgateway's StaticBackend: TCP (``host`` and ``port``) or a Unix domain socket (refused)
STATIC_BACKEND = obj(
    {"host": S, "port": PORT, "unixPath": {"type": "string", "minLength": 1}},
    **rules(
        {
            "rule": "has(self.unixPath) || (has(self.host) && has(self.port))",
            "message": "must specify either unixPath or both host and port",
        },
        {
            "rule": "!has(self.unixPath) || (!has(self.host) && !has(self.port))",
            "message": "unixPath and host/port are mutually exclusive",
        },
    ),
)
#: a part of agentgateway's API that agentgw refuses whatever it holds: the translator names
#: the field and why (its shape is agentgateway's; agentgw reads nothing in it)
REFUSED = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
#: agentgateway's LocalSecretObjectRef / LocalSecretKeyRef (a Secret unless group/kind say otherwise)
_CUSTOM_CREDENTIAL = {
    "rule": "(!has(self.group) || size(self.group) == 0) ? (!has(self.kind) || size(self.kind) == 0 || self.kind == 'Secret') : (has(self.kind) && size(self.kind) > 0)",
    "message": "custom credential refs must set both group and kind",
}
SECRET_OBJECT_REF = obj({"name": S, "group": S, "kind": S}, ["name"], **rules(_CUSTOM_CREDENTIAL))
SECRET_KEY_REF = obj(
    {"name": S, "group": S, "kind": S, "key": {"type": "string", "minLength": 1, "maxLength": 253}},
    ["name"],
    **rules(_CUSTOM_CREDENTIAL),
)
AUTH_LOCATION = obj(
    {
        "header": obj({"name": S, "prefix": S}, ["name"]),
        "queryParameter": obj({"name": S}, ["name"]),
        "cookie": obj({"name": S}, ["name"]),
    },
    **rules(one_of("header", "queryParameter", "cookie")),
)
_AUTH_KINDS = (
    "key",
    "secretRef",
    "passthrough",
    "aws",
    "azure",
    "gcp",
    "oauthTokenExchange",
    "crossAppAccess",
    "jwtSign",
)
BACKEND_AUTH = obj(
    {
        "key": {"type": "string", "maxLength": 2048},
        "secretRef": SECRET_KEY_REF,
        "passthrough": obj({}),
        "aws": obj(
            {
                "secretRef": SECRET_OBJECT_REF,
                "assumeRole": obj(
                    {
                        "roleArn": S,
                        "sessionName": S,
                        "sessionNameExpression": CEL,
                        "tags": arr(obj({"key": S, "value": S, "expression": CEL}, ["key"])),
                    },
                    ["roleArn"],
                ),
                "serviceName": S,
                "region": S,
            }
        ),
        "azure": REFUSED,
        "gcp": obj({"type": enum("AccessToken", "IdToken"), "secretRef": SECRET_KEY_REF, "audience": S}),
        "oauthTokenExchange": REFUSED,
        "crossAppAccess": REFUSED,
        "jwtSign": obj(
            {
                "signingKeyRef": SECRET_OBJECT_REF,
                "alg": enum("RS256", "RS384", "RS512", "PS256", "ES256", "ES384"),
                "kid": S,
                "claims": FREE,
                "ttl": DURATION,
                "location": AUTH_LOCATION,
            },
            ["signingKeyRef"],
        ),
        "location": AUTH_LOCATION,
        "credentials": arr(
            obj({"location": AUTH_LOCATION, "secretRef": SECRET_KEY_REF}, ["location", "secretRef"]),
            minItems=1,
            maxItems=8,
        ),
    },
    **rules(
        one_of(*_AUTH_KINDS, at_most=True),
        {
            "rule": "has(self.credentials) || " + " || ".join(f"has(self.{k})" for k in _AUTH_KINDS),
            "message": "must specify credentials, or at most one of " + "/".join(_AUTH_KINDS),
        },
        {
            "rule": "has(self.location) ? has(self.key) || has(self.secretRef) || has(self.passthrough) : true",
            "message": "location may only be set for key, secretRef, or passthrough auth",
        },
    ),
)
BACKEND_TLS = obj(
    {
        "certificateSource": enum("Inline", "SPIFFE"),
        "mtlsCertificateRef": arr(SECRET_OBJECT_REF, maxItems=1),
        "caCertificateRefs": arr(obj({"name": S, "kind": enum("ConfigMap", "Secret")}, ["name"]), maxItems=1),
        "insecureSkipVerify": enum("All", "Hostname"),
        "sni": S,
        "verifySubjectAltNames": arr(S, minItems=1, maxItems=16),
        "alpnProtocols": arr(S, minItems=1, maxItems=16),
        "keyExchangeGroups": arr(S),
    },
    **rules(
        {
            "rule": "has(self.insecureSkipVerify) && self.insecureSkipVerify == 'All' ? !has(self.caCertificateRefs) : true",
            "message": "insecureSkipVerify All and caCertificateRefs may not be set together",
        },
        {
            "rule": "has(self.insecureSkipVerify) ? !has(self.verifySubjectAltNames) : true",
            "message": "insecureSkipVerify and verifySubjectAltNames may not be set together",
        },
        {
            "rule": "!has(self.certificateSource) || self.certificateSource != 'SPIFFE' || (!has(self.mtlsCertificateRef) && !has(self.caCertificateRefs) && !has(self.insecureSkipVerify))",
            "message": "certificateSource SPIFFE may not be combined with mtlsCertificateRef, caCertificateRefs, or insecureSkipVerify",
        },
    ),
)
#: agentgateway's RouteType: how an AI backend reads a path suffix
AI_ROUTE_TYPES = (
    "Completions",
    "Messages",
    "Models",
    "Passthrough",
    "Detect",
    "Responses",
    "AnthropicTokenCount",
    "Embeddings",
    "Realtime",
    "Rerank",
    "GenerateContent",
    "GeminiCountTokens",
)
_MESSAGE = obj({"role": S, "content": S}, ["role", "content"])
_FIELD_DEFAULT = obj({"field": SHORT, "value": {"x-kubernetes-preserve-unknown-fields": True}}, ["field", "value"])
BACKEND_AI = obj(
    {
        "prompt": obj({"prepend": arr(_MESSAGE), "append": arr(_MESSAGE)}),
        "promptGuard": REFUSED,
        "defaults": arr(_FIELD_DEFAULT, minItems=1, maxItems=64),
        "overrides": arr(_FIELD_DEFAULT, minItems=1, maxItems=64),
        "transformations": arr(
            obj({"field": SHORT, "expression": CEL}, ["field", "expression"]), minItems=1, maxItems=64
        ),
        "finalTransformations": REFUSED,
        "modelAliases": {**STRMAP, "maxProperties": 64},
        "promptCaching": obj(
            {
                "cacheSystem": B,
                "cacheMessages": B,
                "cacheTools": B,
                "minTokens": {"type": "integer", "minimum": 0},
                "cacheMessageOffset": {"type": "integer", "minimum": 0},
            }
        ),
        "routes": {"type": "object", "additionalProperties": enum(*AI_ROUTE_TYPES)},
    }
)
#: agentgateway's BackendFull (``BackendSimple``: tcp, tls, http, tunnel, auth; then ai, mcp,
#: transformation, health, extAuth); ``a2a`` is agentgw's own (mark the backend's traffic A2A)
BACKEND_POLICIES = obj(
    {
        "tcp": REFUSED,
        "tls": BACKEND_TLS,
        "http": obj({"requestTimeout": DURATION, "version": S}),
        "tunnel": REFUSED,
        "auth": BACKEND_AUTH,
        "a2a": obj({}),
        "ai": BACKEND_AI,
        "mcp": obj({"authorization": AUTHZ, "authentication": REFUSED, "guardrails": REFUSED}),
        "transformation": TRANSFORMATION,
        "health": REFUSED,
        "extAuth": EXT_AUTH,
    }
)

TRAFFIC = obj(
    {
        "phase": enum("PreRouting", "PostRouting"),
        "jwtAuthentication": obj(
            {
                "mode": MODE,
                "providers": arr(
                    obj(
                        {
                            "issuer": S,
                            "audiences": arr(S),
                            "jwks": obj(
                                {
                                    "inline": S,
                                    "remote": obj(
                                        {"url": S, "backendRef": BACKEND_REF, "jwksPath": S},
                                        **rules(
                                            one_of("url", "backendRef"),
                                            {
                                                "rule": "!has(self.jwksPath) || has(self.backendRef)",
                                                "message": "jwksPath applies to backendRef only",
                                            },
                                        ),
                                    ),
                                    "secretRef": SECRET_REF,
                                    "configMapRef": SECRET_REF,
                                },
                                **rules(one_of("inline", "remote", "secretRef", "configMapRef")),
                            ),
                        },
                        ["issuer", "jwks"],
                    ),
                    minItems=1,
                ),
                "claimToHeaders": arr(obj({"claim": S, "header": S}, ["claim", "header"])),
            },
            ["providers"],
        ),
        "apiKeyAuthentication": obj(
            {"mode": MODE, "secretRef": obj({"name": S, "namespace": S}, ["name"])}, ["secretRef"]
        ),
        "basicAuthentication": obj({"mode": MODE, "realm": S, "users": arr(S), "secretRef": SECRET_REF}),
        "authorization": AUTHZ,
        "rateLimit": conditional(RATE_LIMITS, ["local", "global"]),
        "cors": obj(
            {
                "allowOrigins": arr(S),
                "allowMethods": arr(S),
                "allowHeaders": arr(S),
                "exposeHeaders": arr(S),
                "allowCredentials": B,
                "maxAge": {"x-kubernetes-int-or-string": True},
            }
        ),
        "timeouts": obj({"request": DURATION, "backendRequest": DURATION}),
        "retry": obj(
            {
                "attempts": {"type": "integer", "minimum": 0},
                "backoff": DURATION,
                "codes": arr({"type": "integer", "minimum": 400, "maximum": 599}),
            }
        ),
        "headerModifiers": obj({"request": HEADER_FILTER, "response": HEADER_FILTER}),
        "directResponse": conditional(DIRECT_RESPONSE, ["status", "body", "bodyExpression", "headers"]),
        "csrf": obj({"additionalOrigins": arr(SHORT, minItems=1, maxItems=16)}),
        "hostRewrite": obj({"mode": enum("Auto", "None")}, ["mode"]),
        "transformation": conditional(TRANSFORMATION, ["request", "response"]),
        "extAuth": conditional(EXT_AUTH, list(ENDPOINT) + ["failureMode", "grpc", "http", "forwardBody", "cache"]),
        "extProc": conditional(
            EXT_PROC,
            list(ENDPOINT)
            + ["failureMode", "processingOptions", "metadataContext", "requestAttributes", "responseAttributes"],
        ),
        "delay": obj({"duration": CEL}, ["duration"]),
        "buffer": obj({"request": BUFFER_BODY, "response": BUFFER_BODY}, **rules(at_least_one("request", "response"))),
    },
    **rules(
        {
            "rule": "!has(self.phase) || self.phase != 'PreRouting' || self.all(k, k in ["
            + ", ".join(f"'{f}'" for f in PRE_ROUTING_FIELDS)
            + "])",
            "message": "phase PreRouting only supports " + ", ".join(PRE_ROUTING_FIELDS[1:]),
        }
    ),
)
_ATTRIBUTES = obj({"add": arr(obj({"name": S, "expression": S}, ["name", "expression"])), "remove": arr(S)})
#: agentgateway's Keepalive (TCP keepalive probes)
KEEPALIVE = obj({"retries": {"type": "integer", "minimum": 1, "maximum": 64}, "time": DURATION, "interval": DURATION})
TLS_VERSION = enum("1.2", "1.3")
FRONTEND = obj(
    {
        "tcp": obj({"keepalive": KEEPALIVE}),
        "networkAuthorization": REFUSED,
        "tls": obj(
            {
                "handshakeTimeout": DURATION,
                "alpnProtocols": arr(S, minItems=1, maxItems=16),
                "minProtocolVersion": TLS_VERSION,
                "maxProtocolVersion": TLS_VERSION,
                "cipherSuites": arr(S),
                "keyExchangeGroups": arr(S),
            }
        ),
        "http": obj(
            {
                "maxBufferSize": BYTE_SIZE,
                "http1MaxHeaders": {"type": "integer", "minimum": 1, "maximum": 4096},
                "http1IdleTimeout": DURATION,
                "http1HeaderCase": enum("Lowercase", "Preserve"),
                "http2WindowSize": BYTE_SIZE,
                "http2ConnectionWindowSize": BYTE_SIZE,
                "http2FrameSize": BYTE_SIZE,
                "http2MaxHeaderSize": BYTE_SIZE,
                "http2KeepaliveInterval": DURATION,
                "http2KeepaliveTimeout": DURATION,
                "maxConnectionDuration": DURATION,
            }
        ),
        "proxyProtocol": REFUSED,
        "connect": REFUSED,
        "tracing": obj(
            {
                "backendRef": BACKEND_REF,
                "url": S,
                "endpoint": S,
                "protocol": enum("GRPC", "HTTP"),
                "randomSampling": S,
                "clientSampling": S,
                "path": S,
                "attributes": _ATTRIBUTES,
                "resources": arr(obj({"name": S, "expression": S}, ["name", "expression"])),
                "filter": S,
            },
            **rules(one_of("backendRef", "url", "endpoint")),
        ),
        "accessLog": obj(
            {
                "filter": S,
                "attributes": _ATTRIBUTES,
                "otlp": obj(
                    {
                        **ENDPOINT,
                        "filter": S,
                        "attributes": _ATTRIBUTES,
                        "protocol": enum("GRPC", "HTTP"),
                        "path": S,
                    },
                    **rules(one_of("backendRef", "url")),
                ),
            }
        ),
        "metrics": REFUSED,
    }
)

OVERLAY = obj({"metadata": obj({"labels": STRMAP, "annotations": STRMAP}), "spec": FREE})
QUANTITIES = {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}}
RESOURCES = obj({"limits": QUANTITIES, "requests": QUANTITIES, "claims": arr(obj({"name": S, "request": S}, ["name"]))})
KEY_REF = obj({"name": S, "key": S, "optional": B}, ["key"])
ENV_VAR = obj(
    {
        "name": S,
        "value": S,
        "valueFrom": obj(
            {
                "fieldRef": obj({"apiVersion": S, "fieldPath": S}, ["fieldPath"]),
                "resourceFieldRef": obj(
                    {"containerName": S, "resource": S, "divisor": {"x-kubernetes-int-or-string": True}}, ["resource"]
                ),
                "configMapKeyRef": KEY_REF,
                "secretKeyRef": KEY_REF,
            },
            **rules(one_of("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")),
        ),
    },
    ["name"],
    **rules(one_of("value", "valueFrom", at_most=True)),
)

# AI providers: the settings each one uses (``groups``/``priorityGroups`` list the same shape).
_MODEL = {"model": S}
AI_PROVIDER = obj(
    {
        "name": S,
        "host": S,
        "port": PORT,
        "path": S,
        "openai": obj(_MODEL),
        "anthropic": obj(_MODEL),
        "gemini": obj(_MODEL),
        "vertexai": obj({**_MODEL, "region": S, "projectId": S}, ["projectId"]),
        "bedrock": obj({**_MODEL, "region": S}, ["region"]),
        "azureopenai": obj({**_MODEL, "resourceName": S, "apiVersion": S}),
    },
    **rules(
        one_of("openai", "anthropic", "gemini", "vertexai", "bedrock", "azureopenai"),
        {"rule": "!has(self.port) || has(self.host)", "message": "port applies to host only"},
    ),
)
AI_GROUPS = arr(obj({"providers": arr(AI_PROVIDER, minItems=1)}, ["providers"]), minItems=1)

ACCEPTED_COL = {"name": "Accepted", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Accepted")].status'}
AGE_COL = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def crd(
    group: str,
    kind: str,
    plural: str,
    spec: dict,
    status: dict,
    columns: list[dict],
    short: list[str] | None = None,
    categories: list[str] | None = None,
    version: str = "v1alpha1",
    spec_required: bool = True,
) -> dict:
    root = obj(
        {"apiVersion": S, "kind": S, "metadata": {"type": "object"}, "spec": spec, "status": status},
        ["spec"] if spec_required else None,
    )
    names: dict[str, Any] = {"kind": kind, "listKind": kind + "List", "plural": plural, "singular": kind.lower()}
    if short:
        names["shortNames"] = short
    if categories:
        names["categories"] = categories
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {"app.kubernetes.io/part-of": "agentgw"}},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns + [ACCEPTED_COL, AGE_COL],
                }
            ],
        },
    }


BACKEND_KINDS = ("static", "a2a", "ai", "mcp", "dynamicForwardProxy", "aws")
ONE_KIND_RULE = {
    "rule": "[" + ", ".join(f"has(self.{k})" for k in BACKEND_KINDS) + "].filter(x, x).size() == 1",
    "message": "exactly one of " + ", ".join(BACKEND_KINDS) + " must be set",
}

AGENTGATEWAY_BACKEND = crd(
    "agentgateway.dev",
    "AgentgatewayBackend",
    "agentgatewaybackends",
    obj(
        {
            "static": STATIC_BACKEND,
            # agentgateway's {host, port}; or agentgw's weighted ``targets``
            "a2a": obj(
                {
                    "host": S,
                    "port": PORT,
                    "targets": arr(
                        obj({"name": S, "weight": {"type": "integer", "minimum": 0}, "static": STATIC}, ["static"]),
                        minItems=1,
                    ),
                },
                **rules(
                    {
                        "rule": "has(self.targets) ? !has(self.host) && !has(self.port) : has(self.host) && has(self.port)",
                        "message": "set host and port, or targets",
                    }
                ),
            ),
            "ai": obj(
                {"provider": AI_PROVIDER, "groups": AI_GROUPS, "priorityGroups": AI_GROUPS},
                **rules(one_of("provider", "groups", "priorityGroups")),
            ),
            "mcp": obj(
                {
                    "targets": arr(
                        obj(
                            {
                                "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
                                "static": obj(
                                    {"host": S, "port": PORT, "path": S, "protocol": enum("StreamableHTTP", "SSE")},
                                    ["host", "port"],
                                ),
                                "selector": obj({"namespaces": LABEL_SELECTOR, "services": LABEL_SELECTOR}),
                            },
                            ["name"],
                            **rules(one_of("static", "selector")),
                        ),
                        minItems=1,
                    ),
                    "failureMode": enum("FailClosed", "FailOpen"),
                    "prefixMode": enum("Always", "Conditional", "Never"),
                    "sessionRouting": enum("Stateful", "Stateless"),
                },
                ["targets"],
            ),
            "aws": obj(
                {
                    "agentCore": obj(
                        {
                            "agentRuntimeArn": {"type": "string", "pattern": "^arn:aws[a-z-]*:bedrock-agentcore:"},
                            "qualifier": S,
                        },
                        ["agentRuntimeArn"],
                    )
                },
                ["agentCore"],
            ),
            "dynamicForwardProxy": obj({}),
            "policies": BACKEND_POLICIES,
        },
        **rules(
            ONE_KIND_RULE,
            {
                "rule": "has(self.policies) && has(self.policies.ai) ? has(self.ai) : true",
                "message": "AI policies require AI backend",
            },
            {
                "rule": "has(self.policies) && has(self.policies.mcp) ? has(self.mcp) : true",
                "message": "MCP policies require MCP backend",
            },
        ),
    ),
    STATUS,
    [],
    short=["agbe"],
    categories=["agentgateway"],
)

AGENTGATEWAY_POLICY = crd(
    "agentgateway.dev",
    "AgentgatewayPolicy",
    "agentgatewaypolicies",
    obj(
        {
            "targetRefs": arr(TARGET_REF, minItems=1, maxItems=16),
            "targetSelectors": arr(TARGET_SELECTOR, minItems=1, maxItems=16),
            "frontend": FRONTEND,
            "traffic": TRAFFIC,
            "backend": BACKEND_POLICIES,
        },
        **rules(one_of("targetRefs", "targetSelectors")),
    ),
    POLICY_STATUS,
    [],
    short=["agpol"],
    categories=["agentgateway"],
)

AGENTGATEWAY_PARAMETERS = crd(
    "agentgateway.dev",
    "AgentgatewayParameters",
    "agentgatewayparameters",
    obj(
        {
            "image": obj(
                {
                    "registry": S,
                    "repository": S,
                    "tag": S,
                    "digest": S,
                    "pullPolicy": enum("Always", "IfNotPresent", "Never"),
                }
            ),
            "env": arr(ENV_VAR),
            "resources": RESOURCES,
            "replicas": {"type": "integer", "minimum": 0},
            "logging": obj({"level": S, "format": enum("text", "json")}),
            "rawConfig": FREE,
            "workload": obj({"kind": enum("Deployment", "DaemonSet")}),
            "shutdown": obj(
                {
                    "min": {"type": "integer", "minimum": 0, "maximum": 31536000},
                    "max": {"type": "integer", "minimum": 0, "maximum": 31536000},
                },
                ["min", "max"],
                **rules(
                    {
                        "rule": "self.min <= self.max",
                        "message": "The 'min' value must be less than or equal to the 'max' value.",
                    }
                ),
            ),
            "istio": REFUSED,
            "spiffe": REFUSED,
            "modelCatalog": REFUSED,
            "daemonSet": REFUSED,
            "deployment": OVERLAY,
            "service": OVERLAY,
            "serviceAccount": OVERLAY,
            "podDisruptionBudget": OVERLAY,
            "horizontalPodAutoscaler": OVERLAY,
        },
        **rules(
            {
                "rule": "!(has(self.replicas) && has(self.horizontalPodAutoscaler))",
                "message": "replicas and horizontalPodAutoscaler are exclusive (the autoscaler sets the replica count)",
            }
        ),
    ),
    STATUS,
    [],
    short=["agpar"],
    categories=["agentgateway"],
    spec_required=False,
)

MODEL_PROVIDERS = (
    "OpenAI",
    "Azure",
    "Anthropic",
    "Gemini",
    "VertexAI",
    "Bedrock",
    "Cohere",
    "Ollama",
    "Baseten",
    "Cerebras",
    "Deepinfra",
    "Deepseek",
    "Groq",
    "Huggingface",
    "Mistral",
    "Openrouter",
    "TogetherAI",
    "XAI",
    "Fireworks",
    "Custom",
)
PARENT_REF = obj({"group": S, "kind": S, "namespace": S, "name": S, "sectionName": S, "port": PORT}, ["name"])
_MODEL_TARGET = {"modelRef": LOCAL_REF, "model": S}
_FIELD_TRANSFORMATIONS = arr(
    obj({"field": SHORT, "expression": CEL}, ["field", "expression"]),
    minItems=1,
    maxItems=64,
    **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["field"]},
)
AGENTGATEWAY_MODEL = crd(
    "agentgateway.dev",
    "AgentgatewayModel",
    "agentgatewaymodels",
    obj(
        {
            "parentRefs": arr(PARENT_REF, minItems=1, maxItems=16),
            "match": obj(
                {
                    "model": {
                        "type": "string",
                        **rules(
                            {
                                "rule": "!self.contains('*') || (self.indexOf('*') == self.lastIndexOf('*') && (self.indexOf('*') == 0 || self.indexOf('*') == size(self) - 1))",
                                "message": "model wildcards must be '*', a suffix like 'gpt-*', or a prefix like '*-latest'",
                            }
                        ),
                    }
                }
            ),
            "visibility": {**enum("Public", "Internal"), "default": "Public"},
            "provider": enum(*MODEL_PROVIDERS),
            "azure": obj(
                {"resourceName": S, "resourceType": enum("OpenAI", "Foundry"), "apiVersion": S, "projectName": S},
                ["resourceName", "resourceType"],
            ),
            "vertexai": obj({"projectId": S, "region": S}, ["projectId"]),
            "bedrock": obj({"region": S, "guardrail": obj({"identifier": S, "version": S}, ["identifier", "version"])}),
            "custom": REFUSED,
            "baseURL": S,
            "policies": obj(
                {
                    "transformations": _FIELD_TRANSFORMATIONS,
                    "finalTransformations": _FIELD_TRANSFORMATIONS,
                    "authorization": AUTHZ,
                    "auth": BACKEND_AUTH,
                    "health": REFUSED,
                    "tls": BACKEND_TLS,
                    "tunnel": REFUSED,
                    "headers": obj({"request": HEADER_FILTER, "response": HEADER_FILTER}),
                    "promptGuard": REFUSED,
                }
            ),
            "virtualModel": obj(
                {
                    "weighted": obj(
                        {
                            "targets": arr(
                                obj(
                                    {**_MODEL_TARGET, "weight": {"type": "integer", "minimum": 1, "maximum": 1000000}},
                                    ["modelRef"],
                                ),
                                minItems=1,
                                maxItems=64,
                            )
                        },
                        ["targets"],
                    ),
                    "failover": obj(
                        {
                            "targets": arr(
                                obj(
                                    {
                                        **_MODEL_TARGET,
                                        "priority": {"type": "integer", "minimum": 0, "maximum": 1000000},
                                    },
                                    ["modelRef", "priority"],
                                ),
                                minItems=1,
                                maxItems=64,
                            )
                        },
                        ["targets"],
                    ),
                    "conditional": obj(
                        {
                            "targets": arr(
                                obj({**_MODEL_TARGET, "when": CEL}, ["modelRef"]),
                                minItems=1,
                                maxItems=64,
                                **rules(
                                    {
                                        "rule": "self.filter(e, !has(e.when)).size() <= 1 && (!self.exists(e, !has(e.when)) || !has(self[size(self) - 1].when))",
                                        "message": "conditional targets without when must be last",
                                    }
                                ),
                            )
                        },
                        ["targets"],
                    ),
                },
                **rules(one_of("weighted", "failover", "conditional")),
            ),
        },
        ["parentRefs"],
        **rules(
            one_of("provider", "virtualModel"),
            {"rule": "has(self.provider) || !has(self.baseURL)", "message": "baseURL requires provider"},
            {
                "rule": "!has(self.virtualModel) || !has(self.policies)",
                "message": "policies cannot be used with virtualModel",
            },
            {
                "rule": "!has(self.virtualModel) || self.visibility != 'Internal'",
                "message": "virtual models must be public",
            },
            {
                "rule": "!has(self.provider) || self.provider != 'Ollama' || has(self.baseURL)",
                "message": "ollama requires baseURL",
            },
            *(
                {
                    "rule": f"has(self.{f}) == (has(self.provider) && self.provider == '{p}')",
                    "message": f"{f} must be set if and only if provider is {p}",
                }
                for f, p in (("azure", "Azure"), ("vertexai", "VertexAI"), ("bedrock", "Bedrock"), ("custom", "Custom"))
            ),
        ),
    ),
    obj(
        {
            "parents": arr(
                obj({"parentRef": FREE, "controllerName": S, "conditions": CONDITIONS}),
                maxItems=16,
            )
        }
    ),
    [{"name": "Model Match", "type": "string", "jsonPath": ".spec.match.model"}],
    short=["agmodel"],
    categories=["agentgateway"],
)

# Other vendors' shapes agentgw translates (installed with deploy/kubernetes/compat only).
ENTERPRISE_POLICY = crd(
    "enterpriseagentgateway.solo.io",
    "EnterpriseAgentgatewayPolicy",
    "enterpriseagentgatewaypolicies",
    obj(
        {
            "targetRefs": arr(TARGET_REF, minItems=1, maxItems=16),
            "frontend": FRONTEND,
            "backend": BACKEND_POLICIES,
            "traffic": obj(
                {
                    **TRAFFIC["properties"],
                    "entRateLimit": obj(
                        {
                            "global": obj(
                                {"rateLimitConfigRefs": arr(obj({"name": S, "namespace": S}, ["name"]), minItems=1)},
                                ["rateLimitConfigRefs"],
                            )
                        }
                    ),
                }
            ),
        },
        ["targetRefs"],
    ),
    POLICY_STATUS,
    [],
    categories=["agentgateway"],
)
RL_LIMIT = obj({"requestsPerUnit": {"type": "integer", "minimum": 0}, "unit": enum("SECOND", "MINUTE", "HOUR", "DAY")})


def _descriptors(depth: int) -> dict:
    """Nested descriptors, unrolled (a structural schema cannot recurse)."""
    props = {"key": S, "value": S, "rateLimit": RL_LIMIT}
    if depth > 1:
        props["descriptors"] = _descriptors(depth - 1)
    return arr(obj(props, ["key"]))


RL_ACTION = obj(
    {
        "genericKey": obj({"descriptorKey": S, "descriptorValue": S}, ["descriptorValue"]),
        "remoteAddress": obj({}),
        "requestHeaders": obj({"headerName": S, "descriptorKey": S}, ["headerName"]),
    },
    **rules(one_of("genericKey", "remoteAddress", "requestHeaders")),
)
RATE_LIMIT_CONFIG = crd(
    "ratelimit.solo.io",
    "RateLimitConfig",
    "ratelimitconfigs",
    obj(
        {
            "raw": obj(
                {
                    "descriptors": _descriptors(4),
                    "rateLimits": arr(
                        obj({"actions": arr(RL_ACTION, minItems=1), "type": enum("REQUEST", "TOKEN")}, ["actions"])
                    ),
                }
            )
        }
    ),
    STATUS,
    [],
)
ACK_BACKEND = crd(
    "agentgateway.alibabacloud.com",
    "Backend",
    "backends",
    obj(
        {
            "type": enum("A2A"),
            "a2a": obj({"targets": arr(obj({"name": S, "static": STATIC}, ["static"]), minItems=1)}, ["targets"]),
        },
        ["type"],
    ),
    STATUS,
    [{"name": "Type", "type": "string", "jsonPath": ".spec.type"}],
)
ACK_TRAFFIC_POLICY = crd(
    "agentgateway.alibabacloud.com",
    "TrafficPolicy",
    "trafficpolicies",
    obj(
        {
            "targetRefs": arr(TARGET_REF, minItems=1, maxItems=16),
            "traffic": obj(
                {
                    "authentication": obj(
                        {"apiKeyAuth": obj({"secretRef": obj({"name": S, "namespace": S}, ["name"])}, ["secretRef"])}
                    )
                }
            ),
        },
        ["targetRefs"],
    ),
    POLICY_STATUS,
    [],
)

CORE = {
    "agentgateway.dev_agentgatewaybackends.yaml": AGENTGATEWAY_BACKEND,
    "agentgateway.dev_agentgatewaypolicies.yaml": AGENTGATEWAY_POLICY,
    "agentgateway.dev_agentgatewayparameters.yaml": AGENTGATEWAY_PARAMETERS,
    "agentgateway.dev_agentgatewaymodels.yaml": AGENTGATEWAY_MODEL,
}
COMPAT = {
    "enterpriseagentgateway.solo.io_enterpriseagentgatewaypolicies.yaml": ENTERPRISE_POLICY,
    "ratelimit.solo.io_ratelimitconfigs.yaml": RATE_LIMIT_CONFIG,
    "agentgateway.alibabacloud.com_backends.yaml": ACK_BACKEND,
    "agentgateway.alibabacloud.com_trafficpolicies.yaml": ACK_TRAFFIC_POLICY,
}


def render() -> dict[str, str]:
    """File name (relative to deploy/crds) → YAML text."""
    import yaml

    from .cli import _Dumper

    header = "# Generated by `python -m agentgw.kube.crds deploy/crds`; do not edit.\n"
    out = {}
    for prefix, group in (("", CORE), ("compat/", COMPAT), ("../helm/agentgw/crds/", CORE)):
        for name, doc in group.items():
            out[prefix + name] = header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False)
    # the Helm chart's compat CRDs: a template (crds/ cannot be switched off), kept on uninstall
    # like the ones in crds/ (deleting a CRD deletes every object of its kind)
    docs = []
    for doc in COMPAT.values():
        kept = {**doc, "metadata": {**doc["metadata"], "annotations": {"helm.sh/resource-policy": "keep"}}}
        docs.append(yaml.dump(kept, Dumper=_Dumper, sort_keys=False))
    out["../helm/agentgw/templates/compat-crds.yaml"] = (
        header.replace("; do not edit", " (the CRDs of deploy/crds/compat); do not edit")
        + "{{- if .Values.compat.crds }}\n"
        + "---\n".join(docs)
        + "{{- end }}\n"
    )
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "deploy/crds"
    for name, text in render().items():
        path = os.path.join(target, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print(path)
