"""Upstream response heads and upstream request heads through a running gateway, with the
engine's C helpers and with their pure-Python twins (``AGENTGW_NO_SPEEDUPS=1``, what an
install without a compiler runs)."""

from __future__ import annotations

import json

import pytest

from tests.support.harness import RawHTTP, assert_gateway_error, echo_header, gateway_config, route


@pytest.fixture(scope="module", params=["c", "python"])
def env(request, module_harness):
    up = module_harness.upstream(f"heads-{request.param}")
    gw = module_harness.gateway(
        gateway_config([route("all", [up.host])]),
        env={"AGENTGW_NO_SPEEDUPS": "1"} if request.param == "python" else None,
    )
    yield gw, up


def test_interim_response_and_a_head_split_over_reads(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/interim")
    assert r.status == 200 and r.body == b"ok"
    names = {k.lower(): v for k, v in r.headers}
    assert names.get("x-end-to-end") == "e" and names.get("content-type") == "text/plain"
    assert "keep-alive" not in names and "link" not in names
    assert names.get("content-length") == "2"


def test_an_upstream_head_without_end_is_refused_with_a_502(env):
    gw, _ = env
    with RawHTTP(gw.port, timeout=15) as s:
        r = s.request("GET", "/bighead")
    err = assert_gateway_error(r.status, r.body, 502, "upstream_reset")
    assert "head too large" in err["message"]
    with RawHTTP(gw.port) as s:  # the gateway serves on
        assert s.request("GET", "/echo/after").status == 200


def test_request_head_fields_rewritten_and_passed(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request(
            "POST",
            "/echo/fields",
            headers=[
                ("Host", "gw.example"),
                ("X-Forwarded-For", "203.0.113.7"),
                ("Connection", "keep-alive"),
                ("TE", "trailers"),
                ("X-Name", "caf\xe9  "),
                ("Accept", "application/json"),
                ("Content-Type", "application/json"),
            ],
            body=b'{"a": 1}',
        )
    assert r.status == 200
    echo = json.loads(r.body)
    assert echo_header(echo, "host") == ["gw.example"]
    assert echo_header(echo, "x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
    assert echo_header(echo, "x-forwarded-host") == ["gw.example"]
    assert echo_header(echo, "x-name") == ["caf\xe9"]
    assert echo_header(echo, "te") == []
    assert echo["body"] == '{"a": 1}'


def test_connection_naming_a_field_removes_it_both_ways(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request(
            "GET",
            "/echo/conn?header=X-Hop:secret&header=Connection:X-Hop",
            headers=[("Connection", "X-Private"), ("X-Private", "p"), ("X-Kept", "k")],
        )
    assert r.status == 200
    echo = json.loads(r.body)
    assert echo_header(echo, "x-private") == [] and echo_header(echo, "x-kept") == ["k"]
    names = {k.lower() for k, _ in r.headers}
    assert "x-hop" not in names
