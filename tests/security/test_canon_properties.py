"""Properties of the request canonicalizer (routing.paths, engine.canon), in process."""

from __future__ import annotations

import posixpath
import re
import string
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgw.engine.canon import BadHead, canonical_host
from agentgw.engine.http import GatewayError
from agentgw.routing.paths import DECODE, KEEP, REJECT, STRIP, PathRules, canonical_path
from tests.security.readers import tomcat_reading

PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,=:@"
RAW_OK = PCHAR + ";"
ALL_RULES = [PathRules(s, p) for s in (REJECT, DECODE, KEEP) for p in (STRIP, REJECT, KEEP)]

piece = st.one_of(
    st.sampled_from(list(RAW_OK) + ["/", "\\", ".", "..", "%", '"', "|", "{", "<", "^", "`", " "[:0] or "~"]),
    st.tuples(st.sampled_from(string.hexdigits), st.sampled_from(string.hexdigits)).map(lambda t: "%" + "".join(t)),
)
paths = st.lists(piece, max_size=30).map(lambda xs: "/" + "".join(xs))
rules = st.sampled_from(ALL_RULES)
CANON = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,=:@/;]|%[0-9A-F]{2})*")


def canon(path, r):
    try:
        return canonical_path(path, r)
    except GatewayError as e:
        assert e.status == 400 and e.kind == "invalid_path"
        return None


@settings(max_examples=2000, deadline=None)
@given(path=paths, r=rules)
def test_canonical_form_is_stable_and_clean(path, r):
    out = canon(path, r)
    if out is None:
        return
    assert CANON.fullmatch(out), out
    assert canonical_path(out, r) == out  # idempotent: one form, whoever canonicalizes again
    segs = out.split("/")[1:]
    assert "." not in segs and ".." not in segs
    assert "//" not in out
    for m in re.finditer(r"%([0-9A-F]{2})", out):  # what stays escaped must stay escaped
        assert chr(int(m.group(1), 16)) not in PCHAR
    if r.path_parameters != KEEP:
        assert ";" not in out
    if r.encoded_slashes != KEEP:
        assert "%2F" not in out and "%5C" not in out and "\\" not in out


@settings(max_examples=2000, deadline=None)
@given(path=paths)
def test_default_rules_leave_one_reading(path):
    """With the default rules, servers that decode, strip parameters, treat a backslash
    as a separator and remove dot segments (Tomcat), or only decode (uvicorn), or decode
    and normalise (nginx) all read the forwarded path as the gateway matched it."""
    out = canon(path, PathRules())
    if out is None:
        return
    decoded = unquote(out, encoding="latin-1")
    assert tomcat_reading(out) == decoded
    nginx = posixpath.normpath(decoded) if decoded != "/" else "/"
    nginx = "/" + nginx.lstrip("/") + ("/" if decoded.endswith("/") and nginx != "/" else "")
    assert nginx == decoded


@settings(max_examples=500, deadline=None)
@given(path=paths, data=st.data())
def test_escaping_a_pchar_does_not_change_the_reading(path, data):
    """``/admin`` and ``/%61dm%69n`` are one resource: encoding any character that may
    stand raw (other than ';') gives the same canonical form."""
    out = canon(path, PathRules())
    if out is None:
        return
    in_escape = {j for m in re.finditer(r"%[0-9A-F]{2}", out) for j in range(m.start(), m.end())}
    idx = [i for i, c in enumerate(out) if c in PCHAR and i not in in_escape]
    if not idx:
        return
    i = data.draw(st.sampled_from(idx))
    hx = "%02x" % ord(out[i])
    hx = hx.upper() if data.draw(st.booleans()) else hx
    assert canonical_path(out[:i] + "%" + hx + out[i + 1 :]) == out


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("/admin", "/admin"),
        ("/%61dmin", "/admin"),
        ("//admin", "/admin"),
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/..;/admin", "/admin"),
        ("/admin;x=1", "/admin"),
        ("/a%3bb", "/a%3Bb"),
        ("/a%25", "/a%25"),
        ('/a"b|c', "/a%22b%7Cc"),
        ("/a/.", "/a/"),
        ("/a/..", "/"),
        ("/..", "/"),
    ],
)
def test_examples(raw, expected):
    assert canonical_path(raw) == expected


@pytest.mark.parametrize("raw", ["/admin%2Fx", "/admin%5cx", "/a\\b", "/a%00", "/a%", "/a%zz", "/a%2"])
def test_refused_by_default(raw):
    with pytest.raises(GatewayError) as e:
        canonical_path(raw)
    assert e.value.status == 400


hosts = st.lists(
    st.sampled_from(list(string.ascii_letters + string.digits + "-.:_") + ["@", "%", "[", "]", " "]), max_size=20
).map("".join)


@settings(max_examples=2000, deadline=None)
@given(value=hosts)
def test_canonical_host(value):
    try:
        h = canonical_host(value)
    except BadHead as e:
        assert e.status == 400
        return
    assert h == h.lower()
    assert canonical_host(h) == h
    name = h.rsplit(":", 1)[0] if not h.startswith("[") else h
    assert not name.endswith(".") and ".." not in name and "@" not in h and "%" not in h


@pytest.mark.parametrize(
    "raw,expected",
    [("Admin.Test.", "admin.test"), ("admin.test.:8080", "admin.test:8080"), ("a:", "a"), ("[::1]:80", "[::1]:80")],
)
def test_host_examples(raw, expected):
    assert canonical_host(raw) == expected


@pytest.mark.parametrize("raw", ["a@b", "a%2eb", "a..b", ".a", "a:99999", "a b", "a:x"])
def test_host_refused(raw):
    with pytest.raises(BadHead):
        canonical_host(raw)
