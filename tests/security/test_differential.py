"""Differential tests: the gateway and real upstreams agree on what was authorized.

Behind the gateway, nginx and uvicorn serve a public site and an admin area (Host
``admin.test``, or ``/admin`` and below) that the gateway protects with ``jwtAuth``.
Each upstream answers with its own reading of the request it was handed (nginx: the
route its ``location``/``server_name`` picked and ``$uri``; uvicorn: the path it decoded;
Tomcat's reading is computed from the forwarded raw path). For every request, known
attacks and generated ones alike:

* without a credential, no upstream reading may be the admin area: the gateway refused
  the request (a JSON 4xx of its own), or every upstream reads it as public;
* with a credential, the route the gateway applied (``x-route``, set by the route's
  response policy) is the route every upstream reading falls in.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from tests.identity.support import claims, public_jwks, sign
from tests.security.readers import NGINX, Nginx, Uvicorn, route_of, tomcat_reading
from tests.support.harness import RawHTTP, free_port, gateway_config, route

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")

ISS = "https://issuer.test"


def _routes(up_host: str, jwks: str) -> list[dict]:
    auth = {"jwtAuth": {"mode": "strict", "issuer": ISS, "audiences": ["agentgw"], "jwks": jwks}}

    def tagged(name: str, extra: dict | None = None) -> dict:
        p = {"responseHeaderModifier": {"set": {"x-route": name}}}
        p.update(extra or {})
        return p

    return [
        route("admin-host", [up_host], hostnames=["admin.test"], policies=tagged("admin", auth)),
        route("admin-path", [up_host], prefix="/admin", policies=tagged("admin", auth)),
        route("public", [up_host], prefix="/", policies=tagged("public")),
    ]


@pytest.fixture(scope="module")
def env(module_harness, tmp_path_factory):
    work = tmp_path_factory.mktemp("readers")
    nginx = Nginx(work)
    uv = Uvicorn(work)
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    jwks = json.dumps(public_jwks(key))
    # bind 0: nginx, default rules; 1: uvicorn, default rules; 2: nginx with encoded
    # slashes decoded; 3: uvicorn with both refused; 4: uvicorn with slashes decoded
    other = [
        (uv.host, None),
        (nginx.host, {"encodedSlashes": "decode"}),
        (uv.host, {"encodedSlashes": "reject", "pathParameters": "reject"}),
        (uv.host, {"encodedSlashes": "decode", "pathParameters": "strip"}),
    ]
    extra = []
    for i, (up, rules) in enumerate(other):
        lst = {"name": f"l{i}", "routes": _routes(up, jwks)}
        if rules:
            lst["pathNormalization"] = rules
        extra.append({"port": free_port(), "listeners": [lst]})
    cfg = gateway_config(_routes(nginx.host, jwks), extra_binds=extra)
    gw = module_harness.gateway(cfg)
    token = sign(key, claims(iss=ISS, aud="agentgw"))
    yield gw, token
    nginx.stop()
    uv.stop()


def exchange(port: int, head: bytes):
    with RawHTTP(port, timeout=5) as c:
        c.send(head)
        return c.read_response()


def readings(kind: str, r) -> list[tuple[str, str]]:
    """(route the upstream's reading falls in, what it read) for one upstream answer."""
    if kind == "nginx":
        name, uri, host, _ = r.body.decode("latin-1").split("|", 3)
        return [(name, f"nginx {uri} @ {host}"), (route_of(uri, host), f"nginx $uri {uri}")]
    body = r.json()
    host = body["host"][0] if body["host"] else ""
    tomcat = tomcat_reading(body["raw_path"])
    return [
        (route_of(body["path"], host), f"uvicorn {body['path']} @ {host}"),
        (route_of(tomcat, host), f"tomcat {tomcat} (raw {body['raw_path']})"),
    ]


def gateway_refusal(r) -> bool:
    """A JSON 4xx the gateway wrote itself (never a 5xx for a client's request)."""
    if not 400 <= r.status < 500:
        return False
    try:
        return "error" in r.json()
    except ValueError:
        return False


def check(env, request_line_target: str, host_lines: list[str], http_version: str = "HTTP/1.1"):
    gw, token = env
    kinds = ("nginx", "uvicorn", "nginx", "uvicorn", "uvicorn")
    for kind, port in zip(kinds, gw.ports):
        for cred in (None, token):
            lines = [f"GET {request_line_target} {http_version}", *host_lines]
            if cred:
                lines.append(f"Authorization: Bearer {cred}")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            r = exchange(port, head)
            what = f"{kind} {'with' if cred else 'without'} credential: {request_line_target!r} {host_lines!r}"
            assert r.status < 500, (what, r.status, r.body[:300])
            if r.status != 200:
                assert gateway_refusal(r), (what, r.status, r.body[:300])
                if cred is None:
                    continue
                # with a credential, a refusal must be about the request, not the token
                assert r.status != 401, (what, r.body[:300])
                continue
            applied = r.header("x-route")
            for got, detail in readings(kind, r):
                if cred is None:
                    assert got == "public", f"{what}: reached the admin area without a credential ({detail})"
                else:
                    assert got == applied, f"{what}: the gateway applied {applied}, the upstream read {detail}"


# -- the requests that walked past authentication before ----------------------------------
KNOWN = [
    ("/admin#x", ["Host: gw.test"]),
    ("/admin%2Fusers", ["Host: gw.test"]),
    ("/%2Fadmin", ["Host: gw.test"]),
    ("/admin%5Cusers", ["Host: gw.test"]),
    ("/public%5C..%5Cadmin", ["Host: gw.test"]),
    ("/public\\..\\admin", ["Host: gw.test"]),
    ("/admin;x=1", ["Host: gw.test"]),
    ("/public/..;/admin", ["Host: gw.test"]),
    ("/public;x/../admin", ["Host: gw.test"]),
    ("/%61dmin", ["Host: gw.test"]),
    ("/adm%69n/users", ["Host: gw.test"]),
    ("/public/%2e%2e/admin", ["Host: gw.test"]),
    ("//admin", ["Host: gw.test"]),
    ("/./admin/", ["Host: gw.test"]),
    ("/x", ["Host: gw.test", "Host: admin.test"]),
    ("/x", ["Host: admin.test", "Host: gw.test"]),
    ("/x", ["Host: admin.test."]),
    ("/x", ["Host: ADMIN.Test"]),
    ("/x", ["Host: admin.test.:80"]),
    ("/x", ["Host: gw.test@admin.test"]),
    ("http://admin.test./x", ["Host: gw.test"]),
    ("http://admin.test./x", []),
    ("http://gw.test/x", ["Host: admin.test"]),
    ("http://u:p@admin.test/x", ["Host: admin.test"]),
    ("/x", []),
    ("/admin", ["Host: gw.test", "X-Forwarded-Host: admin.test"]),
    ("/x", ["Host: gw.test", "X-Forwarded-Host: admin.test", "X-Original-URL: /admin", "X-Rewrite-URL: /admin"]),
]


@pytest.mark.parametrize("target,hosts", KNOWN, ids=[f"{t}|{'|'.join(h)}" for t, h in KNOWN])
def test_known_bypasses_are_closed(env, target, hosts):
    check(env, target, hosts)


def test_known_bypasses_get_precise_errors(env):
    gw, _ = env
    port = gw.ports[0]
    expect = {
        b"GET /admin#x HTTP/1.1\r\nHost: gw.test\r\n\r\n": (400, "bad_request"),
        b"GET /admin%2Fusers HTTP/1.1\r\nHost: gw.test\r\n\r\n": (400, "invalid_path"),
        b"GET /a\\b HTTP/1.1\r\nHost: gw.test\r\n\r\n": (400, "invalid_path"),
        b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n": (400, "invalid_host"),
        b"GET /x HTTP/1.1\r\nHost: a@b\r\n\r\n": (400, "invalid_host"),
        b"GET /x HTTP/1.1\r\n\r\n": (400, "invalid_host"),
        b"GET http://gw.test/x HTTP/1.1\r\nHost: admin.test\r\n\r\n": (400, "invalid_host"),
        b"GET /x HTTP/2.0\r\nHost: gw.test\r\n\r\n": (505, "http_version_not_supported"),
        b"CONNECT admin.test:443 HTTP/1.1\r\nHost: admin.test:443\r\n\r\n": (405, "method_not_allowed"),
        b"OPTIONS * HTTP/1.1\r\nHost: gw.test\r\n\r\n": (400, "bad_request"),
        b"GET /%zz HTTP/1.1\r\nHost: gw.test\r\n\r\n": (400, "invalid_path"),
        b"GET /a%00 HTTP/1.1\r\nHost: gw.test\r\n\r\n": (400, "invalid_path"),
    }
    for head, (status, kind) in expect.items():
        r = exchange(port, head)
        assert (r.status, r.json()["error"]["type"]) == (status, kind), (head, r.status, r.body)
    # HTTP/1.0 without Host is fine (public routes only)
    r = exchange(port, b"GET /x HTTP/1.0\r\n\r\n")
    assert r.status == 200 and r.body.startswith(b"public|/x|")


def test_listener_rules(env):
    gw, token = env
    auth = f"Authorization: Bearer {token}\r\n"
    # encodedSlashes: decode -> matched and forwarded decoded
    r = exchange(gw.ports[2], f"GET /admin%2Fusers HTTP/1.1\r\nHost: gw.test\r\n{auth}\r\n".encode())
    assert r.status == 200 and r.header("x-route") == "admin" and r.body.startswith(b"admin|/admin/users|")
    assert exchange(gw.ports[2], b"GET /admin%2Fusers HTTP/1.1\r\nHost: gw.test\r\n\r\n").status == 401
    r = exchange(gw.ports[4], f"GET /a%5Cb\\c HTTP/1.1\r\nHost: gw.test\r\n\r\n".encode())
    assert r.status == 200 and r.json()["raw_path"] == "/a/b/c"
    # pathParameters: reject
    r = exchange(gw.ports[3], b"GET /public;x=1 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    assert (r.status, r.json()["error"]["type"]) == (400, "invalid_path")
    # the default strips them: the upstream never sees them
    r = exchange(gw.ports[1], b"GET /public;x=1/a;b HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    assert r.status == 200 and r.json()["raw_path"] == "/public/a"


def test_canonical_host_and_path_are_what_the_upstream_gets(env):
    gw, token = env
    r = exchange(
        gw.ports[1], f"GET /Public/./a//b/%7euser;jsessionid=1 HTTP/1.1\r\nHost: WWW.Example.COM.:8080\r\n\r\n".encode()
    )
    assert r.status == 200
    body = r.json()
    assert body["raw_path"] == "/Public/a/b/~user"
    assert body["host"] == ["www.example.com:8080"]


# -- generated requests --------------------------------------------------------------------
PIECES = [
    "admin",
    "Admin",
    "public",
    "x",
    ".",
    "..",
    "",
    "%2e",
    "%2E%2e",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    ";",
    ";x=1",
    "..;",
    ".;",
    "%61dmin",
    "adm%69n",
    "%3b",
    "%3B",
    "%25",
    "%252f",
    "%00",
    "%",
    "%zz",
    "a%20b",
    "~",
    "@",
    ":",
]
segment = st.lists(st.sampled_from(PIECES), min_size=1, max_size=3).map("".join)
paths = st.lists(segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))
HOSTS = [
    "gw.test",
    "admin.test",
    "ADMIN.TEST",
    "admin.test.",
    "admin.test:80",
    "admin.test..",
    "gw.test@admin.test",
    "admin.test:99999",
    "[::1]",
    "admin.test.:",
]
host_lines = st.lists(st.sampled_from(HOSTS), min_size=0, max_size=2).map(lambda hs: [f"Host: {h}" for h in hs])
targets = st.one_of(
    paths,
    st.tuples(
        st.sampled_from(["http://admin.test", "http://admin.test.", "http://gw.test", "https://ADMIN.test:443"]), paths
    ).map("".join),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)
@given(target=targets, hosts=host_lines)
def test_generated_requests_have_one_reading(env, target, hosts):
    check(env, target, hosts)
