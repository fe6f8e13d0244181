"""Property-based tests against one running gateway.

* valid header names/values reach the upstream unchanged (hop-by-hop excepted);
* request paths and query strings are forwarded byte-exact;
* garbage request lines / header lines always get a 4xx, never a 5xx or a hang;
* chunked framings: valid ones are decoded exactly, broken ones get a 4xx.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.support.harness import ConnectionClosed, RawHTTP, build_request, echo_headers, gateway_config, route

TIMEOUT = 5.0
# real sockets and processes: no per-example deadline, bounded example counts
COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)


@pytest.fixture(scope="module")
def gw(module_harness):
    up = module_harness.upstream("props")
    return module_harness.gateway(gateway_config([route("all", [up.host])]))


def send(gw, data: bytes, method: str = "GET"):
    with RawHTTP(gw.port, timeout=TIMEOUT) as s:
        s.send(data)
        return s.read_response(method)


# --------------------------------------------------------------------------- #
# header round trip
# --------------------------------------------------------------------------- #
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
RESERVED = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "forwarded",
    "via",
    "x-request-id",
    "x-real-ip",
    "traceparent",
    "tracestate",
    "proxy-authorization",
    "proxy-authenticate",
}

header_names = st.text(alphabet=TCHAR, min_size=1, max_size=24).filter(
    lambda n: n.lower() not in RESERVED and not n.lower().startswith(("x-forwarded", "x-envoy", "proxy-"))
)
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))
OBS_TEXT = "".join(chr(c) for c in range(0x80, 0x100))  # latin-1 bytes a value may carry
header_values = st.text(alphabet=VCHAR + OBS_TEXT + " \t", max_size=60).map(lambda v: v.strip(" \t"))
ows = st.text(alphabet=" \t", max_size=3)


@settings(max_examples=40, **COMMON)
@given(headers=st.lists(st.tuples(header_names, header_values, ows, ows), min_size=1, max_size=12))
def test_headers_round_trip(gw, headers):
    """Values (latin-1 included) arrive as sent, and optional whitespace around them never
    changes what arrives. Whether the gateway itself trims it is checked through header
    matching (test_routing): the echo upstream trims values too."""
    wire = [(n, f"{left}{v}{right}") for n, v, left, right in headers]
    headers = [(n, v) for n, v, _, _ in headers]
    r = send(gw, build_request("GET", "/echo/headers", wire))
    assert r.status == 200, r.body[:300]
    received = echo_headers(r.json())
    for name in {n.lower() for n, _ in headers}:
        sent_values = [v for n, v in headers if n.lower() == name]
        got_values = [v for n, v in received if n == name]
        if "_" in name:  # dropped by default (frontendPolicies.http.headersWithUnderscores)
            assert got_values == [], (name, got_values)
            continue
        # a proxy may legally fold repeated headers into one comma-separated value
        assert got_values == sent_values or ", ".join(got_values) == ", ".join(sent_values), (
            name,
            sent_values,
            got_values,
        )


# --------------------------------------------------------------------------- #
# path and query forwarded byte-exact
# --------------------------------------------------------------------------- #
UNRESERVED = string.ascii_letters + string.digits + "-._~"
SUB_DELIMS = "!$&'()*+,;="
PCHAR_PLAIN = UNRESERVED + SUB_DELIMS + ":@"
pct = st.tuples(st.sampled_from("0123456789abcdefABCDEF"), st.sampled_from("0123456789abcdefABCDEF")).map(
    lambda t: "%" + t[0] + t[1]
)
pchar = st.one_of(st.sampled_from(PCHAR_PLAIN), pct)
segment = st.lists(pchar, max_size=12).map("".join).filter(lambda s: s not in (".", ".."))
query_char = st.one_of(st.sampled_from(PCHAR_PLAIN + "/?"), pct)


@settings(max_examples=60, **COMMON)
@given(
    segments=st.lists(segment, min_size=1, max_size=6),
    query=st.one_of(st.none(), st.lists(query_char, max_size=40).map("".join)),
)
def test_path_normalised_and_query_forwarded_byte_exact(gw, segments, query):
    """The path is forwarded in its canonical form (what routing and authorization
    matched, so the upstream can't be handed another resource), or refused where it has
    no single reading; the query is forwarded byte for byte (an empty one may be
    dropped)."""
    path = "/echo/" + "/".join(segments)
    target = path if query is None else f"{path}?{query}"
    r = send(gw, build_request("GET", target))
    expected = reference_normal_form(path)
    if expected is None:  # an encoded separator or NUL: refused by default
        assert r.status == 400, (target, r.status, r.body[:300])
        assert r.json()["error"]["type"] == "invalid_path"
        return
    assert r.status == 200, (target, r.status, r.body[:300])
    assert r.json()["raw_path"] == expected + (f"?{query}" if query else "")


def reference_normal_form(path: str) -> str | None:
    """An independent statement of the canonical form the gateway documents (default
    listener rules): None where the request is refused."""
    path = "/".join(seg.split(";")[0] for seg in path.split("/"))  # path parameters stripped
    if any(e in path.upper() for e in ("%2F", "%5C", "%00")):
        return None
    decoded = set(UNRESERVED + "!$&'()*+,=:@")  # pchar but ';' (and '%')
    out, i = [], 0
    while i < len(path):
        if path[i] == "%" and i + 2 < len(path) + 0 and all(c in string.hexdigits for c in path[i + 1 : i + 3]):
            ch = chr(int(path[i + 1 : i + 3], 16))
            out.append(ch if ch in decoded else "%" + path[i + 1 : i + 3].upper())
            i += 3
        else:
            out.append(path[i])
            i += 1
    segs = "".join(out).split("/")[1:]
    stack: list[str] = []
    for n, seg in enumerate(segs):
        last = n == len(segs) - 1
        if seg == "" and not last:
            continue
        if seg == ".":
            if last:
                stack.append("")
            continue
        if seg == "..":
            if stack:
                stack.pop()
            if last:
                stack.append("")
            continue
        stack.append(seg)
    return "/" + "/".join(stack)


# --------------------------------------------------------------------------- #
# garbage gets a 4xx
# --------------------------------------------------------------------------- #
VALID_REQUEST_LINE = re.compile(rb"^[A-Za-z0-9!#$%&'*+.^_`|~-]+ [\x21-\x7e]+ HTTP/1\.[01]$")
VALID_HEADER_LINE = re.compile(
    rb"^[A-Za-z0-9!#$%&'*+.^_`|~-]+:[ \t]*[\x21-\x7e\x80-\xff]*([ \t]+[\x21-\x7e\x80-\xff]+)*[ \t]*$"
)

line_bytes = st.binary(min_size=1, max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b)
printable_line = st.text(alphabet="".join(chr(c) for c in range(0x20, 0x7F)), min_size=1, max_size=80).map(
    lambda s: s.encode()
)


def assert_4xx(gw, data: bytes) -> None:
    try:
        r = send(gw, data)
    except ConnectionClosed as exc:
        pytest.fail(f"connection closed without a response for {data[:120]!r} (partial {exc.partial!r})")
    assert 400 <= r.status < 500, f"{r.status} for {data[:120]!r}: {r.body[:200]!r}"


@settings(max_examples=60, **COMMON)
@given(line=st.one_of(line_bytes, printable_line))
def test_garbage_request_line_is_4xx(gw, line):
    assume(not VALID_REQUEST_LINE.match(line))
    assume(line.strip(b" \t"))  # an empty line before a request is legal to ignore
    assert_4xx(gw, line + b"\r\nHost: x\r\n\r\n")


@settings(max_examples=60, **COMMON)
@given(line=st.one_of(line_bytes, printable_line))
def test_garbage_header_line_is_4xx(gw, line):
    assume(not VALID_HEADER_LINE.match(line))
    assert_4xx(gw, b"GET /echo/garbage HTTP/1.1\r\nHost: x\r\n" + line + b"\r\nX-After: 1\r\n\r\n")


# --------------------------------------------------------------------------- #
# chunked framings
# --------------------------------------------------------------------------- #
chunk_data = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=300).map(str.encode)


@st.composite
def chunk_lines(draw):
    data = draw(chunk_data)
    style = draw(st.sampled_from(["lower", "upper", "zeros", "ext", "ext-noval"]))
    size = len(data)
    if style == "lower":
        head = f"{size:x}"
    elif style == "upper":
        head = f"{size:X}"
    elif style == "zeros":
        head = f"{size:06x}"
    elif style == "ext":
        head = f"{size:x};name=value"
    else:
        head = f"{size:x};flag"
    return data, head.encode()


@settings(max_examples=40, **COMMON)
@given(chunks=st.lists(chunk_lines(), min_size=0, max_size=6))
def test_valid_chunked_framings_decode_exactly(gw, chunks):
    body = b"".join(head + b"\r\n" + data + b"\r\n" for data, head in chunks) + b"0\r\n\r\n"
    req = build_request("POST", "/echo/chunks", [("Transfer-Encoding", "chunked")]) + body
    r = send(gw, req, "POST")
    assert r.status == 200, r.body[:300]
    assert r.json()["body"] == b"".join(d for d, _ in chunks).decode()


@settings(max_examples=40, **COMMON)
@given(
    chunks=st.lists(chunk_lines(), min_size=1, max_size=5),
    bad_index=st.integers(min_value=0, max_value=4),
    corruption=st.sampled_from(["non-hex", "too-small", "overflow", "space-in-size", "missing-crlf"]),
    junk=st.sampled_from(list('gxzG-+ /"')),
)
def test_broken_chunked_framings_are_4xx(gw, chunks, bad_index, corruption, junk):
    bad_index %= len(chunks)
    parts = []
    for i, (data, head) in enumerate(chunks):
        if i == bad_index:
            if corruption == "non-hex":
                head = junk.encode() + head
            elif corruption == "too-small":
                head = f"{len(data) - 1:x}".encode()
                assume(len(data) > 1)
            elif corruption == "overflow":
                head = b"f" * 24
            elif corruption == "space-in-size":
                assume(len(head.split(b";")[0]) > 1)
                head = head[:1] + b" " + head[1:]
            elif corruption == "missing-crlf":
                parts.append(head + b"\r\n" + data + b"XX")
                continue
        parts.append(head + b"\r\n" + data + b"\r\n")
    body = b"".join(parts) + b"0\r\n\r\n"
    assert_4xx(gw, build_request("POST", "/echo/badchunks", [("Transfer-Encoding", "chunked")]) + body)
