"""``backendAuth`` on MCP routes (agentgateway's ``mcp-authorization`` example: ``jwtAuth``
validates the client's token, ``backendAuth.passthrough`` forwards it to the MCP server):
the validated token reaches each target as ``Authorization: Bearer``, a target's own
``backendAuth`` wins over the route's, and the route's other kinds reach every target."""

from __future__ import annotations

import json
import time

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.identity.support import new_ec, public_jwks, sign

from .conftest import mcp_config, run

ISS = "agentgateway.dev"


def _token(key, sub: str = "test-user") -> str:
    now = int(time.time())
    return sign(
        key, {"iss": ISS, "aud": "test.agentgateway.dev", "sub": sub, "iat": now, "exp": now + 600}, alg="ES256"
    )


def _jwt_auth(key) -> dict:
    return {"issuer": ISS, "audiences": ["test.agentgateway.dev"], "jwks": json.dumps(public_jwks(key))}


async def _headers(url: str, token: str | None, calls: list[tuple[str, str]]) -> list[str]:
    hdrs = {"authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=hdrs, timeout=20)
    async with http, Client(streamable_http_client(url, http_client=http)) as c:
        return [(await c.call_tool(f"{t}_header", {"name": h})).content[0].text for t, h in calls]


def test_route_passthrough_forwards_the_validated_token_and_a_target_key_wins(harness, servers):
    key = new_ec("k1")
    alpha, beta = servers.fast("alpha"), servers.fast("beta")
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "alpha", "mcp": {"host": alpha.url}},
                    {"name": "beta", "mcp": {"host": beta.url}, "policies": {"backendAuth": {"key": "sekrit"}}},
                ]
            },
            policies={
                "jwtAuth": _jwt_auth(key),
                "backendAuth": {"passthrough": {}},
                "mcpAuthorization": {"rules": ['jwt.sub == "test-user"']},
            },
        )
    )
    tok = _token(key)
    got = run(_headers(gw.url + "/mcp", tok, [("alpha", "authorization"), ("beta", "authorization")]))
    assert got == [f"Bearer {tok}", "Bearer sekrit"]


def test_target_passthrough_after_jwt_auth_and_route_credentials_reach_every_target(harness, servers):
    key = new_ec("k2")
    gamma, delta = servers.fast("gamma"), servers.fast("delta")
    gw = harness.gateway(
        mcp_config(
            {
                "targets": [
                    {"name": "gamma", "mcp": {"host": gamma.url}, "policies": {"backendAuth": {"passthrough": {}}}},
                    {"name": "delta", "mcp": {"host": delta.url}},
                ]
            },
            policies={
                "jwtAuth": _jwt_auth(key),
                "backendAuth": {"credentials": [{"location": {"header": {"name": "x-api-key"}}, "key": "route-key"}]},
            },
        )
    )
    tok = _token(key, sub="someone")
    calls = [("gamma", "authorization"), ("delta", "authorization"), ("gamma", "x-api-key"), ("delta", "x-api-key")]
    assert run(_headers(gw.url + "/mcp", tok, calls)) == [f"Bearer {tok}", "<none>", "route-key", "route-key"]
