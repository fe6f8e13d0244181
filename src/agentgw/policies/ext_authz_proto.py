"""The subset of Envoy's ``envoy.service.auth.v3`` messages that ``extAuthz`` speaks.

Declared here as descriptors (no generated code, no protoc at build time), in a private
descriptor pool so they can't clash with a full Envoy API package. Field numbers and
types follow envoy/service/auth/v3/{external_auth,attribute_context}.proto,
envoy/config/core/v3/{base,address}.proto, envoy/type/v3/http_status.proto and
google/rpc/status.proto; fields agentgw doesn't send or read are left out (unknown
fields in an answer are skipped by the protobuf runtime).

``CheckRequest``, ``CheckResponse`` and the nested types are module attributes;
``METHOD`` is the gRPC method path.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

METHOD = "/envoy.service.auth.v3.Authorization/Check"

_F = descriptor_pb2.FieldDescriptorProto
_T = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "bool": _F.TYPE_BOOL,
}

# message name -> [(field name, number, type or message name, repeated?)]
# Message names are fully qualified; every one lives in the file's package.
_MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "envoy.config.core.v3.SocketAddress": [("address", 2, "string", False), ("port_value", 3, "uint32", False)],
    "envoy.config.core.v3.Address": [("socket_address", 1, ".envoy.config.core.v3.SocketAddress", False)],
    "envoy.config.core.v3.HeaderValue": [
        ("key", 1, "string", False),
        ("value", 2, "string", False),
        ("raw_value", 3, "bytes", False),
    ],
    "google.protobuf.BoolValue": [("value", 1, "bool", False)],
    "envoy.config.core.v3.HeaderValueOption": [
        ("header", 1, ".envoy.config.core.v3.HeaderValue", False),
        ("append", 2, ".google.protobuf.BoolValue", False),
        ("append_action", 3, "int32", False),
    ],
    "envoy.service.auth.v3.AttributeContext.Peer": [
        ("address", 1, ".envoy.config.core.v3.Address", False),
        ("service", 2, "string", False),
        ("principal", 4, "string", False),
        ("certificate", 5, "string", False),
    ],
    "envoy.service.auth.v3.AttributeContext.HttpRequest": [
        ("id", 1, "string", False),
        ("method", 2, "string", False),
        ("headers", 3, "map", False),
        ("path", 4, "string", False),
        ("host", 5, "string", False),
        ("scheme", 6, "string", False),
        ("query", 7, "string", False),
        ("size", 9, "int64", False),
        ("protocol", 10, "string", False),
        ("body", 11, "string", False),
        ("raw_body", 12, "bytes", False),
    ],
    "envoy.service.auth.v3.AttributeContext.Request": [
        ("http", 2, ".envoy.service.auth.v3.AttributeContext.HttpRequest", False),
    ],
    "envoy.service.auth.v3.AttributeContext": [
        ("source", 1, ".envoy.service.auth.v3.AttributeContext.Peer", False),
        ("destination", 2, ".envoy.service.auth.v3.AttributeContext.Peer", False),
        ("request", 4, ".envoy.service.auth.v3.AttributeContext.Request", False),
        ("context_extensions", 10, "map", False),
    ],
    "envoy.service.auth.v3.CheckRequest": [("attributes", 1, ".envoy.service.auth.v3.AttributeContext", False)],
    "google.rpc.Status": [("code", 1, "int32", False), ("message", 2, "string", False)],
    "envoy.type.v3.HttpStatus": [("code", 1, "int32", False)],
    "envoy.service.auth.v3.DeniedHttpResponse": [
        ("status", 1, ".envoy.type.v3.HttpStatus", False),
        ("headers", 2, ".envoy.config.core.v3.HeaderValueOption", True),
        ("body", 3, "string", False),
    ],
    "envoy.service.auth.v3.OkHttpResponse": [
        ("headers", 2, ".envoy.config.core.v3.HeaderValueOption", True),
        ("headers_to_remove", 5, "string", True),
        ("response_headers_to_add", 6, ".envoy.config.core.v3.HeaderValueOption", True),
    ],
    "envoy.service.auth.v3.CheckResponse": [
        ("status", 1, ".google.rpc.Status", False),
        ("denied_response", 2, ".envoy.service.auth.v3.DeniedHttpResponse", False),
        ("ok_response", 3, ".envoy.service.auth.v3.OkHttpResponse", False),
    ],
}


def _build():
    pool = descriptor_pool.DescriptorPool()
    by_pkg: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    # Split "pkg.Msg.Nested" into package and (possibly nested) message path: packages
    # are the lowercase leading components.
    def split(full: str) -> tuple[str, list[str]]:
        parts = full.split(".")
        i = 0
        while i < len(parts) and parts[i][:1].islower():
            i += 1
        return ".".join(parts[:i]), parts[i:]

    order = ["google.protobuf", "google.rpc", "envoy.type.v3", "envoy.config.core.v3", "envoy.service.auth.v3"]
    for name in order:
        fd = descriptor_pb2.FileDescriptorProto(
            name=f"agentgw/{name.replace('.', '/')}.proto", package=name, syntax="proto3"
        )
        by_pkg[name] = fd
    deps = {
        "envoy.config.core.v3": ["google.protobuf"],
        "envoy.service.auth.v3": ["envoy.config.core.v3", "envoy.type.v3", "google.rpc"],
    }
    for pkg, ds in deps.items():
        by_pkg[pkg].dependency.extend(f"agentgw/{d.replace('.', '/')}.proto" for d in ds)

    msgs: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full in sorted(_MESSAGES, key=lambda n: len(split(n)[1])):  # parents first
        fields = _MESSAGES[full]
        pkg, path = split(full)
        parent_full = ".".join([pkg] + path[:-1])
        if len(path) == 1:
            m = by_pkg[pkg].message_type.add(name=path[0])
        else:
            m = msgs[parent_full].nested_type.add(name=path[-1])
        msgs[full] = m
        for fname, num, ftype, repeated in fields:
            f = m.field.add(name=fname, number=num)
            f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if ftype == "map":
                entry_name = "".join(p.capitalize() for p in fname.split("_")) + "Entry"
                e = m.nested_type.add(name=entry_name)
                e.options.map_entry = True
                e.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
                e.field.add(name="value", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
                f.label = _F.LABEL_REPEATED
                f.type = _F.TYPE_MESSAGE
                f.type_name = f".{full}.{entry_name}"
            elif ftype.startswith("."):
                f.type = _F.TYPE_MESSAGE
                f.type_name = ftype
            else:
                f.type = _T[ftype]
    for name in order:
        pool.Add(by_pkg[name])
    classes = {}
    for full in _MESSAGES:
        classes[full] = message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
    return classes


_C = _build()
CheckRequest = _C["envoy.service.auth.v3.CheckRequest"]
CheckResponse = _C["envoy.service.auth.v3.CheckResponse"]
DeniedHttpResponse = _C["envoy.service.auth.v3.DeniedHttpResponse"]
OkHttpResponse = _C["envoy.service.auth.v3.OkHttpResponse"]
HeaderValueOption = _C["envoy.config.core.v3.HeaderValueOption"]
