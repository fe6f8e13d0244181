"""The access log's exact bytes, text and JSON, through a real gateway.

``AccessLog.record`` writes the common case with one f-string and everything else
through the fields' dict: these tests pin the lines of both ways (names and values that
need quoting or escaping, unicode, an empty value, an upstream error, fields added by
``frontendPolicies.accessLog.add``) so that neither drifts from the other. The parts that
change from run to run (the time, the duration, the response's size) are checked for
their form and then replaced by placeholders.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import pytest

from agentgw.telemetry import accesslog
from tests.support.harness import RawHTTP, closed_port, gateway_config, route, wait_for

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TEXT_VARYING = re.compile(
    r"^(?P<time>\S+) (?P<a>.* duration_ms=)(?P<dur>\S+)(?P<b> bytes_sent=)(?P<sent>\d+)(?P<c>.*)$"
)


def _check_time(t: str, before: float, after: float) -> None:
    assert TIME.fullmatch(t), t
    ts = datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert before - 0.002 <= ts <= after + 0.002, (t, before, after)


def _check_duration(d) -> None:
    # round(ms, 3) printed as Python prints a float (text) or as orjson does (JSON)
    assert isinstance(d, float) and d >= 0 and round(d, 3) == d, d


def text_lines(gw, n: int, before: float, after: float) -> list[str]:
    """The gateway's ``n`` text access-log lines, with the varying parts replaced."""
    lines: list[str] = []

    def got() -> bool:
        lines[:] = [ln for ln in gw.stdout_text().split("\n") if " info request " in ln]
        return len(lines) >= n

    wait_for(got, timeout=5, message="access log lines")
    out = []
    for ln in lines:
        m = TEXT_VARYING.match(ln)
        assert m, ln
        _check_time(m["time"], before, after)
        _check_duration(float(m["dur"]))
        assert str(float(m["dur"])) == m["dur"]
        out.append(f"TIME {m['a']}DUR{m['b']}SENT{m['c']}")
    return out


def json_lines(gw, n: int, before: float, after: float) -> list[str]:
    """The gateway's ``n`` JSON access-log lines (raw), with the varying parts replaced."""
    lines: list[str] = []

    def got() -> bool:
        lines[:] = [ln for ln in gw.stdout_text().split("\n") if '"msg":"request"' in ln]
        return len(lines) >= n

    wait_for(got, timeout=5, message="access log lines")
    out = []
    for ln in lines:
        d = json.loads(ln)
        _check_time(d["time"], before, after)
        _check_duration(d["duration_ms"])
        assert isinstance(d["bytes_sent"], int)
        ln = ln.replace(f'"time":"{d["time"]}"', '"time":"TIME"', 1)
        ln = ln.replace(f'"duration_ms":{json.dumps(d["duration_ms"])},', '"duration_ms":DUR,', 1)
        ln = ln.replace(f'"bytes_sent":{d["bytes_sent"]},', '"bytes_sent":SENT,', 1)
        out.append(ln)
    return out


def _config(up, fmt: str, add: dict | None = None) -> tuple[dict, dict]:
    down = closed_port()
    cfg = gateway_config(
        [
            route('ok "route" ü', [up.host], prefix="/ok"),
            route("down", [f"127.0.0.1:{down}"], prefix="/down"),
            route("plain", [up.host], prefix="/"),
        ],
        logging_format=fmt,
    )
    cfg["binds"][0]["listeners"][0]["name"] = "main listener"
    if add:
        cfg["frontendPolicies"] = {"accessLog": {"add": add}}
    return cfg, {"bind": cfg["binds"][0]["port"], "up": up.port, "down": down}


def _requests(gw) -> tuple[float, float]:
    before = time.time()
    with RawHTTP(gw.port) as c:
        assert c.request("GET", "/plain/a?b=1", host="gw.test").status == 200
        r = c.request("GET", '/ok/"q"%20x?u=%C3%BC', host="gw.test", headers=[("x-user", 'al ice "ü"')])
        assert r.status == 200
        assert c.request("POST", "/down", host="", body=b"hello").status == 502
        assert c.request("PUT", "/plain/%C3%BC", host="gw.test:8080", headers=[("x-user", "bøb")]).status == 200
    return before, time.time()


# the built-in fields; a name or value that is empty or holds a space or a double quote is
# quoted as a JSON string (unicode as is)
TEXT = [
    'TIME info request bind={bind} listener="main listener" route=plain backend=127.0.0.1:{up}'
    " client=127.0.0.1 method=GET path=/plain/a?b=1 host=gw.test status=200 duration_ms=DUR"
    " bytes_sent=SENT bytes_received=0",
    'TIME info request bind={bind} listener="main listener" route="ok \\"route\\" ü" backend=127.0.0.1:{up}'
    " client=127.0.0.1 method=GET path=/ok/%22q%22%20x?u=%C3%BC host=gw.test status=200 duration_ms=DUR"
    " bytes_sent=SENT bytes_received=0",
    'TIME info request bind={bind} listener="main listener" route=down backend=127.0.0.1:{down}'
    ' client=127.0.0.1 method=POST path=/down host="" status=502 duration_ms=DUR bytes_sent=SENT'
    ' bytes_received=5 upstream_error="could not connect to 127.0.0.1:{down}: Connection refused"',
    'TIME info request bind={bind} listener="main listener" route=plain backend=127.0.0.1:{up}'
    " client=127.0.0.1 method=PUT path=/plain/%C3%BC host=gw.test:8080 status=200 duration_ms=DUR"
    " bytes_sent=SENT bytes_received=0",
]
# the fields frontendPolicies.accessLog.add adds, after the built-in ones (and after
# upstream_error); a field without a value is left out
TEXT_ADDED = [
    ' code=200 z={{"a":[1,"b c"]}}',
    ' user="al ice \\"ü\\"" code=200 z={{"a":[1,"b c"]}}',
    ' code=502 z={{"a":[1,"b c"]}}',
    ' user=bøb code=200 z={{"a":[1,"b c"]}}',
]
JSON = [
    '{{"time":"TIME","level":"info","msg":"request","bind":"{bind}","listener":"main listener","route":"plain",'
    '"backend":"127.0.0.1:{up}","client":"127.0.0.1","method":"GET","path":"/plain/a?b=1","host":"gw.test",'
    '"status":200,"duration_ms":DUR,"bytes_sent":SENT,"bytes_received":0',
    '{{"time":"TIME","level":"info","msg":"request","bind":"{bind}","listener":"main listener",'
    '"route":"ok \\"route\\" ü","backend":"127.0.0.1:{up}","client":"127.0.0.1","method":"GET",'
    '"path":"/ok/%22q%22%20x?u=%C3%BC","host":"gw.test","status":200,"duration_ms":DUR,"bytes_sent":SENT,'
    '"bytes_received":0',
    '{{"time":"TIME","level":"info","msg":"request","bind":"{bind}","listener":"main listener","route":"down",'
    '"backend":"127.0.0.1:{down}","client":"127.0.0.1","method":"POST","path":"/down","host":"","status":502,'
    '"duration_ms":DUR,"bytes_sent":SENT,"bytes_received":5,'
    '"upstream_error":"could not connect to 127.0.0.1:{down}: Connection refused"',
    '{{"time":"TIME","level":"info","msg":"request","bind":"{bind}","listener":"main listener","route":"plain",'
    '"backend":"127.0.0.1:{up}","client":"127.0.0.1","method":"PUT","path":"/plain/%C3%BC","host":"gw.test:8080",'
    '"status":200,"duration_ms":DUR,"bytes_sent":SENT,"bytes_received":0',
]
JSON_ADDED = [
    ',"code":200,"z":{{"a":[1,"b c"]}}',
    ',"user":"al ice \\"ü\\"","code":200,"z":{{"a":[1,"b c"]}}',
    ',"code":502,"z":{{"a":[1,"b c"]}}',
    ',"user":"bøb","code":200,"z":{{"a":[1,"b c"]}}',
]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_log_lines(harness, fmt):
    """The text format's common case (no fields added) and JSON."""
    up = harness.upstream("up")
    cfg, ports = _config(up, fmt)
    gw = harness.gateway(cfg)
    before, after = _requests(gw)
    if fmt == "text":
        want = [t.format(**ports) for t in TEXT]
        assert text_lines(gw, 4, before, after) == want
    else:
        want = [(t + "}}").format(**ports) for t in JSON]
        assert json_lines(gw, 4, before, after) == want


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_log_lines_with_added_fields(harness, fmt):
    """Lines through the fields' dict: ``frontendPolicies.accessLog.add`` fields."""
    up = harness.upstream("up")
    add = {"user": 'request.headers["x-user"]', "code": "response.code", "z": '{"a": [1, "b c"]}'}
    cfg, ports = _config(up, fmt, add)
    gw = harness.gateway(cfg)
    before, after = _requests(gw)
    if fmt == "text":
        want = [(t + a).format(**ports) for t, a in zip(TEXT, TEXT_ADDED)]
        assert text_lines(gw, 4, before, after) == want
    else:
        want = [(t + a + "}}").format(**ports) for t, a in zip(JSON, JSON_ADDED)]
        assert json_lines(gw, 4, before, after) == want


def test_time_is_formatted_once_per_second(monkeypatch):
    """``time``: UTC, milliseconds truncated; the cached seconds follow the clock."""
    clock = accesslog._Clock()
    for t, want in [
        (1795462248.9999, "2026-11-23T19:30:48.999Z"),
        (1795462249.0, "2026-11-23T19:30:49.000Z"),
        (1795462249.0427, "2026-11-23T19:30:49.042Z"),
        (1795462248.5, "2026-11-23T19:30:48.500Z"),  # the clock stepped back
        (1798761599.9995, "2026-12-31T23:59:59.999Z"),
        (1798761600.0015, "2027-01-01T00:00:00.001Z"),
    ]:
        monkeypatch.setattr(accesslog.time, "time", lambda t=t: t)
        got = clock.now()
        assert got == want
        ms = int((t % 1) * 1000)
        assert got == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


# -- the C helper's line against the fields' dict ------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_C_LINE = getattr(accesslog, "_access_line", None)
_VALUE = st.one_of(
    st.sampled_from(
        ["", "a b", 'q"t', "back\\slash", "tab\there", "é", "127.0.0.1:8080", "/p?q=1", "listener0/route0"]
    ),
    st.text(max_size=12),
)


@pytest.mark.skipif(_C_LINE is None, reason="the C helpers are not built")
@settings(max_examples=400, deadline=None)
@given(
    json_format=st.booleans(),
    values=st.lists(_VALUE, min_size=8, max_size=8),
    status=st.integers(0, 999),
    duration=st.one_of(
        st.floats(0, 100, allow_nan=False),
        st.sampled_from([0.0, 0.0000005, 0.0005, 0.0000625, 0.001, 0.0123456, 1.0, 12.3456789]),
    ),
    sent=st.integers(0, 2**40),
    received=st.integers(0, 2**40),
)
def test_the_c_line_is_the_dict_line(json_format, values, status, duration, sent, received):
    """``access_line`` writes exactly what the fields' dict gives, or declines (None) so
    that the Python path writes it."""
    t = "2026-12-07T20:00:00.123Z"
    got = _C_LINE(json_format, t, *values, status, duration, sent, received)
    fields = {"time": t, "level": "info", "msg": "request"}
    fields.update(zip(("bind", "listener", "route", "backend", "client", "method", "path", "host"), values))
    fields.update(status=status, duration_ms=round(duration * 1000, 3), bytes_sent=sent, bytes_received=received)
    want = accesslog.orjson.dumps(fields) + b"\n" if json_format else accesslog._text_line(fields)
    if json_format:
        clean = all(v.isascii() and v.isprintable() and '"' not in v and "\\" not in v for v in values)
    else:
        clean = all(v.isascii() and v and " " not in v and '"' not in v for v in values)
    # declined (None) exactly when a value needs quoting, escaping or is not ASCII
    assert (got is not None) == clean, (got, values)
    if got is not None:
        assert got == want


@pytest.mark.skipif(_C_LINE is None, reason="the C helpers are not built")
@pytest.mark.parametrize("json_format", [False, True])
def test_the_c_line_takes_the_common_request(json_format):
    vals = ["18080", "listener0", "listener0/route0", "127.0.0.1:18081", "127.0.0.1", "POST", "/bench", "gw:18080"]
    line = _C_LINE(json_format, "2026-12-07T20:00:00.123Z", *vals, 200, 0.000523, 1024, 1024)
    assert line is not None and (b'"duration_ms":0.523' in line if json_format else b" duration_ms=0.523 " in line)


@pytest.mark.skipif(_C_LINE is None, reason="the C helpers are not built")
def test_the_c_line_writes_the_time_now_as_the_clock_does():
    vals = ["b", "l", "r", "k", "c", "GET", "/", "h"]
    before = time.time()
    line = _C_LINE(False, None, *vals, 200, 0.001, 1, 1)
    after = time.time()
    _check_time(line.split(b" ", 1)[0].decode(), before, after)
    got = json.loads(_C_LINE(True, None, *vals, 200, 0.001, 1, 1))
    _check_time(got["time"], before, time.time())
