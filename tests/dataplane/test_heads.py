"""The head helpers (engine/heads.py): the C versions and their Python twins agree, and
both do what the proxy relies on.

The C extension is built by ``pip install`` where a compiler is present; these tests
check that it was when a compiler is there, and hold it to the Python twin on generated
heads, so a machine without a compiler gets the same behaviour, only slower. The twins
are tested either way; test_upstream_heads.py runs a gateway on each.
"""

from __future__ import annotations

import shutil

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgw.engine import heads

try:
    from agentgw.engine import _speedups as speedups
except ImportError:  # no compiler at install time: the Python twins are still tested
    speedups = None

needs_c = pytest.mark.skipif(speedups is None, reason="C helpers not built (no compiler at install time)")


def versions(name: str) -> list:
    """The Python twin of helper ``name``, and its C version when built."""
    out = [getattr(heads, name + "_py")]
    if speedups is not None:
        out.append(getattr(speedups, name))
    return out


HOP = [
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Content-Length",
]


def test_the_engine_uses_the_compiled_helpers():
    if speedups is None:
        if shutil.which("cc") or shutil.which("gcc"):
            pytest.fail("a C compiler is present but agentgw.engine._speedups was not built: pip install -e .")
        pytest.skip("no C compiler: the engine runs on the Python twins")
    assert heads.scan_response_head is speedups.scan_response_head
    assert heads.build_request_head is speedups.build_request_head
    assert heads.decode_fields is speedups.decode_fields
    assert heads.FieldSink is speedups.FieldSink


# -- response heads ---------------------------------------------------------------------


def _accepted_by_llhttp(raw: bytes) -> bool:
    class P:
        done = False

        def on_headers_complete(self):
            self.done = True

    p = P()
    try:
        httptools.HttpResponseParser(p).feed_data(raw)
    except httptools.HttpParserError:
        return False
    return p.done


def test_response_head_relay_drops_hop_by_hop_and_framing_in_any_case():
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-LENGTH:  12 \r\nCONNECTION: keep-alive\r\n"
        b"X-Keep: a:b\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nDate: d\r\n\r\nhello world!"
    )
    for scan in versions("scan_response_head"):
        end, lines, relay, cl, chunked = scan(raw, 0)
        assert raw[end:] == b"hello world!"
        assert lines.startswith(b"Server: x\r\n") and lines.endswith(b"Date: d\r\n")
        assert relay == b"Server: x\r\nX-Keep: a:b\r\nDate: d\r\n"
        assert cl == b"12" and chunked is False


def test_response_head_with_a_connection_token_naming_a_field_goes_to_the_general_path():
    raw = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nTransfer-Encoding: chunked\r\n\r\n"
    for scan in versions("scan_response_head"):
        end, lines, relay, cl, chunked = scan(raw, 0)
        assert relay is None and cl is None and chunked is True and end == len(raw)


def test_response_head_after_an_interim_response_and_with_no_fields():
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    for scan in versions("scan_response_head"):
        end, lines, relay, cl, chunked = scan(raw, 0)
        assert end == 25 and lines == b"" and relay == b""
        assert scan(raw, end) == (len(raw), b"", b"", None, False)


_name = st.one_of(
    st.sampled_from(HOP + [h.lower() for h in HOP] + [h.upper() for h in HOP]),
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,20}\Z"),
)
_value = st.from_regex(r"\A[ \t]*([!-~\x80-\xff]([ \t!-~\x80-\xff]{0,30}[!-~\x80-\xff])?)?[ \t]*\Z").map(
    lambda s: s.encode("latin-1")
)
_conn_value = st.lists(
    st.sampled_from(["keep-alive", "close", "Keep-Alive", "CLOSE", "", " ", "x-secret", "upgrade"]),
    min_size=1,
    max_size=4,
).map(lambda t: ",".join(t).encode())


@needs_c
@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(st.one_of(st.tuples(_name, _value), st.tuples(st.just("Connection"), _conn_value)), max_size=12),
    interim=st.booleans(),
    status=st.sampled_from([200, 201, 204, 301, 404, 502]),
)
def test_compiled_and_python_response_scans_agree(fields, interim, status):
    head = b"".join(n.encode() + b": " + v + b"\r\n" for n, v in fields)
    raw = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" if interim else b""
    start = len(raw)
    raw += b"HTTP/1.1 %d X\r\n" % status + head + b"\r\n"
    if not _accepted_by_llhttp(raw):
        return  # the engine never scans a head llhttp refused
    c = speedups.scan_response_head(raw, start)
    assert c == heads.scan_response_head_py(raw, start)
    end, lines, relay, cl, chunked = c
    assert end == len(raw) and lines == head
    if relay is not None:
        for line in relay.split(b"\r\n")[:-1]:
            assert line.partition(b":")[0].lower() not in {h.lower().encode() for h in HOP}


# -- request heads ----------------------------------------------------------------------


def _both(*args):
    """The request head from the Python twin, and the same from the C version if built."""
    p = heads.build_request_head_py(*args)
    if speedups is not None:
        assert speedups.build_request_head(*args) == p
    return p


def test_request_head_rewrites_host_and_forwarding_fields():
    head = _both(
        "POST",
        "/v1/x?y=1",
        None,
        [
            ("host", "gw.example:8080"),
            ("content-type", "application/json"),
            ("content-length", "5"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("connection", "keep-alive"),
            ("te", "trailers"),
            ("expect", "100-continue"),
            ("accept", "*/*"),
        ],
        "127.0.0.9",
        "http",
        "up:9000",
        5,
        False,
    )
    assert head == (
        b"POST /v1/x?y=1 HTTP/1.1\r\nhost: gw.example:8080\r\ncontent-type: application/json\r\n"
        b"accept: */*\r\nx-forwarded-for: 10.0.0.1, 127.0.0.9\r\nx-forwarded-proto: http\r\n"
        b"x-forwarded-host: gw.example:8080\r\ncontent-length: 5\r\n\r\n"
    )


def test_request_head_host_override_default_and_chunked():
    assert _both("GET", "/", "api.example", [("host", "gw")], "1.1.1.1", "https", "up", -1, True).startswith(
        b"GET / HTTP/1.1\r\nhost: api.example\r\n"
    )
    head = _both("GET", "/", None, [], "1.1.1.1", "http", "up:81", -1, True)
    assert head == (
        b"GET / HTTP/1.1\r\nhost: up:81\r\nx-forwarded-for: 1.1.1.1\r\nx-forwarded-proto: http\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )


def test_request_head_connection_naming_fields_returns_none():
    assert _both("GET", "/", None, [("connection", "close, x-secret")], "1.1.1.1", "http", "up", -1, False) is None
    assert _both("GET", "/", None, [("connection", "Upgrade")], "1.1.1.1", "http", "up", -1, False) is None


@needs_c
def test_request_head_outside_latin1_is_left_to_python():
    # The compiled version hands what it can't encode to the Python one, which raises
    # exactly as it always did.
    with pytest.raises(UnicodeEncodeError):
        speedups.build_request_head("GET", "/", None, [("x-name", "\u65e5")], "1.1.1.1", "http", "up", -1, False)
    assert speedups.build_request_head(
        "GET", "/", None, (("x-a", "b"),), "1.1.1.1", "http", "up", -1, False
    ) == heads.build_request_head_py("GET", "/", None, (("x-a", "b"),), "1.1.1.1", "http", "up", -1, False)


_req_name = st.one_of(
    st.sampled_from(
        [
            "host",
            "connection",
            "keep-alive",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "expect",
            "content-length",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "proxy-connection",
            "proxy-authorization",
            "proxy-authenticate",
            "Host",
            "X-Forwarded-For",
        ]
    ),
    st.from_regex(r"\A[a-z][a-z0-9-]{0,18}\Z"),
)
_req_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=20)


@needs_c
@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(st.tuples(_req_name, _req_value), max_size=14),
    host=st.one_of(st.none(), st.sampled_from(["", "api.example", "h:1"])),
    body_len=st.sampled_from([-1, 0, 7, 1 << 40]),
    chunked=st.booleans(),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    target=st.sampled_from(["/", "/a?b=c", "/%7Ex"]),
)
def test_compiled_and_python_request_heads_agree(fields, host, body_len, chunked, method, target):
    _both(method, target, host, fields, "192.0.2.1", "https", "upstream:443", body_len, chunked)


# -- request header fields ----------------------------------------------------------------


def test_decode_fields_lowercases_names_trims_values_and_empties_its_inputs():
    for decode in versions("decode_fields"):
        fields = [b"Host", b"gw:1", b"X-Name", b"caf\xe9 \t", b"ACCEPT", b"*/*"]
        pairs, names, size = decode(fields)
        assert pairs == [("host", "gw:1"), ("x-name", "caf\xe9"), ("accept", "*/*")]
        assert names == ["host", "x-name", "accept"]
        # token names come out as ordinary ASCII strings (the C version once built them as
        # latin-1 strings and decoded every name a second time)
        assert all(name.isascii() for name in names)
        assert size == sum(
            len(n) + len(v) + 4 for n, v in [(b"Host", b"gw:1"), (b"X-Name", b"caf\xe9 \t"), (b"ACCEPT", b"*/*")]
        )
        assert fields == []
        assert decode([]) == ([], [], 0)


@needs_c
@settings(max_examples=400, deadline=None)
@given(fields=st.lists(st.tuples(st.from_regex(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}\Z"), _value), max_size=16))
def test_compiled_and_python_field_decoding_agree(fields):
    fields = [(n.encode(), v.lstrip(b" \t")) for n, v in fields]  # llhttp drops leading whitespace
    flat = [x for pair in fields for x in pair]
    for sink_type in (speedups.FieldSink, heads.FieldSinkPy):
        sink = sink_type()
        for n, v in fields:
            sink(n, v)
        assert sink == flat
    assert speedups.decode_fields(list(flat)) == heads.decode_fields_py(list(flat))
