"""CEL functions for reading and building the bodies of side calls (agentgateway's
``json``, ``base64``, ``form``, ``unvalidatedJwtPayload``, ``unredacted``).

* ``json(s)`` -- the JSON value of a string or bytes;
* ``unvalidatedJwtPayload(token)`` -- a JWT's claims, *without* checking its signature
  (for reading what an authorization server just issued, never for trusting a client);
* ``base64.encode(s)`` (string or bytes) -> standard base64 with padding;
  ``base64.decode(s)`` -> bytes;
* ``form.encode(map)`` -> an ``application/x-www-form-urlencoded`` body (values that
  are not strings are written as JSON);
* ``s.unredacted()`` -- the string itself (agentgateway hides secrets such as
  ``jwt.rawToken`` behind it);
* ``s.split(sep)`` -- the list of the parts of ``s`` between ``sep`` (CEL's strings
  extension).

A bad input (not JSON, not a JWT) is an evaluation error.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import orjson


def _json(s: str | bytes) -> Any:
    return orjson.loads(s)


def _jwt_payload(token: str) -> Any:
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    seg = parts[1]
    return orjson.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def _form(m: dict) -> str:
    return urlencode([(str(k), v if isinstance(v, str) else orjson.dumps(v).decode()) for k, v in m.items()])


def declarations(cel: Any) -> list:
    T = cel.Type
    O = cel.Overload  # noqa: E741 (the engine's name)
    S, B, D = T.STRING, T.BYTES, T.DYN
    return [
        cel.FunctionDecl("json", [O("agw_json_string", D, [S], impl=_json), O("agw_json_bytes", D, [B], impl=_json)]),
        cel.FunctionDecl("unvalidatedJwtPayload", [O("agw_jwt_payload", D, [S], impl=_jwt_payload)]),
        cel.FunctionDecl(
            "base64.encode", [O("agw_b64_string", S, [S], impl=_b64), O("agw_b64_bytes", S, [B], impl=_b64)]
        ),
        cel.FunctionDecl("base64.decode", [O("agw_b64_decode", B, [S], impl=lambda s: base64.b64decode(s))]),
        cel.FunctionDecl("form.encode", [O("agw_form_encode", S, [T.Map(S, D)], impl=_form)]),
        cel.FunctionDecl("unredacted", [O("agw_unredacted", S, [S], is_member=True, impl=lambda s: s)]),
        cel.FunctionDecl(
            "split", [O("agw_split", T.List(S), [S, S], is_member=True, impl=lambda s, sep: s.split(sep))]
        ),
    ]
