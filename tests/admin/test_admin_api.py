"""The admin API (``/api/v1/`` on ``config.adminAddr``, docs/admin.md), through a real
gateway process: reads, writes and how they are authenticated and kept from other
sites, config validation and atomic replacement, CEL evaluation, the recent requests
and their live tail, the per-route summary, the log level."""

from __future__ import annotations

import copy
import json
import queue
import threading
import time

import httpx
import pytest
import yaml

from tests.support.harness import dump_yaml, gateway_config, route, wait_for

TOKEN = "s3cret-admin-token-0123456789"
ENV = {"AGENTGW_TEST_ADMIN_TOKEN": TOKEN}
AUTH = {"authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
YAML = {"content-type": "application/yaml"}


def _config(body: str = "v1", admin: dict | None = None, **extra) -> dict:
    routes = [route("hello", [], prefix="/", policies={"directResponse": {"body": body, "status": 200}})]
    cfg = gateway_config(routes, extra_config=extra or None)
    if admin is not None:
        cfg["config"]["admin"] = admin
    return cfg


def _api(gw) -> str:
    return f"http://{gw.admin_addr[0]}:{gw.admin_addr[1]}/api/v1"


@pytest.fixture
def gw(harness):
    return harness.gateway(_config(admin={"token": "$AGENTGW_TEST_ADMIN_TOKEN"}), env=ENV)


# -- reads ----------------------------------------------------------------------------------


def test_reads_need_the_token_when_one_is_set(gw):
    api = _api(gw)
    assert httpx.get(api + "/requests").status_code == 401
    assert httpx.get(api + "/config", headers={"authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
    assert httpx.get(api + "/requests", headers=AUTH).status_code == 200


def test_reads(gw):
    api = _api(gw)
    r = httpx.get(api + "/", headers=AUTH)
    assert r.status_code == 200 and "PUT /api/v1/config" in r.json()["endpoints"]
    cfg = httpx.get(api + "/config", headers=AUTH).json()
    assert cfg["config"]["admin"]["token"] == "<redacted>"  # as /config_dump: no secret
    assert TOKEN not in httpx.get(api + "/config", headers=AUTH).text
    assert cfg["binds"][0]["listeners"][0]["routes"][0]["name"] == "hello"
    assert httpx.get(api + "/log-level", headers=AUTH).json()["level"] == "info"
    assert httpx.get(api + "/nope", headers=AUTH).status_code == 404
    assert httpx.delete(api + "/config", headers={**AUTH, **JSON}).status_code == 405

    for _ in range(3):
        assert httpx.get(gw.url + "/a?x=1").text == "v1"
    summary = wait_for(
        lambda: [r for r in httpx.get(api + "/metrics/summary", headers=AUTH).json()["routes"] if r["route"] == "hello"],
        message="the route's summary",
    )[0]
    assert summary["requests"] == 3 and summary["errors"] == 0
    assert summary["p50_ms"] is not None and summary["p99_ms"] >= summary["p50_ms"]


def test_the_api_is_on_the_admin_address_only(gw):
    stats = f"http://{gw.stats_addr[0]}:{gw.stats_addr[1]}/api/v1/config"
    assert httpx.get(stats).status_code == 404


def test_recent_requests_and_filters(gw):
    api = _api(gw)
    httpx.get(gw.url + "/first")
    httpx.post(gw.url + "/second?q=1", content=b"{}")
    rows = wait_for(lambda: len(httpx.get(api + "/requests", headers=AUTH).json()["requests"]) >= 2 and httpx.get(api + "/requests", headers=AUTH))
    got = rows.json()["requests"]
    assert [r["path"] for r in got[:2]] == ["/second?q=1", "/first"]  # newest first
    row = got[1]
    assert row["method"] == "GET" and row["route"] == "hello" and row["status"] == 200
    assert row["duration_ms"] >= 0 and row["time"].endswith("Z")
    assert [r["path"] for r in httpx.get(api + "/requests?limit=1", headers=AUTH).json()["requests"]] == ["/second?q=1"]
    assert [r["path"] for r in httpx.get(api + "/requests?q=FIRST", headers=AUTH).json()["requests"]] == ["/first"]
    assert httpx.get(api + "/requests?route=other", headers=AUTH).json()["requests"] == []
    assert len(httpx.get(api + "/requests?status=2xx", headers=AUTH).json()["requests"]) == 2
    assert httpx.get(api + "/requests?status=404", headers=AUTH).json()["requests"] == []
    assert httpx.get(api + "/requests?status=abc", headers=AUTH).status_code == 400


def test_live_tail(gw):
    api = _api(gw)
    events: queue.Queue = queue.Queue()

    def tail():
        with httpx.stream("GET", api + "/requests/stream?q=tailed", headers=AUTH, timeout=10) as r:
            events.put(("status", r.status_code, r.headers.get("content-type")))
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.put(("event", json.loads(line[6:])))
                    return

    t = threading.Thread(target=tail, daemon=True)
    t.start()
    assert events.get(timeout=5) == ("status", 200, "text/event-stream")
    time.sleep(0.2)  # (subscribed once the head is sent)
    httpx.get(gw.url + "/not-this-one")
    httpx.get(gw.url + "/tailed")
    kind, ev = events.get(timeout=5)
    assert kind == "event"
    assert ev["path"] == "/tailed" and ev["route"] == "hello" and ev["status"] == 200
    t.join(5)


# -- writes: who may, from where --------------------------------------------------------------


def test_writes_need_the_token(gw):
    url = _api(gw) + "/log-level"
    body = json.dumps({"level": "debug"})
    r = httpx.put(url, content=body, headers=JSON)
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    r = httpx.put(url, content=body, headers={**JSON, "authorization": "Bearer wrong-token-wrong-token"})
    assert r.status_code == 401
    r = httpx.put(url, content=body, headers={**JSON, **AUTH})
    assert r.status_code == 200 and r.json()["level"] == "debug"
    assert httpx.get(url, headers=AUTH).json()["level"] == "debug"
    r = httpx.put(url, content=json.dumps({"level": "loud"}), headers={**JSON, **AUTH})
    assert r.status_code == 400


def test_without_a_token_writes_are_refused(harness):
    gw = harness.gateway(_config())
    r = httpx.put(_api(gw) + "/log-level", content=json.dumps({"level": "debug"}), headers={**JSON, **AUTH})
    assert r.status_code == 403
    assert "config.admin.token" in r.json()["error"]
    assert httpx.get(_api(gw) + "/log-level", headers=AUTH).json()["level"] == "info"


def test_unauthenticated_loopback_writes_when_asked(harness):
    gw = harness.gateway(_config(admin={"allowUnauthenticatedLoopbackWrites": True}))
    r = httpx.put(_api(gw) + "/log-level", content=json.dumps({"level": "warn"}), headers=JSON)
    assert r.status_code == 200 and r.json()["level"] == "warn"


@pytest.mark.parametrize(
    "headers, status, words",
    [
        ({"origin": "https://evil.example"}, 403, "origin"),
        ({"sec-fetch-site": "cross-site"}, 403, "cross-site"),
        ({"sec-fetch-site": "same-site"}, 403, "cross-site"),
        ({"content-type": "text/plain"}, 415, "Content-Type"),
        ({"content-type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
        ({"host": "rebound.example:80"}, 403, "Host"),
    ],
)
def test_cross_site_writes_are_refused(gw, headers, status, words):
    url = _api(gw) + "/log-level"
    r = httpx.put(url, content=json.dumps({"level": "debug"}), headers={**JSON, **AUTH, **headers})
    assert r.status_code == status and words in r.json()["error"], r.text
    assert httpx.get(url, headers=AUTH).json()["level"] == "info"


def test_a_rebound_host_cannot_read_either(gw):
    assert httpx.get(_api(gw) + "/config", headers={**AUTH, "host": "rebound.example"}).status_code == 403
    assert httpx.get(_api(gw) + "/config", headers={**AUTH, "host": "localhost"}).status_code == 200


def test_the_listeners_own_origin_may_write(gw):
    host, port = gw.admin_addr
    h = {**JSON, **AUTH, "origin": f"http://{host}:{port}", "sec-fetch-site": "same-origin"}
    assert httpx.put(_api(gw) + "/log-level", content=json.dumps({"level": "error"}), headers=h).status_code == 200


# -- config -------------------------------------------------------------------------------------


def test_validate(gw):
    url = _api(gw) + "/config/validate"
    good = _config("v2")
    r = httpx.post(url, content=dump_yaml(good), headers={**YAML, **AUTH})
    assert r.json() == {"valid": True, "errors": []}
    r = httpx.post(url, content=json.dumps(good), headers={**JSON, **AUTH})
    assert r.json()["valid"] is True

    bad = copy.deepcopy(good)
    bad["binds"][0]["listeners"][0]["routes"][0]["policies"]["directResponse"]["stauts"] = 201
    text = dump_yaml(bad)
    r = httpx.post(url, content=text, headers={**YAML, **AUTH})
    assert r.status_code == 200 and r.json()["valid"] is False
    (err,) = r.json()["errors"]
    assert err["path"] == "binds[0].listeners[0].routes[0].policies.directResponse.stauts"
    assert "unknown field" in err["message"]
    assert text.splitlines()[err["line"] - 1].strip().startswith("stauts:")

    r = httpx.post(url, content="binds:\n  - port: [1\n", headers={**YAML, **AUTH})
    (err,) = r.json()["errors"]
    assert err["path"] == "(root)" and "invalid YAML" in err["message"] and err["line"] >= 2

    # refused at compile (not by the schema), with its path
    loose = _config(admin={"allowUnauthenticatedLoopbackWrites": True}, adminAddr="0.0.0.0:15999")
    r = httpx.post(url, content=dump_yaml(loose), headers={**YAML, **AUTH})
    (err,) = r.json()["errors"]
    assert err["path"] == "config.admin.allowUnauthenticatedLoopbackWrites"
    assert "loopback" in err["message"]


def test_invalid_put_changes_nothing(gw):
    before = gw.config_path.read_bytes()
    bad = _config("v2", admin={"token": "$AGENTGW_TEST_ADMIN_TOKEN"})
    bad["binds"][0]["listeners"][0]["routes"][0]["backends"] = [{"host": "no-port"}]
    r = httpx.put(_api(gw) + "/config", content=dump_yaml(bad), headers={**YAML, **AUTH})
    assert r.status_code == 422, r.text
    assert r.json()["valid"] is False and r.json()["errors"][0]["path"].startswith("binds[0]")
    assert gw.config_path.read_bytes() == before
    assert [p.name for p in gw.config_path.parent.iterdir() if p.name.endswith(".tmp")] == []
    time.sleep(1.5)  # (a watcher would have seen a change by now)
    assert httpx.get(gw.url + "/").text == "v1"
    assert gw.metric("agentgw_config_reloads_total", result="failed") in (None, 0)
    # unauthenticated: refused before anything is read
    r = httpx.put(_api(gw) + "/config", content=dump_yaml(_config("v3")), headers=YAML)
    assert r.status_code == 401 and gw.config_path.read_bytes() == before


def test_valid_put_changes_what_is_served(gw):
    new = _config("v2", admin={"token": "$AGENTGW_TEST_ADMIN_TOKEN"})
    new["config"].update({k: gw.config["config"][k] for k in ("adminAddr", "statsAddr", "readinessAddr")})
    new["binds"][0]["port"] = gw.port
    text = dump_yaml(new)
    r = httpx.put(_api(gw) + "/config", content=text, headers={**YAML, **AUTH})
    assert r.status_code == 200, r.text
    assert r.json()["applied"] is True
    assert httpx.get(gw.url + "/").text == "v2"  # applied before the answer
    assert gw.config_path.read_text() == text
    assert yaml.safe_load(gw.config_path.read_text())["config"]["admin"]["token"] == "$AGENTGW_TEST_ADMIN_TOKEN"
    time.sleep(1.5)  # the file watcher does not reload it a second time
    assert gw.metric("agentgw_config_reloads_total", result="ok") == 2
    assert (
        httpx.get(_api(gw) + "/config", headers=AUTH).json()["binds"][0]["listeners"][0]["routes"][0]["policies"]["directResponse"][
            "body"
        ]
        == "v2"
    )
    # the same document again: nothing to do
    r = httpx.put(_api(gw) + "/config", content=text, headers={**YAML, **AUTH})
    assert r.json()["changed"] is False


def test_put_that_cannot_be_applied_restores_the_file(gw):
    before = gw.config_path.read_bytes()
    new = yaml.safe_load(before)
    new["config"]["enableIpv6"] = True  # valid, but only a restart applies it
    r = httpx.put(_api(gw) + "/config", content=dump_yaml(new), headers={**YAML, **AUTH})
    assert r.status_code == 409 and "restart" in r.json()["error"], r.text
    assert r.json()["restored"] is True
    assert gw.config_path.read_bytes() == before
    assert httpx.get(gw.url + "/").text == "v1"


# -- CEL --------------------------------------------------------------------------------------


def test_cel_evaluate(gw):
    url = _api(gw) + "/cel/evaluate"

    def ev(doc):
        r = httpx.post(url, content=json.dumps(doc), headers={**JSON, **AUTH})
        assert r.status_code == 200, r.text
        return r.json()

    req = {"method": "POST", "path": "/mcp", "headers": {"X-Team": "blue"}}
    assert ev({"expression": 'request.method == "POST" && request.headers["x-team"] == "blue"', "request": req}) == {
        "ok": True,
        "result": True,
        "type": "BOOL",
    }
    r = ev({"expression": "jwt.sub + '@' + request.path", "request": req, "jwt": {"sub": "alice"}})
    assert r["ok"] is True and r["result"] == "alice@/mcp"
    r = ev({"expression": "{'n': size(request.headers)}", "request": req})
    assert r["result"] == {"n": 1}
    r = ev({"expression": "request.method ==", "request": req})
    assert r["ok"] is False and r["phase"] == "compile" and r["error"]
    r = ev({"expression": "jwt.sub == 'x'", "request": req})
    assert r["ok"] is False and r["phase"] == "eval" and "sub" in r["error"]
    r = ev({"expression": "nosuchvar.x", "request": req})
    assert r["ok"] is False and r["phase"] == "compile"
    bad = httpx.post(url, content=json.dumps({"expression": "true", "cookies": {}}), headers={**JSON, **AUTH})
    assert bad.status_code == 400 and "not a CEL variable" in bad.json()["error"]
