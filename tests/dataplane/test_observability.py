"""Admin API (config_dump redaction, readiness), Prometheus metrics and the
JSON access log."""

from __future__ import annotations

import json
import time
import urllib.request

import httpx
import pytest

from tests.support.harness import closed_port, gateway_config, route, wait_for

SECRET = "Bearer SUPER-SECRET-TOKEN-1234"


@pytest.fixture(scope="module")
def env(module_harness, tls_files):
    up = module_harness.upstream("obs")
    dead = f"127.0.0.1:{closed_port()}"
    routes = [
        route(
            "secret-route",
            [up.host],
            prefix="/secret",
            policies={"requestHeaderModifier": {"set": {"authorization": SECRET}}},
        ),
        route(
            "tls-backend",
            [up.host],
            prefix="/tlsb",
            policies={
                "backendTLS": {
                    "root": str(tls_files.ca_cert),
                    "cert": str(tls_files.cert),
                    "key": str(tls_files.key),
                    "hostname": "localhost",
                }
            },
        ),
        route("dead-route", [dead], prefix="/dead"),
        route("obs-route", [up.host]),
    ]
    gw = module_harness.gateway(gateway_config(routes))
    client = httpx.Client(base_url=gw.url, timeout=10)
    yield gw, up, client
    client.close()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


# -- admin ---------------------------------------------------------------------
def test_readiness_endpoints(env):
    gw, _, _ = env
    assert _get(gw.readiness_url + "/healthz/ready")[0] == 200
    assert _get(gw.admin_url + "/healthz/ready")[0] == 200


def test_config_dump_is_json_and_reflects_config(env):
    gw, up, _ = env
    dump = gw.config_dump()
    text = json.dumps(dump)
    assert "obs-route" in text and "secret-route" in text
    assert up.host in text


def test_config_dump_redacts_secrets(env):
    gw, _, c = env
    text = json.dumps(gw.config_dump())
    assert "SUPER-SECRET-TOKEN" not in text
    assert str(env[0].config["binds"][0]["listeners"][0]["routes"][1]["policies"]["backendTLS"]["key"]) not in text
    assert "<redacted>" in text
    # the secret is still applied on the data path
    echo = c.get("/secret/x").json()
    assert ["authorization", SECRET] in [[k.lower(), v] for k, v in echo["headers"]]


# -- metrics -------------------------------------------------------------------
def _requests_total(gw, **labels) -> float:
    return gw.metric("agentgw_requests_total", **labels) or 0.0


def test_metric_names_exist(env):
    gw, _, c = env
    c.get("/echo/warmup")
    names = {s.name for s in gw.metrics()}
    for expected in (
        "agentgw_requests_total",
        "agentgw_request_duration_seconds_bucket",
        "agentgw_request_duration_seconds_count",
        "agentgw_request_duration_seconds_sum",
        "agentgw_active_connections",
    ):
        assert expected in names, f"{expected} missing from /metrics"


def test_requests_total_increases_with_labels(env):
    gw, _, c = env
    before = _requests_total(gw, route="obs-route", status="200")
    dur_before = gw.metric("agentgw_request_duration_seconds_count") or 0.0
    for _ in range(5):
        assert c.get("/echo/counted").status_code == 200
    wait_for(
        lambda: _requests_total(gw, route="obs-route", status="200") >= before + 5,
        5,
        message="agentgw_requests_total to increase by 5",
    )
    samples = [
        s
        for s in gw.metrics()
        if s.name == "agentgw_requests_total"
        and s.labels.get("route") == "obs-route"
        and s.labels.get("method") in ("GET", "get")  # (other tests of the module POST)
    ]
    assert samples
    labels = samples[0].labels
    for key in ("route", "method", "status"):
        assert key in labels, labels
    assert labels.get("method") in ("GET", "get")
    assert (gw.metric("agentgw_request_duration_seconds_count") or 0.0) >= dur_before + 5


def test_error_statuses_are_counted(env):
    gw, _, c = env
    before = _requests_total(gw, status="404")
    assert c.get("/status/404").status_code == 404  # a 404 relayed from the upstream
    wait_for(lambda: _requests_total(gw, status="404") >= before + 1, 5, message="404 counted")


def test_upstream_connect_errors_counted(env):
    gw, _, c = env
    before = gw.metric("agentgw_upstream_connect_errors_total") or 0.0
    assert c.get("/dead/x").status_code == 502
    wait_for(
        lambda: (gw.metric("agentgw_upstream_connect_errors_total") or 0.0) >= before + 1,
        5,
        message="agentgw_upstream_connect_errors_total to increase",
    )


def test_active_connections_gauge(env):
    gw, _, _ = env
    with httpx.Client(base_url=gw.url, timeout=10) as held:
        assert held.get("/echo/held").status_code == 200
        assert (gw.metric("agentgw_active_connections") or 0) >= 1


# -- access log ------------------------------------------------------------------
def test_access_log_json_fields(env):
    gw, _, c = env
    marker = f"/echo/log-{time.monotonic_ns()}"
    r = c.post(marker + "?q=1", content=b"abc")
    assert r.status_code == 200
    entry = gw.wait_access_log(lambda e: str(e.get("path", "")).startswith(marker))
    for field in ("time", "method", "path", "status", "route", "backend", "duration_ms", "bytes_sent"):
        assert field in entry, f"access log entry lacks {field!r}: {entry}"
    assert entry["method"] == "POST"
    assert int(entry["status"]) == 200
    assert entry["route"] == "obs-route"
    assert "127.0.0.1" in str(entry["backend"])
    assert float(entry["duration_ms"]) >= 0
    assert int(entry["bytes_sent"]) >= len(r.content)


def test_access_log_upstream_error(env):
    gw, _, c = env
    marker = f"/dead/log-{time.monotonic_ns()}"
    assert c.get(marker).status_code == 502
    entry = gw.wait_access_log(lambda e: str(e.get("path", "")).startswith(marker))
    assert int(entry["status"]) == 502
    assert entry.get("upstream_error"), entry


def test_access_log_one_line_per_request(env):
    gw, _, c = env
    marker = f"/echo/many-{time.monotonic_ns()}"
    for _ in range(4):
        c.get(marker)
    wait_for(lambda: sum(1 for e in gw.access_log() if e.get("path") == marker) >= 4, 5, message="4 log lines")
    time.sleep(0.3)
    assert sum(1 for e in gw.access_log() if e.get("path") == marker) == 4


def test_no_traceback_so_far(env):
    gw, _, _ = env
    assert not gw.has_traceback(), gw.logs()
