"""Request smuggling and malformed framing: the gateway answers 400 and closes
the connection, and the upstream never sees a smuggled request."""

from __future__ import annotations

import uuid

import pytest

from tests.support.harness import ConnectionClosed, RawHTTP, assert_gateway_error, echo_header, gateway_config, route


@pytest.fixture(scope="module")
def env(module_harness):
    up = module_harness.upstream("smuggle")
    gw = module_harness.gateway(gateway_config([route("all", [up.host])]))
    yield gw, up


def smuggled_tail(tag: str) -> bytes:
    return f"GET /smuggled-{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def attack_cases(tag: str) -> dict[str, bytes]:
    tail = smuggled_tail(tag)
    chunked_with_tail = b"0\r\n\r\n" + tail
    cases = {
        "cl-te": (
            b"POST /echo/front HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked_with_tail)
        )
        + chunked_with_tail,
        "te-cl": (b"POST /echo/front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n")
        + b"%x\r\n" % len(tail)
        + tail
        + b"\r\n0\r\n\r\n",
        "duplicate-cl": (
            b"POST /echo/front HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(tail)
        )
        + tail,
        "cl-list": (b"POST /echo/front HTTP/1.1\r\nHost: x\r\nContent-Length: 0, %d\r\n\r\n" % len(tail)) + tail,
        "bad-chunk-size": b"POST /echo/front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
        + tail,
        "negative-chunk-size": b"POST /echo/front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"
        + tail,
        "obs-fold": b"GET /echo/front HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n" + tail,
        "space-before-colon": (b"POST /echo/front HTTP/1.1\r\nHost: x\r\nContent-Length : %d\r\n\r\n" % len(tail))
        + tail,
        "te-space-before-colon": b"POST /echo/front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
        + tail,
        "cl-not-a-number": b"POST /echo/front HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello" + tail,
        "bare-cr-in-header": b"GET /echo/front HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n" + tail,
    }
    return cases


CASE_NAMES = list(attack_cases("x"))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_smuggling_attempt_rejected(env, case):
    gw, up = env
    tag = f"{case}-{uuid.uuid4().hex[:8]}"
    payload = attack_cases(tag)[case]
    with RawHTTP(gw.port, timeout=5) as s:
        s.send(payload)
        try:
            r = s.read_response()
        except ConnectionClosed as exc:
            pytest.fail(f"connection closed without a 400 response (partial={exc.partial!r})")
        assert_gateway_error(r.status, r.body, 400, "bad_request")
        # nothing else follows: no second response for the smuggled request
        rest = s.read_until_close(3)
        assert b"HTTP/1.1" not in rest, rest
    assert up.count(f"/smuggled-{tag}") == 0, "the upstream received the smuggled request"
    log = up.request_log()
    assert not any(f"smuggled-{tag}" in p for _, p in log)


def test_valid_requests_after_rejection_on_new_connection(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/echo/fine")
    assert r.status == 200 and r.json()["path"] == "/echo/fine"


def test_chunked_with_smuggled_tail_in_valid_body_is_one_request(env):
    """A correctly framed chunked body whose *content* looks like a request."""
    gw, up = env
    tag = uuid.uuid4().hex[:8]
    tail = smuggled_tail(tag)
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail)
    with RawHTTP(gw.port) as s:
        s.send(b"POST /echo/front HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        r = s.read_response()
    assert r.status == 200
    assert r.json()["body"] == tail.decode()
    assert up.count(f"/smuggled-{tag}") == 0


def test_trailer_fields_never_become_the_next_requests_headers(env):
    """A chunked request's trailer section ends that request: its fields must not be
    read as headers of the next request on the connection (a front proxy may share one
    connection between users)."""
    gw, _ = env
    with RawHTTP(gw.port) as s:
        s.send(
            b"POST /echo/first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Injected: from-trailer\r\nX-Agent-Identity: admin\r\n\r\n"
            b"GET /echo/second HTTP/1.1\r\nHost: x\r\nX-Own: yes\r\n\r\n"
        )
        first = s.read_response()
        second = s.read_response()
    assert first.status == 200 and first.json()["body"] == "hello"
    echo = second.json()
    assert echo["path"] == "/echo/second"
    assert echo_header(echo, "x-own") == ["yes"]
    assert echo_header(echo, "x-injected") == []
    assert echo_header(echo, "x-agent-identity") == []


def test_header_names_in_any_case_and_latin1_values(env):
    """Names keep their meaning in any case (an upper-case Content-Length still frames
    the body) and latin-1 values pass as they are. Trimming is checked by the gateway's
    own header matching (test_routing): this upstream trims values itself."""
    gw, _ = env
    with RawHTTP(gw.port) as s:
        s.send(
            b"POST /echo/ows HTTP/1.1\r\nHOST: x\r\nX-A:   a1 \t\r\nx-b:b1\r\nX-C: c 1\t\r\n"
            b"CONTENT-LENGTH: 2\r\nX-D: \xe9t\xe9 \r\n\r\nok"
        )
        r = s.read_response()
    echo = r.json()
    assert r.status == 200 and echo["body"] == "ok"
    assert echo_header(echo, "x-a") == ["a1"]
    assert echo_header(echo, "x-b") == ["b1"]
    assert echo_header(echo, "x-c") == ["c 1"]
    assert echo_header(echo, "x-d") == ["\xe9t\xe9"]


def test_upstream_trailer_fields_are_not_relayed_as_response_headers(env):
    gw, _ = env
    with RawHTTP(gw.port) as s:
        r = s.request("GET", "/trailers")
    assert r.status == 200 and r.body == b"hello world"
    names = {k.lower() for k, _ in r.headers}
    assert "x-head-field" in names
    assert "x-trailer-field" not in names and "set-cookie" not in names
