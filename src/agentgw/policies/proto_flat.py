"""Protobuf messages declared as descriptors in a private pool (no generated code, no
protoc at build time), for the subsets of Envoy's APIs agentgw speaks.

Messages are declared flat in one package of agentgw's own: message and package names
are not on the wire, field numbers and types are. Enums are declared ``int32`` (the same
varint). A field is ``(name, number, type, repeated)`` or ``(…, oneof)``: ``type`` is a
scalar name, another message of the table, ``Struct`` (``google.protobuf.Struct``,
whose real descriptor is added to the pool), or ``map:<value type>`` (string keys).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

_F = descriptor_pb2.FieldDescriptorProto
_T = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "bool": _F.TYPE_BOOL,
}
_STRUCT = ".google.protobuf.Struct"


def _set_type(f, ftype: str, pkg: str) -> None:
    if ftype in _T:
        f.type = _T[ftype]
    else:
        f.type = _F.TYPE_MESSAGE
        f.type_name = _STRUCT if ftype == "Struct" else f".{pkg}.{ftype}"


def build_flat(pkg: str, messages: Mapping[str, Sequence[tuple]]) -> dict[str, Any]:
    """The message classes of ``messages`` (name -> fields), declared in package ``pkg``."""
    fd = descriptor_pb2.FileDescriptorProto(name=f"agentgw/{pkg.replace('.', '_')}.proto", package=pkg, syntax="proto3")
    uses_struct = False
    for name, fields in messages.items():
        m = fd.message_type.add(name=name)
        oneofs: dict[str, int] = {}
        for spec in fields:
            fname, num, ftype, repeated = spec[:4]
            f = m.field.add(name=fname, number=num)
            f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if ftype.startswith("map:"):
                entry = "".join(p.capitalize() for p in fname.split("_")) + "Entry"
                e = m.nested_type.add(name=entry)
                e.options.map_entry = True
                e.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
                vf = e.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL)
                _set_type(vf, ftype[4:], pkg)
                f.label = _F.LABEL_REPEATED
                f.type = _F.TYPE_MESSAGE
                f.type_name = f".{pkg}.{name}.{entry}"
                uses_struct |= ftype[4:] == "Struct"
            else:
                _set_type(f, ftype, pkg)
                uses_struct |= ftype == "Struct"
            if len(spec) > 4 and spec[4]:
                if spec[4] not in oneofs:
                    oneofs[spec[4]] = len(m.oneof_decl)
                    m.oneof_decl.add(name=spec[4])
                f.oneof_index = oneofs[spec[4]]
    pool = descriptor_pool.DescriptorPool()
    if uses_struct:
        pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
        fd.dependency.append(struct_pb2.DESCRIPTOR.name)
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{pkg}.{n}")) for n in messages}
