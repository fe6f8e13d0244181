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


def declarations(cel: Any) -> list:
    """The declarations and implementations, for ``cel.NewEnv(functions=...)``."""
    T = cel.Type
    O = cel.Overload  # noqa: E741 (the engine's name)
    S = T.STRING
    return [
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
    ]
