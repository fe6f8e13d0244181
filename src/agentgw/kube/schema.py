"""Validate Kubernetes objects against their structural schemas, as the API server does.

The translator refuses what it cannot enforce: before an object is translated it is checked
here the way the API server checks it with strict field validation (``kubectl apply
--validate=strict``) — unknown fields, types, enums, required fields, bounds, patterns,
list uniqueness and the schemas' ``x-kubernetes-validations`` (CEL) rules — and any problem
makes the object ``Accepted=False``. Problems are ``"<field path>: <message>"`` strings,
for instance ``spec.traffic.jwtAuthentication.providers[0].audience: unknown field (did you
mean 'audiences'?)``.

The schemas are the ones the project ships:

* agentgateway and vendor CRDs: `agentgw.kube.crds` (what ``deploy/crds`` is generated from);
* Gateway API kinds (GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant): agentgw's own schema
  of the subset of the Gateway API it implements (`agentgw.kube.gatewayapi_schema`). A
  Gateway API field or value agentgw does not implement is refused as "not supported by
  agentgw" rather than ignored, and so is any other field that is not a misspelling (those
  get a "did you mean" hint).

Two modes: ``agentgw`` (the translator: whatever agentgw does not implement is refused) and
``server`` (what an API server with these CRDs installed accepts; the test API server uses
it): there, the Gateway API fields agentgw does not implement are accepted as they are, as a
cluster with the Gateway API's own CRDs stores them.
Free-form parts (``x-kubernetes-preserve-unknown-fields``) are left to whoever consumes them.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable
from typing import Any

from . import crds

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

S = {"type": "string"}
_STRMAP = {"type": "object", "additionalProperties": S}
OBJECT_META = {
    "type": "object",
    "properties": {
        "name": S,
        "generateName": S,
        "namespace": S,
        "selfLink": S,
        "uid": S,
        "resourceVersion": S,
        "generation": {"type": "integer"},
        "creationTimestamp": S,
        "deletionTimestamp": S,
        "deletionGracePeriodSeconds": {"type": "integer"},
        "labels": _STRMAP,
        "annotations": _STRMAP,
        "ownerReferences": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "apiVersion": S,
                    "kind": S,
                    "name": S,
                    "uid": S,
                    "controller": {"type": "boolean"},
                    "blockOwnerDeletion": {"type": "boolean"},
                },
                "required": ["apiVersion", "kind", "name", "uid"],
            },
        },
        "finalizers": {"type": "array", "items": S},
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    },
}

_CEL_RESERVED = {
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
}


class _Kind:
    def __init__(self, group: str, kind: str, versions: Iterable[str], root: dict, subset: bool = False):
        self.group, self.kind, self.versions, self.root = group, kind, list(versions), root
        #: a schema of the part of an API agentgw implements: any other field is "not supported by agentgw"
        self.subset = subset


def _registry() -> dict[tuple[str, str], _Kind]:
    out: dict[tuple[str, str], _Kind] = {}
    for doc in list(crds.CORE.values()) + list(crds.COMPAT.values()):
        sp = doc["spec"]
        vers = [v for v in sp["versions"] if v.get("served", True)]
        root = next(v for v in vers if v.get("storage"))["schema"]["openAPIV3Schema"]
        out[(sp["group"], sp["names"]["kind"])] = _Kind(
            sp["group"], sp["names"]["kind"], [v["name"] for v in vers], root
        )
    from . import gatewayapi_schema as gw

    for kind, d in gw.SCHEMAS.items():
        out[(gw.GROUP, kind)] = _Kind(gw.GROUP, kind, d["versions"], d["schema"], subset=True)
    return out


_REGISTRY: dict[tuple[str, str], _Kind] | None = None


def known(group: str, kind: str) -> bool:
    return (group, kind) in registry()


def registry() -> dict[tuple[str, str], _Kind]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _registry()
    return _REGISTRY


# -- CEL ----------------------------------------------------------------------------------------
_cel_env: Any = None  # cel_expr_python's environment, built on first use
_programs: dict[str, Any] = {}


def _program(rule: str):
    global _cel_env
    if rule in _programs:
        return _programs[rule]
    from cel_expr_python import cel

    if _cel_env is None:
        from cel_expr_python.ext.ext_strings import ExtStrings

        # the API server's CEL has the strings extension (split, lowerAscii, ...) among others
        _cel_env = cel.NewEnv(variables={"self": cel.Type.DYN}, extensions=[ExtStrings()])
    try:
        prog = _cel_env.compile(rule)
    except Exception as exc:
        prog = exc
    _programs[rule] = prog
    return prog


def _escape(name: str) -> str:
    """Property names as CEL sees them (the API server's escaping)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    out = (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )
    return out


def _cel_value(v: Any, node: dict) -> Any:
    if isinstance(v, dict):
        if "properties" in node:
            props = node["properties"]
            return {_escape(k): _cel_value(x, props.get(k) or {}) for k, x in v.items()}
        ap = node.get("additionalProperties")
        return {k: _cel_value(x, ap if isinstance(ap, dict) else {}) for k, x in v.items()}
    if isinstance(v, list):
        return [_cel_value(x, node.get("items") or {}) for x in v]
    return v


def _eval_rule(rule: str, value: Any) -> bool | str:
    prog = _program(rule)
    if isinstance(prog, Exception):
        return f"rule cannot be evaluated: {prog}"
    from cel_expr_python import cel

    try:
        res = prog.eval(_cel_env.Activation({"self": value}, arena=cel.Arena()))
        return res.value() is True
    except Exception as exc:
        return f"rule error: {exc}"


# -- the walk -----------------------------------------------------------------------------------
def _key_path(path: str, key: str) -> str:
    """``spec.traffic`` for a field, ``metadata.labels[app.kubernetes.io/name]`` for a map key
    that is not a plain name."""
    return f"{path}.{key}" if re.match(r"^[A-Za-z0-9_-]+$", key) else f"{path}[{key}]"


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _q(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else f"'{v}'"


def suggest(key: str, candidates: Iterable[str]) -> str | None:
    cands = list(candidates)
    for c in cands:
        if c.lower() == key.lower():
            return c
    got = difflib.get_close_matches(key, cands, n=1, cutoff=0.7)
    return got[0] if got else None


class _Walker:
    def __init__(self, server: bool, subset: bool = False):
        self.server = server
        #: unknown fields are "not supported by agentgw" (a schema of the part of an API agentgw implements)
        self.subset = subset and not server
        self.errors: list[str] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path}: {msg}")

    def unknown(self, path: str, key: str, candidates: Iterable[str]) -> None:
        hint = suggest(key, candidates)
        if hint:
            self.err(path, f"unknown field (did you mean '{hint}'?)")
        else:
            self.err(path, "unknown field (not supported by agentgw)" if self.subset else "unknown field")

    def walk(self, node: dict, v: Any, path: str) -> Any:
        """Validate ``v`` at ``path``; returns it with schema defaults filled in (as the API
        server stores it, and as its rules see it)."""
        if node.get("x-kubernetes-int-or-string"):
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                self.err(path, f"must be an integer or a string (got {_type_name(v)})")
                return v
            self.rules(node, v, path)
            return v
        typ = node.get("type")
        ok = True
        if typ == "object":
            if not isinstance(v, dict):
                self.err(path, f"must be an object (got {_type_name(v)})")
                return v
            v = self.object(node, v, path)
        elif typ == "array":
            if not isinstance(v, list):
                self.err(path, f"must be an array (got {_type_name(v)})")
                return v
            v = self.array(node, v, path)
        elif typ == "string":
            if not isinstance(v, str):
                self.err(path, f"must be a string (got {_type_name(v)})")
                return v
            self.string(node, v, path)
        elif typ == "integer":
            if isinstance(v, bool) or not isinstance(v, int):
                self.err(path, f"must be an integer (got {_type_name(v)})")
                return v
            self.number(node, v, path)
        elif typ == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.err(path, f"must be a number (got {_type_name(v)})")
                return v
            self.number(node, v, path)
        elif typ == "boolean":
            if not isinstance(v, bool):
                self.err(path, f"must be a boolean (got {_type_name(v)})")
                return v
        if "enum" in node and v not in node["enum"]:
            self.err(path, f"unsupported value {_q(v)} (supported: {', '.join(_q(x) for x in node['enum'])})")
            ok = False
        elif not self.server and v in (node.get("x-agentgw-unsupported-values") or ()):
            supported = [x for x in node.get("enum") or [] if x not in node["x-agentgw-unsupported-values"]]
            self.err(
                path,
                f"unsupported value {_q(v)}: not supported by agentgw (supported: {', '.join(_q(x) for x in supported)})",
            )
            ok = False
        if ok:
            self.rules(node, v, path)
        return v

    def object(self, node: dict, v: dict, path: str) -> dict:
        v = {k: x for k, x in v.items() if x is not None}  # nulls are dropped, as the API server does
        props = node.get("properties")
        for k, d in (props or {}).items():
            if k not in v and "default" in d:
                v[k] = copy.deepcopy(d["default"])
        ap = node.get("additionalProperties")
        free = node.get("x-kubernetes-preserve-unknown-fields")
        unsupported = node.get("x-agentgw-unsupported") or {}
        for k, x in list(v.items()):
            p = _key_path(path, str(k))
            if k in unsupported:
                if not self.server:
                    self.err(p, f"not supported by agentgw ({unsupported[k]})")
                # else: the API server, with the API's own schema, stores it (the translator refuses it)
            elif props is not None and k in props:
                v[k] = self.walk(props[k], x, p)
            elif isinstance(ap, dict):
                v[k] = self.walk(ap, x, p)
            elif ap is True or free:
                continue
            else:
                self.unknown(p, str(k), list(props or {}) + list(unsupported))
        for r in node.get("required") or []:
            if r not in v:
                self.err(_key_path(path, r), "required field is missing")
        n = len(v)
        if "maxProperties" in node and n > node["maxProperties"]:
            self.err(path, f"must have at most {node['maxProperties']} properties")
        if "minProperties" in node and n < node["minProperties"]:
            self.err(path, f"must have at least {node['minProperties']} properties")
        return v

    def array(self, node: dict, v: list, path: str) -> list:
        lim = {} if self.server else dict(node.get("x-agentgw-limits") or {})
        mx = (
            min(x for x in (node.get("maxItems"), lim.get("maxItems")) if x is not None)
            if (node.get("maxItems") is not None or lim.get("maxItems") is not None)
            else None
        )
        if "minItems" in node and len(v) < node["minItems"]:
            self.err(path, f"must have at least {node['minItems']} item{'s' if node['minItems'] != 1 else ''}")
        if mx is not None and len(v) > mx:
            why = f" ({lim['why']})" if lim.get("maxItems") == mx and lim.get("why") else ""
            self.err(path, f"must have at most {mx} item{'s' if mx != 1 else ''}{why}")
        items = node.get("items") or {}
        v = list(v)
        for i, x in enumerate(v):
            if x is None:
                self.err(f"{path}[{i}]", "must not be null")
                continue
            v[i] = self.walk(items, x, f"{path}[{i}]")
        lt = node.get("x-kubernetes-list-type")
        if lt == "set":
            seen: list = []
            for i, x in enumerate(v):
                if x in seen:
                    self.err(f"{path}[{i}]", f"duplicate value {_q(x)}")
                seen.append(x)
        elif lt == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            seen_k: dict = {}
            for i, x in enumerate(v):
                if not isinstance(x, dict):
                    continue
                k = tuple(
                    json.dumps(x.get(kk, (items.get("properties") or {}).get(kk, {}).get("default")), sort_keys=True)
                    for kk in keys
                )
                if k in seen_k:
                    self.err(f"{path}[{i}]", f"duplicate entry with {', '.join(keys)} of {path}[{seen_k[k]}]")
                else:
                    seen_k[k] = i
        return v

    def string(self, node: dict, v: str, path: str) -> None:
        if "minLength" in node and len(v) < node["minLength"]:
            self.err(
                path, f"must be at least {node['minLength']} character{'s' if node['minLength'] != 1 else ''} long"
            )
        if "maxLength" in node and len(v) > node["maxLength"]:
            self.err(path, f"must be at most {node['maxLength']} characters long")
        if "pattern" in node and not re.search(node["pattern"], v):
            self.err(path, f"must match the pattern {node['pattern']}")

    def number(self, node: dict, v: float, path: str) -> None:
        if "minimum" in node and (v < node["minimum"] or (node.get("exclusiveMinimum") and v == node["minimum"])):
            self.err(
                path, f"must be {'greater than' if node.get('exclusiveMinimum') else 'at least'} {node['minimum']}"
            )
        if "maximum" in node and (v > node["maximum"] or (node.get("exclusiveMaximum") and v == node["maximum"])):
            self.err(path, f"must be {'less than' if node.get('exclusiveMaximum') else 'at most'} {node['maximum']}")

    def rules(self, node: dict, v: Any, path: str) -> bool:
        ok = True
        rs = node.get("x-kubernetes-validations") or []
        if not rs:
            return ok
        val = None
        for r in rs:
            rule = r.get("rule", "")
            if "oldSelf" in rule:
                continue  # transition rules: only on update, against the stored object
            if val is None:
                val = _cel_value(v, node)
            res = _eval_rule(rule, val)
            if res is not True:
                p = path + (r["fieldPath"] if r.get("fieldPath") else "")
                msg = r.get("message") or f"failed rule: {rule}"
                self.err(p, msg if res is False else f"{msg} ({res})")
                ok = False
        return ok


# -- entry points -------------------------------------------------------------------------------
def _group_version(obj: dict) -> tuple[str, str]:
    av = str(obj.get("apiVersion") or "")
    if "/" in av:
        g, v = av.split("/", 1)
        return g, v
    return "", av


def validate(obj: dict, server: bool = False) -> list[str]:
    """Problems with ``obj`` (``[]`` when valid or of a kind without a schema here)."""
    group, version = _group_version(obj)
    k = registry().get((group, str(obj.get("kind") or "")))
    if k is None:
        return []
    w = _Walker(server, k.subset)
    if version not in k.versions:
        w.err(
            "apiVersion",
            f"{group}/{version} is not served for {k.kind} (served: {', '.join(f'{group}/{x}' for x in k.versions)})",
        )
    root_props = k.root.get("properties") or {}
    for key, val in obj.items():
        if key in ("apiVersion", "kind", "status"):
            continue  # status is the controllers' to write, through its own subresource
        if key == "metadata":
            if val is not None:
                meta = _Walker(server)
                meta.walk(OBJECT_META, val, "metadata")
                w.errors += meta.errors
            continue
        if key in root_props:
            if val is not None:
                w.walk(root_props[key], val, key)
            continue
        w.unknown(key, key, [x for x in root_props if x != "status"])
    for r in k.root.get("required") or []:
        if obj.get(r) is None:
            w.err(r, "required field is missing")
    return w.errors


def is_unknown_field(problem: str) -> bool:
    return re.match(r"^\S+: unknown field( \(|$)", problem) is not None


def prune(obj: dict) -> dict:
    """``obj`` without the fields its schema does not have: what the API server stores when
    the client did not ask for strict field validation. Gateway API fields agentgw does not
    implement are kept: the API's own CRDs have them (the translator refuses them)."""
    group, _ = _group_version(obj)
    k = registry().get((group, str(obj.get("kind") or "")))
    if k is None:
        return obj

    def walk(node: dict, v: Any) -> Any:
        if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
            return v
        if isinstance(v, dict) and node.get("type") == "object":
            props = node.get("properties")
            ap = node.get("additionalProperties")
            kept = node.get("x-agentgw-unsupported") or {}
            out = {}
            for key, x in v.items():
                if props is not None and key in props:
                    out[key] = walk(props[key], x)
                elif key in kept:
                    out[key] = (
                        x  # a field of the API agentgw does not implement: stored, then refused by the translator
                    )
                elif isinstance(ap, dict):
                    out[key] = walk(ap, x)
                elif ap is True or node.get("x-kubernetes-preserve-unknown-fields"):
                    out[key] = x
            return out
        if isinstance(v, list) and node.get("type") == "array":
            return [walk(node.get("items") or {}, x) for x in v]
        return v

    out = {}
    root_props = k.root.get("properties") or {}
    for key, val in obj.items():
        if key in ("apiVersion", "kind"):
            out[key] = val
        elif key == "metadata":
            out[key] = walk(OBJECT_META, val)
        elif key in root_props:
            out[key] = walk(root_props[key], val)
    return out


def validate_last_applied(obj: dict) -> list[str]:
    """Fields of the last ``kubectl apply`` that the live object lacks because they are unknown.

    The API server drops fields its schema does not have (unless the client asked for
    strict validation), so the controller never sees a misspelled field; the annotation
    ``kubectl apply`` leaves still has it. Those fields are problems too: what was asked
    for is not what would be enforced.
    """
    md = obj.get("metadata") or {}
    text = (md.get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return []
    try:
        applied = json.loads(text)
    except ValueError:
        return []
    if (
        not isinstance(applied, dict)
        or applied.get("kind") != obj.get("kind")
        or (applied.get("metadata") or {}).get("name") != md.get("name")
    ):
        return []
    live = set(validate(obj))
    out = []
    for e in validate(applied):
        if e in live or not (is_unknown_field(e) or "not supported by agentgw" in e):
            continue
        out.append(f"{e} (in the last applied configuration; the API server dropped it)")
    return out
