"""Functions agentgateway's CEL dialect has beyond the standard library.

* ``random()`` -- a double in [0, 1), new on every call (expressions that call it are
  never memoised: see ``Expression.volatile``); ``uuid()`` -- a random UUIDv4 string.
* From Kubernetes' IP and CIDR libraries: ``isIP(s)``, ``ip(s)``, ``cidr(s)``,
  ``cidr(s).containsIP(ip)``, ``cidr(s).containsCIDR(cidr)``, ``cidr(s).prefixLength()``.
  An address or a network is carried as its canonical string (``ip("::1")`` is
  ``"::1"``, ``cidr("127.0.0.1/8")`` is ``"127.0.0.1/8"``); a string that is not one is
  an evaluation error, which every rule kind reads as "not true".

Parsing is cached per distinct string, so a rule such as
``cidr("10.0.0.0/8").containsIP(source.address)`` parses its literal once.

* ``s.stripPrefix(p)``, ``s.stripSuffix(p)`` -- ``s`` without that prefix or suffix (as
  it is when it has none).
* ``flatten(x)``, ``flattenRecursive(x)`` (also ``flatten_recursive``) -- for log fields
  and span attributes: a list or map value that the field expands into one field per
  element, ``<name>.<index or key>`` (recursively, for ``flattenRecursive``). The value
  carries that request as a one-entry map under a reserved key (`FLATTEN_MARKERS`).
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1024)
def _network(s: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if "/" not in s:
        raise ValueError(f"{s!r} is not a CIDR (address/prefix length)")
    return ipaddress.ip_network(s, strict=False)


@lru_cache(maxsize=4096)
def _address(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    return ipaddress.ip_address(s)


def _cidr(s: str) -> str:
    n = _network(s)
    return f"{_address(s.split('/', 1)[0])}/{n.prefixlen}"


def _ip(s: str) -> str:
    return str(_address(s))


def _is_ip(s: str) -> bool:
    try:
        _address(s)
    except ValueError:
        return False
    return True


def _contains_ip(c: str, ip: str) -> bool:
    return _address(ip) in _network(c)


def _contains_cidr(c: str, other: str) -> bool:
    outer, inner = _network(c), _network(other)
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _prefix_length(c: str) -> int:
    return _network(c).prefixlen


#: reserved key → (list or map, recursive): how a flattened value is marked
FLATTEN_MARKERS = {
    "$_meta_flatten_list": False,
    "$_meta_flatten_map": False,
    "$_meta_flatten_list_recursive": True,
    "$_meta_flatten_map_recursive": True,
}


def _flatten_decl(cel: Any, name: str, recursive: bool):
    T = cel.Type
    tail = "_recursive" if recursive else ""
    lst, mp = f"$_meta_flatten_list{tail}", f"$_meta_flatten_map{tail}"
    any_map = T.Map(T.DYN, T.DYN)
    return cel.FunctionDecl(
        name,
        [
            cel.Overload(f"agentgw_{name}_list", any_map, [T.List(T.DYN)], impl=lambda v: {lst: v}),
            cel.Overload(f"agentgw_{name}_map", any_map, [any_map], impl=lambda v: {mp: v}),
        ],
    )


def _strip_prefix(s: str, p: str) -> str:
    return s[len(p) :] if p and s.startswith(p) else s


def _strip_suffix(s: str, p: str) -> str:
    return s[: -len(p)] if p and s.endswith(p) else s


def declarations(cel: Any) -> list:
    """The declarations and implementations, for ``cel.NewEnv(functions=...)``."""
    T = cel.Type
    O = cel.Overload  # noqa: E741 (the engine's name)
    S = T.STRING
    from .codecs import declarations as codecs

    return codecs(cel) + [
        cel.FunctionDecl("random", [O("agentgw_random", T.DOUBLE, [], impl=random.random)]),
        cel.FunctionDecl("uuid", [O("agentgw_uuid", S, [], impl=lambda: str(uuid.uuid4()))]),
        cel.FunctionDecl("isIP", [O("agentgw_is_ip", T.BOOL, [S], impl=_is_ip)]),
        cel.FunctionDecl("ip", [O("agentgw_ip", S, [S], impl=_ip)]),
        cel.FunctionDecl("cidr", [O("agentgw_cidr", S, [S], impl=_cidr)]),
        cel.FunctionDecl(
            "containsIP", [O("agentgw_cidr_contains_ip", T.BOOL, [S, S], is_member=True, impl=_contains_ip)]
        ),
        cel.FunctionDecl(
            "containsCIDR", [O("agentgw_cidr_contains_cidr", T.BOOL, [S, S], is_member=True, impl=_contains_cidr)]
        ),
        cel.FunctionDecl(
            "prefixLength", [O("agentgw_cidr_prefix_length", T.INT, [S], is_member=True, impl=_prefix_length)]
        ),
        cel.FunctionDecl("stripPrefix", [O("agentgw_strip_prefix", S, [S, S], is_member=True, impl=_strip_prefix)]),
        cel.FunctionDecl("stripSuffix", [O("agentgw_strip_suffix", S, [S, S], is_member=True, impl=_strip_suffix)]),
        _flatten_decl(cel, "flatten", False),
        _flatten_decl(cel, "flattenRecursive", True),
        _flatten_decl(cel, "flatten_recursive", True),
    ]
