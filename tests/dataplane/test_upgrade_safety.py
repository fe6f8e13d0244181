"""An upstream's ``101 Switching Protocols`` is honoured only when the client asked for that
upgrade and the upstream names a protocol the client offered. Any other 101 is a 502 JSON
error (the protocol's own error shape on MCP and LLM routes) and the upstream connection
is closed: never a raw tunnel, never a hang, never a pooled connection left switched. On
every path that relays upstream answers: a fresh connection (task), a pooled one from the
task-free path, a pooled one from a task. Interim responses (100, 102, 103) are skipped
and never end the exchange.

The upstreams here are raw sockets (:class:`RawUpstream`), so that they can answer what no
HTTP server library would: a 101 to anything, with or without ``Upgrade``, with bytes of
the "new protocol" right behind the head.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import threading
import time

import aiohttp
import httpx
import pytest

from tests.support.gc_probe import PROBE, cyclic_garbage
from tests.support.harness import (
    ConnectionClosed,
    RawHTTP,
    assert_gateway_error,
    build_request,
    gateway_config,
    route,
    wait_for,
)

SWITCH_WS = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
# 101 answers an upstream might send; "data" ones carry bytes of the new protocol at once.
SWITCHES = {
    "bare": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "ws": SWITCH_WS,
    "ws-data": SWITCH_WS + b"\x81\x10RAW-FROM-UPSTREAM",
    "no-connection": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "no-upgrade": b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\nRAW-FROM-UPSTREAM",
    "h2c": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "after-hints": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + SWITCH_WS + b"RAW-FROM-UPSTREAM",
}
# What the client offers in the upgrade cases, and the 101s that don't match it.
OFFER = "foo/1, WebSocket"
MISMATCHED = ["bare", "no-connection", "no-upgrade", "h2c"]

_tags = itertools.count(1)


def tag() -> str:
    """A mark to find a request by, at the upstream (never a prefix of another)."""
    return f"t{next(_tags)}e"


# --------------------------------------------------------------------------------------------
# a raw upstream
# --------------------------------------------------------------------------------------------
class Req:
    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes):
        self.method, self.target, self.headers, self.body = method, target, headers, body


class UpConn:
    """One connection the gateway opened: the requests it carried, what came after a 101."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.requests: list[Req] = []
        self.switched = False
        self.after = b""  # bytes received after a 101 was sent: a tunnel would put them here
        self.closed = threading.Event()  # the gateway closed it (EOF or reset)


def ok(body: bytes = b"ok", ctype: bytes = b"text/plain", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s" % (ctype, len(body), extra, body)


class RawUpstream:
    """A thread per connection. ``answer(req) -> (bytes, mode)``; mode ``keep`` (read the
    next request), ``close``, ``switched`` (send nothing more, record every byte until
    EOF), ``echo`` (a tunnel: echo every byte until EOF) or ``hold`` (answer no more)."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.conns: list[UpConn] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self.sock.accept()
            except OSError:
                return
            c = UpConn(sock)
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: UpConn) -> None:
        sock = c.sock
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                req = Req(method, target, headers, buf[:n])
                buf = buf[n:]
                c.requests.append(req)
                answer, mode = self.answer(req)
                if mode in ("switched", "echo"):
                    c.switched = True
                sock.sendall(answer)
                if mode == "keep":
                    continue
                if mode == "close":
                    return
                if mode == "echo" and buf:
                    sock.sendall(buf)
                elif mode == "switched":
                    c.after += buf
                while data := sock.recv(65536):
                    if mode == "echo":
                        sock.sendall(data)
                    elif mode == "switched":
                        c.after += data
        except OSError:
            pass
        finally:
            c.closed.set()
            try:
                sock.close()
            except OSError:
                pass

    def conn_of(self, t: str) -> UpConn:
        """The connection that carried the request tagged ``t``."""
        for c in list(self.conns):
            if any(t in r.target or t.encode() in r.body for r in list(c.requests)):
                return c
        raise AssertionError(f"no upstream connection carried request {t}")

    def drop_all(self) -> None:
        """Close every connection (the gateway's idle pooled ones go too)."""
        for c in list(self.conns):
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for c in list(self.conns):
            c.closed.wait(5)

    def stop(self) -> None:
        self._stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.drop_all()


def plain_answer(req: Req):
    """``/<route>/v/<variant>``: a 101 of that kind; ``/<route>/ok``: 200; ``tunnel``: an
    honest 101 then an echo; ``i/...``: interim responses."""
    path = req.target.split("?", 1)[0]
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[1] == "v":
        return SWITCHES[parts[2]], "switched"
    what = "/".join(parts[1:])
    if what == "tunnel":
        # names the protocol in another case than the client did: tokens compare case-insensitively
        return b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nHELLO", "echo"
    if what == "i/hints":
        return (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 102 Processing\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 199 Whatever\r\n\r\n" + ok(b"final")
        ), "keep"
    if what == "i/body":
        # a 1xx has no body whatever its fields say: one that frames one is not HTTP
        return b"HTTP/1.1 150 Odd\r\ncontent-length: 3\r\n\r\nabc" + ok(b"final"), "keep"
    if what == "i/stall":
        return b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", "hold"
    return ok(req.target.encode()), "keep"


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(module_harness):
    warm = RawUpstream(plain_answer)  # answers /ok too: its connections get pooled
    cold = RawUpstream(plain_answer)  # only ever switched: every request finds no idle connection
    ws = module_harness.upstream("ws")
    timeout = {"timeout": {"backendRequestTimeout": "2s"}}
    gw = module_harness.gateway(
        gateway_config(
            [
                route("fast", [warm.host], prefix="/fast"),  # pooled: the task-free path
                route("task", [warm.host], prefix="/task", policies=timeout),  # pooled, in a task
                route("cold", [cold.host], prefix="/cold"),  # a fresh connection, in a task
                route("ws", [ws.host], prefix="/ws"),
            ]
        ),
        command=PROBE,  # (which can count what only the cyclic garbage collector frees)
    )
    yield gw, warm, cold
    warm.stop()
    cold.stop()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def assert_refused(r, *words: str) -> dict:
    err = assert_gateway_error(r.status, r.body, 502, "upstream_protocol_error")
    assert r.header("content-type", "").startswith("application/json")
    for w in words:
        assert w in err["message"], err
    return err


def assert_not_tunnelled(c: UpConn) -> None:
    """The gateway closed the switched connection and sent nothing more on it."""
    assert c.closed.wait(3), "the gateway kept a switched upstream connection open"
    assert c.after == b"", f"bytes reached the upstream after its 101: {c.after[:200]!r}"


def follow_up(s: RawHTTP, up: RawUpstream, prefix: str = "/fast") -> None:
    """The client connection is closed, or serves the next request as HTTP: that request
    reaches the upstream parsed, on another connection than the switched one."""
    t = tag()
    try:
        s.send(build_request("GET", f"{prefix}/ok?{t}"))
        r = s.read_response()
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        return
    assert r.status == 200 and t.encode() in r.body
    assert not up.conn_of(t).switched


def warm_up(s: RawHTTP, up: RawUpstream, prefix: str) -> UpConn:
    """One plain exchange: leaves its upstream connection idle in the pool."""
    t = tag()
    r = s.request("GET", f"{prefix}/ok?{t}")
    assert r.status == 200
    return up.conn_of(t)


# --------------------------------------------------------------------------------------------
# plain HTTP routes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(SWITCHES))
def test_unasked_101_on_a_fresh_connection_is_a_502(env, variant):
    gw, _, cold = env
    t = tag()
    with RawHTTP(gw.port, timeout=5) as s:
        r = s.request("GET", f"/cold/v/{variant}?{t}")
        assert_refused(r, "switched protocols", "no upgrade")
        assert_not_tunnelled(cold.conn_of(t))
        follow_up(s, env[1])


@pytest.mark.parametrize("prefix", ["/fast", "/task"])
@pytest.mark.parametrize("variant", list(SWITCHES))
def test_unasked_101_on_a_pooled_connection_is_a_502(env, variant, prefix):
    """The connection served a plain exchange and was pooled; the 101 answers the next one
    (from the task-free path on /fast, from a task on /task)."""
    gw, warm, _ = env
    t = tag()
    with RawHTTP(gw.port, timeout=5) as s:
        first = warm_up(s, warm, prefix)
        t0 = time.monotonic()
        r = s.request("GET", f"{prefix}/v/{variant}?{t}")
        assert time.monotonic() - t0 < 2
        assert_refused(r, "no upgrade")
        c = warm.conn_of(t)
        assert c is first, "the 101 was meant to come on the pooled connection"
        assert_not_tunnelled(c)
        follow_up(s, warm, prefix)


@pytest.mark.parametrize("variant", MISMATCHED)
@pytest.mark.parametrize("prefix", ["/cold", "/task", "/fast"])
def test_asked_upgrade_answered_by_another_protocol_is_a_502(env, variant, prefix):
    gw, warm, cold = env
    up = cold if prefix == "/cold" else warm
    t = tag()
    with RawHTTP(gw.port, timeout=5) as s:
        if prefix != "/cold":
            warm_up(s, up, prefix)
        r = s.request("GET", f"{prefix}/v/{variant}?{t}", [("Connection", "Upgrade"), ("Upgrade", OFFER)])
        err = assert_refused(r)
        assert "no upgrade" not in err["message"]
        c = up.conn_of(t)
        assert c.requests[-1].headers.get("upgrade") == OFFER  # the offer did reach the upstream
        assert_not_tunnelled(c)
        follow_up(s, warm)


def test_refusals_say_what_went_wrong(env):
    gw, _, cold = env
    upgrade = [("Connection", "Upgrade"), ("Upgrade", OFFER)]
    with RawHTTP(gw.port) as s:
        assert_refused(s.request("GET", f"/cold/v/h2c?{tag()}", upgrade), "h2c", "did not offer")
    with RawHTTP(gw.port) as s:
        assert_refused(s.request("GET", f"/cold/v/bare?{tag()}", upgrade), "without an Upgrade")
    with RawHTTP(gw.port) as s:
        assert_refused(s.request("GET", f"/cold/v/no-connection?{tag()}", upgrade), "Connection: upgrade")


@pytest.mark.parametrize("prefix", ["/cold", "/task", "/fast"])
def test_asked_upgrade_with_the_offered_protocol_is_a_tunnel(env, prefix):
    """The honest case still works, whatever the pool holds: 101, the upstream's first
    bytes, then bytes both ways."""
    gw, warm, cold = env
    up = cold if prefix == "/cold" else warm
    t = tag()
    with RawHTTP(gw.port, timeout=5) as s:
        if prefix != "/cold":
            warm_up(s, up, prefix)
        s.send(build_request("GET", f"{prefix}/tunnel?{t}", [("Connection", "Upgrade"), ("Upgrade", OFFER)]))
        r = s.read_response()
        assert r.status == 101
        assert (r.header("upgrade") or "").lower() == "websocket"
        assert s._read_exact(5) == (b"HELLO", True)
        for i in range(3):
            msg = b"ping-%d" % i
            s.send(msg)
            assert s._read_exact(len(msg)) == (msg, True)
    assert up.conn_of(t).closed.wait(3), "the tunnel's upstream side outlived its client"


def test_a_declined_upgrade_is_a_plain_response(env):
    """An upstream may answer an upgrade request as a plain request (no 101): relayed as is."""
    gw, warm, _ = env
    t = tag()
    with RawHTTP(gw.port) as s:
        r = s.request("GET", f"/task/ok?{t}", [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        assert r.status == 200 and t.encode() in r.body
        follow_up(s, warm, "/task")


def test_real_websocket_still_works(env):
    gw, _, _ = env

    async def go():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{gw.url}/ws") as ws:
                for i in range(5):
                    await ws.send_str(f"m{i}")
                    msg = await ws.receive(timeout=5)
                    assert msg.type == aiohttp.WSMsgType.TEXT and msg.data == f"m{i}"

    asyncio.run(go())


# --------------------------------------------------------------------------------------------
# interim responses
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["/cold", "/task", "/fast"])
def test_interim_responses_are_skipped(env, prefix):
    gw, warm, cold = env
    up = cold if prefix == "/cold" else warm
    with RawHTTP(gw.port) as s:
        if prefix != "/cold":
            warm_up(s, up, prefix)
        for _ in range(2):  # and the connection is pooled and reused after them
            r = s.request("GET", f"{prefix}/i/hints?{tag()}")
            assert r.status == 200 and r.body == b"final"
            assert r.header("link") is None
        # the client saw one response per request, and nothing more
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.sock.recv(1)
        assert s.buf == b""


@pytest.mark.parametrize("prefix", ["/cold", "/fast"])
def test_an_interim_response_with_a_body_is_a_502(env, prefix):
    gw, warm, cold = env
    up = cold if prefix == "/cold" else warm
    t = tag()
    with RawHTTP(gw.port) as s:
        if prefix != "/cold":
            warm_up(s, up, prefix)
        r = s.request("GET", f"{prefix}/i/body?{t}")
        assert_refused(r, "150")
        assert up.conn_of(t).closed.wait(3)


def test_an_interim_response_alone_does_not_end_the_exchange(env):
    """Only a 103 and then nothing: the exchange waits for the final response (here, until
    the route's 2 s timeout), it does not end at the 103."""
    gw, _, _ = env
    with RawHTTP(gw.port, timeout=10) as s:
        t0 = time.monotonic()
        r = s.request("GET", f"/task/i/stall?{tag()}")
        assert_gateway_error(r.status, r.body, 504)
        assert time.monotonic() - t0 > 1.5


# --------------------------------------------------------------------------------------------
# hundreds of them: no leaked socket
# --------------------------------------------------------------------------------------------
def test_many_refused_switches_leak_nothing(env):
    """A few hundred refused switches, on every path: they take no time, and leave no
    socket open and no reference cycle behind."""
    gw, warm, cold = env
    pid = gw.proc.pid
    upgrade = [("Connection", "Upgrade"), ("Upgrade", OFFER)]
    with RawHTTP(gw.port) as s:
        warm_up(s, warm, "/fast")
    warm.drop_all()
    cold.drop_all()
    wait_for(lambda: fd_count(pid) == fd_count(pid), timeout=2)
    time.sleep(0.2)
    baseline = fd_count(pid)
    cyclic_garbage(gw)

    variants = list(SWITCHES)
    t0 = time.monotonic()
    requests = 0
    with RawHTTP(gw.port, timeout=5) as s:
        for i in range(120):
            variant = variants[i % len(variants)]
            # a pooled connection, then the 101 on it (task-free path, or a task)
            prefix = "/fast" if i % 2 else "/task"
            warm_up(s, warm, prefix)
            assert_refused(s.request("GET", f"{prefix}/v/{variant}?{tag()}"))
            # a fresh connection
            assert_refused(s.request("GET", f"/cold/v/{variant}?{tag()}"))
            requests += 3
            if i % 4 == 0:  # an upgrade answered with another protocol (its own client connection)
                with RawHTTP(gw.port, timeout=5) as u:
                    assert_refused(u.request("GET", f"/cold/v/{MISMATCHED[i % len(MISMATCHED)]}?{tag()}", upgrade))
                requests += 1
    elapsed = time.monotonic() - t0
    assert requests >= 300
    garbage = cyclic_garbage(gw)
    # a cycle per refused exchange would leave at least ~10 objects each
    assert sum(garbage.values()) < requests // 4, f"objects left to the cyclic collector: {garbage}"
    assert elapsed < 30, f"{requests} requests took {elapsed:.1f}s"
    switched = [c for c in warm.conns + cold.conns if c.switched]
    assert len(switched) >= 270
    for c in switched:
        assert_not_tunnelled(c)
    # every connection the gateway holds is an idle pooled one: once the upstream closes
    # those, the gateway is back to where it started
    warm.drop_all()
    cold.drop_all()
    wait_for(lambda: fd_count(pid) <= baseline, timeout=5, message=f"gateway fds back to {baseline}")


# --------------------------------------------------------------------------------------------
# MCP and LLM routes (they read upstream answers through the same client)
# --------------------------------------------------------------------------------------------
def mcp_answer(req: Req):
    if req.method != "POST":
        return b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n", "keep"
    msg = json.loads(req.body)
    method, rid = msg.get("method"), msg.get("id")
    if method == "initialize":
        if "switch" in json.dumps(msg.get("params", {}).get("clientInfo", {})):
            return SWITCHES["ws-data"], "switched"
        res = {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "version": "1"},
        }
        body = json.dumps({"jsonrpc": "2.0", "id": rid, "result": res}).encode()
        return ok(body, b"application/json", b"mcp-session-id: s-1\r\n"), "keep"
    if rid is None:
        return b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n", "keep"
    if method == "tools/list":
        tools = [{"name": n, "inputSchema": {"type": "object"}} for n in ("echo", "switch")]
        return ok(
            json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"tools": tools}}).encode(), b"application/json"
        ), "keep"
    if method == "tools/call" and msg["params"]["name"] == "switch":
        return SWITCHES[msg["params"]["arguments"]["variant"]], "switched"
    content = [{"type": "text", "text": json.dumps(msg["params"].get("arguments"))}]
    return ok(
        json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"content": content}}).encode(), b"application/json"
    ), "keep"


def llm_answer(req: Req):
    doc = json.loads(req.body or b"{}")
    text = json.dumps(doc.get("messages"))
    if "SWITCH:" in text:
        variant = text.split("SWITCH:", 1)[1].split('"', 1)[0]
        return SWITCHES[variant], "switched"
    answer = {
        "id": "c-1",
        "object": "chat.completion",
        "created": 1,
        "model": doc.get("model", "m"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return ok(json.dumps(answer).encode(), b"application/json"), "keep"


@pytest.fixture(scope="module")
def agents(module_harness):
    mcp = RawUpstream(mcp_answer)
    llm = RawUpstream(llm_answer)
    llm_cold = RawUpstream(llm_answer)

    def provider(up: RawUpstream) -> dict:
        return {
            "name": f"p{up.port}",
            "provider": {"openAI": {"model": "gpt-4o"}},
            "hostOverride": up.host,
            "policies": {"backendAuth": {"key": "sk-test"}},
        }

    def ai(name: str, up: RawUpstream) -> dict:
        return {
            "name": name,
            "matches": [{"path": {"pathPrefix": f"/{name}"}}],
            "backends": [{"ai": {"groups": [{"providers": [provider(up)]}]}}],
        }

    targets = {"targets": [{"name": "raw", "mcp": {"host": f"http://{mcp.host}/mcp"}}]}
    gw = module_harness.gateway(
        gateway_config([route("mcp", [{"mcp": targets}], prefix="/mcp"), ai("llm", llm), ai("llmcold", llm_cold)])
    )
    yield gw, mcp, llm, llm_cold
    for up in (mcp, llm, llm_cold):
        up.stop()


MCP_HEADERS = {"accept": "application/json, text/event-stream"}


def _rpc(client: httpx.Client, url: str, method: str, params: dict, sid: str | None, rid: int) -> httpx.Response:
    h = dict(MCP_HEADERS, **({"mcp-session-id": sid} if sid else {}))
    return client.post(url, json={"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, headers=h)


def _rpc_doc(r: httpx.Response) -> dict:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        return json.loads(datas[-1])
    return r.json()


@pytest.mark.parametrize("variant", ["bare", "ws", "ws-data", "h2c"])
def test_mcp_tool_call_answered_by_a_101_is_a_jsonrpc_error(agents, variant):
    """The call goes on the session's pooled keep-alive connection (initialize and
    tools/list went before): the 101 becomes a JSON-RPC error, the connection is closed."""
    gw, mcp, _, _ = agents
    url = f"{gw.url}/mcp"
    with httpx.Client(timeout=10) as c:
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        r = _rpc(c, url, "initialize", init, None, 1)
        assert r.status_code == 200, r.text
        sid = r.headers["mcp-session-id"]
        c.post(
            url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=dict(MCP_HEADERS, **{"mcp-session-id": sid}),
        )
        names = [t["name"] for t in _rpc_doc(_rpc(c, url, "tools/list", {}, sid, 2))["result"]["tools"]]
        switch = next(n for n in names if n.endswith("switch"))
        echo = next(n for n in names if n.endswith("echo"))
        t = tag()
        before = len(mcp.conns)
        t0 = time.monotonic()
        r = _rpc(c, url, "tools/call", {"name": switch, "arguments": {"variant": variant, "t": t}}, sid, 3)
        assert time.monotonic() - t0 < 3
        assert r.status_code < 500 or r.headers.get("content-type", "").startswith("application/json")
        doc = _rpc_doc(r)
        assert "error" in doc and doc["id"] == 3, doc
        assert "switched protocols" in doc["error"]["message"], doc
        conn = mcp.conn_of(t)
        assert mcp.conns.index(conn) < before, "the 101 was meant to come on a pooled connection"
        assert_not_tunnelled(conn)
        # the session goes on: the next call is a plain exchange
        doc = _rpc_doc(_rpc(c, url, "tools/call", {"name": echo, "arguments": {"n": 1}}, sid, 4))
        assert doc.get("result", {}).get("content"), doc


def test_mcp_initialize_answered_by_a_101_fails_cleanly(agents):
    """A 101 on a fresh connection during the upstream's initialize."""
    gw, mcp, _, _ = agents
    t = tag()
    with httpx.Client(timeout=10) as c:
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": f"switch-{t}", "version": "1"},
        }
        t0 = time.monotonic()
        r = _rpc(c, f"{gw.url}/mcp", "initialize", init, None, 1)
        assert time.monotonic() - t0 < 3
    assert b"Traceback" not in r.content
    assert r.headers.get("content-type", "").startswith(("application/json", "text/event-stream")), r.text
    # a JSON-RPC answer that tells why the target failed
    assert "switched protocols" in json.dumps(_rpc_doc(r)), r.text
    assert_not_tunnelled(mcp.conn_of(t))


def _chat(c: httpx.Client, url: str, text: str) -> httpx.Response:
    return c.post(
        url, json={"model": "m", "messages": [{"role": "user", "content": text}]}, headers={"authorization": "Bearer k"}
    )


@pytest.mark.parametrize("variant", ["bare", "ws-data", "h2c"])
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "pooled"])
def test_llm_call_answered_by_a_101_is_a_502(agents, variant, warm):
    """Pooled: the call takes the task-free path on the connection a plain call left idle;
    fresh: a task connects."""
    gw, _, llm, llm_cold = agents
    up, name = (llm, "llm") if warm else (llm_cold, "llmcold")
    url = f"{gw.url}/{name}/v1/chat/completions"
    if not warm:
        up.drop_all()  # what an earlier case left idle in the pool
        time.sleep(0.1)
    with httpx.Client(timeout=10) as c:
        if warm:
            r = _chat(c, url, f"hello {tag()}")
            assert r.status_code == 200, r.text
        t = tag()
        before = len(up.conns)
        t0 = time.monotonic()
        r = _chat(c, url, f"{t} SWITCH:{variant}")
        assert time.monotonic() - t0 < 3
        assert r.status_code == 502, r.text
        assert r.headers["content-type"].startswith("application/json")
        err = r.json()["error"]
        assert "switched protocols" in err["message"], err
        conn = up.conn_of(t)
        assert (up.conns.index(conn) < before) == warm
        assert_not_tunnelled(conn)
        r = _chat(c, url, f"again {tag()}")
        assert r.status_code == 200, r.text
